"""The on-disk format: checksummed frames, the header and the records of units.

Each frame is ``magic u8 | kind u8 | length u32 | crc32 u32 | payload`` (little endian;
the CRC covers kind, length and payload). The first frame is a JSON header; each later
frame holds one or more units: ``first seq u64 | count u32 | count x (item fingerprint 8s
| replaced seq i64 | flags u8)`` followed by the pickle of the units' deltas. A log file
holds the frames one after the other; the database store holds one a row."""

from __future__ import annotations

import struct
import zlib

from .errors import CheckpointError, _short, _type_name
from .fingerprint import _PICKLE_PROTOCOL
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

RUNTIME_VERSION = "2"
FORMAT = "checkpointify/2"
_FORMAT_V1 = "checkpointify/1"  # 0.1 logs: one unit per frame, fully pickled; still readable


_MAGIC = 0xC7
_KIND_HEADER = 1
_KIND_UNIT = 2
_FRAME = struct.Struct("<BBII")  # magic, kind, payload length, crc32(kind|length|payload)
_FRAME_CRC_HEAD = struct.Struct("<BI")
_RECORD = struct.Struct("<QI")  # seq of the first unit, number of units
_UNIT = struct.Struct("<8sqB")  # item fingerprint, seq of the unit it replaces (-1: none), flags
_REORDERABLE = 1  # flag: the unit's effect does not depend on the units before it
_COMBINED = 2  # flag: the record's units share one delta (a batch of cheap units)
_MAX_PAYLOAD = 1 << 30


# ------------------------------------------------------------------------ frames on disk


def _frame(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(_FRAME_CRC_HEAD.pack(kind, len(payload))))
    return _FRAME.pack(_MAGIC, kind, len(payload), crc) + payload


def _frame_end(view: memoryview, pos: int, end: int, kinds: Tuple[int, ...]) -> int:
    """The end offset of a valid frame of one of ``kinds`` starting at ``pos``, or -1."""
    if pos + _FRAME.size > end:
        return -1
    magic, kind, length, crc = _FRAME.unpack_from(view, pos)
    stop: int = pos + _FRAME.size + length
    if magic != _MAGIC or kind not in kinds or stop > end:
        return -1
    if zlib.crc32(view[pos + _FRAME.size : stop], zlib.crc32(_FRAME_CRC_HEAD.pack(kind, length))) != crc:
        return -1
    return stop


class _Scan:
    """The longest valid prefix of a log, and what follows it."""

    __slots__ = ("frames", "valid_end", "size", "corrupt_at")

    def __init__(
        self, frames: List[Tuple[int, int, int]], valid_end: int, size: int, corrupt_at: int
    ) -> None:
        self.frames = frames  # kind, payload start, payload end
        self.valid_end = valid_end  # where the valid prefix ends
        self.size = size
        self.corrupt_at = corrupt_at  # offset of a bad frame that a valid frame follows (-1: only torn)


def _scan(data: bytes) -> _Scan:
    """Read frames from the start until one is short, has a bad magic/kind/length or fails
    its CRC. Whatever follows is a *torn tail* (the writer died mid-write, or a power loss
    left zeros or garbage) unless a valid record frame starts somewhere after it: then the
    log is *corrupt* in the middle, and nothing may be skipped silently."""
    view = memoryview(data)
    frames: List[Tuple[int, int, int]] = []
    pos, size = 0, len(data)
    kinds = (_KIND_HEADER,)  # the header comes first, records after it
    while True:
        stop = _frame_end(view, pos, size, kinds)
        if stop < 0:
            break
        frames.append((data[pos + 1], pos + _FRAME.size, stop))
        pos, kinds = stop, (_KIND_UNIT,)
    corrupt_at = -1
    candidate = data.find(bytes([_MAGIC]), pos + 1)
    while pos < size and candidate >= 0:
        if _frame_end(view, candidate, size, (_KIND_UNIT,)) >= 0:
            corrupt_at = pos
            break
        candidate = data.find(bytes([_MAGIC]), candidate + 1)
    return _Scan(frames, pos, size, corrupt_at)


class _Unit:
    """One completed unit as read back from a log. Units written together as a batch
    share one effect: ``batch`` holds them all, and the effect (``deltas``) is on the last
    one; the others carry no effect of their own."""

    __slots__ = ("seq", "fp", "replaces", "flags", "deltas", "batch")

    def __init__(self, seq: int, fp: bytes, replaces: int, flags: int, deltas: Tuple[Any, ...]) -> None:
        self.seq = seq
        self.fp = fp
        self.replaces = replaces
        self.flags = flags
        self.deltas = deltas
        self.batch: Optional[Tuple[_Unit, ...]] = None

    @property
    def keyed(self) -> bool:
        """Whether its effect (or its batch's) touches a dict or set, not only sequences."""
        effect = self.batch[-1].deltas if self.batch is not None else self.deltas
        return any(d is not None and d[0] != "e" for d in effect)


if TYPE_CHECKING:
    # (seq, item fingerprint, seq of the unit it replaces or -1): a completed unit not yet written
    _PendingUnit = Tuple[int, bytes, int]


def _encode_record(units: Sequence[_PendingUnit], flags: int, deltas: Tuple[Any, ...]) -> bytes:
    """One frame holding ``units`` and their joint effect ``deltas``. Raises whatever
    pickle raises for a value it cannot serialise."""
    from .pickling import _dumps

    body = _dumps([deltas])
    head = _RECORD.pack(units[0][0], len(units)) + b"".join(_UNIT.pack(u[1], u[2], flags) for u in units)
    if len(head) + len(body) > _MAX_PAYLOAD:
        raise CheckpointError(
            "a unit's record is larger than %d bytes; checkpoints hold results up to 1 GiB a unit"
            % _MAX_PAYLOAD
        )
    return _frame(_KIND_UNIT, head + body)


def _decode_units(data: bytes, scan: _Scan, v1: bool) -> List[_Unit]:
    """Every unit of the valid prefix, in log order (raises on a record pickle cannot load)."""
    import pickle

    from .pickling import _loads, _reintern

    view = memoryview(data)
    units: List[_Unit] = []
    for _kind, start, stop in scan.frames[1:]:
        payload = view[start:stop]
        if v1:
            seq, fp, deltas, interned = pickle.loads(payload)
            if interned:
                deltas = _reintern(deltas, frozenset(interned), {})
            units.append(_Unit(seq, fp, -1, 0, deltas))
            continue
        seq, count = _RECORD.unpack_from(payload, 0)
        offset = _RECORD.size + count * _UNIT.size
        deltas_list = _loads(payload[offset:])
        combined = len(deltas_list) == 1 and count > 1  # a batch: its effect is on its last unit
        nothing = (None,) * len(deltas_list[0]) if combined else ()
        record = []
        for index in range(count):
            fp, replaces, flags = _UNIT.unpack_from(payload, _RECORD.size + index * _UNIT.size)
            if combined:
                deltas = deltas_list[0] if index == count - 1 else nothing
            else:
                deltas = deltas_list[index]
            record.append(_Unit(seq + index, fp, replaces, flags, deltas))
        if combined:
            batch = tuple(record)
            for unit in record:
                unit.batch = batch
        units.extend(record)
    return units


def _live(units: List[_Unit]) -> List[_Unit]:
    """The units whose effect still counts: not replaced by a later re-run of their item,
    and not in a batch of which any unit was replaced (a batch's effect is indivisible)."""
    replaced = {u.replaces for u in units if u.replaces >= 0}
    if not replaced:
        return units
    dead = {id(u.batch) for u in units if u.batch is not None and u.seq in replaced}
    return [u for u in units if u.seq not in replaced and (u.batch is None or id(u.batch) not in dead)]


def _count_units(data: bytes, scan: _Scan, v1: bool) -> Tuple[int, int]:
    """(units, replaced units) of the valid prefix, read without unpickling anything."""
    total, replaced = 0, set()
    view = memoryview(data)
    for _kind, start, _stop in scan.frames[1:]:
        if v1:
            total += 1
            continue
        _seq, count = _RECORD.unpack_from(view, start)
        total += count
        for index in range(count):
            _fp, replaces, _flags = _UNIT.unpack_from(view, start + _RECORD.size + index * _UNIT.size)
            if replaces >= 0:
                replaced.add(replaces)
    return total, len(replaced)


def _header_frame(header: Dict[str, Any]) -> bytes:
    """The first frame of a log: ``header`` as JSON, keys sorted."""
    import json

    return _frame(_KIND_HEADER, json.dumps(header, sort_keys=True).encode("utf-8"))


def _header(data: bytes, scan: _Scan) -> Dict[str, Any]:
    """The header frame's JSON object (``{}`` without a valid one)."""
    if not scan.frames:
        return {}
    import json

    _kind, start, stop = scan.frames[0]
    try:
        header = json.loads(data[start:stop].decode("utf-8"))
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


def _unpicklable(loop_id: str, units: Sequence[_PendingUnit], deltas: Tuple[Any, ...], exc: Exception) -> str:
    """Name the loop, the unit(s), the accumulator and the value pickle refused."""
    import pickle

    which = "unit #%d" % units[0][0] if len(units) == 1 else "units #%d-#%d" % (units[0][0], units[-1][0])
    for index, delta in enumerate(deltas):
        try:
            pickle.dumps(delta, _PICKLE_PROTOCOL)
        except Exception as inner:
            value = _culprit(delta)
            return (
                "cannot checkpoint %s of loop %r: accumulator %d of %d received a value of type %s "
                "that cannot be pickled (%s; %s: %s). Checkpointed loops must collect picklable "
                "results"
                % (
                    which,
                    loop_id,
                    index + 1,
                    len(deltas),
                    _type_name(value),
                    _short(value),
                    type(inner).__name__,
                    inner,
                )
            )
    return "cannot checkpoint loop %r: pickling failed (%s: %s)" % (loop_id, type(exc).__name__, exc)


def _culprit(delta: Any) -> Any:
    """The first value inside a delta that pickle refuses (the delta itself if none is)."""
    import pickle

    if delta is None:
        return None
    tag, data = delta
    if tag == "v":
        return data
    values = [x for pair in data for x in pair] if tag == "d" else list(data)
    for value in values:
        try:
            pickle.dumps(value, _PICKLE_PROTOCOL)
        except Exception:
            return value
    return data
