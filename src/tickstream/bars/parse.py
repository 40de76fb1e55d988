"""Parse and validate Kafka messages, in the JVM (Spark SQL expressions and a Java fast path,
no Python UDFs).

A valid tick in the producer's compact JSON (nearly every message) is read by a fast path,
``io.tickstream.engine.TickParser``; every other message by ``from_json`` and the checks below,
which name the reason of a reject (see :func:`parse_events`).

Every message becomes one row with ``kind`` = ``tick``, ``heartbeat`` or ``reject``;
a reject carries the first reason it failed, from a fixed vocabulary:

=========================  ===========================================================
reason                     meaning
=========================  ===========================================================
``empty``                  no value (a tombstone) or an empty one
``oversized``              larger than MAX_MESSAGE_BYTES (not parsed)
``invalid_utf8``           the bytes are not UTF-8
``duplicate_key``          a key repeated in one object (which one was meant?)
``trailing_text``          anything but white space after the JSON object
``single_quotes``          strings or keys in single quotes (JSON has double quotes only)
``malformed_json``         not a JSON object
``bad_type``               a field of the wrong JSON type (a string price, a float seq, a
                           producer_id that is not a string)
``unknown_schema_version`` ``schema_version`` is not 1
``unknown_type``           ``type`` is neither ``tick`` nor ``heartbeat``
``missing_field``          a required field is absent or null
``bad_symbol``             not ``[A-Z0-9^][A-Z0-9.=^-]{0,19}``, or not a JSON string
``bad_event_id``           empty, longer than 128 characters, or not a JSON string
``bad_price``              not finite, or <= 0
``bad_volume``             not finite, or < 0
``bad_seq``                negative
``bad_source``             not simulate, replay or yfinance
``ts_out_of_range``        before TICK_MIN_TIME, or more than TICK_MAX_AHEAD after Kafka got it
``ts_mismatch``            ``ts`` and ``ts_epoch_ms`` are not the same instant
``event_id_conflict``      a valid tick whose event_id an earlier tick already has, with
                           other content (set by the job's dedup, not by parsing)
=========================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.classic.column import Column as ClassicColumn

from tickstream.bars.schema import EVENT_JSON, FAST_FIELDS
from tickstream.ticks.schema import SCHEMA_VERSION, SOURCES, SYMBOL_RE

REASONS = (
    "empty",
    "oversized",
    "invalid_utf8",
    "duplicate_key",
    "trailing_text",
    "single_quotes",
    "malformed_json",
    "bad_type",
    "unknown_schema_version",
    "unknown_type",
    "missing_field",
    "bad_symbol",
    "bad_event_id",
    "bad_price",
    "bad_volume",
    "bad_seq",
    "bad_source",
    "ts_out_of_range",
    "ts_mismatch",
    "event_id_conflict",
)
ISO_MS_UTC = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"


@dataclass(frozen=True)
class Rules:
    min_ts_ms: int
    max_ahead_ms: int
    max_message_bytes: int


def _json_type_is_not_string(field: str) -> Column:
    """True when the JSON value of ``field`` is not a string (Spark's VARIANT reads the type).

    from_json turns a number or an object into text in a string field; this tells them apart.
    It re-parses the message, so it is only asked where text could be such a coercion.
    """
    value = F.col("j")[field]
    written_as_string = F.instr(F.col("raw_text"), f'"{field}":"') > 0  # compact JSON: cheap
    coerced = ~written_as_string & value.rlike(r"^[-+0-9.eE]+$|^[\[{]|^(true|false)$")
    json_type = F.expr(f"schema_of_variant(variant_get(try_parse_json(raw_text), '$.{field}'))")
    return coerced & (json_type != F.lit("STRING"))


def _finite(c: Column) -> Column:
    return c.isNotNull() & ~F.isnan(c) & (F.abs(c) != F.lit(float("inf")))


def _reason(rules: Rules, shape: Column) -> Column:
    """The first reason a message is rejected, or null for a valid tick or heartbeat.

    CASE evaluates its conditions in order and stops at the first true one, so the
    costly checks (re-parsing as VARIANT) run only for the rare messages that need them.
    ``shape`` is :func:`json_shape` of the message.
    """
    j = F.col("j")
    tick = j["type"] == F.lit("tick")
    heartbeat = j["type"] == F.lit("heartbeat")
    missing_tick = F.lit(False)
    for name in ("event_id", "symbol", "seq", "ts", "ts_epoch_ms", "price", "volume", "source"):
        missing_tick = missing_tick | j[name].isNull()
    missing_beat = j["producer_id"].isNull() | j["ts"].isNull() | j["ts_epoch_ms"].isNull()
    corrupt = j["_corrupt_record"].isNotNull()
    size = F.length(F.col("value"))
    ts = j["ts_epoch_ms"]
    kafka_ms = F.col("timestamp").cast("double") * 1000
    iso = F.date_format(F.timestamp_millis(ts), ISO_MS_UTC)
    event_id_length = F.length(j["event_id"])
    sources = F.array(*[F.lit(s) for s in SOURCES])
    return (
        F.when(F.col("value").isNull() | (size == 0), F.lit("empty"))
        .when(size > rules.max_message_bytes, F.lit("oversized"))
        .when(~F.expr("is_valid_utf8(value)"), F.lit("invalid_utf8"))
        .when(shape.isNotNull(), shape)
        .when(j.isNull(), F.lit("malformed_json"))
        .when(corrupt & F.expr("try_parse_json(raw_text)").isNull(), F.lit("malformed_json"))
        .when(
            corrupt & ~F.expr("schema_of_variant(try_parse_json(raw_text))").startswith("OBJECT"),
            F.lit("malformed_json"),
        )
        .when(corrupt, F.lit("bad_type"))
        .when(
            j["schema_version"].isNull() | (j["schema_version"] != SCHEMA_VERSION),
            F.lit("unknown_schema_version"),
        )
        .when(j["type"].isNull() | ~(tick | heartbeat), F.lit("unknown_type"))
        .when(tick & missing_tick, F.lit("missing_field"))
        .when(heartbeat & missing_beat, F.lit("missing_field"))
        .when(
            j["producer_id"].isNotNull() & _json_type_is_not_string("producer_id"),
            F.lit("bad_type"),
        )
        .when(
            tick & (~j["symbol"].rlike(SYMBOL_RE.pattern) | _json_type_is_not_string("symbol")),
            F.lit("bad_symbol"),
        )
        .when(
            tick
            & (
                (event_id_length == 0)
                | (event_id_length > 128)
                | _json_type_is_not_string("event_id")
            ),
            F.lit("bad_event_id"),
        )
        .when(tick & (~_finite(j["price"]) | (j["price"] <= 0)), F.lit("bad_price"))
        .when(tick & (~_finite(j["volume"]) | (j["volume"] < 0)), F.lit("bad_volume"))
        .when(tick & (j["seq"] < 0), F.lit("bad_seq"))
        .when(tick & ~F.array_contains(sources, j["source"]), F.lit("bad_source"))
        .when(
            (ts < rules.min_ts_ms) | (ts > kafka_ms + rules.max_ahead_ms),
            F.lit("ts_out_of_range"),
        )
        .when(j["ts"] != iso, F.lit("ts_mismatch"))
    )


def fast_tick(spark: SparkSession, value: Column, timestamp: Column, rules: Rules) -> Column:
    """The fast path (``io.tickstream.engine.TickParser``, in the JVM): a struct of the tick's
    fields where the message is certainly a valid tick, null where the full path decides."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    gateway = spark.sparkContext._gateway
    assert gateway is not None
    sources = gateway.new_array(jvm.java.lang.String, len(SOURCES))
    for i, name in enumerate(SOURCES):
        sources[i] = name
    return ClassicColumn(
        jvm.io.tickstream.engine.TickParser.column(
            SCHEMA_VERSION,
            rules.min_ts_ms,
            rules.max_ahead_ms,
            rules.max_message_bytes,
            SYMBOL_RE.pattern,
            sources,
            value._jc,
            F.unix_micros(timestamp)._jc,
        )
    )


def json_shape(spark: SparkSession, value: Column) -> Column:
    """What from_json and parse_json let through (``io.tickstream.engine.JsonShape``, in the
    JVM): ``duplicate_key``, ``trailing_text`` or ``single_quotes``, or null. from_json reads
    the last of a repeated key, ignores text after the object and takes single quotes; none of
    Spark's JSON readers says so (docs/engine.md)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return ClassicColumn(jvm.io.tickstream.engine.JsonShape.column(value._jc))


def parse_events(
    kafka: DataFrame, rules: Rules, *, fast_path: bool = True, strict: bool = True
) -> DataFrame:
    """Kafka rows -> one row per message: kind, reason, the tick's fields, where it came from.

    A message the fast path (:func:`fast_tick`) accepts is a valid tick with its fields; every
    other message is read by ``from_json`` and the checks of :func:`_reason`, which are only
    evaluated for it. ``fast_path=False`` reads every message the full way (to compare them);
    ``strict=False`` leaves out :func:`json_shape` (as before issue 26: for the benchmark).
    """
    text = F.when(
        F.length(F.col("value")) <= rules.max_message_bytes, F.col("value").cast("string")
    )
    fast = F.col("f")
    parsed = kafka.select(
        "value",
        "topic",
        "partition",
        "offset",
        "timestamp",
        text.alias("raw_text"),
        (
            fast_tick(kafka.sparkSession, F.col("value"), F.col("timestamp"), rules)
            if fast_path
            else F.lit(None).cast(FAST_FIELDS)
        ).alias("f"),
    ).withColumn(
        "j",
        F.when(
            fast.isNull(),
            F.from_json(
                F.col("raw_text"),
                EVENT_JSON,
                {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"},
            ),
        ),
    )
    # The reason is a column of its own, and `kind` reads that column: written inline twice,
    # Spark evaluates the whole chain of checks twice per message (measured: 2.7x slower).
    shape = json_shape(kafka.sparkSession, F.col("value")) if strict else F.lit(None)
    with_reason = parsed.withColumn("reason", F.when(fast.isNull(), _reason(rules, shape)))

    def field(name: str) -> Column:
        return F.coalesce(fast[name], F.col("j")[name]).alias(name)

    return with_reason.select(
        F.when(F.col("reason").isNotNull(), F.lit("reject"))
        .when(fast.isNotNull(), F.lit("tick"))
        .otherwise(F.col("j.type"))
        .alias("kind"),
        "reason",
        field("symbol"),
        field("ts_epoch_ms"),
        field("price"),
        field("volume"),
        field("seq"),
        field("event_id"),
        field("source"),
        F.col("value").alias("raw"),
        "raw_text",
        "topic",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    )
