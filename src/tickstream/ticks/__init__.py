"""The tick event: the contract between the producer and the stream job.

One JSON object per Kafka message, key = symbol. See :mod:`tickstream.ticks.schema`.
"""

from tickstream.ticks.codec import decode, encode_heartbeat, encode_tick
from tickstream.ticks.schema import SCHEMA_VERSION, Heartbeat, Tick

__all__ = ["SCHEMA_VERSION", "Heartbeat", "Tick", "decode", "encode_heartbeat", "encode_tick"]
