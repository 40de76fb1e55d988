"""Where the lake is: every path under ``OUTPUT_PATH``, on a local folder or an object store.

``OUTPUT_PATH`` is a local folder (or a mount every Spark process shares) or an S3 location,
``s3a://bucket/prefix`` (``s3://`` is read as the same). :class:`Lake` names every path under
it once (the tables, the job's checkpoints and state) and gives the three ways they are reached:

- Spark (Hadoop's filesystems: a local path or ``s3a://``, :meth:`Lake.url`);
- the ``deltalake`` package (``s3://`` and its storage options, :meth:`Lake.delta_uri`);
- the driver's own small files (the job's state record, the CSV export, the Delta log read
  for the last committed batch) through a ``pyarrow`` filesystem (:attr:`Lake.fs`).

A file the driver writes is whole or absent for a reader: on a local disk it is written aside
and renamed into place; on S3 an object appears only when its upload completes.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from tickstream.errors import TickstreamError

if TYPE_CHECKING:
    from tickstream.config import Settings

# The activity bars' tables (issue 24), one per kind: written only when the kind is on.
ACTIVITY_TABLES = {"tick": "tick_bars", "volume": "volume_bars", "dollar": "dollar_bars"}
DELTA_TABLES = ("bars", "ticks", "rejects", "late", *ACTIVITY_TABLES.values())
CSV_TABLE = "bars_csv"  # plain CSV files, one per date and batch
CHECKPOINTS = "_checkpoints"
DELTA_LOG = "_delta_log"
PARTITION_PREFIX = "date="  # a table's folders by date: <table>/date=YYYY-MM-DD/


def partition_dir(date: str) -> str:
    """The folder of one date in a table (``date=2013-09-03``)."""
    return f"{PARTITION_PREFIX}{date}"


def batch_file(batch_id: int, ext: str) -> str:
    """The name of the file a micro-batch writes into a date's folder (``part-<batch id>.<ext>``),
    fixed by the batch, so a batch run again writes the same file."""
    return f"part-{batch_id:012d}.{ext}"


S3_SCHEMES = ("s3a://", "s3://")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_object_store(output_path: str | Path) -> bool:
    return str(output_path).lower().startswith(S3_SCHEMES)


@dataclass(frozen=True)
class ObjectStore:
    """How to reach an S3-compatible store (AWS S3, MinIO, S3Proxy...). Empty values mean the
    SDKs' defaults: AWS's endpoint, and credentials from the environment or an instance role."""

    endpoint: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    path_style: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        secret = settings.s3_secret_access_key
        return cls(
            endpoint=settings.s3_endpoint or "",
            region=settings.s3_region or "",
            access_key_id=settings.s3_access_key_id or "",
            secret_access_key=secret.get_secret_value() if secret else "",
            path_style=settings.s3_path_style_access,
        )

    @property
    def plain_http(self) -> bool:
        return self.endpoint.lower().startswith("http://")

    def hadoop(self) -> dict[str, str]:
        """Hadoop's S3A settings (``fs.s3a.*``), for Spark's ``spark.hadoop.`` prefix."""
        conf = {
            "fs.s3a.path.style.access": str(self.path_style).lower(),
            # The state store uploads its files from local disk. S3A's optimized copy sends
            # them through the AWS SDK's transfer manager, whose chunked signing some
            # S3-compatible servers refuse (S3Proxy: XAmzContentSHA256Mismatch); without it,
            # they go through S3A's block upload, as every data file Spark writes does.
            "fs.s3a.optimized.copy.from.local.enabled": "false",
        }
        if self.endpoint:
            conf["fs.s3a.endpoint"] = self.endpoint
            conf["fs.s3a.connection.ssl.enabled"] = str(not self.plain_http).lower()
        if self.region:
            conf["fs.s3a.endpoint.region"] = self.region
        if self.access_key_id:
            conf["fs.s3a.access.key"] = self.access_key_id
            conf["fs.s3a.secret.key"] = self.secret_access_key
        return conf

    def delta_rs(self) -> dict[str, str]:
        """The ``deltalake`` package's storage options (read-only use)."""
        options = {"AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(not self.path_style).lower()}
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            options["AWS_ALLOW_HTTP"] = str(self.plain_http).lower()
        if self.region:
            options["AWS_REGION"] = self.region
        if self.access_key_id:
            options["AWS_ACCESS_KEY_ID"] = self.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        return options

    def arrow(self) -> pafs.FileSystem:
        if self.endpoint:
            # The AWS SDKs (since 2025) add a checksum trailer to every upload by default, which
            # S3-compatible servers that predate it refuse (S3Proxy: XAmzContentSHA256Mismatch).
            # Checksums where an operation requires them, as before; the user's choice wins.
            os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
            os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
        endpoint = self.endpoint
        scheme = "https"
        if "://" in endpoint:
            scheme, _, endpoint = endpoint.partition("://")
        return pafs.S3FileSystem(
            access_key=self.access_key_id or None,
            secret_key=self.secret_access_key or None,
            region=self.region or None,
            endpoint_override=endpoint.rstrip("/") or None,
            scheme=scheme,
            force_virtual_addressing=not self.path_style,
        )


class Lake:
    """The lake under ``OUTPUT_PATH``: its paths, and its files as the driver reads them."""

    def __init__(self, output_path: str | Path, store: ObjectStore | None = None) -> None:
        text = str(output_path)
        self.remote = is_object_store(text)
        self.store = store or ObjectStore()
        if self.remote:
            bucket_and_prefix = text.split("://", 1)[1].strip("/")
            if not bucket_and_prefix:
                raise ValueError(f"{text} names no bucket")
            self._base = bucket_and_prefix
            self.fs: pafs.FileSystem = self.store.arrow()
        else:
            self._base = Path(text.removeprefix("file://")).resolve().as_posix()
            self.fs = pafs.LocalFileSystem()

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        return cls(settings.output_path, ObjectStore.from_settings(settings))

    # --- names ----------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        """A path for :attr:`fs` (``bucket/prefix/...`` on S3, an absolute path locally)."""
        return "/".join([self._base, *parts])

    def url(self, *parts: str) -> str:
        """A path for Spark: ``s3a://bucket/prefix/...``, or an absolute local path."""
        return ("s3a://" if self.remote else "") + self.key(*parts)

    def delta_uri(self, table: str) -> str:
        """A table's location for the ``deltalake`` package."""
        return ("s3://" if self.remote else "") + self.key(table)

    @property
    def storage_options(self) -> dict[str, str] | None:
        """The ``deltalake`` package's options to read the lake."""
        return self.store.delta_rs() if self.remote else None

    @property
    def write_options(self) -> dict[str, str] | None:
        """... and to write it. On S3 the package needs a lock service to keep two writers
        from taking the same commit number, unless told the writer is alone: the driver is
        the only writer of the tables it writes, one commit at a time (``DRIVER_COMMITS``)."""
        if not self.remote:
            return None
        return {**self.store.delta_rs(), "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}

    def __str__(self) -> str:
        return self.url()

    # every path under OUTPUT_PATH, named once
    def checkpoint(self) -> str:
        """Spark's checkpoint of the streaming query (offsets, commits)."""
        return self.url(CHECKPOINTS, "bars")

    def index(self) -> str:
        """The dedup index's state store."""
        return self.url(CHECKPOINTS, "bars_index")

    STATE = (CHECKPOINTS, "bars_state")  # the driver's record of each batch
    INDEX_RECORD = (CHECKPOINTS, "bars_index.json")  # the dedup index's layout
    STAGING = (CHECKPOINTS, "staging")  # files on their way into place (local disk)
    OFFSETS = (CHECKPOINTS, "bars", "offsets")  # Spark's offset log: the batches planned
    COMMITS = (CHECKPOINTS, "bars", "commits")  # Spark's commit log: the batches done
    QUERY = (CHECKPOINTS, "bars", "metadata")  # Spark's record of the query's id
    LOCK = (CHECKPOINTS, "bars.lock")  # held by the lake's running job (lake/lock.py)

    # --- files (the driver's own, small) --------------------------------------------------------

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.get_file_info(self.key(*parts)).type != pafs.FileType.NotFound)

    def is_dir(self, *parts: str) -> bool:
        return bool(self.fs.get_file_info(self.key(*parts)).type == pafs.FileType.Directory)

    def children(self, *parts: str) -> list[pafs.FileInfo]:
        """What is directly under a folder (nothing if it does not exist)."""
        selector = pafs.FileSelector(self.key(*parts), allow_not_found=True)
        return list(self.fs.get_file_info(selector))

    def names(self, *parts: str) -> list[str]:
        return [info.base_name for info in self.children(*parts)]

    def read_bytes(self, *parts: str) -> bytes | None:
        """A file's content, or None if there is no such file."""
        try:
            with self.fs.open_input_stream(self.key(*parts)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None

    def read_text(self, *parts: str) -> str | None:
        data = self.read_bytes(*parts)
        return None if data is None else data.decode("utf-8")

    def write(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write a file whole: a reader sees the old content or the new one, never a part."""
        target = self.key(*parts)
        if self.remote:  # an object appears when its upload completes
            with self.fs.open_output_stream(target) as out:
                out.write(data)
            return
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self.fs.create_dir(self.key(*self.STAGING), recursive=True)
        staged = self.key(*self.STAGING, f"{uuid.uuid4().hex}.tmp")
        with self.fs.open_output_stream(staged) as out:
            out.write(data)
        self.fs.move(staged, target)  # a rename: atomic, replaces the old file

    def write_text(self, parts: tuple[str, ...], text: str) -> None:
        self.write(parts, text.encode("utf-8"))

    def delete_dir(self, *parts: str) -> None:
        """Delete a folder and everything under it (nothing if it does not exist)."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.key(*parts))

    def unreachable(self, error: Exception) -> TickstreamError:
        """A failed access to the lake as one line saying what to check."""
        # Some clients (deltalake) explain an error over several lines, the cause last.
        lines = [_ANSI.sub("", ln).strip(" ↳") for ln in str(error).strip().splitlines()]
        lines = [ln for ln in lines if ln] or [type(error).__name__]
        first = lines[0] if len(lines) == 1 else f"{lines[0]} ({lines[-1]})"
        first = first[:300]
        hint = (
            "check S3_ENDPOINT, S3_REGION, the credentials and that the bucket exists"
            if self.remote
            else "check that the folder is writable"
        )
        return TickstreamError(f"cannot use the lake at {self.url()}: {first}", hint)

    def holds_lake(self) -> bool:
        """Whether anything of a lake is here: a table, the CSV export or a job's checkpoint."""
        return any(self.exists(name) for name in (*DELTA_TABLES, CSV_TABLE, CHECKPOINTS))

    def make_root(self) -> None:
        if not self.remote:
            self.fs.create_dir(self._base, recursive=True)
