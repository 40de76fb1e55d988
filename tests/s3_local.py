"""A real S3-compatible server for the tests: S3Proxy (from the jar cache) on a free local port,
keeping objects in memory (its ``transient`` backend). Not a mock: S3A, Delta Lake, pyarrow and
the ``deltalake`` package speak the S3 protocol to it over HTTP.

Not the ``filesystem`` backend: it stores S3A's folder markers (``name/``) as folders, then does
not report them, so Hadoop's create of a file inside one (Spark's checkpoint) finds no parent.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tickstream.jvm.jars import jar_cache
from tickstream.jvm.java import find_java
from tickstream.kafka.local import free_port

ACCESS_KEY = "tickstream-test"
SECRET_KEY = "tickstream-test-secret"  # a local test server's credential
REGION = "us-east-1"


@dataclass
class LocalS3:
    """S3Proxy on a free port; ``root`` holds its settings and log."""

    root: Path
    jars_dir: Path
    port: int = 0
    provider: str = "transient"
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LocalS3:
        self.port = self.port or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        properties = self.root / "s3proxy.properties"
        properties.write_text(
            "\n".join(
                [
                    f"s3proxy.endpoint={self.endpoint}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={ACCESS_KEY}",
                    f"s3proxy.credential={SECRET_KEY}",
                    f"jclouds.provider={self.provider}",
                    "jclouds.identity=local",
                    "jclouds.credential=local",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        jars = jar_cache(self.jars_dir).s3proxy_dir
        log = (self.root / "s3proxy.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(find_java().executable),
                "-cp",
                f"{jars}/*",
                "org.gaul.s3proxy.Main",
                "--properties",
                str(properties),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"S3Proxy exited: {(self.root / 's3proxy.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"S3Proxy did not listen on {self.endpoint} within {timeout:g}s")

    def bucket(self, name: str) -> str:
        """Create a bucket (over the S3 API: CreateBucket); returns its name."""
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            allow_bucket_creation=True,
        )
        fs.create_dir(name)
        return name

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
