"""moto's standalone S3 server (PyPI ``moto[server]``) on a loopback port, for tests.

The tests talk real HTTP to it through s3fs, pointed there the way production
points s3fs at any S3-compatible endpoint: ``AWS_ENDPOINT_URL`` and the usual
``AWS_*`` credential variables (``S3Server.environ``), never through a code path
production does not use.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from monitors.testing import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment s3fs/botocore read: endpoint, region, credentials; no
        profile or config file of the machine running the tests."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            **CREDENTIALS,
            **extra,
        }

    def client(self, **credentials: str) -> Any:
        """A boto3 client for setting up buckets, users and policies."""
        import boto3

        creds = {
            "aws_access_key_id": credentials.get("key", CREDENTIALS["AWS_ACCESS_KEY_ID"]),
            "aws_secret_access_key": credentials.get(
                "secret", CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
            ),
        }
        return boto3.client(
            credentials.get("service", "s3"),
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            **creds,
        )

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start(log: Path, *, env: dict[str, str] | None = None, timeout: float = 30.0) -> S3Server:
    """Start ``python -m moto.server`` on a free loopback port; wait until it answers."""
    port = free_port()
    out = open(log, "wb")  # noqa: SIM115 -- the server's log outlives this function
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    out.close()
    server = S3Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.endpoint}/moto-api/", timeout=1).status_code < 500:
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"moto server did not answer within {timeout} s: {log.read_text()}")
        time.sleep(0.1)
