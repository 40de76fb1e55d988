from __future__ import annotations

import numpy as np

from tickstream.sources.simulate import SimulateSource
from tickstream.ticks.schema import Tick


def run(source: SimulateSource) -> list[Tick]:
    return [t for chunk in source.chunks() for t in chunk.ticks()]


def fingerprint(ticks: list[Tick]) -> list[tuple[str, float, float]]:
    return [(t.symbol, t.price, t.volume) for t in ticks]


def test_a_seed_reproduces_the_market_whatever_the_chunking() -> None:
    symbols = ["AAPL", "MSFT", "TSLA"]
    one_go = run(SimulateSource(symbols, 0, seed=42, count=12_000, start_ms=0))
    again = run(SimulateSource(symbols, 0, seed=42, count=12_000, start_ms=0))
    assert one_go == again  # everything, timestamps and event ids included
    # Other chunk boundaries (5000 + 5000 + 2000 vs 7 + 5000 ...): the same market.
    source = SimulateSource(symbols, 0, seed=42, count=12_000, start_ms=0)
    pieces = [source.generate(7), source.generate(4993), source.generate(7000)]
    assert fingerprint([t for c in pieces for t in c.ticks()]) == fingerprint(one_go)
    other = run(SimulateSource(symbols, 0, seed=43, count=12_000, start_ms=0))
    assert fingerprint(other) != fingerprint(one_go)


def test_prices_stay_positive_and_on_the_cent() -> None:
    # A penny stock with huge volatility, to push the path towards zero.
    source = SimulateSource(
        ["PENNY", "AAPL"], 1.0, seed=1, count=50_000, start_ms=0, start_prices={"PENNY": 0.05}
    )
    source._step_sd = source._step_sd * 400
    prices = np.concatenate([source.generate(5000).price for _ in range(10)])
    assert (prices >= 0.01).all()
    assert (prices == 0.01).any()  # the floor was reached, so the check above means something
    cents = prices * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)


def test_realistic_start_and_heavy_tailed_sizes() -> None:
    ticks = run(SimulateSource(["AAPL", "ZZZZ"], 0, seed=5, count=20_000, start_ms=0))
    first = {t.symbol: t.price for t in reversed(ticks)}
    assert abs(first["AAPL"] - 230) < 5
    assert abs(first["ZZZZ"] - 100) < 5
    sizes = np.array([t.volume for t in ticks])
    assert sizes.min() >= 1
    assert (sizes == np.floor(sizes)).all()
    assert sizes.max() > 50 * np.median(sizes)  # a fat tail, not a bell


def test_seq_and_event_ids() -> None:
    ticks = run(SimulateSource(["A", "B"], 0, seed=9, count=5000, start_ms=1000))
    for symbol in ("A", "B"):
        seqs = [t.seq for t in ticks if t.symbol == symbol]
        assert seqs == list(range(len(seqs)))
    assert len({t.event_id for t in ticks}) == len(ticks)
    assert [t.ts_epoch_ms for t in ticks] == list(range(1000, 6000))  # synthetic clock, 1/ms
    assert all(t.source == "simulate" for t in ticks)


def test_without_a_start_time_runs_get_distinct_ids() -> None:
    a = run(SimulateSource(["A"], 0, count=10))
    b = run(SimulateSource(["A"], 0, count=10))
    assert not {t.event_id for t in a} & {t.event_id for t in b}


def test_a_rate_spaces_event_times_evenly() -> None:
    source = SimulateSource(["A"], 4.0, seed=1, count=8, start_ms=10_000)
    ticks = [t for c in [source.generate(8)] for t in c.ticks()]
    assert [t.ts_epoch_ms for t in ticks] == [10_000 + 250 * i for i in range(8)]


def test_a_producer_behind_the_rate_never_gets_a_clock_ahead_of_the_ticks_to_come() -> None:
    """The heartbeat's clock is held back to the next tick's time when the consumer stalls."""
    import time

    source = SimulateSource(["AAPL", "MSFT"], rate=2000.0, seed=1, count=400)
    clocks: list[int] = []
    for chunk in source.chunks():
        if len(chunk):
            assert not clocks or int(chunk.ts_epoch_ms.min()) >= max(clocks)
        time.sleep(0.05)
        clocks.append(source.clock_ms() or 0)
    assert len(clocks) >= 3


def test_a_step_below_one_millisecond_packs_ticks_into_fewer_milliseconds() -> None:
    ticks = run(SimulateSource(["A", "B"], 0, seed=3, count=10_000, start_ms=1000, step_ms=0.25))
    times = [t.ts_epoch_ms for t in ticks]
    assert times == sorted(times)
    assert times[0] == 1000
    assert times[-1] == 1000 + 9_999 // 4
    assert len(set(times)) == 2_500
