"""A real S3 API server for tests: ``moto``'s standalone server in a child process on 127.0.0.1.

Programs under test reach it through ``s3fs`` exactly as a user's would: ``AWS_ENDPOINT_URL``
and fake credentials in their environment (:meth:`S3Server.env`).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Dict, Iterator, List

_CHILD = r"""
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server._server.server_address[1], flush=True)
sys.stdin.read()  # until the test process closes it (or dies)
server.stop()
"""


class S3Server:
    """One running server; :meth:`bucket` makes a fresh bucket and returns its URL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the moto server did not start")
        self.endpoint = "http://127.0.0.1:%d" % int(line)

    def env(self) -> Dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def bucket(self) -> str:
        """A new empty bucket: ``s3://<name>``."""
        import boto3

        name = "ckpt-" + uuid.uuid4().hex[:12]
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
        return "s3://" + name

    def keys(self, url: str) -> List[str]:
        """Every key under ``url`` (``s3://bucket/prefix``), sorted."""
        return list_keys(self.endpoint, url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def list_keys(endpoint: str, url: str) -> List[str]:
    """Every key under ``url`` (``s3://bucket/prefix``) on the server at ``endpoint``."""
    import boto3

    bucket, _, prefix = url[len("s3://") :].partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    out = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/" if prefix else "")
    return sorted(o["Key"] for o in out.get("Contents", []))


def started() -> Iterator[S3Server]:
    """For a pytest fixture: a server, stopped afterwards, its environment set in the test's
    own process meanwhile (:func:`tests.support.objectservers.started`)."""
    from tests.support.objectservers import started as serve

    server = S3Server()
    for _ in serve(server):
        yield server
