"""Kafka's partitioner in Python, and the acknowledgement tracker that moves the spool's cursor."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstream.kafka.acks import AckTracker, Partitioner, murmur2, partition_for


def test_murmur2_matches_the_java_clients_test_vectors() -> None:
    # From Kafka's UtilsTest.testMurmur2.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, expected in cases.items():
        assert murmur2(key) == expected


def test_partitioner_caches_what_partition_for_says() -> None:
    partitioner = Partitioner(3)
    keys = [b"AAPL", b"MSFT", b"AAPL", b"ES"]
    assert partitioner(keys) == [partition_for(k, 3) for k in keys]
    assert all(0 <= p < 3 for p in partitioner(keys))


def test_the_cursor_waits_for_every_partition_of_a_slice() -> None:
    tracker = AckTracker(100)
    tracker.handed(100, [0, 1, 0])  # ticks 100..102
    tracker.handed(103, [1, 1])  # ticks 103..104
    assert tracker.in_flight == 5
    tracker.delivered(1)  # tick 101
    tracker.delivered(1)  # tick 103: the second slice's partition 1 is not done yet
    assert tracker.acked == 100
    tracker.delivered(0)
    tracker.delivered(0)  # the first slice is done
    assert tracker.acked == 103
    tracker.delivered(1)
    assert tracker.acked == 105
    assert tracker.in_flight == 0


def test_slices_must_follow_each_other() -> None:
    tracker = AckTracker(0)
    tracker.handed(0, [0, 0])
    with pytest.raises(ValueError, match="follow"):
        tracker.handed(5, [0])


def test_a_refused_tick_freezes_the_cursor() -> None:
    tracker = AckTracker(0)
    tracker.handed(0, [0])
    tracker.handed(1, [1])
    tracker.delivered(1, ok=False)  # tick 1 refused
    tracker.delivered(0)
    assert tracker.acked == 0  # never past a tick Kafka does not have
    assert tracker.frozen


@given(
    partitions=st.lists(st.integers(0, 3), min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 60), max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_acked_is_always_the_longest_delivered_prefix(
    partitions: list[int], cuts: list[int], seed: int
) -> None:
    # Any slicing, any interleaving of the partitions (each in its own order).
    bounds = sorted({c for c in cuts if c < len(partitions)} | {0, len(partitions)})
    tracker = AckTracker(0)
    for a, b in itertools.pairwise(bounds):
        tracker.handed(a, partitions[a:b])
    queues = {p: [i for i, q in enumerate(partitions) if q == p] for p in set(partitions)}
    delivered: set[int] = set()
    rng = random.Random(seed)
    while queues:
        p = rng.choice(sorted(queues))
        delivered.add(queues[p].pop(0))
        if not queues[p]:
            del queues[p]
        tracker.delivered(p)
        prefix = 0
        while prefix in delivered:
            prefix += 1
        # The cursor moves by whole slices: never past a missing tick, and at a slice's end.
        assert tracker.acked <= prefix
        assert tracker.acked == max(b for b in bounds if b <= prefix)
    assert tracker.acked == len(partitions)
