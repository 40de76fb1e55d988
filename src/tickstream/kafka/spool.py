"""The producer's durable spool: a write-ahead log of ticks on the local disk.

Every chunk of ticks is appended to the spool as one block before any of it is handed to
Kafka; acknowledged ticks advance a cursor, and segments wholly below the cursor are
deleted. While Kafka is down the source goes on into the spool, up to a disk budget. A
restart (after a stop, a crash or SIGKILL) resends everything from the cursor on: ticks
Kafka had taken but not yet acknowledged come again, as duplicates the bars job drops by
``event_id``.

Every tick has a sequence number, in the order the source gave it. A folder per topic::

    LOCK                        held by the running producer (flock); holds its pid
    cursor                      the first sequence number not known to be in Kafka
    topic.json                  the topic and its partition count, as last seen
    dead-letters.jsonl          ticks Kafka refused for good (kafka/deadletters.py)
    00000000000000000000.wal    a segment, named by the sequence number of its first tick

A block (little-endian)::

    "TSB1" | u32 body length | u32 CRC-32 of the body
    body:  u64 first seq | u32 n | u32[n] key lengths | u32[n] value lengths | keys | values

A block is written with one ``write`` call before its ticks go to Kafka, so a killed process
loses nothing it handed on (the kernel has the bytes); ``fsync`` runs every
``fsync_interval_s`` (0: after every block), which bounds what a power cut can take. A torn
block at the end of the last segment (a crash inside a write) is cut off at the next open.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tickstream.errors import TickstreamError
from tickstream.kafka.deadletters import DeadLetters

MAGIC = b"TSB1"
HEADER = struct.Struct("<4sII")  # magic, body length, crc32(body)
BODY_HEAD = struct.Struct("<QI")  # first seq, n
SEGMENT_SUFFIX = ".wal"
TOPIC_RECORD = "topic.json"  # the topic and its partition count, as last seen
SEGMENT_BYTES = 64 * 1024 * 1024  # a new segment after this many bytes
RECLAIM_BYTES = 1024 * 1024  # an active segment Kafka has in full goes once this large


class SpoolError(TickstreamError):
    """The spool cannot be used: in use by another producer, or damaged."""


class SpoolFullError(TickstreamError):
    """Appending would take the spool past its disk budget."""


@dataclass(frozen=True)
class Block:
    """Ticks ``first_seq`` .. ``first_seq + len(values) - 1``, as they were spooled."""

    first_seq: int
    keys: list[bytes]
    values: list[bytes]

    @property
    def end_seq(self) -> int:
        return self.first_seq + len(self.values)

    def starting_at(self, seq: int) -> Block:
        skip = seq - self.first_seq
        if skip <= 0:
            return self
        return Block(seq, self.keys[skip:], self.values[skip:])


@dataclass
class Segment:
    first_seq: int
    path: Path
    size: int


@dataclass(frozen=True)
class SpoolStatus:
    """What a spool holds, read without taking it (``tickstream produce --status``)."""

    folder: Path
    exists: bool
    pending: int  # ticks not known to be in Kafka
    size_bytes: int
    segments: int
    next_seq: int
    cursor: int
    producer_pid: int | None  # the running producer holding it, if any
    dead_letters: int = 0  # ticks Kafka refused for good, beside it (kafka/deadletters.py)


def encode_block(first_seq: int, keys: Sequence[bytes], values: Sequence[bytes]) -> bytes:
    n = len(values)
    key_lengths = np.fromiter(map(len, keys), dtype="<u4", count=n)
    value_lengths = np.fromiter(map(len, values), dtype="<u4", count=n)
    body = b"".join(
        (
            BODY_HEAD.pack(first_seq, n),
            key_lengths.tobytes(),
            value_lengths.tobytes(),
            b"".join(keys),
            b"".join(values),
        )
    )
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def decode_body(body: bytes) -> Block:
    first_seq, n = BODY_HEAD.unpack_from(body)
    lengths = np.frombuffer(body, dtype="<u4", count=2 * n, offset=BODY_HEAD.size)
    ends = np.cumsum(lengths, dtype=np.int64) + BODY_HEAD.size + 8 * n
    starts = np.concatenate(([BODY_HEAD.size + 8 * n], ends[:-1])).tolist()
    ends_list = ends.tolist()
    pieces = [body[a:b] for a, b in zip(starts, ends_list, strict=True)]
    return Block(first_seq, pieces[:n], pieces[n:])


def _header(raw: bytes) -> tuple[int, int] | None:
    """(body length, crc) of a block's header, or None when the bytes are not one."""
    if len(raw) < HEADER.size:
        return None
    magic, length, crc = HEADER.unpack(raw)
    if magic != MAGIC:
        return None
    return length, crc


def _walk(f: BinaryIO, size: int) -> Iterator[tuple[int, int, int, int, int]]:
    """The whole blocks of an open segment of ``size`` bytes, in order, from their headers:
    (offset, body length, crc, first seq, n). Stops at the first that is not a block or runs
    past the end (a torn tail)."""
    offset = 0
    while True:
        f.seek(offset)
        head = _header(f.read(HEADER.size))
        if head is None or offset + HEADER.size + head[0] > size:
            return
        length, crc = head
        first, n = BODY_HEAD.unpack(f.read(BODY_HEAD.size))
        yield offset, length, crc, first, n
        offset += HEADER.size + length


def scan_segment(path: Path, *, verify: bool) -> tuple[int, int]:
    """Walk a segment's blocks: (ticks, bytes of whole blocks).

    With ``verify`` every body is read and checked; without, only the headers are read.
    A short or damaged block ends the walk: what follows it is not counted.
    """
    ticks = good = 0
    with path.open("rb") as f:
        for offset, length, crc, _, n in _walk(f, path.stat().st_size):
            if verify:
                f.seek(offset + HEADER.size)
                body = f.read(length)
                if len(body) < length or zlib.crc32(body) != crc:
                    break
            ticks += n
            good = offset + HEADER.size + length
    return ticks, good


def _segments(folder: Path) -> list[Segment]:
    found = []
    for path in folder.glob(f"*{SEGMENT_SUFFIX}"):
        stem = path.name.removesuffix(SEGMENT_SUFFIX)
        if stem.isdigit():
            found.append(Segment(int(stem), path, path.stat().st_size))
    return sorted(found, key=lambda s: s.first_seq)


def _read_cursor(folder: Path) -> int:
    try:
        text = (folder / "cursor").read_text().strip()
    except FileNotFoundError:
        return 0
    if not text.isdigit():
        raise SpoolError(
            f"the spool's cursor at {folder / 'cursor'} is damaged ({text[:40]!r})",
            "it should hold one number; move the spool folder aside to start a new one",
        )
    return int(text)


@dataclass(frozen=True)
class TopicRecord:
    """What a spool last saw of its topic: a producer started while Kafka is down checks the
    topic against it once Kafka answers."""

    topic: str
    partitions: int


class Spool:
    """The write-ahead log of one producer (one topic). Not thread-safe: one producer thread."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        fsync_interval_s: float = 1.0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.fsync_interval_s = fsync_interval_s
        # Space comes back a segment at a time: at least eight segments fit in the budget.
        self.segment_bytes = min(segment_bytes, max(1, max_bytes // 8))
        self.segments: list[Segment] = []
        self.next_seq = 0  # the sequence number the next tick gets
        self.acked = 0  # every tick below this is in Kafka
        self._saved_cursor = -1
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._dirty = False
        self._last_sync = time.monotonic()
        self._keys: dict[str, bytes] = {}
        # Where the newest block starts: a reader of the backlog seldom needs to scan for it.
        # (its first seq, its segment's first seq, its offset there)
        self.last_block: tuple[int, int, int] | None = None
        self.recovered_bytes = 0  # a torn tail cut off at open

    # --- opening and closing ----------------------------------------------------------------

    def open(self) -> Spool:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._recover()
        except BaseException:
            self._unlock()
            raise
        return self

    def _lock(self) -> None:
        path = self.folder / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SpoolError(
                f"the spool at {self.folder} is in use by another producer (pid {holder or '?'})",
                "stop that producer, or give this one its own SPOOL_DIR",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _recover(self) -> None:
        cursor = _read_cursor(self.folder)
        self.segments = _segments(self.folder)
        if not self.segments:
            self.next_seq = self.acked = cursor
        else:
            last = self.segments[-1]
            ticks, good = scan_segment(last.path, verify=True)
            if good < last.size:
                # A torn block (a crash inside a write): nothing after it was ever handed on.
                self.recovered_bytes = last.size - good
                os.truncate(last.path, good)
                last.size = good
            self.next_seq = last.first_seq + ticks
            self.acked = max(cursor, self.segments[0].first_seq)
        self._saved_cursor = cursor
        self._open_active()
        self._delete_acked_segments()

    def _open_active(self) -> None:
        if not self.segments or self.segments[-1].size >= self.segment_bytes:
            self._roll()
        else:
            self._fd = os.open(self.segments[-1].path, os.O_WRONLY | os.O_APPEND)

    def _roll(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        path = self.folder / f"{self.next_seq:020d}{SEGMENT_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.segments.append(Segment(self.next_seq, path, 0))
        _fsync_dir(self.folder)

    def close(self) -> None:
        """Sync, save the cursor, delete what Kafka has, release the spool."""
        if self._fd is None:
            return
        self.sync()
        os.close(self._fd)
        self._fd = None
        if self.pending == 0:
            # Everything is in Kafka: the spool is empty and the next start begins clean.
            for segment in self.segments:
                segment.path.unlink(missing_ok=True)
            self.segments = []
        self._unlock()

    # --- writing ----------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def pending(self) -> int:
        """Ticks spooled and not (yet) known to be in Kafka."""
        return self.next_seq - self.acked

    def append(self, keys: Sequence[str], values: Sequence[bytes]) -> Block:
        """Write one block and return it. Raises SpoolFullError, leaving the spool as it was,
        if the block would take it past ``max_bytes``."""
        assert self._fd is not None, "the spool is not open"
        cache = self._keys
        key_bytes = [cache.get(k) or cache.setdefault(k, k.encode()) for k in keys]
        first = self.next_seq
        block = encode_block(first, key_bytes, values)
        if self.size_bytes + len(block) > self.max_bytes and self.pending == 0:
            # Kafka has everything: the active segment's bytes can go too.
            self._roll()
            self._delete_acked_segments()
        if self.size_bytes + len(block) > self.max_bytes:
            raise SpoolFullError(f"{len(values)} ticks would take the spool past its budget")
        if self.segments[-1].size >= self.segment_bytes:
            self._roll()
        active = self.segments[-1]
        view = memoryview(block)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.last_block = (first, active.first_seq, active.size)
        active.size += len(block)
        self.next_seq += len(values)
        self._dirty = True
        if self.fsync_interval_s <= 0:
            self.sync()
        return Block(first, key_bytes, list(values))

    def ack(self, seq: int) -> None:
        """Every tick below ``seq`` is in Kafka."""
        if seq > self.acked:
            self.acked = min(seq, self.next_seq)

    def maybe_sync(self) -> None:
        if time.monotonic() - self._last_sync >= self.fsync_interval_s:
            self.sync()

    def sync(self) -> None:
        """fsync the active segment, save the cursor, delete segments Kafka has in full."""
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()
        active = self.segments[-1] if self.segments else None
        if self.pending == 0 and active is not None and active.size >= RECLAIM_BYTES:
            # Kafka has all of it: a new segment, so the acknowledged one can go.
            self._roll()
        if self.acked != self._saved_cursor:
            tmp = self.folder / "cursor.tmp"
            tmp.write_text(f"{self.acked}\n")
            tmp.replace(self.folder / "cursor")
            self._saved_cursor = self.acked
        self._delete_acked_segments()

    # --- the topic, as the spool last saw it ------------------------------------------------

    def topic_record(self) -> TopicRecord | None:
        """The topic and its partition count when a producer last reached it with this spool
        (``topic.json``), or None."""
        try:
            data = json.loads((self.folder / TOPIC_RECORD).read_text())
            return TopicRecord(str(data["topic"]), int(data["partitions"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise SpoolError(
                f"the spool's topic record at {self.folder / TOPIC_RECORD} is damaged",
                "delete it: the next producer that reaches Kafka writes it again",
            ) from None

    def save_topic_record(self, topic: str, partitions: int) -> None:
        if self.topic_record() == TopicRecord(topic, partitions):
            return
        tmp = self.folder / (TOPIC_RECORD + ".tmp")
        tmp.write_text(json.dumps({"topic": topic, "partitions": partitions}) + "\n")
        tmp.replace(self.folder / TOPIC_RECORD)

    def _delete_acked_segments(self) -> None:
        # A segment goes once the next one starts at or below the cursor (the active one stays).
        while len(self.segments) > 1 and self.segments[1].first_seq <= self.acked:
            gone = self.segments.pop(0)
            gone.path.unlink(missing_ok=True)
            if self.last_block is not None and self.last_block[1] == gone.first_seq:
                self.last_block = None

    # --- reading ----------------------------------------------------------------------------

    def reader(self, seq: int) -> SpoolReader:
        """Blocks from the one holding ``seq`` on (the first sliced to start at it)."""
        return SpoolReader(self, seq)


class SpoolReader:
    """Reads a spool's blocks in order from a sequence number, following it as it grows."""

    def __init__(self, spool: Spool, seq: int) -> None:
        self.spool = spool
        self.seq = seq
        self._segment_first = -1
        self._offset = 0
        self._file: int | None = None
        self._seek(seq)

    def _seek(self, seq: int) -> None:
        spool = self.spool
        last = spool.last_block
        firsts = [s.first_seq for s in spool.segments]
        if last is not None and last[0] <= seq:
            index, offset = firsts.index(last[1]), last[2]
        else:
            index = max(0, bisect.bisect_right(firsts, seq) - 1)
            segment = spool.segments[index]
            offset = 0  # the block holding ``seq``, or the end of the segment
            with segment.path.open("rb") as f:
                for start, length, _, first, n in _walk(f, segment.size):
                    offset = start
                    if first + n > seq:
                        break
                    offset = start + HEADER.size + length
        self._open(index, offset)

    def _open(self, index: int, offset: int) -> None:
        if self._file is not None:
            os.close(self._file)
        segment = self.spool.segments[index]
        self._segment_first = segment.first_seq
        self._file = os.open(segment.path, os.O_RDONLY)
        self._offset = offset

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def next_block(self) -> Block | None:
        """The next block, or None when the reader has caught up with the writer."""
        while self.seq < self.spool.next_seq:
            block = self._read().starting_at(self.seq)
            if block.values:  # (a block wholly before ``seq`` is skipped)
                self.seq = block.end_seq
                return block
        return None

    def _read(self) -> Block:
        segments = self.spool.segments
        found = [i for i, s in enumerate(segments) if s.first_seq == self._segment_first]
        if not found:  # its segment was deleted once Kafka had all of it: find the next one
            self._seek(self.seq)
            found = [i for i, s in enumerate(segments) if s.first_seq == self._segment_first]
        index = found[0]
        if self._offset >= segments[index].size:
            self._open(index + 1, 0)
            index += 1
        assert self._file is not None
        head = _header(os.pread(self._file, HEADER.size, self._offset))
        body = b""
        if head is not None:
            body = os.pread(self._file, head[0], self._offset + HEADER.size)
        if head is None or len(body) < head[0] or zlib.crc32(body) != head[1]:
            raise SpoolError(
                f"the spool segment {segments[index].path} is damaged at byte {self._offset}",
                "move the spool folder aside (its ticks from there on cannot be read)",
            )
        self._offset += HEADER.size + head[0]
        return decode_body(body)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_status(folder: Path) -> SpoolStatus:
    """Read a spool's state without taking it (a producer may be running on it)."""
    if not folder.is_dir():
        return SpoolStatus(folder, False, 0, 0, 0, 0, 0, None)
    cursor = _read_cursor(folder)
    segments = _segments(folder)
    next_seq = cursor
    if segments:
        ticks, _ = scan_segment(segments[-1].path, verify=False)
        next_seq = segments[-1].first_seq + ticks
        cursor = max(cursor, segments[0].first_seq)
    return SpoolStatus(
        folder=folder,
        exists=True,
        pending=max(0, next_seq - cursor),
        size_bytes=sum(s.size for s in segments),
        segments=len(segments),
        next_seq=next_seq,
        cursor=cursor,
        producer_pid=_holder(folder),
        dead_letters=DeadLetters(folder).count(),
    )


def _holder(folder: Path) -> int | None:
    path = folder / "LOCK"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def format_size(n: int) -> str:
    """Bytes for people: '12.6 MiB'."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
