"""An isolated worker pool: a task that crashes or hangs its worker costs that task, not the run.

``concurrent.futures.ProcessPoolExecutor`` cannot tell which task killed a worker (the
whole pool breaks and every pending future fails), nor stop a task that runs forever.
Here every worker has its own pipe and runs one task at a time, with at most one more
queued behind it, so the parent always knows which task a worker is on:

* a worker that dies (LibCST's native parser can overflow the stack on pathological
  input: thousands of nested brackets, a 20 000-long attribute chain) fails its current
  task with :class:`Failure` ``"crashed"``; the task queued behind it goes to another
  worker, and a fresh worker takes the dead one's place;
* a task that runs longer than ``timeout`` seconds gets its worker killed (SIGKILL: a
  native parser does not check for signals) and fails with ``"timeout"``.

Workers are forked where that is safe and cheap (Linux), so they start in milliseconds and
inherit what the parent imported; they import the rest (LibCST) on first use. A worker
ignores SIGINT (the parent decides what Ctrl-C means) and exits when its parent dies.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Deque, Dict, Generic, List, Optional, Tuple, TypeVar, Union

T = TypeVar("T")
R = TypeVar("R")

#: tasks a worker holds: the one it runs, and one waiting in its pipe
PREFETCH = 2
#: a task waits in a busy worker's pipe only if it is smaller than this (bytes): then
#: sending it never blocks, so the parent is never stuck sending while the worker is stuck
#: sending a large answer back (a deadlock); a larger task goes to an idle worker only
QUEUE_LIMIT = 32 * 1024
#: how often a worker checks that its parent is still alive, in seconds
_PARENT_CHECK = 1.0


@dataclass(frozen=True)
class Failure:
    """Why a task has no result: ``kind`` is "crashed", "timeout" or "error"; ``detail`` says more."""

    kind: str
    detail: str


def default_jobs() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def forks() -> bool:
    """Whether workers are forked (and so inherit what the parent imported)."""
    return sys.platform.startswith("linux")


def _context() -> Any:
    """``fork`` on Linux (fast, inherits imports); the platform's default elsewhere."""
    return multiprocessing.get_context("fork") if forks() else multiprocessing.get_context()


class _Worker:
    def __init__(
        self,
        context: Any,
        function: Callable[[Any], Any],
        siblings: List[Connection],
        memory: Optional[int] = None,
    ) -> None:
        self.conn, child = context.Pipe(duplex=True)
        if context.get_start_method() != "fork":
            siblings = []  # nothing is inherited
        # a forked child that flushes a copy of the parent's buffered output would print it twice
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        self.process = context.Process(
            target=_serve,
            args=(child, function, os.getpid(), siblings, memory),
            daemon=True,
            name="checkpointify-worker",
        )
        # multiprocessing closes the child's sys.stdin as it starts; a stand-in object
        # without close() (a test's, an embedding application's) would kill it there
        stdin, sys.stdin = sys.stdin, None  # type: ignore[assignment,unused-ignore]
        try:
            self.process.start()
        finally:
            sys.stdin = stdin
        child.close()
        #: (sequence number, task, size) sent and not answered yet, oldest first
        self.outstanding: Deque[Tuple[int, Any, int]] = deque()
        #: when the oldest outstanding task started (when the previous answer came)
        self.started = time.monotonic()

    def send(self, seq: int, task: Any, size: int) -> None:
        if not self.outstanding:
            self.started = time.monotonic()
        self.outstanding.append((seq, task, size))
        self.conn.send((seq, task))

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError, AttributeError):
            pass
        self.process.join(5)
        self.close()

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


class IsolatedPool(Generic[T, R]):
    """Run ``function`` on tasks in up to ``jobs`` worker processes; see the module doc.

    ``submit`` queues a task under a sequence number; ``poll`` returns the answers that
    arrived, as ``(seq, result or Failure)``, in any order. ``function`` must be a
    module-level function (it is pickled by name where workers are not forked), and a
    ``T`` and ``R`` must pickle.
    """

    def __init__(
        self,
        function: Callable[[T], R],
        jobs: int,
        timeout: Optional[float] = None,
        memory: Optional[int] = None,
    ) -> None:
        self.function = function
        self.memory = memory
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self._context = _context()
        self._workers: List[_Worker] = []
        self._pending: Deque[Tuple[int, T, int]] = deque()
        self._ready: List[Tuple[int, Union[R, Failure]]] = []

    @property
    def busy(self) -> int:
        """Tasks submitted and not answered yet."""
        return len(self._pending) + sum(len(w.outstanding) for w in self._workers)

    def submit(self, seq: int, task: T, size: int = 0) -> None:
        """Queue ``task``; ``size`` is about how many bytes it pickles to (see QUEUE_LIMIT)."""
        self._pending.append((seq, task, size))
        self._dispatch()

    def poll(self, timeout: Optional[float]) -> List[Tuple[int, Union[R, Failure]]]:
        """Answers that arrived within ``timeout`` seconds (sooner if one is already there)."""
        if not self._ready and self._workers:
            self._receive(self._wait_time(timeout))
            self._check_timeouts()
            self._dispatch()
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        """Stop the workers: politely when idle, by force when busy."""
        for worker in self._workers:
            if worker.outstanding:
                worker.kill()
                continue
            try:
                worker.conn.send(None)
            except OSError:
                pass
            worker.process.join(2)
            if worker.process.is_alive():
                worker.kill()
            else:
                worker.close()
        self._workers = []

    def __enter__(self) -> "IsolatedPool[T, R]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- internals

    def _wait_time(self, timeout: Optional[float]) -> Optional[float]:
        if self.timeout is None:
            return timeout
        now = time.monotonic()
        deadlines = [w.started + self.timeout - now for w in self._workers if w.outstanding]
        if not deadlines:
            return timeout
        until = max(0.0, min(deadlines)) + 0.01
        return until if timeout is None else min(timeout, until)

    def _dispatch(self) -> None:
        while self._pending:
            worker = min(self._workers, key=lambda w: len(w.outstanding), default=None)
            if worker is None or (worker.outstanding and len(self._workers) < self.jobs):
                worker = self._spawn()
            elif len(worker.outstanding) >= PREFETCH:
                return
            elif worker.outstanding and self._pending[0][2] >= QUEUE_LIMIT:
                return  # too big to wait in a pipe: it goes to the next idle worker
            seq, task, size = self._pending.popleft()
            try:
                worker.send(seq, task, size)
            except (OSError, ValueError):
                self._pending.appendleft(worker.outstanding.pop())
                self._replace(worker, None)

    def _spawn(self) -> _Worker:
        siblings = [w.conn for w in self._workers]
        worker = _Worker(self._context, self.function, siblings, self.memory)
        self._workers.append(worker)
        return worker

    def _receive(self, timeout: Optional[float]) -> None:
        by_conn: Dict[Any, _Worker] = {w.conn: w for w in self._workers}
        by_sentinel: Dict[Any, _Worker] = {w.process.sentinel: w for w in self._workers}
        for ready in wait(list(by_conn) + list(by_sentinel), timeout):
            worker = by_conn.get(ready) or by_sentinel.get(ready)
            if worker is None or worker not in self._workers:
                continue
            if not self._drain(worker) or ready in by_sentinel:
                self._died(worker)

    def _drain(self, worker: _Worker) -> bool:
        """Read every answer waiting in the worker's pipe; False if the pipe is broken."""
        try:
            while worker.conn.poll():
                seq, result = worker.conn.recv()
                expected = worker.outstanding.popleft()[0] if worker.outstanding else None
                if expected != seq:  # cannot happen: a worker answers in order
                    raise RuntimeError("worker answered task %s, expected %s" % (seq, expected))
                self._ready.append((seq, result))
                worker.started = time.monotonic()
        except (EOFError, OSError):
            return False
        return True

    def _died(self, worker: _Worker) -> None:
        worker.process.join(5)
        code = worker.process.exitcode
        if code is None:
            detail = "its pipe broke"
        elif code < 0:
            detail = "killed by %s" % _signal_name(-code)
        else:
            detail = "exited with status %d" % code
        self._replace(worker, Failure("crashed", detail))

    def _check_timeouts(self) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.outstanding and now - worker.started > self.timeout:
                worker.kill()
                self._replace(worker, Failure("timeout", "longer than %g s" % self.timeout), killed=True)

    def _replace(self, worker: _Worker, failure: Optional[Failure], killed: bool = False) -> None:
        """Fail the worker's current task (if ``failure``), requeue the rest, drop the worker."""
        if not killed:
            worker.kill()
        if failure is not None and worker.outstanding:
            seq, _, _ = worker.outstanding.popleft()
            self._ready.append((seq, failure))
        while worker.outstanding:
            self._pending.appendleft(worker.outstanding.pop())
        if worker in self._workers:
            self._workers.remove(worker)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def limit_memory(limit: Optional[int]) -> None:
    """Cap this process's address space at ``limit`` bytes (``RLIMIT_AS``), so that one
    pathological file makes its own analysis fail (MemoryError, or a crash of the native
    parser) instead of exhausting the machine for every ``-j`` worker. Where the platform
    has no such limit (Windows, macOS ignores it), nothing happens."""
    if limit is None:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _serve(
    conn: Connection,
    function: Callable[[Any], Any],
    parent: int,
    siblings: List[Connection],
    memory: Optional[int] = None,
) -> None:
    """A worker's loop: answer each ``(seq, task)`` with ``(seq, function(task))`` until ``None``."""
    limit_memory(memory)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (the CLI's)
    for sibling in siblings:  # a forked worker holds copies of its siblings' parent ends
        try:
            sibling.close()
        except OSError:
            pass
    while True:
        try:
            while not conn.poll(_PARENT_CHECK):
                if os.getppid() != parent:
                    return  # the parent died: nobody will read the answer
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        seq, task = message
        try:
            result: Any = function(task)
        except BaseException:  # the function promises not to raise; if it does, say so
            result = Failure("error", traceback.format_exc())
        try:
            conn.send((seq, result))
        except (EOFError, OSError):
            return
        except Exception:  # the result does not pickle
            conn.send((seq, Failure("error", traceback.format_exc())))
