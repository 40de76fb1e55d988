"""The Spark job: Kafka ticks -> validated, deduplicated, event-time OHLCV bars in the lake."""
