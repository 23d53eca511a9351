"""Row-wise pandas work: ``df["label"] = df["text"].apply(classify)`` checkpointed per row.

A rewritten statement reads::

    rows = checkpoint_rows("job.py::<module>::df['label']", key=(prompt,))
    df["label"] = rows(df["text"]).apply(classify)
    df.to_csv("labelled.csv")
    rows.complete()

``rows(obj)`` wraps the receiver; its ``apply``, ``progress_apply`` and ``map`` take
exactly pandas' arguments and call pandas' own method, with the function replaced by one
that consults the checkpoint. So pandas still decides everything about the result (its
dtype, its index, a ``Series`` returned per row becoming a ``DataFrame``, ``result_type``,
empty input, duplicate labels, missing values skipped by ``na_action``, the progress bar
of ``progress_apply``), and the result is the one an uninterrupted run returns.

**A unit is one call of the function.** pandas calls it in a deterministic order; each
call's argument is fingerprinted and recorded with its result. A re-run answers the first
calls from the log, as long as each argument has the fingerprint recorded at its
position, and calls the function for the rest. When an argument differs (the input
changed), the log is stale: it is archived with a warning (strict mode: raises
:class:`StaleCheckpointError`) and the whole method runs again from zero.

**Never worse than the original.** On a receiver that is not a pandas object, a function
that is not a plain callable (a ufunc, a string, a dict or Series for ``map``), or an
argument pandas would not call per row or element (``by_row=False``, ``engine=``), the
method runs as written, with one warning. Results that cannot be pickled stop the
checkpointing as in any loop (see :func:`checkpoint`). pandas itself is never imported
here.
"""

from __future__ import annotations

import sys

from .checkpoint import Checkpoint
from .errors import CheckpointError
from .fingerprint import fingerprint
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

ROW_METHODS = ("apply", "progress_apply", "map")


class _Stale(Exception):
    """Raised through pandas when a call's argument is not the one recorded at its position."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


class RowCheckpoint:
    """The checkpoints of one rewritten row-wise statement (see the module docstring).

    Call it on the receiver (``rows(df["text"])``) to get an object whose ``apply``,
    ``progress_apply`` and ``map`` are pandas' own, checkpointed per call of the function;
    :meth:`complete`, after the final save, removes the logs.
    """

    def __init__(
        self,
        loop_id: str,
        legacy_id: str,
        source: str,
        key: object = None,
        directory: Optional[Path] = None,
        strict: Optional[bool] = None,
    ) -> None:
        self.loop_id = loop_id
        self._legacy_id = legacy_id
        self._source = source
        self._key = key
        self._directory = directory
        self._strict = strict
        self._runs = 0
        self._checkpoints: List[Checkpoint[Any]] = []

    def __call__(self, obj: Any) -> "_Rows":
        return _Rows(self, obj)

    def complete(self) -> None:
        """The final save succeeded: remove every log this statement wrote."""
        for ckpt in self._checkpoints:
            ckpt.complete()

    def _checkpoint(self) -> Checkpoint[Any]:
        self._runs += 1
        suffix = "" if self._runs == 1 else "#call%d" % self._runs
        ckpt: Checkpoint[Any] = Checkpoint(
            self.loop_id + suffix,
            None,
            lambda: (),  # replaced in _run, which owns the accumulator
            key=self._key,
            directory=self._directory,
            source=self._source,
            strict=self._strict,
            legacy_id=self._legacy_id + suffix,
        )
        self._checkpoints.append(ckpt)
        return ckpt

    def _run(self, obj: Any, method: str, func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        original = getattr(obj, method)
        why = _unsupported(obj, method, func, kwargs)
        if why is not None:
            print(
                "checkpointify: warning: %s (%s): %s; it runs unchecked, and a crash loses its progress"
                % (self.loop_id, self._source, why),
                file=sys.stderr,
            )
            return original(func, *args, **kwargs)
        while True:
            try:
                return self._checkpointed(original, func, args, kwargs)
            except _Stale as stale:
                ckpt = self._checkpoints.pop()
                ckpt._on_stale(  # archives the log and warns, or raises in strict mode
                    "call #%d of the function got another argument than the one recorded" % stale.position
                )
                ckpt.close()

    def _checkpointed(
        self,
        original: Callable[..., Any],
        func: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> Any:
        ckpt = self._checkpoint()
        calls: List[Tuple[bytes, Any]] = []
        ckpt._state = lambda: (calls,)
        [calls] = ckpt.restore()
        recorded = len(calls)
        position = 0

        def checkpointed(value: Any, *a: Any, **kw: Any) -> Any:
            nonlocal position
            index = position
            position += 1
            fp = fingerprint(value)
            if index < recorded:
                if calls[index][0] != fp:
                    raise _Stale(index + 1)
                return calls[index][1]
            ckpt.advance()  # records the previous call, if it was a fresh one
            result = func(value, *a, **kw)
            calls.append((fp, result))
            return result

        try:
            result = original(checkpointed, *args, **kwargs)
        except BaseException:
            ckpt.close()
            raise
        try:
            if not ckpt._step():  # records the last call
                ckpt._end()
        except CheckpointError:
            if ckpt.strict:
                raise
        return result


class _Rows:
    """A receiver seen through its statement's :class:`RowCheckpoint`; anything but the
    row-wise methods is the receiver's own."""

    __slots__ = ("_owner", "_obj")

    def __init__(self, owner: RowCheckpoint, obj: Any) -> None:
        self._owner = owner
        self._obj = obj

    def apply(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self._owner._run(self._obj, "apply", func, args, kwargs)

    def progress_apply(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self._owner._run(self._obj, "progress_apply", func, args, kwargs)

    def map(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self._owner._run(self._obj, "map", func, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)


def _is_pandas(obj: Any) -> Optional[str]:
    """``"Series"`` or ``"DataFrame"`` for pandas objects (without importing pandas)."""
    for cls in type(obj).__mro__:
        module = cls.__module__
        if (module == "pandas" or module.startswith("pandas.")) and cls.__name__ in ("Series", "DataFrame"):
            return cls.__name__
    return None


def _unsupported(obj: Any, method: str, func: Any, kwargs: Dict[str, Any]) -> Optional[str]:
    """Why pandas would not call ``func`` once per row or element here, or None."""
    kind = _is_pandas(obj)
    if kind is None:
        return "the receiver is a %s, not a pandas Series or DataFrame" % type(obj).__name__
    if not hasattr(obj, method):
        return "%s has no method %s" % (kind, method)
    if not callable(func) or isinstance(func, (str, type)) or type(func).__name__ == "ufunc":
        return "the function is %s, which pandas applies as a whole" % type(func).__name__
    if kwargs.get("by_row", "compat") is False or kwargs.get("engine", "python") != "python":
        return "by_row=False or another engine calls the function on whole columns"
    if kind == "DataFrame" and method == "map":
        return "DataFrame.map is not checkpointed per element"
    return None


def checkpoint_rows(
    loop_id: str,
    *,
    key: object = None,
    directory: Optional[Union[str, "os.PathLike[str]"]] = None,
    strict: Optional[bool] = None,
) -> RowCheckpoint:
    """The checkpoint of one rewritten ``apply``/``progress_apply``/``map`` statement.

    ``loop_id``, ``key``, ``directory`` and ``strict`` mean what they mean for
    :func:`checkpoint` (the file part of the id is resolved from the calling file). Each
    call of the returned object's method on a receiver gets its own log.
    """
    from pathlib import Path

    from .errors import _shown
    from .naming import run_time_id

    caller = sys._getframe(1)
    filename = caller.f_code.co_filename
    return RowCheckpoint(
        run_time_id(loop_id, filename),
        loop_id,
        "%s:%d" % (_shown(Path(filename)), caller.f_lineno),
        key=key,
        directory=Path(directory) if directory is not None else None,
        strict=strict,
    )


if TYPE_CHECKING:
    import os
