"""The dashboard's web app (Starlette, served by uvicorn).

Routes:
  /                          the page (static/index.html); its script and styles under /static
  /api/symbols               symbols with bars in the lake or on the live topics
  /api/bars?symbol=&from=&to=&limit=&resolution=&kind=
                             closed bars from the lake, oldest first (the newest ``limit``);
                             ``kind`` tick, volume or dollar: those bars (activity_bar.schema.json)
  /api/kinds                 the kinds of bar in the lake: time, and those the job cuts
  /api/live?symbol=          server-sent events: each bar of the symbol from the bars topics
                             (forming ones ``provisional``) as it is published
  /api/health                the job's metrics, scraped from its Prometheus endpoint

Bad input gets a 4xx with a one-line JSON ``error``; nothing returns a stack trace.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tickstream.bars.publish import activity_row_message, bar_message
from tickstream.config import Settings
from tickstream.dashboard.auth import RequireCredential, credential
from tickstream.dashboard.live import LiveBars, LiveFeed
from tickstream.errors import BadQueryError, TickstreamError
from tickstream.lake import Lake, bar_symbols, read_bars
from tickstream.lake.read import BAR_KINDS, bar_kinds, parse_instant, plain_value
from tickstream.ticks.schema import SYMBOL_RE  # the tick contract's: ^GSPC, BRK.B, 7203.T

MAX_BARS = 5000
DEFAULT_BARS = 1000
KEEPALIVE_S = 15.0
SCRAPE_TIMEOUT_S = 2.0


class BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_symbol(value: str | None) -> str:
    if not value:
        raise BadRequestError(400, "symbol is required, e.g. ?symbol=AAPL")
    symbol = value.strip().upper()
    if not SYMBOL_RE.match(symbol):
        raise BadRequestError(
            400, f"bad symbol {value!r}: expected a ticker such as AAPL, ^GSPC or BRK.B"
        )
    return symbol


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO-8601 time (UTC if it has no offset), as a naive UTC datetime; None if absent."""
    try:
        parsed = parse_instant(value, name)
    except BadQueryError as exc:
        raise BadRequestError(400, str(exc)) from None
    return parsed.replace(tzinfo=None) if parsed is not None else None


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_BARS
    if not value.isdigit() or not 1 <= int(value) <= MAX_BARS:
        raise BadRequestError(400, f"bad limit {value!r}: expected a whole number 1 to {MAX_BARS}")
    return int(value)


def parse_kind(value: str | None) -> str:
    kind = value or "time"
    if kind not in BAR_KINDS:
        raise BadRequestError(400, f"bad kind {value!r}: expected time, tick, volume or dollar")
    return kind


def health_from(text: str) -> dict[str, Any]:
    """The numbers the health panel shows, from the job's metrics exposition."""
    values: dict[str, float] = {}
    lag = 0.0
    rejected = 0.0
    late = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tickstream_consumer_lag_messages":
                lag += sample.value
            elif sample.name == "tickstream_rejected_total":
                rejected += sample.value
            elif sample.name == "tickstream_ticks_total" and sample.labels.get("outcome") == "late":
                late = sample.value
            elif not sample.labels:
                values[sample.name] = sample.value
    return {
        "ok": True,
        "ticks_per_second": values.get("tickstream_ticks_per_second", 0.0),
        "lag": lag,
        "watermark_delay_s": values.get("tickstream_watermark_delay_seconds"),
        "watermark": values.get("tickstream_watermark_timestamp_seconds"),
        "late": late,
        "rejected": rejected,
        "batch_seconds": values.get("tickstream_batch_last_duration_seconds"),
        "batch_id": values.get("tickstream_batch_id"),
        "bars": values.get("tickstream_bars_total", 0.0),
    }


def as_message(record: dict[str, Any]) -> dict[str, Any]:
    """A bar read from the lake (a DataFrame record) in the bars topic's JSON contract."""
    bar = {k: plain_value(v) for k, v in record.items()}
    message = bar_message(bar, provisional=False, batch_id=-1)
    del message["batch_id"]  # the lake does not keep it
    if record.get("filled"):
        message["filled"] = True
    return message


def as_activity_message(record: dict[str, Any], kind: str) -> dict[str, Any]:
    """A tick, volume or dollar bar read from the lake in ACTIVITY_BARS_TOPIC's contract."""
    bar = {k: plain_value(v) for k, v in record.items()}
    message = activity_row_message(bar, kind=kind, batch_id=-1)
    del message["batch_id"]  # the lake does not keep it
    return message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    settings: Settings, *, live: LiveBars | None = None, follow: bool = True
) -> Starlette:
    """The app. ``follow`` starts the bars topics' consumer with the app. Raises
    :class:`~tickstream.errors.ConfigError` if it would listen beyond this machine without a
    credential (:mod:`tickstream.dashboard.auth`)."""
    secret = credential(settings)
    lake = Lake.from_settings(settings)
    bars = live or LiveBars()
    feed = LiveFeed(settings, bars)
    static = resources.files("tickstream.dashboard") / "static"

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if follow:
            feed.start()
        try:
            yield
        finally:
            feed.close()

    async def index(_request: Request) -> Response:
        return FileResponse(str(static / "index.html"))

    async def symbols(_request: Request) -> Response:
        stored = await asyncio.to_thread(bar_symbols, lake)
        return JSONResponse({"symbols": sorted(set(stored) | bars.symbols())})

    async def history(request: Request) -> Response:
        q = request.query_params
        symbol = parse_symbol(q.get("symbol"))
        start, end = parse_time(q.get("from"), "from"), parse_time(q.get("to"), "to")
        if start and end and start >= end:
            raise BadRequestError(400, "from must be before to")
        limit = parse_limit(q.get("limit"))
        resolution = q.get("resolution") or None
        kind = parse_kind(q.get("kind"))
        frame = await asyncio.to_thread(
            read_bars,
            lake,
            symbol=symbol,
            start=start,
            end=end,
            resolution=resolution,
            limit=limit,
            newest=True,
            kind=kind,
        )
        if kind != "time":
            records = frame.to_dict("records")
            messages = [as_activity_message(r, kind) for r in records]
            return JSONResponse({"symbol": symbol, "kind": kind, "bars": messages})
        if frame.empty and symbol not in bars.symbols():
            known = await asyncio.to_thread(bar_symbols, lake)
            if symbol not in known:
                raise BadRequestError(404, f"unknown symbol {symbol}: no bars in the lake or live")
        records = frame.to_dict("records")
        return JSONResponse({"symbol": symbol, "bars": [as_message(r) for r in records]})

    async def kinds(_request: Request) -> Response:
        found = await asyncio.to_thread(bar_kinds, lake)
        cut = [k for k in settings.activity_kinds if k not in found]
        return JSONResponse({"kinds": ["time", *found, *cut]})

    async def stream(request: Request) -> Response:
        symbol = parse_symbol(request.query_params.get("symbol"))
        sub = bars.subscribe(symbol)

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                for bar in bars.current(symbol):
                    yield f"data: {json.dumps(bar)}\n\n"
                while not await request.is_disconnected():
                    try:
                        bar = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {json.dumps(bar)}\n\n"
            finally:
                bars.unsubscribe(sub)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def health(_request: Request) -> Response:
        url = settings.scrape_url
        if url is None:
            return JSONResponse(
                {"ok": False, "error": "no metrics: set METRICS_PORT or METRICS_URL"}
            )
        try:
            text = await asyncio.to_thread(_scrape, url)
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            return JSONResponse({"ok": False, "error": f"job metrics at {url}: {reason}"})
        result = health_from(text)
        result["feed"] = {"connected": feed.connected, "error": feed.error}
        return JSONResponse(result)

    async def bad_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequestError)
        return _error(exc.status, str(exc))

    async def lake_error(_request: Request, exc: Exception) -> Response:
        return _error(503, str(exc))

    async def bad_query(_request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail)

    async def server_error(_request: Request, exc: Exception) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}: {exc}"[:300])

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/symbols", symbols),
            Route("/api/bars", history),
            Route("/api/kinds", kinds),
            Route("/api/live", stream),
            Route("/api/health", health),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ],
        exception_handlers={
            BadRequestError: bad_request,
            BadQueryError: bad_query,
            TickstreamError: lake_error,
            HTTPException: http_error,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
    if secret is not None:
        app.add_middleware(RequireCredential, secret=secret)
    return app


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:  # noqa: S310 - a setting
        body: bytes = response.read()
        return body.decode()


def serve(settings: Settings) -> None:
    """Run the dashboard until interrupted."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_level="warning",
        access_log=False,
    )
