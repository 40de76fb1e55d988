"""The job's Prometheus metrics, served over HTTP by the Prometheus client library.

The counters are the job's running totals since the lake began (the numbers `tickstream
reconcile` adds up), read at scrape time from the latest micro-batch's report, so they agree with
the lake and survive a restart. Consumer lag comes from Spark's own progress report (the newest
offsets it saw on the topic minus those it has processed).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from tickstream.bars.state import NO_TIME, Snapshot

if TYPE_CHECKING:
    from tickstream.bars.job import BarsJob
    from tickstream.bars.report import BatchReport

RATE_WINDOW_S = 10.0
BATCH_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def offsets_lag(progress: Any) -> dict[tuple[str, str], int]:
    """(topic, partition) -> the messages Spark saw on the topic and has not processed yet."""
    lag: dict[tuple[str, str], int] = {}
    if not progress:
        return lag
    for source in progress["sources"] or []:
        latest, done = _offsets(source["latestOffset"]), _offsets(source["endOffset"])
        for topic, partitions in latest.items():
            for partition, newest in partitions.items():
                processed = done.get(topic, {}).get(partition, newest)
                lag[(topic, partition)] = max(0, int(newest) - int(processed))
    return lag


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


class TickRate:
    """Valid ticks per second over the last few seconds, from the running total."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque()

    def add(self, total: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._points.append((now, total))
        while len(self._points) > 2 and now - self._points[1][0] > self.window_s:
            self._points.popleft()

    def per_second(self, now: float | None = None) -> float:
        if len(self._points) < 2:
            return 0.0
        now = time.monotonic() if now is None else now
        (t0, n0), (t1, n1) = self._points[0], self._points[-1]
        if now - t1 > self.window_s:  # nothing came for a while
            return 0.0
        return (n1 - n0) / max(t1 - t0, 1e-9)


class JobCollector(Collector):
    """Reads the job's latest report (or the lake's record before the first batch) per scrape."""

    def __init__(self, job: BarsJob, rate: TickRate, before: Callable[[], Snapshot]) -> None:
        self.job = job
        self.rate = rate
        self.before = before

    def collect(self) -> Iterator[Metric]:
        report = self.job.last_report
        # Before the job's first batch, the totals and the watermark are the lake's record's.
        current: BatchReport | Snapshot = report if report is not None else self.before()
        totals, watermark = current.totals, current.watermark_ms
        newest = report.max_event_ms if report is not None else NO_TIME

        yield _counter("messages", "Messages read from the topic.", totals.messages)
        ticks = CounterMetricFamily(
            "tickstream_ticks", "Valid ticks by outcome.", labels=["outcome"]
        )
        ticks.add_metric(["accepted"], totals.ticks_accepted)
        ticks.add_metric(["duplicate"], totals.duplicates)
        ticks.add_metric(["late"], totals.late)
        yield ticks
        yield _counter("ticks_valid", "Valid ticks (before dedup).", totals.ticks_valid)
        rejected = CounterMetricFamily(
            "tickstream_rejected", "Rejected messages by reason.", labels=["reason"]
        )
        for reason, n in sorted(totals.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield _counter("heartbeats", "Heartbeats read.", totals.heartbeats)
        yield _counter("bars", "Closed bars written to the lake.", totals.bars)
        if totals.activity_bars:
            activity = CounterMetricFamily(
                "tickstream_activity_bars",
                "Tick, volume and dollar bars written to the lake, by kind.",
                labels=["kind"],
            )
            for kind, n in sorted(totals.activity_bars.items()):
                activity.add_metric([kind], n)
            yield activity
        publisher = self.job.publisher
        if publisher is not None:
            yield _counter(
                "bars_published", "Closed bars published to BARS_TOPIC.", publisher.published
            )
            yield _counter(
                "forming_bars_failed",
                "Forming bars that could not be sent to BARS_LIVE_TOPIC (a full client queue, or "
                "Kafka refused them); each window's next forming bar, and its closed bar, follow.",
                publisher.forming_failed,
            )
        rate = self.rate.per_second()
        yield _gauge("ticks_per_second", "Valid ticks per second, last 10 s.", rate)
        lag = GaugeMetricFamily(
            "tickstream_consumer_lag_messages",
            "Messages on the topic the job has not processed yet, per partition.",
            labels=["topic", "partition"],
        )
        query = self.job.query
        progress = query.lastProgress if query is not None else None
        for (topic, partition), n in sorted(offsets_lag(progress).items()):
            lag.add_metric([topic, partition], n)
        yield lag
        if watermark != NO_TIME:
            yield _gauge(
                "watermark_timestamp_seconds", "The event-time watermark.", watermark / 1000
            )
        if newest != NO_TIME:
            yield _gauge(
                "newest_event_timestamp_seconds", "The newest event time read.", newest / 1000
            )
        if watermark != NO_TIME and newest != NO_TIME:
            yield _gauge(
                "watermark_delay_seconds",
                "How far the watermark is behind the newest event.",
                (newest - watermark) / 1000,
            )
        if report is not None:
            yield _gauge("batch_id", "The latest micro-batch.", report.batch_id)
            yield _gauge(
                "batch_last_duration_seconds", "The latest micro-batch's duration.", report.seconds
            )
            windows = report.open_windows
            yield _gauge("open_windows", "Open (symbol, window) bars in the state.", windows)
            yield _gauge(
                "open_window_ticks", "Accepted ticks the open windows hold.", report.open_rows
            )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"tickstream_{name}", doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"tickstream_{name}", doc, value=value)


def stale_after(trigger_seconds: float) -> float:
    """How old the last micro-batch may be before the job counts as stalled: two minutes, or
    six triggers if that is longer (a backlog's first micro-batch takes a while)."""
    return max(120.0, 6 * trigger_seconds)


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        return


class JobMetrics:
    """The registry, the HTTP endpoint, and what the job feeds them after each batch."""

    def __init__(self, job: BarsJob) -> None:
        self.registry = CollectorRegistry()
        self.rate = TickRate()
        self.batch_seconds = Histogram(
            "tickstream_batch_duration_seconds",
            "Micro-batch duration.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self.registry.register(JobCollector(job, self.rate, self._before))
        self.job = job
        self._server: Any = None

    def _before(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self.job.latest_snapshot()
            return self._snapshot

    def on_batch(self, report: BatchReport) -> None:
        self.batch_seconds.observe(report.seconds)
        self.rate.add(report.totals.ticks_valid)

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` (Prometheus' exposition, any other path as well, as the client
        library does) and ``/healthz`` (:meth:`health`) on a thread of their own."""
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, text = self.health()
                status = "200 OK" if ok else "503 Service Unavailable"
                start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
                return [text.encode() + b"\n"]
            body: Iterable[bytes] = metrics(environ, start_response)
            return body

        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        self._server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        threading.Thread(
            target=self._server.serve_forever, name="tickstream-metrics", daemon=True
        ).start()

    def health(self, now: float | None = None) -> tuple[bool, str]:
        """Whether the job is healthy, in a line: its query is active and its last micro-batch
        started within :func:`stale_after` (Spark reports a trigger without data too, every
        10 s, so a quiet topic stays healthy)."""
        query = self.job.query
        if query is None:
            return False, "starting: the query has not started yet"
        if not query.isActive:
            return False, "the query has stopped"
        progress = query.lastProgress
        if not progress:
            return False, "starting: no micro-batch has run yet"
        started = datetime.fromisoformat(str(progress["timestamp"]).replace("Z", "+00:00"))
        age = (now if now is not None else time.time()) - started.timestamp()
        limit = stale_after(self.job.settings.trigger_seconds)
        if age > limit:
            return (
                False,
                f"stalled: the last micro-batch started {age:.0f} s ago (over {limit:.0f})",
            )
        return True, f"ok: micro-batch {progress['batchId']} started {age:.0f} s ago"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
