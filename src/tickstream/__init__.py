"""tickstream: stock ticks into Kafka, event-time OHLCV bars with Spark, a Delta/CSV lake."""

__version__ = "0.1.0"
