"""Fixtures of the runtime tests: the object stores the fault matrix also runs against.

Each backend is a real server started once per session (per pytest-xdist worker) on first
use, on 127.0.0.1 (tests/support/objectservers.py): moto's S3 server, Azurite (installed
with npm on first use; the tests skip if npm is missing) and the GCS emulator. Programs
reach them through s3fs, adlfs and gcsfs exactly as a user's would.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Iterator, Optional

import pytest

from tests.support import objectservers
from tests.support.crash_harness import Remote
from tests.support.objectservers import AzuriteServer, GCSServer, Unavailable
from tests.support.s3server import S3Server, started


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One real S3 API server (moto's, on 127.0.0.1) for the whole session, started on
    first use; each test takes a fresh bucket of its own."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    yield from started()


@pytest.fixture(scope="session")
def azure_server() -> Iterator[Any]:
    """Azurite's blob service (the Azure Storage emulator), reached through adlfs."""
    pytest.importorskip("adlfs")
    pytest.importorskip("azure.storage.blob")
    try:
        server = AzuriteServer()
    except Unavailable as exc:
        pytest.skip(str(exc))
    yield from objectservers.started(server)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Any]:
    """gcp-storage-emulator, reached through gcsfs (it cannot check conditional writes:
    objectservers.NO_CONDITIONAL_WRITES)."""
    # looked up, not imported: gcsfs reads GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT (set by
    # started()) when it is imported, and the test process imports it for in-process tests
    for module in ("gcsfs", "gcp_storage_emulator"):
        if importlib.util.find_spec(module) is None:
            pytest.skip("%s is not installed" % module)
    yield from objectservers.started(GCSServer())


def object_server(request: pytest.FixtureRequest, kind: str) -> Any:
    """The session's server of backend ``kind`` ("s3", "azure", "gcs")."""
    return request.getfixturevalue("%s_server" % kind)


def remote(request: pytest.FixtureRequest, kind: str) -> Remote:
    """A fresh prefix on the ``kind`` server, for a crash-harness job."""
    server = object_server(request, kind)
    return Remote(server.endpoint, server.bucket() + "/job", tuple(sorted(server.env().items())))


#: the fault matrix's stores: S3 by default, Azure and GCS with -m slow (each run there
#: costs a second or more too; test_objectstore.py runs the end-to-end cases by default)
STORES = [
    "local",
    "s3",
    pytest.param("azure", marks=pytest.mark.slow),
    pytest.param("gcs", marks=pytest.mark.slow),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Optional[Remote]:
    """Where a fault-matrix job keeps its checkpoints: None (the local folder) or a fresh
    prefix on an object-storage server (``CHECKPOINTIFY_DIR=s3://...``, ``az://...``,
    ``gs://...``)."""
    if request.param == "local":
        return None
    return remote(request, request.param)
