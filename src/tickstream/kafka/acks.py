"""Which spooled ticks Kafka has: the partition of a key, and acknowledgements in order.

The spool's cursor may only pass a tick once Kafka has it and every tick before it. Kafka
acknowledges each partition in order (the producer is idempotent), but the partitions
independently. So the producer chooses each tick's partition itself, with the Java client's
partitioner (murmur2 of the key, the same choice librdkafka's ``murmur2_random`` makes), and
counts acknowledgements per partition: a slice of ticks handed to Kafka together is done when
each partition it touched has acknowledged its share, and the cursor moves over the slices
that are done, oldest first.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as a signed int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length % 4
    if extra == 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java client (and librdkafka's murmur2 partitioners) gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Partitioner:
    """``partition_for`` with a cache: a feed has few distinct keys (its symbols)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._cache: dict[bytes, int] = {}

    def __call__(self, keys: Sequence[bytes]) -> list[int]:
        cache = self._cache
        out = []
        for key in keys:
            p = cache.get(key)
            if p is None:
                p = cache[key] = partition_for(key, self.partitions)
            out.append(p)
        return out


class _Slice:
    __slots__ = ("end", "open_partitions")

    def __init__(self, end: int, open_partitions: int) -> None:
        self.end = end
        self.open_partitions = open_partitions


class _Share:
    """One partition's part of a slice: how many of its acknowledgements are still to come."""

    __slots__ = ("piece", "remaining")

    def __init__(self, piece: _Slice, remaining: int) -> None:
        self.piece = piece
        self.remaining = remaining


class AckTracker:
    """Follows slices of ticks handed to Kafka until each is acknowledged in full.

    ``handed(first, partitions)`` registers a slice (its ticks' partitions, in order);
    ``delivered(partition)`` takes one acknowledgement, which is for the oldest tick of that
    partition still out. ``acked`` is the first tick not known to be in Kafka: every tick below
    it is. A failed delivery freezes ``acked`` (the tick stays in the spool for the next start).
    """

    def __init__(self, start_seq: int) -> None:
        self.acked = start_seq
        self.handed_end = start_seq
        self.frozen = False
        self._slices: deque[_Slice] = deque()
        self._shares: dict[int, deque[_Share]] = {}

    @property
    def in_flight(self) -> int:
        return self.handed_end - self.acked

    def handed(self, first_seq: int, partitions: Sequence[int]) -> None:
        if first_seq != self.handed_end:
            raise ValueError(f"slices must follow each other: {first_seq} != {self.handed_end}")
        if not partitions:
            return
        counts = Counter(partitions)
        piece = _Slice(first_seq + len(partitions), len(counts))
        for partition, count in counts.items():
            self._shares.setdefault(partition, deque()).append(_Share(piece, count))
        self._slices.append(piece)
        self.handed_end = piece.end

    def delivered(self, partition: int, ok: bool = True) -> None:
        if not ok:
            self.frozen = True
        shares = self._shares[partition]
        share = shares[0]
        share.remaining -= 1
        if share.remaining:
            return
        shares.popleft()
        piece = share.piece
        piece.open_partitions -= 1
        if piece.open_partitions:
            return
        slices = self._slices
        while slices and slices[0].open_partitions == 0:
            end = slices.popleft().end
            if not self.frozen:
                self.acked = end
