"""Real object-storage servers for tests, each in a child process on 127.0.0.1.

* S3: ``moto``'s standalone server (:mod:`tests.support.s3server`), reached through s3fs;
* Azure Blob: Azurite, Microsoft's emulator, from the npm registry (installed by the test
  suite itself on first use into ``.test-tools/azurite``, with ``npm ci`` from the lockfile
  in ``tests/support/azurite/``: every package of its tree at a pinned version), reached
  through adlfs with the well-known development connection string;
* Google Cloud Storage: ``gcp-storage-emulator`` (PyPI), reached through gcsfs with
  ``STORAGE_EMULATOR_HOST``. It ignores ``ifGenerationMatch``: on it a create-only write
  does not refuse an existing object, so tests that need two writers to be kept apart by
  the server skip it (:data:`NO_CONDITIONAL_WRITES`).

Every server has the same face: :meth:`env` (the variables a user's program needs to reach
it), :meth:`bucket` (a fresh empty bucket or container, as a URL), :meth:`keys` (every
object under a URL, read with the server's own API rather than the code under test) and
:meth:`stop`. Each child reads its stdin until the test process closes it or dies, then
stops the server, so no server outlives the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

from tests.support.s3server import S3Server
from tests.support.s3server import list_keys as s3_list_keys

REPO = Path(__file__).resolve().parents[2]
#: where the suite installs Azurite (git-ignored)
TOOLS = REPO / ".test-tools" / "azurite"
#: Azurite's package.json and package-lock.json: the whole tree pinned. Installing
#: ``azurite@3.35.0`` alone resolves its dependencies' ranges to their newest releases, and a
#: registry without one of those (seen: ``sql-escaper@^1.10.0``) fails the install.
LOCKED = Path(__file__).resolve().parent / "azurite"

#: the skip reason of tests that need the server to refuse a conditional write
NO_CONDITIONAL_WRITES = (
    "the GCS emulator (gcp-storage-emulator) ignores ifGenerationMatch, so it cannot refuse a "
    "create-only write of an existing object: two writers are not kept apart there (real GCS does)"
)

# Azurite's well-known development account (published in its documentation)
_AZURE_ACCOUNT = "devstoreaccount1"
_AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Unavailable(Exception):
    """The server cannot run here (a missing tool); the message says why."""


def _child(code: str, *args: str) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop(proc: "subprocess.Popen[str]") -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port(proc: "subprocess.Popen[str]", what: str) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        _stop(proc)
        raise RuntimeError("the %s did not start: %r" % (what, line))
    return int(line)


# ---------------------------------------------------------------------------------- Azure

# Runs Azurite and prints its port; stops it when stdin closes (the test process is gone).
_AZURITE_CHILD = r"""
import re, subprocess, sys, tempfile
with tempfile.TemporaryDirectory() as workspace:
    proc = subprocess.Popen(
        [sys.argv[1], "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
         "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workspace,
    )
    port = None
    for line in proc.stdout:
        found = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = found.group(1)
            break
    print(port or "failed: " + line.strip(), flush=True)
    if port:
        sys.stdin.read()
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
"""


def install_azurite() -> Path:
    """Azurite's blob server, installed with ``npm ci`` from :data:`LOCKED` into :data:`TOOLS`
    on first use (under a file lock: pytest-xdist's workers may ask at the same moment).
    Raises :class:`Unavailable`, naming the reason, if npm is not installed or the install
    fails (no registry reachable): the tests on Azure then skip, saying so."""
    import hashlib

    binary = TOOLS / "node_modules" / ".bin" / "azurite-blob"
    lock_bytes = (LOCKED / "package-lock.json").read_bytes()
    marker = TOOLS / ("installed-" + hashlib.sha256(lock_bytes).hexdigest()[:16])
    if marker.exists() and binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise Unavailable(
            "Azurite (the Azure Blob emulator) is installed with npm, and npm/node are not on PATH"
        )
    import fcntl

    TOOLS.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and binary.exists()):
            for old in TOOLS.glob("installed-*"):
                old.unlink()
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(LOCKED / name, TOOLS / name)
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=TOOLS,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if done.returncode != 0 or not binary.exists():
                errors = [line for line in done.stderr.splitlines() if "error" in line][:3]
                raise Unavailable(
                    "Azurite (the Azure Blob emulator) could not be installed: npm ci in %s failed: %s"
                    % (TOOLS, " / ".join(errors) or "exit code %d" % done.returncode)
                )
            marker.write_text("")
    return binary


class AzuriteServer:
    """Azurite's blob service; :meth:`bucket` makes a fresh container: ``az://<name>``."""

    scheme = "az"

    def __init__(self, binary: Optional[Path] = None) -> None:
        self.proc = _child(_AZURITE_CHILD, str(binary or install_azurite()))
        self.port = _port(self.proc, "Azurite blob server")
        self.endpoint = "http://127.0.0.1:%d/%s" % (self.port, _AZURE_ACCOUNT)

    @property
    def connection_string(self) -> str:
        return "DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;" % (
            _AZURE_ACCOUNT,
            _AZURE_KEY,
            self.endpoint,
        )

    def env(self) -> Dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def bucket(self) -> str:
        from azure.storage.blob import BlobServiceClient

        name = "ckpt-" + uuid.uuid4().hex[:12]
        with BlobServiceClient.from_connection_string(self.connection_string) as client:
            client.create_container(name)
        return "az://" + name

    def keys(self, url: str) -> List[str]:
        return azure_list_keys(self.connection_string, url)

    def stop(self) -> None:
        _stop(self.proc)


def azure_list_keys(connection_string: str, url: str) -> List[str]:
    """Every blob under ``url`` (``az://container/prefix``), with the Azure SDK."""
    from azure.storage.blob import BlobServiceClient

    container, _, prefix = url.split("://", 1)[1].partition("/")
    with BlobServiceClient.from_connection_string(connection_string) as client:
        blobs = client.get_container_client(container).list_blobs(
            name_starts_with=prefix + "/" if prefix else None
        )
        return sorted(blob.name for blob in blobs)


# ------------------------------------------------------------------------------------ GCS

_GCS_CHILD = r"""
import sys
from gcp_storage_emulator.server import create_server
server = create_server("127.0.0.1", 0, in_memory=True)
server.start()
print(server._api._httpd.server_address[1], flush=True)  # the port the OS chose
sys.stdin.read()  # until the test process closes it (or dies)
server.stop()
"""


class GCSServer:
    """``gcp-storage-emulator``; :meth:`bucket` makes a fresh bucket: ``gs://<name>``."""

    scheme = "gs"

    def __init__(self) -> None:
        self.proc = _child(_GCS_CHILD)
        self.endpoint = "http://127.0.0.1:%d" % _port(self.proc, "GCS emulator")

    def env(self) -> Dict[str, str]:
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            # else gcsfs asks the emulator for the bucket's type over gRPC and waits 60 s
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }

    def bucket(self) -> str:
        name = "ckpt-" + uuid.uuid4().hex[:12]
        request = urllib.request.Request(
            self.endpoint + "/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
        return "gs://" + name

    def keys(self, url: str) -> List[str]:
        return gcs_list_keys(self.endpoint, url)

    def stop(self) -> None:
        _stop(self.proc)


def gcs_list_keys(endpoint: str, url: str) -> List[str]:
    """Every object under ``url`` (``gs://bucket/prefix``), with the JSON API."""
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    names: List[str] = []
    token = ""
    while True:
        query = {"prefix": prefix + "/" if prefix else ""}
        if token:
            query["pageToken"] = token
        address = "%s/storage/v1/b/%s/o?%s" % (endpoint, bucket, urllib.parse.urlencode(query))
        with urllib.request.urlopen(address, timeout=30) as answer:
            page = json.loads(answer.read())
        names.extend(item["name"] for item in page.get("items", []))
        token = page.get("nextPageToken", "")
        if not token:
            return sorted(names)


# ------------------------------------------------------------------------------- any of them

#: the backends by name, as the tests' params spell them
KINDS = ("s3", "azure", "gcs")

Server = Union[S3Server, AzuriteServer, GCSServer]


def start(kind: str) -> Server:
    if kind == "s3":
        return S3Server()
    if kind == "azure":
        return AzuriteServer()
    if kind == "gcs":
        return GCSServer()
    raise ValueError(kind)


def list_keys(url: str, env: Dict[str, str]) -> List[str]:
    """Every object under ``url`` on the server that ``env`` (a server's :meth:`env`) names,
    by the URL's scheme."""
    scheme = url.split("://", 1)[0]
    if scheme == "s3":
        return s3_list_keys(env["AWS_ENDPOINT_URL"], url)
    if scheme == "az":
        return azure_list_keys(env["AZURE_STORAGE_CONNECTION_STRING"], url)
    if scheme == "gs":
        return gcs_list_keys(env["STORAGE_EMULATOR_HOST"], url)
    raise ValueError("no test server for %s" % url)


def started(server: Server) -> Iterator[Server]:
    """For a pytest fixture: ``server``, stopped afterwards; the test's own process gets its
    environment too (in-process checkpoints and the CLI use it)."""
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
