"""The producer's spool on a real disk: blocks, segments, cursor, torn tails, budget, lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tickstream.kafka.spool import (
    HEADER,
    Spool,
    SpoolError,
    SpoolFullError,
    TopicRecord,
    decode_body,
    encode_block,
    spool_status,
)


def ticks(start: int, n: int) -> tuple[list[str], list[bytes]]:
    keys = [("AAPL", "MSFT", "GOOG")[i % 3] for i in range(start, start + n)]
    values = [f'{{"event_id":"t{i}","n":{i}}}'.encode() for i in range(start, start + n)]
    return keys, values


def read_all(spool: Spool, seq: int) -> list[bytes]:
    reader = spool.reader(seq)
    out: list[bytes] = []
    while (block := reader.next_block()) is not None:
        out += block.values
    reader.close()
    return out


def open_spool(folder: Path, **kwargs: float) -> Spool:
    options = {"max_bytes": 1 << 30, "fsync_interval_s": 0.0, "segment_bytes": 2_000, **kwargs}
    return Spool(
        folder,
        max_bytes=int(options["max_bytes"]),
        fsync_interval_s=float(options["fsync_interval_s"]),
        segment_bytes=int(options["segment_bytes"]),
    ).open()


def crash(spool: Spool) -> None:
    """Leave the spool as a SIGKILLed producer would: no sync, no cursor saved, no close.

    The lock goes with the process's files; here, with the spool's file descriptors.
    """
    for fd in (spool._fd, spool._lock_fd):
        if fd is not None:
            os.close(fd)
    spool._fd = spool._lock_fd = None


def test_a_killed_process_leaves_every_written_block_and_its_lock_goes(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys; from pathlib import Path\n"
        "from tickstream.kafka.spool import Spool\n"
        "s = Spool(Path(sys.argv[1]), max_bytes=1 << 30, fsync_interval_s=60).open()\n"
        "for i in range(50): s.append(['ES'], [b'tick-%d' % i])\n"
        "s.ack(20); s.sync(); s.append(['ES'], [b'tick-50'])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert done.returncode == -9
    spool = open_spool(tmp_path)  # the lock died with the process
    assert (spool.acked, spool.next_seq) == (20, 51)
    assert read_all(spool, spool.acked) == [b"tick-%d" % i for i in range(20, 51)]
    spool.close()


def test_a_block_round_trips() -> None:
    keys, values = ticks(0, 5)
    raw = encode_block(41, [k.encode() for k in keys], values)
    block = decode_body(raw[HEADER.size :])
    assert block.first_seq == 41
    assert block.keys == [k.encode() for k in keys]
    assert block.values == values
    assert block.starting_at(43).values == values[2:]
    assert block.starting_at(43).first_seq == 43


def test_blocks_are_read_back_in_order_across_segments_from_any_tick(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    expected: list[bytes] = []
    for i in range(0, 200, 10):
        block = spool.append(*ticks(i, 10))
        assert block.first_seq == i
        expected += block.values
    assert len(spool.segments) > 3  # small segments: the reader crosses several
    assert read_all(spool, 0) == expected
    assert read_all(spool, 57) == expected[57:]
    # A reader that caught up follows new blocks.
    reader = spool.reader(200)
    assert reader.next_block() is None
    spool.append(*ticks(200, 3))
    following = reader.next_block()
    assert following is not None
    assert following.values == ticks(200, 3)[1]
    spool.close()


def test_the_cursor_deletes_what_kafka_has_and_a_restart_resends_the_rest(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    for i in range(0, 200, 10):
        spool.append(*ticks(i, 10))
    segments = len(spool.segments)
    spool.ack(150)
    spool.sync()
    assert len(spool.segments) < segments
    assert all(s.first_seq <= 150 for s in spool.segments[:1])
    assert spool.pending == 50
    # A crash: no close. The next start sends ticks 150.. again.
    crash(spool)
    again = open_spool(tmp_path)
    assert again.acked == 150
    assert again.next_seq == 200
    assert read_all(again, again.acked) == ticks(150, 50)[1]
    again.ack(200)
    again.close()
    assert not list(tmp_path.glob("*.wal"))  # all in Kafka: the spool is empty
    last = open_spool(tmp_path)
    assert (last.next_seq, last.pending) == (200, 0)  # numbering goes on
    assert last.append(*ticks(200, 1)).first_seq == 200
    last.close()


def test_a_torn_last_block_is_cut_off_at_the_next_start(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, segment_bytes=1 << 20)
    spool.append(*ticks(0, 10))
    spool.append(*ticks(10, 10))
    segment = spool.segments[-1].path
    size = segment.stat().st_size
    crash(spool)
    # A crash inside the write of a third block: its first bytes only.
    third = encode_block(20, [b"AAPL"] * 5, ticks(20, 5)[1])
    with segment.open("ab") as f:
        f.write(third[: len(third) // 2])
    again = open_spool(tmp_path, segment_bytes=1 << 20)
    assert again.recovered_bytes == len(third) // 2
    assert segment.stat().st_size == size
    assert again.next_seq == 20
    assert read_all(again, 0) == ticks(0, 20)[1]
    assert again.append(*ticks(20, 5)).first_seq == 20
    again.close()


def test_a_damaged_block_inside_the_spool_is_an_error_not_a_skip(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, segment_bytes=1 << 20)
    spool.append(*ticks(0, 10))
    spool.append(*ticks(10, 10))
    spool.append(*ticks(20, 10))
    segment = spool.segments[-1].path
    data = bytearray(segment.read_bytes())
    data[HEADER.size + 30] ^= 0xFF  # a flipped bit in the first block's body
    segment.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match="damaged"):
        read_all(spool, 0)
    spool.close()


def test_past_the_budget_nothing_is_written_and_the_spool_stays_usable(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=1_500, segment_bytes=1 << 20)
    written = 0
    refused: SpoolFullError | None = None
    for _ in range(100):
        try:
            spool.append(*ticks(written, 5))
        except SpoolFullError as exc:
            refused = exc
            break
        written += 5
    assert refused is not None
    assert written > 0
    assert spool.size_bytes <= 1_500
    assert spool.next_seq == written
    spool.close()  # as a producer that stops on it leaves it
    again = open_spool(tmp_path, max_bytes=1_500, segment_bytes=1 << 20)
    assert read_all(again, 0) == ticks(0, written)[1]
    again.close()


def test_space_kafka_has_is_given_back_before_the_budget_says_full(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=64 * 1024, segment_bytes=1 << 20)
    written = 0
    while spool.size_bytes < 60 * 1024:
        spool.append(*ticks(written, 5))
        written += 5
    spool.ack(written)  # Kafka has all of it, the active segment's ticks too
    spool.sync()
    for _ in range(20):  # as much again fits: the acknowledged bytes were given back
        spool.append(*ticks(written, 5))
        written += 5
    assert spool.size_bytes <= 64 * 1024
    assert read_all(spool, spool.acked) == ticks(spool.acked, written - spool.acked)[1]
    spool.close()


def test_an_acknowledged_active_segment_gives_its_space_back(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, segment_bytes=64 << 20)
    written = 0
    while spool.size_bytes < 1_100_000:  # past RECLAIM_BYTES, in one segment
        spool.append(*ticks(written, 500))
        written += 500
    spool.ack(written - 1)
    spool.sync()
    assert spool.size_bytes >= 1_100_000  # one tick still out: the segment stays
    spool.ack(written)
    spool.sync()
    assert spool.size_bytes == 0
    assert spool.append(*ticks(written, 1)).first_seq == written
    spool.close()


def test_one_producer_per_spool(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    with pytest.raises(SpoolError, match="in use by another producer"):
        open_spool(tmp_path)
    spool.close()
    open_spool(tmp_path).close()


def test_status_reads_a_spool_without_taking_it(tmp_path: Path) -> None:
    assert not spool_status(tmp_path / "none").exists
    spool = open_spool(tmp_path)
    for i in range(0, 40, 10):
        spool.append(*ticks(i, 10))
    spool.ack(15)
    spool.sync()
    status = spool_status(tmp_path)
    assert status.pending == 25
    assert status.producer_pid is not None  # held by this process
    assert status.size_bytes == spool.size_bytes
    spool.close()
    status = spool_status(tmp_path)
    assert (status.pending, status.producer_pid) == (25, None)


def test_a_damaged_cursor_is_one_clear_error(tmp_path: Path) -> None:
    open_spool(tmp_path).close()
    (tmp_path / "cursor").write_text("garbage")
    with pytest.raises(SpoolError, match="cursor"):
        open_spool(tmp_path)


def test_the_spool_keeps_what_it_last_saw_of_its_topic(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    assert spool.topic_record() is None
    spool.save_topic_record("events", 3)
    spool.close()
    again = open_spool(tmp_path)
    assert again.topic_record() == TopicRecord("events", 3)
    again.save_topic_record("events", 6)
    assert again.topic_record() == TopicRecord("events", 6)
    (tmp_path / "topic.json").write_text("{not json")
    with pytest.raises(SpoolError, match=r"topic record .* is damaged"):
        again.topic_record()
    again.close()
