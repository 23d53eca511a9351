"""The lease of a log on object storage: one writer per loop across machines.

``<prefix>/<name>.ckpt/lease`` is a small JSON object: the holder (a random id, pid, host,
command line), a **fencing token** that grows by one with every new holder, and the
lease's time to live (``CHECKPOINTIFY_LEASE_SECONDS``, default 30). Every write to it is
conditional: created with ``If-None-Match: *``, renewed and taken over with ``If-Match``
on the version read, so of two processes that race only one wins.

The holder renews it every third of its time to live from a background thread. A process
that finds it held waits, watching it: if the holder renews it, it is alive and the
newcomer runs the loop unchecked (:class:`CheckpointLockedError`, as for a local lock);
if it stays unchanged for a whole time to live, its holder is gone (a pre-empted VM, a
killed pod) and the newcomer takes it over with the next token. No clock is compared
across machines: each process only measures how long it watched. A holder on the same
host whose process is gone is taken over at once, and so is a lease released by a clean
exit.

A holder that was paused past its lease (a frozen VM, a long GC) and comes back finds its
renewal refused (412) and stops writing; if it writes a segment first, the newer holder's
epoch segment already occupies that sequence number, so the write fails too (see
:mod:`.objectstore`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid

from .errors import CheckpointError, CheckpointLockedError
from .lite import TYPE_CHECKING
from .settings import _hostname

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional

    from .remote import Bucket

_DEFAULT_TTL = 30.0


def lease_seconds() -> float:
    text = os.environ.get("CHECKPOINTIFY_LEASE_SECONDS", "").strip()
    try:
        value = float(text) if text else _DEFAULT_TTL
    except ValueError:
        value = -1.0
    if not value > 0:
        raise CheckpointError("CHECKPOINTIFY_LEASE_SECONDS must be a number of seconds > 0, not %r" % text)
    return value


def read_holder(bucket: Bucket, log: str) -> Optional[Dict[str, Any]]:
    """The lease of ``log`` as its holder wrote it (None: no lease, or released)."""
    got = bucket.get(log + "/lease")
    if got is None:
        return None
    try:
        holder = json.loads(got[0].decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(holder, dict) or holder.get("released"):
        return None
    return holder


def describe(holder: Dict[str, Any]) -> str:
    text = "process %s on %s" % (holder.get("pid", "?"), holder.get("host", "?"))
    if holder.get("since"):
        text += " (since %s" % holder["since"]
        text += ": %s)" % holder["argv"] if holder.get("argv") else ")"
    return text


def holder_is_dead(holder: Dict[str, Any]) -> bool:
    """Whether the lease's holder is a process of this host that no longer exists."""
    if holder.get("host") != _hostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Lease:
    """This process' hold on one log's lease (see the module's docstring)."""

    def __init__(
        self, bucket: Bucket, log: str, loop_id: str, where: str, on_lost: Callable[[str], None]
    ) -> None:
        self.bucket = bucket
        self.key = log + "/lease"
        self.loop_id = loop_id
        self.where = where
        self.on_lost = on_lost
        self.ttl = lease_seconds()
        self.me = uuid.uuid4().hex
        self.token = 0
        self.etag = ""
        self.renewed = 0.0  # monotonic time of the last successful write of the lease
        self.lost: Optional[str] = None
        self._io = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.since = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def _body(self, released: bool = False) -> bytes:
        return json.dumps(
            {
                "owner": self.me,
                "token": self.token,
                "ttl": self.ttl,
                "pid": os.getpid(),
                "host": _hostname(),
                "since": self.since,
                "renewed": time.time(),
                "argv": " ".join(sys.argv)[:200],
                "loop_id": self.loop_id,
                "released": released,
            },
            sort_keys=True,
        ).encode("utf-8")

    # -- taking it -------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease, waiting up to one time to live for a silent holder; raise
        :class:`CheckpointLockedError` if its holder shows it is alive."""
        from .remote import PreconditionFailed

        watched: Optional[str] = None  # the version seen first
        since = 0.0
        while True:
            got = self.bucket.get(self.key)
            try:
                if got is None:
                    self.token = 1
                    self.bucket.put_new(self.key, self._body())
                    again = self.bucket.get(self.key)
                    if again is None or json.loads(again[0].decode("utf-8")).get("owner") != self.me:
                        continue
                    self.etag = again[1]
                    break
                data, etag = got
                holder = _parse(data)
                if self._free(holder) or (
                    watched == etag and time.monotonic() - since > _ttl(holder, self.ttl)
                ):
                    self.token = int(holder.get("token", 0)) + 1
                    self.etag = self.bucket.put_if(self.key, self._body(), etag)
                    break
            except PreconditionFailed:
                watched = None  # someone else wrote it: watch afresh
                continue
            if watched is None:
                watched, since = etag, time.monotonic()
            elif watched != etag:
                raise CheckpointLockedError(
                    "checkpoint %s of loop %r is in use by %s, which holds its lease and renews it. Only one "
                    "process at a time can run a loop with its checkpoint; wait for that one to finish or stop "
                    "it (a lease whose holder died is taken over after %g s)"
                    % (self.where, self.loop_id, describe(holder), _ttl(holder, self.ttl)),
                    holder,
                )
            time.sleep(min(0.5, self.ttl / 10))
        self.renewed = time.monotonic()
        self._thread = threading.Thread(target=self._renew_forever, name="checkpointify-lease", daemon=True)
        self._thread.start()

    def _free(self, holder: Dict[str, Any]) -> bool:
        """A released lease, a damaged one, or one whose holder is a dead process on this host."""
        if holder.get("released") or "token" not in holder:
            return True
        return holder_is_dead(holder)

    # -- keeping it ------------------------------------------------------------------

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except CheckpointError:
                pass  # reported through on_lost when it is lost
            if self.lost is not None:
                return

    def renew(self) -> None:
        """Write the lease again (If-Match its last version). Raises
        :class:`CheckpointLockedError` once it is lost."""
        from .remote import PreconditionFailed

        with self._io:
            if self.lost is not None:
                raise CheckpointLockedError(self.lost, {})
            if self._stop.is_set():
                return
            try:
                self.etag = self.bucket.put_if(self.key, self._body(), self.etag)
                self.renewed = time.monotonic()
                return
            except PreconditionFailed:
                self._lose(
                    "another process took over its lease (this one was paused or cut off for longer than %g s)"
                    % self.ttl
                )
            except CheckpointError as exc:
                if time.monotonic() - self.renewed > self.ttl:
                    self._lose("its lease could not be renewed for %g s (%s)" % (self.ttl, exc))
                raise

    def _lose(self, why: str) -> None:
        self.lost = "checkpoint %s: %s; another process may run this loop now, so this one stops writing" % (
            self.where,
            why,
        )
        self.on_lost(self.lost)
        raise CheckpointLockedError(self.lost, {})

    def check(self) -> None:
        """Before a write: raise if the lease is lost; renew it first when a third of its
        time to live is left without a renewal (the thread was starved)."""
        if self.lost is not None:
            raise CheckpointLockedError(self.lost, {})
        if time.monotonic() - self.renewed > self.ttl * 2 / 3:
            self.renew()

    # -- letting go ------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def orphan(self) -> None:
        """A forked child: this is the parent's lease; never touch it."""
        self._stop.set()
        self.lost = "this lease belongs to the parent process"

    def release(self, delete: bool) -> None:
        """Give the lease up: deleted with the log, else marked released (a re-run takes it
        at once). Failures are ignored: the lease then expires."""
        self._stop.set()
        with self._io:
            if self.lost is not None:
                return
            try:
                if delete:
                    self.bucket.delete([self.key])
                else:
                    self.bucket.put_if(self.key, self._body(released=True), self.etag)
            except Exception:
                pass
            self.lost = "released"


def _parse(data: bytes) -> Dict[str, Any]:
    try:
        holder = json.loads(data.decode("utf-8"))
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _ttl(holder: Dict[str, Any], default: float) -> float:
    try:
        return max(float(holder.get("ttl", default)), 0.1)
    except (TypeError, ValueError):
        return default
