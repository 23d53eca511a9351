"""Which store keeps a log's records: one place for loop checkpoints and parallel sites.

:class:`~.checkpoint.Checkpoint` and :class:`~.parallel.Parallel` both keep their records
as frames (:mod:`.frames`) in a log: a local file (:class:`~.filelog.FileStore`: lock,
trust checks, fsync policy) or, when the directory is an object-store URL, a folder of
segments with a lease (:class:`~.objectstore.ObjectStore`: one writer per loop across
machines, background uploads batched by time). This module builds that store, and reopens
one to remove its log, so neither caller knows which it got. (The database store of
``transaction=`` is the checkpoint's own business: see :meth:`Checkpoint._new_store`.)

``fsspec`` is imported only when the location is a URL (by :mod:`.remote`, through
:mod:`.objectstore`): without a URL the runtime stays stdlib-only.
"""

from __future__ import annotations

from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Callable, Dict, Optional

    from .settings import _Settings
    from .store import Owner, Store


def log_store(
    url: Optional[str],
    path: Path,
    loop_id: str,
    settings: _Settings,
    header: Dict[str, Any],
    owner: Callable[[], Optional[Owner]],
    default_dir: bool,
    commit_first: object = None,
    upload_interval: Optional[float] = None,
) -> Store:
    """The store of the log ``path.name`` (not opened yet): on object storage under
    ``url`` when it is set, else the file ``path``. ``owner`` is a weak reference to the
    checkpoint or parallel site (its waiting records are written at exit and when a newer
    instance of the same loop takes over). On object storage the store's ``min_window``
    is the upload interval (``upload_interval``, else ``$CHECKPOINTIFY_UPLOAD_INTERVAL``,
    else 1 s): its owner batches records for at least that long."""
    if url is not None:
        from .objectstore import ObjectStore
        from .objectstore import upload_interval as interval

        return ObjectStore(
            url,
            path.name,
            loop_id,
            settings,
            header,
            owner,
            interval(upload_interval),
            commit_first=commit_first,
        )
    from .filelog import FileStore

    return FileStore(path, loop_id, settings, header, owner, default_dir, commit_first=commit_first)


def for_removal(store: Optional[Store], make: Callable[[], Store]) -> Store:
    """The store through which ``complete()`` removes a log: ``store`` while it is open,
    else a new one from ``make()``, opened, which takes the log's lock or lease first, so
    that the log of a process still running it is never removed."""
    if store is not None and not store.closed:
        return store
    fresh = make()
    fresh.open()
    return fresh
