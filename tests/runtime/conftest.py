"""Fixtures of the runtime tests: the object store the fault matrix also runs against."""

from __future__ import annotations

from typing import Iterator, Optional

import pytest

from tests.support.crash_harness import Remote
from tests.support.s3server import S3Server, started


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One real S3 API server (moto's, on 127.0.0.1) for the whole session, started on
    first use; each test takes a fresh bucket of its own."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    yield from started()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> Optional[Remote]:
    """Where a fault-matrix job keeps its checkpoints: None (the local folder) or a fresh
    prefix on the S3 server (``CHECKPOINTIFY_DIR=s3://...``, through s3fs)."""
    if request.param == "local":
        return None
    server: S3Server = request.getfixturevalue("s3_server")
    return Remote(server.endpoint, server.bucket() + "/job", tuple(sorted(server.env().items())))
