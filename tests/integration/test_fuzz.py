"""Hostile input: 10,000+ malformed messages among real ticks. The job never stops, every bad
message is in rejects/ with its reason, and the good bars equal the independent computation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.integration.test_bars_job import (
    WINDOW_MS,
    as_dicts,
    assert_reconciled,
    settings_for,
)
from tests.jobs import Jobs
from tests.reference import lake_bars, lake_sql, reference_bars
from tests.streams import es_ticks, send_fuzzed, send_heartbeat
from tickstream.config import Settings


def test_ten_thousand_malformed_messages(
    kafka_broker: str,
    make_topic: Callable[..., str],
    jobs: Jobs,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    topic = make_topic(partitions=3)
    ticks = es_ticks(60_000)
    sent = send_fuzzed(kafka_broker, topic, ticks, n_bad=10_500)
    assert len(sent.rejects) == 10_500
    assert len(set(sent.rejects)) == 15  # every kind of damage is in there
    send_heartbeat(kafka_broker, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)

    out = tmp_path / "lake"
    settings = settings_for(base_settings, kafka_broker, topic, out, max_offsets_per_trigger=30_000)
    job = jobs.drain(settings)

    rejects = lake_sql(out, "SELECT reason, count(*) FROM rejects GROUP BY reason")
    assert Counter(dict(rejects)) == Counter(sent.rejects)
    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    totals = job.latest_snapshot().totals
    assert totals.rejected_total == 10_500
    assert totals.ticks_accepted == 60_000
    # Where each reject came from is kept, raw bytes included.
    located = lake_sql(
        out,
        'SELECT count(*) FROM rejects WHERE topic IS NOT NULL AND "partition" >= 0 '
        'AND "offset" >= 0',
    )
    assert located == [(10_500,)]
    assert_reconciled(settings)
