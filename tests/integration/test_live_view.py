"""The live view, with the pipeline running on simulated ticks: the dashboard in a real headless
Chromium, the bars topic against the lake, and the metrics endpoint against `reconcile`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession

from tests.helpers import spawn_produce, wait_until
from tests.integration.test_bars_job import settings_for
from tests.jobs import Jobs
from tests.kafka_helpers import consume_all
from tests.reference import as_row, check_bar_message, lake_bars
from tests.streams import send_heartbeat
from tickstream.bars.job import BarsJob
from tickstream.config import Settings, settings_env
from tickstream.kafka.admin import TopicSpec, ensure_topics, pipeline_topics
from tickstream.kafka.local import free_port
from tickstream.reconcile import reconcile

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches for the network (this machine's is closed).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@dataclass
class Live:
    settings: Settings
    job: BarsJob
    producer: subprocess.Popen[str]
    url: str
    bootstrap: str

    @property
    def lake(self) -> str:
        return self.settings.output_path


@pytest.fixture(scope="module")
def live(
    kafka_broker: str,
    spark: SparkSession,
    base_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    """Kafka, the bars job (bars topics and metrics on), a simulated market at 200 ticks/s and
    the dashboard, all running."""
    import uvicorn

    from tickstream.dashboard.app import create_app

    stem = uuid.uuid4().hex[:8]
    settings = settings_for(
        base_settings,
        kafka_broker,
        f"live-{stem}",
        tmp_path_factory.mktemp("live") / "lake",
        window_duration="5 seconds",
        watermark="2 seconds",
        bars_topic=f"bars-{stem}",
        bars_live_topic=f"bars-live-{stem}",
        activity_bars_topic=f"activity-{stem}",
        tick_bars="50",
        metrics_port=free_port(),
        dashboard_port=free_port(),
        tickers="AAPL,MSFT",
        msgs_per_sec=200,
        lake_compaction=False,
    )
    ensure_topics(kafka_broker, pipeline_topics(settings))
    jobs = Jobs(spark, "test_live_view.live", shared=True)
    job = jobs.start(settings)
    producer = spawn_produce(
        {**os.environ, **settings_env(settings)},
        "--source",
        "simulate",
        stdout=subprocess.DEVNULL,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.dashboard_port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=30, message="the dashboard serving")
        yield Live(
            settings, job, producer, f"http://127.0.0.1:{settings.dashboard_port}/", kafka_broker
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if producer.poll() is None:
            producer.kill()
            producer.wait()
        jobs.stop_all()


def closed_bars(live: Live, symbol: str) -> int:
    return sum(1 for bar in lake_bars(live.lake) if bar[0] == symbol)


def test_the_dashboard_in_a_real_browser(live: Live) -> None:
    """Candles for the chosen symbol, the forming one moving within 3 s, a symbol switch that
    redraws, a health panel with ticks flowing, and no error in the browser's console."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install chromium"
    wait_until(
        lambda: closed_bars(live, "AAPL") >= 2 and closed_bars(live, "MSFT") >= 1,
        timeout=120,
        interval=1.0,
        message="closed bars in the lake",
    )
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(live.url + "?symbol=AAPL")

            # History from the lake, then live candles.
            page.wait_for_function(
                "window.tickstream.symbol === 'AAPL' && window.tickstream.candles.size >= 2"
                " && document.getElementById('feed').textContent === 'live'",
                timeout=30_000,
            )
            closed = page.evaluate(
                "[...window.tickstream.candles.values()].filter(b => !b.provisional).length"
            )
            assert closed >= 2
            page.wait_for_function(
                "document.getElementById('legend').dataset.provisional === 'true'",
                timeout=10_000,
            )
            legend = page.eval_on_selector("#legend", "el => ({...el.dataset})")
            # The forming candle changes within 3 s (its volume grows, or the next one starts).
            page.wait_for_function(
                """([time, volume]) => {
                    const d = document.getElementById('legend').dataset;
                    return d.symbol === 'AAPL' && d.provisional === 'true'
                        && (d.time !== time || d.volume !== volume);
                }""",
                arg=[legend["time"], legend["volume"]],
                timeout=3_000,
            )

            # The health panel, fed by the job's metrics.
            page.wait_for_function(
                "Number(document.querySelector('.card[data-key=ticks_per_second]')"
                ".dataset.value) > 0",
                timeout=15_000,
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"))

            # Switching the symbol redraws the chart with that symbol's bars only.
            page.select_option("#symbol", "MSFT")
            page.wait_for_function(
                "window.tickstream.symbol === 'MSFT' && window.tickstream.candles.size >= 1"
                " && document.getElementById('legend').dataset.symbol === 'MSFT'",
                timeout=15_000,
            )
            symbols = page.evaluate(
                "[...new Set([...window.tickstream.candles.values()].map(b => b.symbol))]"
            )
            assert symbols == ["MSFT"]
            assert "symbol=MSFT" in page.url

            # A roll-up from the lake (the stored bars are 5 s): five-minute candles.
            page.select_option("#resolution", "5m")
            page.wait_for_function(
                "document.getElementById('feed').textContent === '5m bars from the lake'"
                " && window.tickstream.candles.size >= 1",
                timeout=15_000,
            )
            starts = page.evaluate("[...window.tickstream.candles.keys()]")
            assert all(start % 300 == 0 for start in starts)

            # Tick bars (every 50 ticks): one candle per bar, placed by number, the axis said
            # to count bars and labelled with each bar's last tick; new bars keep coming.
            page.select_option("#kind", "tick")
            page.wait_for_function(
                "document.getElementById('feed').textContent === 'tick bars from the lake'"
                " && window.tickstream.candles.size >= 3",
                timeout=30_000,
            )
            shown = page.evaluate("[...window.tickstream.candles.values()]")
            numbers = sorted(bar["number"] for bar in shown)
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            assert {bar["symbol"] for bar in shown} == {"MSFT"}
            assert all(bar["trade_count"] == 50 for bar in shown)
            assert page.is_disabled("#resolution")
            note = page.text_content("#axis") or ""
            assert "a bar every 50 ticks" in note
            assert "The axis counts bars, not time" in note
            assert "kind=tick" in page.url
            page.wait_for_function(
                "n => Math.max(...window.tickstream.candles.keys()) > n",
                arg=numbers[-1],
                timeout=15_000,
            )
            page.screenshot(path=str(ARTIFACTS / "dashboard-tick-bars.png"))
        finally:
            browser.close()
    assert errors == []


def test_the_endpoints_answer_bad_input_with_a_clear_4xx(live: Live) -> None:
    cases = {
        "api/bars?symbol=NOPE": (404, "unknown symbol NOPE"),
        "api/bars?symbol=AAPL&from=yesterday": (400, "bad from 'yesterday'"),
        "api/bars?symbol=AAPL&from=2026-01-02&to=2026-01-01": (400, "from must be before to"),
        "api/bars?symbol=AAPL&limit=-3": (400, "bad limit '-3'"),
        "api/bars?symbol=AAPL&resolution=7x": (400, "bad resolution '7x'"),
        "api/bars?symbol=AAPL&resolution=1s": (400, "finer than the stored bars (5s)"),
        "api/bars?symbol=AAPL&kind=renko": (400, "bad kind 'renko'"),
        "api/bars?symbol=AAPL&kind=tick&resolution=5m": (400, "spaced by activity"),
        "api/bars": (400, "symbol is required"),
        "api/live?symbol=%3Cscript%3E": (400, "bad symbol '<script>'"),
        "nowhere": (404, "Not Found"),
    }
    for path, (status, message) in cases.items():
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(live.url + path, timeout=10)
        body = json.loads(caught.value.read())
        assert caught.value.code == status, path
        assert message in body["error"], (path, body)
        assert "Traceback" not in body["error"]


def test_the_bars_topic_holds_the_lakes_bars_and_the_metrics_agree_with_reconcile(
    live: Live,
) -> None:
    wait_until(lambda: closed_bars(live, "AAPL") >= 1, timeout=120, message="a closed bar")
    live.producer.send_signal(signal.SIGTERM)
    assert live.producer.wait(timeout=60) == 0, live.producer.stderr
    # Close every window: a heartbeat past the last tick's window and the watermark.
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    send_heartbeat(live.bootstrap, live.settings.kafka_topic, now_ms + 10_000)
    assert live.job.query is not None
    live.job.query.processAllAvailable()

    # The metrics endpoint against reconcile (Kafka's offsets, the job's record, the lake).
    scrape_url = live.settings.scrape_url
    assert scrape_url is not None
    with urllib.request.urlopen(scrape_url, timeout=10) as response:
        metrics = samples(response.read().decode())
    report = reconcile(live.settings)
    assert report.balanced, "\n".join(report.lines())
    bars_topic = live.settings.bars_topic
    assert bars_topic is not None
    topic_checks = [c for c in report.checks if bars_topic in c.name]
    assert [c.left for c in topic_checks] == [0, report.lake["bars"]]  # once each, all of them
    t = report.totals
    assert metrics[("tickstream_messages_total", ())] == report.topic_messages == t.messages
    assert metrics[("tickstream_ticks_total", (("outcome", "accepted"),))] == t.ticks_accepted
    assert metrics[("tickstream_ticks_total", (("outcome", "duplicate"),))] == t.duplicates
    assert metrics[("tickstream_ticks_total", (("outcome", "late"),))] == t.late
    assert metrics[("tickstream_ticks_valid_total", ())] == t.ticks_valid
    assert metrics[("tickstream_heartbeats_total", ())] == t.heartbeats
    assert metrics[("tickstream_bars_total", ())] == t.bars == report.lake["bars"]
    # Published to BARS_TOPIC: the time bars only (the tick bars go to ACTIVITY_BARS_TOPIC).
    assert metrics[("tickstream_bars_published_total", ())] == t.bars
    tick_bars = metrics[("tickstream_activity_bars_total", (("kind", "tick"),))]
    assert tick_bars == t.activity_bars["tick"] > 0
    rejected = {k[1][0][1]: v for k, v in metrics.items() if k[0] == "tickstream_rejected_total"}
    assert rejected == t.rejected
    lags = [v for k, v in metrics.items() if k[0] == "tickstream_consumer_lag_messages"]
    assert len(lags) == 3
    # The job's health beside its metrics (Compose's healthcheck): active, a recent micro-batch.
    with urllib.request.urlopen(scrape_url.replace("/metrics", "/healthz"), timeout=10) as found:
        assert found.status == 200
        assert found.read().decode().startswith("ok: micro-batch ")
    assert live.job.metrics is not None
    stalled, why = live.job.metrics.health(now=time.time() + 3600)  # an hour without a batch
    assert not stalled
    assert why.startswith("stalled: the last micro-batch started ")
    assert sum(lags) == report.lag == 0
    assert t.ticks_accepted > 1000
    assert metrics[("tickstream_batch_duration_seconds_count", ())] >= 1
    assert metrics[("tickstream_watermark_delay_seconds", ())] >= 2.0  # the watermark's delay

    live.job.stop()
    assert live.job.failure() is None

    # A read_committed consumer of BARS_TOPIC finds exactly the lake's bars, each once.
    assert live.settings.bars_topic is not None
    records = consume_all(live.bootstrap, live.settings.bars_topic)
    published: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        bar = json.loads(record.value)
        check_bar_message(bar)
        assert record.key == bar["symbol"].encode()
        assert bar["schema_version"] == 1
        assert bar["provisional"] is False
        key = (bar["symbol"], bar["window_start_ms"])
        assert key not in published, f"published twice: {key}"
        published[key] = bar
    stored = lake_bars(live.lake)
    assert len(stored) == t.bars
    assert sorted(as_row(b) for b in published.values()) == sorted(stored)

    # The forming bars went to BARS_LIVE_TOPIC, flagged, each an open window of its batch.
    assert live.settings.bars_live_topic is not None
    live_records = consume_all(live.bootstrap, live.settings.bars_live_topic)
    forming = [json.loads(r.value) for r in live_records]
    assert forming
    for message in forming:
        check_bar_message(message)
    assert all(b["provisional"] is True for b in forming)
    assert {b["symbol"] for b in forming} == {"AAPL", "MSFT"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, sorted labels) -> value, for every sample of the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket"):
                continue
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_a_missing_bars_topic_stops_the_job_at_start_with_one_line(
    kafka_broker: str, spark: SparkSession, base_settings: Settings, tmp_path: Path
) -> None:
    from tickstream.errors import TickstreamError

    topic = f"ticks-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_broker, [TopicSpec(topic, 3)])
    settings = settings_for(
        base_settings, kafka_broker, topic, tmp_path / "lake", bars_topic="no-such-bars"
    )
    job = BarsJob(settings, spark)
    with pytest.raises(TickstreamError) as caught:
        job.start()
    assert str(caught.value) == (
        f"topic 'no-such-bars' (BARS_TOPIC) does not exist on {kafka_broker}; create it with "
        "`tickstream kafka create-topics`, or set BARS_TOPIC=off"
    )
    assert job.query is None
