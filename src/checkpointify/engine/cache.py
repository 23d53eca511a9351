"""Per-file results cached by content, so an unchanged tree re-scans without parsing anything.

An entry maps (path as shown, BLAKE2b of the file's bytes) to what ``scan`` reported for
it: its findings and its error, if any. Entries live in a *namespace* per tool version,
source code of checkpointify itself, LibCST and Python versions, prefilter version and
effective configuration (:func:`namespace`): any change there starts a new namespace,
so a stale entry can never be read.

Storage is a folder of *segments* (``<cache>/v1/<namespace>/*.seg``): each run writes
the entries it computed as a new segment (every few seconds and at the end), through a
temporary file renamed into place. So:

* concurrent runs never write the same file, and a reader sees whole segments only;
* a run killed at any moment leaves, at worst, a temporary file nobody reads (removed
  later) and loses the entries it had not flushed yet;
* a segment whose checksum or format does not check out is ignored and deleted, and its
  entries are recomputed and written again.

When a namespace holds many segments, the run that closes it merges them into one,
keeping the entries this run used and the most recent others. Namespaces nobody used for
30 days are removed. Internal errors (a crash, a timeout) are never cached. Any problem
with the cache folder disables the cache for the run; it never fails the run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from checkpointify import __version__
from checkpointify.types import FileResult, Finding, Hazard, Options, Safety

FORMAT = "v1"
_MAGIC = b"checkpointify-cache 1 "
#: merge a namespace's segments when there are more than this many
COMPACT_AFTER = 8
#: flush the new entries as a segment after this many, or this many seconds
FLUSH_ENTRIES = 5000
FLUSH_SECONDS = 5.0
#: namespaces untouched for this long are removed
EXPIRE_SECONDS = 30 * 24 * 3600
#: entries kept by a merge besides the ones this run used
KEEP_UNUSED = 20000

Entry = Tuple[Optional[str], Tuple[Finding, ...]]


def digest(data: bytes) -> str:
    """The content hash files are cached by (also the fix journal's)."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def namespace(options: Options, staged: bool) -> str:
    """The key of everything that can change a file's result besides the file itself."""
    from checkpointify import prefilter

    relevant = replace(options, exclude=(), unsafe_fixes=False, cache_dir=None)
    parts = [
        FORMAT,
        __version__,
        _code_fingerprint(),
        _libcst_version(),
        "%s-%d.%d" % (sys.implementation.name, sys.version_info[0], sys.version_info[1]),
        "prefilter-%d" % prefilter.PREFILTER_VERSION,
        "staged" if staged else "full",
        repr(relevant),
    ]
    return hashlib.blake2b("\0".join(parts).encode("utf-8"), digest_size=12).hexdigest()


def _code_files() -> List[Path]:
    """checkpointify's own source that decides a file's result: every module of the package
    but the runtime (which rewritten programs import, and which no analysis reads)."""
    package = Path(__file__).resolve().parents[1]
    return sorted(p for p in package.rglob("*.py") if "runtime" not in p.relative_to(package).parts[:1])


def _code_fingerprint() -> str:
    """A hash of checkpointify's own source: an edited matcher must not read old results."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=16)
    for path in _code_files():
        h.update(path.relative_to(package).as_posix().encode())
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"?")
    return h.hexdigest()


def _libcst_version() -> str:
    """LibCST's version, without importing it (a warm run must not pay for that)."""
    spec = importlib.util.find_spec("libcst")
    if spec is None or spec.origin is None:
        return "libcst-missing"
    try:
        return "libcst-" + digest(Path(spec.origin).with_name("_version.py").read_bytes())
    except OSError:
        return "libcst-unknown"


def default_directory(config_dir: Optional[Path]) -> Path:
    """``.checkpointify_cache`` next to the configuration file, else in the working directory."""
    return (config_dir or Path.cwd()) / ".checkpointify_cache"


def prepare(directory: Path) -> None:
    """Create the cache folder, marked as a cache (CACHEDIR.TAG) and ignored by git."""
    directory.mkdir(parents=True, exist_ok=True)
    tag = directory / "CACHEDIR.TAG"
    if not tag.exists():
        _write_new(
            tag,
            b"Signature: 8a477f597d28d172789f06886806bc55\n"
            b"# This file is a cache directory tag created by checkpointify.\n"
            b"# For information about cache directory tags, see https://bford.info/cachedir/\n",
        )
    ignore = directory / ".gitignore"
    if not ignore.exists():
        _write_new(ignore, b"# created by checkpointify: nothing here belongs in version control\n*\n")


def _write_new(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, str(path))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ----------------------------------------------------------------------------- entries


def _encode(result: FileResult) -> List[object]:
    return [
        result.error,
        [
            [
                f.code,
                f.variant,
                f.line,
                f.column,
                f.end_line,
                list(f.accumulators),
                f.sink,
                [h.value for h in f.hazards],
                f.fix.value if f.fix is not None else None,
                f.message,
                f.fix_note,
                f.cell,
                f.file_line,
            ]
            for f in result.findings
        ],
    ]


def _decode(value: object, path: str) -> Entry:
    """An entry back as (error, findings); raises on anything malformed."""
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("not an entry")
    error, raw = value
    if error is not None and not isinstance(error, str):
        raise ValueError("bad error")
    if not isinstance(raw, list):
        raise ValueError("bad findings")
    findings = []
    for item in raw:
        (
            code,
            variant,
            line,
            column,
            end_line,
            accumulators,
            sink,
            hazards,
            fix,
            message,
            note,
            cell,
            file_line,
        ) = item
        checks = (
            isinstance(code, str),
            isinstance(variant, str),
            all(isinstance(n, int) and not isinstance(n, bool) for n in (line, column, end_line)),
            isinstance(accumulators, list) and all(isinstance(a, str) for a in accumulators),
            isinstance(sink, str) and isinstance(message, str) and isinstance(note, str),
            isinstance(hazards, list),
            all(n is None or (isinstance(n, int) and not isinstance(n, bool)) for n in (cell, file_line)),
        )
        if not all(checks):
            raise ValueError("bad finding")
        findings.append(
            Finding(
                code=code,
                variant=variant,
                path=path,
                line=line,
                column=column,
                end_line=end_line,
                accumulators=tuple(accumulators),
                sink=sink,
                hazards=tuple(Hazard(h) for h in hazards),
                fix=Safety(fix) if fix is not None else None,
                message=message,
                fix_note=note,
                cell=cell,
                file_line=file_line,
            )
        )
    return error, tuple(findings)


def cacheable(result: FileResult, rewrite: bool) -> bool:
    """Whether a result may be stored: never an internal error (a crash or a bug may not
    recur); from ``fix``/``diff`` only when it says what ``scan`` would (no rewrite tried)."""
    if result.internal:
        return False
    if rewrite and (result.applied or result.new_source is not None):
        return False
    return not (rewrite and result.error is not None and result.findings)


assert {f.name for f in fields(Finding)} >= {"code", "path", "fix_note"}  # _encode/_decode know them all


# ------------------------------------------------------------------------------- cache


class Cache:
    """The cache of one namespace in one folder; see the module doc.

    ``warn`` is called once, with a reason, if the cache has to be given up.
    """

    def __init__(self, directory: Path, key: str, warn: Callable[[str], None] = lambda message: None) -> None:
        self.directory = directory
        self.folder = directory / FORMAT / key
        self.warn = warn
        self.enabled = True
        self._entries: Optional[Dict[str, object]] = None
        self._loaded: List[Path] = []
        self._new: Dict[str, object] = {}
        self._used: set = set()  # type: ignore[type-arg]
        self._written: List[Path] = []
        self._last_flush = time.monotonic()
        self.hits = 0

    @staticmethod
    def _key(path: str, content: str) -> str:
        return "%s:%s" % (content, path)

    def get(self, path: str, content: str) -> Optional[Entry]:
        """The cached (error, findings) of ``path`` with content hash ``content``, or None."""
        if not self.enabled:
            return None
        key = self._key(path, content)
        value = self._new.get(key)
        if value is None:
            value = self._load().get(key)
        if value is None:
            return None
        try:
            entry = _decode(value, path)
        except (ValueError, TypeError):
            return None  # a malformed entry: recomputed, and written again
        self._used.add(key)
        self.hits += 1
        return entry

    def put(self, path: str, content: str, result: FileResult) -> None:
        if not self.enabled:
            return
        key = self._key(path, content)
        self._new[key] = _encode(result)
        self._used.add(key)
        if len(self._new) >= FLUSH_ENTRIES or time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the entries computed since the last flush as a new segment."""
        if not self.enabled or not self._new:
            return
        try:
            prepare(self.directory)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._written.append(self._write_segment(self._new))
        except OSError as exc:
            self._give_up("cannot write the cache in %s: %s" % (self.directory, exc.strerror or exc))
            return
        if self._entries is not None:
            self._entries.update(self._new)
        self._new = {}
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush, merge the namespace's segments if there are many, expire old namespaces."""
        self.flush()
        if not self.enabled:
            return
        try:
            segments = list(self._segments())
            if len(segments) > COMPACT_AFTER:
                self._compact(segments)
            self._expire()
        except OSError:
            pass  # another run is tidying up: nothing lost

    # ----------------------------------------------------------------------- internals

    def _give_up(self, reason: str) -> None:
        if self.enabled:
            self.enabled = False
            self.warn(reason)

    def _segments(self) -> Iterator[Path]:
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".seg"):
                yield self.folder / name

    def _load(self) -> Dict[str, object]:
        if self._entries is None:
            entries: Dict[str, object] = {}
            try:
                for segment in self._segments():
                    content = self._read_segment(segment)
                    if content is not None:
                        entries.update(content)
                        self._loaded.append(segment)
            except OSError:
                pass
            self._entries = entries
        return self._entries

    def _read_segment(self, path: Path) -> Optional[Dict[str, object]]:
        """A segment's entries; a corrupt one is deleted (its entries will be recomputed)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None  # merged away by another run meanwhile
        header, _, payload = data.partition(b"\n")
        ok = header.startswith(_MAGIC) and header[len(_MAGIC) :] == digest(payload).encode()
        if ok:
            try:
                entries = json.loads(payload)
                ok = isinstance(entries, dict)
            except ValueError:
                ok = False
        if not ok:
            try:
                path.unlink()
            except OSError:
                pass
            return None
        return entries  # type: ignore[no-any-return]

    def _write_segment(self, entries: Dict[str, object]) -> Path:
        payload = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        name = "%020d-%d-%s.seg" % (time.time_ns(), os.getpid(), os.urandom(4).hex())
        target = self.folder / name
        _write_new(target, _MAGIC + digest(payload).encode() + b"\n" + payload)
        return target

    def _compact(self, segments: List[Path]) -> None:
        """One segment instead of many: this run's entries, then the newest others."""
        entries = dict(self._load())
        for segment in segments:
            if segment not in self._loaded and segment not in self._written:
                entries.update(self._read_segment(segment) or {})  # written by a concurrent run
        kept = {key: entries[key] for key in self._used if key in entries}
        for key in reversed(list(entries)):  # newest segments last in `entries`
            if len(kept) >= len(self._used) + KEEP_UNUSED:
                break
            kept.setdefault(key, entries[key])
        merged = self._write_segment(kept)
        for segment in segments:
            if segment != merged:
                try:
                    segment.unlink()
                except FileNotFoundError:
                    pass
        for leftover in self.folder.glob(".tmp-*"):
            if time.time() - leftover.stat().st_mtime > 3600:  # a killed run's unfinished write
                leftover.unlink()

    def _expire(self) -> None:
        root = self.directory / FORMAT
        now = time.time()
        for folder in root.iterdir():
            if folder == self.folder or not folder.is_dir():
                continue
            if now - folder.stat().st_mtime > EXPIRE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
