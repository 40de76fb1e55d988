"""The job's event-time watermark (pure: tested without Spark)."""

from __future__ import annotations


def next_watermark(current: int, partition_max: dict[str, int], delay_ms: int) -> int:
    """The slowest partition's event time minus the delay; it never moves back.

    Following the slowest partition (as Flink and Kafka Streams do) keeps the result
    independent of how Spark splits partitions into micro-batches: a partition read ahead
    of the others cannot make their ticks late. Heartbeats reach every partition, so a
    partition without ticks still moves on.
    """
    if not partition_max:
        return current
    return max(current, min(partition_max.values()) - delay_ms)
