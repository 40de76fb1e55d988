"""Choosing and building the source the settings ask for."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tickstream.config import Settings
from tickstream.errors import ConfigError
from tickstream.sources.base import TickSource
from tickstream.sources.replay import BadRowReporter, ReplaySource
from tickstream.sources.simulate import SimulateSource
from tickstream.sources.yfinance import YFinanceSource, YFinanceUnavailable
from tickstream.sources.yfinance_stream import YahooStream, YFinanceStreamSource


def build_source(
    settings: Settings,
    *,
    stop: threading.Event,
    notify: Callable[[str], None],
    report_bad_row: BadRowReporter | None = None,
    count: int | None = None,
    duration_s: float | None = None,
    start_ms: int | None = None,
) -> TickSource:
    kind = settings.producer_source
    if kind == "replay":
        if settings.replay_file is None:
            raise ConfigError("--source replay needs a file: --file PATH (or REPLAY_FILE)")
        return ReplaySource(
            settings.replay_file,
            symbol=settings.replay_symbol,
            tz=settings.replay_tz,
            speed=settings.replay_speed_factor,
            rebase=settings.replay_rebase,
            on_bad_row=settings.replay_on_bad_row,
            report_bad_row=report_bad_row,
            stop=stop,
            count=count,
        )
    if kind == "yfinance":
        try:
            return _yfinance(settings, stop, notify, report_bad_row, count, duration_s)
        except YFinanceUnavailable as exc:
            if not settings.simulate_if_no_yfinance:
                raise YFinanceUnavailable(
                    str(exc.message),
                    "install it (pip install 'tickstream[live]'), check the network, "
                    "or set SIMULATE_IF_NO_YFINANCE=true to fall back to simulated ticks",
                ) from None
            notify(f"{exc.message}: falling back to simulated ticks (SIMULATE_IF_NO_YFINANCE=true)")
    return SimulateSource(
        settings.tickers,
        settings.msgs_per_sec,
        seed=settings.sim_seed,
        count=count,
        duration_s=duration_s,
        start_ms=start_ms,
        stop=stop,
    )


def _yfinance(
    settings: Settings,
    stop: threading.Event,
    notify: Callable[[str], None],
    report_bad_row: BadRowReporter | None,
    count: int | None,
    duration_s: float | None,
) -> TickSource:
    """Yahoo's stream; polling where the stream is unavailable (or YFINANCE_MODE=poll)."""
    if settings.yfinance_mode == "stream":
        url = settings.yfinance_stream_url
        stream = YFinanceStreamSource(
            settings.tickers,
            connect=lambda: YahooStream(url),
            notify=notify,
            report_bad=report_bad_row,
            count=count,
            duration_s=duration_s,
            stop=stop,
        )
        try:
            stream.probe()
            return stream
        except YFinanceUnavailable as exc:
            notify(f"{exc.message}: polling Yahoo instead (YFINANCE_MODE=poll)")
    poll = YFinanceSource(
        settings.tickers,
        poll_s=settings.yfinance_poll_sec,
        notify=notify,
        count=count,
        duration_s=duration_s,
        stop=stop,
    )
    poll.probe()
    return poll
