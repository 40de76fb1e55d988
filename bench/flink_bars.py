"""Flink SQL as a design for tickstream's bars: the job a data engineer would write instead.

Run by ``bench/stream_throughput.py --designs ...,flink`` with the Python of a venv the bench
makes (PyFlink stays out of tickstream's dependencies), never imported by tickstream:

    python bench/flink_bars.py BOOTSTRAP TOPIC OUT.jsonl CONNECTOR_JAR [--parallelism 2]

With ``--warm-up TOPIC`` it first runs the same query on that topic in the same JVM, and the
time it prints is the second query's alone (warm). Reads the topic from its first offset to
the offsets it holds when the job starts (bounded, like ``tickstream stream --once``) in a
local mini-cluster, and writes one JSON line per bar:

- the ``json`` format; messages that are not ticks (heartbeats, garbage) are dropped
  (``json.ignore-parse-errors``, ``type = 'tick'``): Flink SQL has no reject table;
- event time ``ts_epoch_ms`` with a watermark of the event time less 2 minutes (Kafka's source
  keeps one per partition and follows the slowest, as tickstream does);
- window deduplication on ``event_id`` (the first copy by event time) in 1-minute tumbling
  windows, then a window aggregation: open and close are the prices of the smallest and largest
  (event time, seq, event_id), as in tickstream, through MIN/MAX of a key that sorts so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

WINDOW_S = 60
WATERMARK_S = 120

SOURCE = """
CREATE TABLE {table} (
  `type` STRING,
  event_id STRING,
  symbol STRING,
  seq BIGINT,
  ts_epoch_ms BIGINT,
  price DOUBLE,
  volume DOUBLE,
  ts AS TO_TIMESTAMP_LTZ(ts_epoch_ms, 3),
  WATERMARK FOR ts AS ts - INTERVAL '{watermark}' SECOND(3)
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = 'flink-bench',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true'
)
"""

BARS = """
WITH valid AS (
  SELECT event_id, symbol, seq, ts_epoch_ms, price, volume, ts FROM {table}
  WHERE `type` = 'tick' AND event_id IS NOT NULL AND symbol IS NOT NULL AND seq IS NOT NULL
    AND ts_epoch_ms IS NOT NULL AND price > 0 AND volume > 0
),
first_copies AS (
  SELECT event_id, symbol, seq, ts_epoch_ms, price, volume, ts FROM (
    SELECT *, ROW_NUMBER() OVER (
      PARTITION BY window_start, window_end, event_id ORDER BY ts ASC) AS copy
    FROM TABLE(TUMBLE(TABLE valid, DESCRIPTOR(ts), INTERVAL '{window}' SECOND(3)))
  ) WHERE copy = 1
),
keyed AS (
  SELECT *, LPAD(CAST(ts_epoch_ms AS STRING), 15, '0') || '|' ||
            LPAD(CAST(seq AS STRING), 20, '0') || '|' || event_id || '|' ||
            CAST(price AS STRING) AS k
  FROM first_copies
)
SELECT symbol, window_start, window_end,
       MIN(k) AS first_k, MAX(k) AS last_k, MAX(price) AS high, MIN(price) AS low,
       SUM(volume) AS volume, SUM(price * volume) AS pv, COUNT(*) AS trade_count
FROM TABLE(TUMBLE(TABLE keyed, DESCRIPTOR(ts), INTERVAL '{window}' SECOND(3)))
GROUP BY symbol, window_start, window_end
"""


def price_of(key: str) -> float:
    return float(key.rsplit("|", 1)[1])


def bars_of(env: object, topic: str, bootstrap: str, out: Path | None) -> int:
    """Run the bars query on ``topic`` to its end; write the bars to ``out`` (if given)."""
    table = f"ticks_{topic.replace('-', '_')}"
    env.execute_sql(  # type: ignore[attr-defined]
        SOURCE.format(table=table, topic=topic, bootstrap=bootstrap, watermark=WATERMARK_S)
    )
    bars = 0
    result = env.sql_query(BARS.format(table=table, window=WINDOW_S)).execute()  # type: ignore[attr-defined]
    with result.collect() as rows:
        lines = [json.dumps(as_bar(row)) + "\n" for row in rows]
        bars = len(lines)
    if out is not None:
        out.write_text("".join(lines), encoding="utf-8")
    return bars


def as_bar(row: Any) -> dict[str, Any]:
    return {
        "symbol": row[0],
        "window_start_ms": int(row[1].timestamp() * 1000),
        "open": price_of(row[3]),
        "high": row[5],
        "low": row[6],
        "close": price_of(row[4]),
        "volume": row[7],
        "vwap": row[8] / row[7],
        "trade_count": row[9],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("out")
    parser.add_argument("connector_jar")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument(
        "--warm-up", help="a topic to run the same query on first, in the same JVM (warm)"
    )
    args = parser.parse_args()

    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", str(args.parallelism))
    config.set("pipeline.jars", f"file://{args.connector_jar}")
    config.set("table.local-time-zone", "UTC")
    if args.warm_up:
        bars_of(env, args.warm_up, args.bootstrap, None)
    started = time.monotonic()
    bars = bars_of(env, args.topic, args.bootstrap, Path(args.out))
    print(json.dumps({"bars": bars, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
