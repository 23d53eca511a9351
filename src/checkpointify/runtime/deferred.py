"""Checkpoints completed by the caller: a helper loops and returns, its caller saves.

A rewritten helper opens its loop's checkpoint with ``deferred=True``; the caller, after
the save that persists what the helper returned, calls :func:`complete_deferred`::

    def run_model(samples):
        out = []
        ckpt = checkpoint("job.py::run_model::out", samples, lambda: (out,), key=(samples,), deferred=True)
        [out] = ckpt.restore()
        for s in ckpt:
            out.append(model(s))
        return out

    def main():
        json.dump(run_model(data), f)
        complete_deferred("job.py::run_model::out")

What the runtime promises for such a checkpoint:

* **The log outlives the helper.** When the helper's input is exhausted its log is made
  durable (fsync) and its lock released, but the log stays: a crash after the helper
  returned and before the caller's save re-runs the helper from a complete log (no unit
  runs again), and the caller saves.
* **The caller completes it.** :func:`complete_deferred` removes the log of every call of
  that loop that finished in this process (each call with other arguments has its own
  log: the arguments are the key), and any other log of that loop in the folder that no
  running process holds (a call the resumed caller skipped, say because an outer
  checkpoint restored its result: after the caller's save such a log can only be stale).
* **Fallback at exit.** A call whose caller never completes it (a caller in another file,
  an early ``return``) is completed when the interpreter exits normally: no uncaught
  exception (``sys.exit(n)`` counts as normal). A SIGKILL or an uncaught exception keeps
  the log, so the next run resumes from it.
* **Never mixed.** A call that starts while an earlier call with the same key already
  finished in this process (the same helper run twice on the same input, say once per
  seed) gets a log of its own (``#2``, ``#3``... in its key), so it never returns the
  earlier call's results; a re-run meets the calls in the same order and resumes each from
  its own log. A call that did not finish (it raised, the caller retries) is resumed by
  the retry, as any checkpoint is.
"""

from __future__ import annotations

import _thread  # not threading: importing the runtime stays light (see lite.py)
import atexit
import os
import sys

from .lite import TYPE_CHECKING
from .settings import checkpoint_dir, remote_url

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Dict, List, Tuple

    from .checkpoint import Checkpoint

_LOCK = _thread.allocate_lock()
#: (run-time loop id, key fingerprint) -> how many calls with that key finished in this process
_FINISHED: Dict[Tuple[str, str], int] = {}
#: run-time loop id -> the calls that finished and are not completed yet
_PENDING: Dict[str, List[Checkpoint[Any]]] = {}


def occurrence_key(loop_id: str, key_fp: str) -> str:
    """The key fingerprint of a new call: ``key_fp``, or ``key_fp#n`` when ``n - 1`` calls
    of this loop with this key already finished in this process."""
    with _LOCK:
        earlier = _FINISHED.get((loop_id, key_fp), 0)
    return key_fp if earlier == 0 else "%s#%d" % (key_fp, earlier + 1)


def finished(ckpt: Checkpoint[Any], loop_id: str, base_key_fp: str) -> None:
    """The call's input is exhausted: count it, and keep it until its caller completes it."""
    with _LOCK:
        _FINISHED[(loop_id, base_key_fp)] = _FINISHED.get((loop_id, base_key_fp), 0) + 1
        _PENDING.setdefault(loop_id, []).append(ckpt)


def complete_deferred(loop_id: str) -> None:
    """Remove the log of every call of loop ``loop_id`` that finished in this process.

    Call it after the save that persists what the helper returned (a rewritten caller
    does). ``loop_id`` is the id the helper's ``checkpoint()`` was given; its file part is
    resolved from the calling file, which is the helper's own file when the caller is in it.
    Calls still running are left alone. Like :meth:`Checkpoint.complete`, it never raises
    in the default mode (a log that cannot be removed is a warning)."""
    from .naming import run_time_id

    resolved = run_time_id(loop_id, sys._getframe(1).f_code.co_filename)
    with _LOCK:
        calls = _PENDING.pop(resolved, [])
    for ckpt in calls:
        ckpt.complete()
    urls = {c.url for c in calls if c.url is not None}
    if not calls and remote_url(None):
        urls.add(str(remote_url(None)))
    for url in urls:  # object storage: the same sweep over the prefix's logs
        _sweep_remote(url, resolved)
    directories = {c.directory for c in calls if c.url is None} or ({checkpoint_dir()} if not urls else set())
    for directory in directories:
        _sweep(directory, resolved)


def _prefix(loop_id: str) -> str:
    """The start of the name of every log of ``loop_id`` of this process's shard."""
    from .settings import log_name, shard

    return log_name(loop_id, "", shard())[: -len("-00000000.ckpt")] + "-"


def _sweep_remote(url: str, loop_id: str) -> None:
    """:func:`_sweep` on object storage: remove the logs of ``loop_id`` under ``url`` that
    no call of this run opened; a log whose lease a live process renews is left alone."""
    from .errors import CheckpointError

    try:
        from .remotelogs import remove_stale_logs

        remove_stale_logs(url, loop_id, _prefix(loop_id))
    except CheckpointError:
        pass  # unreachable: the logs stay, as a local one that cannot be removed does


def _sweep(directory: Path, loop_id: str) -> None:
    """Remove the logs of ``loop_id`` that no call of this run opened (a call a resumed
    caller skipped, an argument no longer used): after the caller's save they can only be
    stale. A log another process holds (its loop is running) is left alone."""
    from .errors import CheckpointError
    from .inspection import is_log, read_info, remove

    prefix = _prefix(loop_id)
    try:
        names = [n for n in os.listdir(str(directory)) if n.startswith(prefix) and n.endswith(".ckpt")]
    except OSError:
        return
    for name in names:
        path = directory / name
        try:
            if is_log(path) and read_info(path).loop_id == loop_id:
                remove(path)
        except (CheckpointError, OSError):
            pass  # in use by a running loop, or unreadable: not ours to judge
    if names and not os.environ.get("CHECKPOINTIFY_DIR") and directory == checkpoint_dir():
        from .trust import _remove_folder

        _remove_folder(directory)  # the default folder, once nothing but its .gitignore is left


def _complete_all_at_exit() -> None:
    """Normal interpreter exit: complete the calls no caller completed (see the module
    docstring). An uncaught exception (``sys.last_value`` is set) keeps them for resume."""
    if getattr(sys, "last_value", None) is not None:
        return
    with _LOCK:
        calls = [c for pending in _PENDING.values() for c in pending]
        _PENDING.clear()
    for ckpt in calls:
        try:
            ckpt.complete()
        except Exception:  # strict mode: at exit there is no one left to raise to
            pass


atexit.register(_complete_all_at_exit)
