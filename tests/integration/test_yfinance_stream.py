"""The yfinance stream source against a real WebSocket server that sends recorded frames.

The server is the ``websockets`` package's, on a local port; the client is yfinance's own
public ``WebSocket``. No network: the frames are in tests/data/yfinance_stream.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.integration.test_producer import split
from tests.kafka_helpers import consume_all
from tickstream.sources.yfinance_stream import YahooStream, YFinanceStreamSource
from tickstream.ticks.columnar import TickChunk

RECORDED = Path(__file__).parents[1] / "data" / "yfinance_stream.jsonl"
FRAMES = RECORDED.read_text().splitlines()
T0 = 1_764_340_200_000
VALID = 24  # quotes of AAPL and MSFT in the recording, each once (see the data's script)
BAD = ("no positive price", "no exchange time", "could not decode")

Plan = Callable[[int], tuple[list[str], bool]]  # connection number -> (frames, close after)


class RecordedYahoo:
    """Answers each subscription with recorded frames; may close the connection after them."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.subscriptions: list[dict[str, list[str]]] = []
        self._server: Server | None = None

    def _handle(self, ws: ServerConnection) -> None:
        number = len(self.subscriptions)
        try:
            self.subscriptions.append(json.loads(ws.recv()))
            frames, close = self.plan(number)
            for text in frames:
                ws.send(text)
            if not close:
                for _ in ws:  # the client's periodic subscriptions, until it goes
                    pass
        except ConnectionClosed:
            pass

    def __enter__(self) -> str:
        self._server = serve(self._handle, "127.0.0.1", 0)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()


@pytest.fixture
def dropping_yahoo() -> Iterator[tuple[RecordedYahoo, str]]:
    """The first connection gets the first 12 frames and is dropped; the next ones get frames
    8 on (four sent again) and stay open."""
    yahoo = RecordedYahoo(lambda n: (FRAMES[:12], True) if n == 0 else (FRAMES[8:], False))
    with yahoo as url:
        yield yahoo, url


def test_a_dropped_connection_is_resumed_and_quotes_sent_again_are_not_new_ticks(
    dropping_yahoo: tuple[RecordedYahoo, str],
) -> None:
    yahoo, url = dropping_yahoo
    notes: list[str] = []
    source = YFinanceStreamSource(
        ["AAPL", "MSFT"],
        connect=lambda: YahooStream(url),
        notify=notes.append,
        count=VALID,
        first_backoff_s=0.05,
    )
    chunks: list[TickChunk] = []
    done = threading.Thread(target=lambda: chunks.extend(source.chunks()), daemon=True)
    done.start()
    done.join(60)
    assert not done.is_alive(), notes
    ticks = [t for c in chunks for t in c.ticks()]

    assert len(ticks) == VALID
    assert len({t.event_id for t in ticks}) == VALID
    assert [t.ts_epoch_ms for t in ticks] == [T0 + 250 * i for i in range(VALID)]
    assert [t.price for t in ticks] == [round(230.0 + 0.01 * i, 2) for i in range(VALID)]
    assert [t.symbol for t in ticks] == ["MSFT" if i % 3 == 0 else "AAPL" for i in range(VALID)]
    assert sorted(yahoo.subscriptions[0]["subscribe"]) == ["AAPL", "MSFT"]  # (a set in yfinance)
    assert source.connections == 2
    assert source.repeats == 4  # one in the recording, three after the reconnect
    assert source.bad_rows == 4  # the undecodable frame twice, no price, no time
    assert any(n.startswith("yfinance stream lost (") for n in notes), notes
    assert "yfinance stream connected again" in notes
    for reason in BAD:
        assert any(reason in n for n in notes), (reason, notes)


def test_produce_streams_yahoo_through_the_spool_into_kafka(
    kafka_broker: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(3)
    with RecordedYahoo(lambda n: (FRAMES, False)) as url:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
            "KAFKA_TOPIC": topic,
            "TICKSTREAM_HOME": str(tmp_path / "home"),
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tickstream",
                "produce",
                "--source",
                "yfinance",
                "--yfinance-stream-url",
                url,
                "--tickers",
                "AAPL,MSFT",
                "--count",
                str(VALID),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert f"spool at {tmp_path / 'home' / 'spool' / topic}" in err  # on for a live source
    assert f"spooled {VALID} ticks" in err
    assert "the spool is empty" in err
    assert sum("(skipped)" in line for line in err.splitlines()) == 3
    assert "Traceback" not in err
    ticks, beats = split(consume_all(kafka_broker, topic))
    got = sorted((obj["ts_epoch_ms"], obj["symbol"], obj["price"]) for _, obj in ticks)
    assert got == [
        (T0 + 250 * i, "MSFT" if i % 3 == 0 else "AAPL", round(230.0 + 0.01 * i, 2))
        for i in range(VALID)
    ]
    assert all(obj["source"] == "yfinance" for _, obj in ticks)
    assert beats  # the exchange's clock, for quiet markets
