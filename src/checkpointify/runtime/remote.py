"""Object storage through ``fsspec``: the few calls the object store needs, with retries.

Imported only when ``CHECKPOINTIFY_DIR`` / ``directory=`` is a URL (``s3://``, ``gs://``,
``az://``, any ``fsspec`` protocol); ``fsspec`` and its backend (``s3fs``, ``gcsfs``,
``adlfs``) are the optional extras ``checkpointify[s3]``, ``[gcs]``, ``[azure]``, and
they read credentials and endpoints as they always do (``AWS_*`` variables and profiles,
``AWS_ENDPOINT_URL`` for S3-compatible servers).

Conditional writes, per backend (detected by the filesystem's class, not guessed):

* S3 (``s3fs``): a create-only PUT (``If-None-Match: *``) and a replace-only-this-version
  PUT (``If-Match: <etag>``) go straight to the S3 client.
* Azure Blob (``adlfs``): create-only is ``pipe_file(mode="create")`` (the SDK's
  ``overwrite=False``, ``If-None-Match: *``); replace-only-this-version passes the blob's
  ETag with ``MatchConditions.IfNotModified`` (``If-Match``) through ``pipe_file`` to
  ``upload_blob``. Both are enforced by the service: two writers can never both win.
* Google Cloud Storage (``gcsfs``): create-only is ``pipe_file(mode="create")``, which
  sends ``ifGenerationMatch=0`` (enforced by GCS: a segment is never overwritten).
  gcsfs has no public way to write ``ifGenerationMatch=<generation>``, so a replace
  (the lease's renewal and take-over) is a check-then-write: two processes taking over
  the same expired lease in the same instant can both believe they won; the create-only
  segments still keep a fenced writer from overwriting the new holder's log.
* Any other ``fsspec`` backend: ``pipe_file(mode="create")`` where it supports it, else a
  check-then-write (weaker: one writer is then kept by the lease alone).
"""

from __future__ import annotations

import os
import random
import re
import time

from .errors import CheckpointError, CheckpointWriteError
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

    R = TypeVar("R")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: the extra to install for each protocol (the message of a missing backend names it)
_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}


def is_url(location: object) -> bool:
    """Whether ``location`` (``directory=`` or ``$CHECKPOINTIFY_DIR``) names object storage:
    ``<protocol>://...`` other than ``file://``."""
    text = os.fspath(location) if isinstance(location, os.PathLike) else location
    return isinstance(text, str) and bool(_URL.match(text)) and not text.lower().startswith("file://")


class PreconditionFailed(Exception):
    """A conditional write lost: the object exists (create-only) or changed (If-Match)."""


def _retries() -> int:
    text = os.environ.get("CHECKPOINTIFY_RETRIES", "").strip()
    try:
        return max(0, int(text)) if text else 5
    except ValueError:
        raise CheckpointError("CHECKPOINTIFY_RETRIES must be a number of retries, not %r" % text) from None


class Bucket:
    """The objects under one URL prefix. Keys are relative to the prefix (``a/b``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0].lower()
        try:
            import fsspec
        except ImportError:
            raise CheckpointError(
                "CHECKPOINTIFY_DIR=%s needs fsspec and its %s backend: pip install 'checkpointify[%s]'"
                % (self.url, protocol, _EXTRAS.get(protocol, "s3"))
            ) from None
        # One retry policy, ours (see retry()), not nested ones: each backend's own is turned
        # off on an instance of its own (the options make fsspec cache it apart from the
        # user's), where the backend lets us.
        options: Dict[str, Any] = {}
        if protocol in ("s3", "s3a"):
            options = {"config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}
        elif protocol in ("az", "abfs", "abfss"):
            options = {"connection_timeout": 20}  # connecting waits 20 s at most
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **options)
        except (ImportError, ValueError) as exc:
            raise CheckpointError(
                "cannot use %s for checkpoints: %s (pip install 'checkpointify[%s]')"
                % (self.url, exc, _EXTRAS.get(protocol, "s3"))
            ) from exc
        self.fs: Any = fs
        self.root = root.rstrip("/")
        #: "s3", "azure", "gcs" or "other": which conditional writes the backend has
        self.kind = _kind(fs)
        if self.kind == "s3":
            fs.retries = 1  # s3fs' own loop (its instance for these options is ours alone)
        elif self.kind == "azure":
            _azure_one_attempt(fs)
        self.retries = _retries()
        if self.kind == "gcs":
            # gcsfs retries every request itself (6 attempts, backoff of up to 16 s; fixed
            # when its class is defined), on the errors ours would retry: adding ours would
            # multiply them (34 s a call to an unreachable endpoint, measured, times 6)
            self.retries = 0

    def path(self, key: str) -> str:
        return "%s/%s" % (self.root, key) if key else self.root

    def _bucket_key(self, key: str) -> Tuple[str, str]:
        bucket, _, prefix = self.path(key).partition("/")
        return bucket, prefix

    # -- retries ---------------------------------------------------------------------

    def retry(self, what: str, call: Callable[[], R]) -> R:
        """``call()``, retried with exponential backoff and jitter on network and server
        errors (``OSError`` other than a missing or existing object). Only for idempotent
        calls (a create-only PUT is made idempotent by :meth:`put_new`). Raises
        :class:`CheckpointWriteError` when every attempt failed."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (FileNotFoundError, FileExistsError, PreconditionFailed):
                raise
            except Exception as exc:  # botocore and aiohttp errors are not all OSErrors
                if _precondition(exc):
                    raise PreconditionFailed(str(exc)) from exc
                if not _transient(exc):
                    raise CheckpointWriteError(
                        "cannot %s %s: %s: %s" % (what, self.url, type(exc).__name__, exc)
                    ) from exc
                if attempt == self.retries:
                    raise CheckpointWriteError(
                        "cannot %s %s after %d attempts: %s: %s"
                        % (what, self.url, attempt + 1, type(exc).__name__, exc)
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    # -- the calls -------------------------------------------------------------------

    def get(self, key: str) -> Optional[Tuple[bytes, str]]:
        """The object's bytes and version tag (ETag), or None if there is none."""

        def call() -> Optional[Tuple[bytes, str]]:
            try:
                if self.kind == "s3":  # the bytes with their ETag, from the S3 client s3fs holds
                    bucket, name = self._bucket_key(key)
                    out = self.fs.call_s3("get_object", Bucket=bucket, Key=name)
                    body = out["Body"]
                    data = _read_body(self.fs, body)
                    return data, str(out.get("ETag", ""))
                if self.kind == "azure":
                    # The ETag is read BEFORE the bytes: if the blob changes in between, the
                    # tag is older than the bytes and a later put_if with it fails (412), so
                    # nothing is ever written over a version this process did not see. (The
                    # other order could pair old bytes with the new tag: a put_if would then
                    # replace a change it never read.)
                    etag = self._info(key).get("etag")
                    if not etag:
                        return None  # a "folder", not a blob
                    return self.fs.cat_file(self.path(key)), str(etag)
                data = self.fs.cat_file(self.path(key))
                return data, _digest(data)  # the check of put_if's check-then-write
            except FileNotFoundError:
                return None

        return self.retry("read", call)

    def cat(self, keys: List[str]) -> Dict[str, Optional[bytes]]:
        """Many objects at once (s3fs fetches them concurrently); a missing one is None."""
        if not keys:
            return {}
        paths = [self.path(k) for k in keys]
        out = self.retry("read", lambda: self.fs.cat(paths, on_error="return"))
        result: Dict[str, Optional[bytes]] = {}
        for key, path in zip(keys, paths):
            value = out.get(path)
            if isinstance(value, FileNotFoundError):
                result[key] = None
            elif isinstance(value, BaseException):
                got = self.get(key)  # retried one by one
                result[key] = got[0] if got is not None else None
            else:
                result[key] = value
        return result

    def put_new(self, key: str, data: bytes) -> None:
        """Create the object only if it does not exist; :class:`PreconditionFailed` if it
        does and holds other bytes (a retry that finds its own first attempt succeeded)."""

        def call() -> None:
            if self.kind == "s3":
                bucket, name = self._bucket_key(key)
                self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, IfNoneMatch="*")
                return
            try:
                self.fs.pipe_file(self.path(key), data, mode="create")
            except TypeError:  # a backend without mode=: check, then write (weaker)
                if self.fs.exists(self.path(key)):
                    raise FileExistsError(key) from None
                self.fs.pipe_file(self.path(key), data)

        try:
            self.retry("write", call)
        except (FileExistsError, PreconditionFailed):
            got = self.get(key)
            if got is not None and got[0] == data:
                return  # an earlier attempt went through before its answer was lost
            raise PreconditionFailed(key) from None
        finally:
            self._forget(key)

    def put_if(self, key: str, data: bytes, etag: str) -> str:
        """Replace the object only if it is still version ``etag``; returns the new ETag.
        :class:`PreconditionFailed` if another writer changed it first."""

        def call() -> str:
            if self.kind == "s3":
                bucket, name = self._bucket_key(key)
                out = self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, IfMatch=etag)
                return str(out.get("ETag", ""))
            if self.kind == "azure":
                return self._azure_put_if(key, data, etag)
            got = self.get(key)  # check-then-write: GCS and others (see the module's docstring)
            if got is None or got[1] != etag:
                raise PreconditionFailed(key)
            self.fs.pipe_file(self.path(key), data)
            return _digest(data)

        try:
            try:
                return self.retry("write", call)
            except FileNotFoundError:  # If-Match on an object that is gone (S3 answers 404)
                raise PreconditionFailed(key) from None
        except PreconditionFailed:
            got = self.get(key)
            if got is not None and got[0] == data:
                return got[1]
            raise
        finally:
            self._forget(key)

    def _azure_put_if(self, key: str, data: bytes, etag: str) -> str:
        """``If-Match: etag`` through adlfs (its ``pipe_file`` passes the condition to
        ``upload_blob``); the service answers 412 if the blob changed or is gone."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError

        try:
            out = self.fs.pipe_file(
                self.path(key), data, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceNotFoundError:  # the blob is gone (Azurite answers 412 instead)
            raise FileNotFoundError(key) from None
        new = out.get("etag") if isinstance(out, dict) else None
        if not new:  # an adlfs that does not return upload_blob's answer: ask for it
            new = self._info(key).get("etag")
        return str(new or "")

    def put(self, key: str, data: bytes) -> None:
        """An unconditional PUT (archives, and the torn upload of the ``mid-record`` fault)."""
        self.retry("write", lambda: self.fs.pipe_file(self.path(key), data))
        self._forget(key)

    def list(self, prefix: str = "") -> List[str]:
        """Keys below ``prefix`` (recursively), sorted; none if there is nothing."""
        base = self.path(prefix)

        def call() -> List[str]:
            try:
                # s3fs and gcsfs cache listings unless told; adlfs' find always lists
                found = self.fs.find(base, refresh=True) if self.kind in ("s3", "gcs") else self.fs.find(base)
            except FileNotFoundError:
                return []
            start = len(self.root) + 1
            return sorted(p[start:] for p in found if p.startswith(self.root + "/"))

        self._forget(prefix)
        return self.retry("list", call)

    def children(self) -> List[str]:
        """The names directly under the prefix (objects and "folders")."""

        def call() -> List[str]:
            try:
                if self.kind in ("s3", "gcs"):
                    found = self.fs.ls(self.root, detail=False, refresh=True)
                elif self.kind == "azure":  # adlfs ignores refresh=: it drops its cache instead
                    found = self.fs.ls(self.root, detail=False, invalidate_cache=True)
                else:
                    found = self.fs.ls(self.root, detail=False)
            except FileNotFoundError:
                return []
            return sorted(p.rstrip("/").rpartition("/")[2] for p in found)

        self._forget("")
        return self.retry("list", call)

    def delete(self, keys: List[str]) -> None:
        if keys:
            paths = [self.path(k) for k in keys]
            self.retry("delete", lambda: self.fs.rm(paths))
            for key in keys:
                self._forget(key)

    def modified(self, key: str) -> float:
        """The object's last-modified time (seconds since the epoch; 0 if unknown)."""
        try:
            info = self.retry("read", lambda: self._info(key))
        except (FileNotFoundError, CheckpointError):
            return 0.0
        stamp: Any = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
        if hasattr(stamp, "timestamp"):
            return float(stamp.timestamp())
        try:
            return float(stamp or 0.0)
        except (TypeError, ValueError):
            return 0.0

    def _info(self, key: str) -> Dict[str, Any]:
        """The object's details as the server has them now, not from a listing cached by
        this process (adlfs and gcsfs answer ``info`` from a cached listing of the folder,
        which another machine's writes do not update)."""
        self._forget(key)
        if self.kind in ("s3", "azure"):
            info: Dict[str, Any] = self.fs.info(self.path(key), refresh=True)
        else:
            info = self.fs.info(self.path(key))
        return info

    def _forget(self, key: str) -> None:
        """Drop what the backend cached about ``key`` and its folders (adlfs drops only the
        path it is given; s3fs and gcsfs drop the parents too)."""
        path = self.path(key)
        try:
            while True:
                self.fs.invalidate_cache(path)
                if "/" not in path or len(path) <= len(self.root):
                    break
                path = path.rsplit("/", 1)[0]
        except Exception:  # pragma: no cover - a backend without a listings cache
            pass


def _read_body(fs: Any, body: Any) -> bytes:
    """The bytes of an aiobotocore streaming body, read on s3fs' event loop."""
    from fsspec.asyn import sync

    async def read() -> bytes:
        async with body as stream:
            data: bytes = await stream.read()
            return data

    data: bytes = sync(fs.loop, read)
    return data


def _azure_one_attempt(fs: Any) -> None:
    """Turn off the Azure SDK's retries on adlfs' client: up to 3 more attempts with 15 s
    and more of backoff each (81 s for one call to an unreachable endpoint, measured),
    inside every one of ours. adlfs has no option for it, so the client's retry policy,
    which every blob client it makes shares, is set to one attempt; if a later SDK moves
    it, its own retries simply stay on."""
    policy = getattr(getattr(getattr(fs, "service_client", None), "_config", None), "retry_policy", None)
    for name in ("total_retries", "connect_retries", "read_retries", "status_retries"):
        if isinstance(getattr(policy, name, None), int):
            setattr(policy, name, 0)


def _kind(fs: Any) -> str:
    """Which conditional writes ``fs`` has: "s3" (s3fs), "azure" (adlfs), "gcs" (gcsfs) or
    "other", by the package its class comes from."""
    package = type(fs).__module__.split(".")[0]
    return {"s3fs": "s3", "adlfs": "azure", "gcsfs": "gcs"}.get(package, "other")


def _precondition(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is HTTP 412 Precondition Failed: botocore's error
    response, azure-core's ``status_code`` (``ResourceModifiedError``, ``ConditionNotMet``)
    or gcsfs' ``HttpError.code``."""
    seen = 0
    current: Optional[BaseException] = exc
    while current is not None and seen < 5:
        if getattr(current, "status_code", None) == 412 or getattr(current, "code", None) == 412:
            return True
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            error = response.get("Error", {})
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") in ("PreconditionFailed", "412") or status == 412:
                return True
        if "PreconditionFailed" in str(current) or "Precondition Failed" in str(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _transient(exc: BaseException) -> bool:
    """Worth retrying: a network or server error (OSError, or an error of the HTTP and
    cloud client libraries), not a bug such as a TypeError."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    module = type(exc).__module__.split(".")[0]
    return module in (
        "botocore",
        "aiobotocore",
        "aiohttp",
        "urllib3",
        "requests",
        "google",
        "azure",
        "gcsfs",
        "adlfs",
        "s3fs",
        "fsspec",
    )


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.blake2b(data, digest_size=16).hexdigest()
