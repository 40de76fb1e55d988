"""Cutting tick, volume and dollar bars (bars/activity.py), checked against mlfinpy's standard
bars on the same ticks, and on the small cases that decide a bar's boundary."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.mlfinpy.reference import mlfinpy_bars
from tickstream.bars.activity import (
    KINDS,
    ActivityBar,
    NeedsEventIdsError,
    OpenBar,
    Thresholds,
    cut,
    cut_ticks,
    in_order,
)
from tickstream.bars.activity_step import cut_through, ordered_between
from tickstream.bars.partials import Partial, split_closed
from tickstream.bars.state import NO_TIME
from tickstream.config import load_settings, settings_env
from tickstream.errors import ConfigError
from tickstream.lake.read import TickArchive

THRESHOLDS = {"tick": 37.0, "volume": 1_234.5, "dollar": 98_765.4321}


def arrays(ticks: list[tuple[int, float, float]]) -> tuple[Any, Any, Any]:
    ts, price, volume = zip(*ticks, strict=True) if ticks else ((), (), ())
    return (
        np.array(ts, dtype=np.int64),
        np.array(price, dtype=np.float64),
        np.array(volume, dtype=np.float64),
    )


def cut_all(
    kind: str, threshold: float, ticks: list[tuple[int, float, float]], pieces: int = 1
) -> tuple[list[ActivityBar], OpenBar]:
    """The ticks cut in ``pieces`` consecutive runs, the open bar carried through JSON between
    them (as across micro-batches and restarts)."""
    bars: list[ActivityBar] = []
    bar = OpenBar()
    bounds = np.linspace(0, len(ticks), pieces + 1).astype(int)
    for lo, hi in itertools.pairwise(bounds):
        closed, bar = cut("ES", kind, threshold, bar, *arrays(ticks[lo:hi]))
        bars += closed
        bar = OpenBar.from_json(bar.to_json())
    return bars, bar


def as_mlfinpy(bars: list[ActivityBar]) -> list[tuple[Any, ...]]:
    return [(b.last_ms, b.open, b.high, b.low, b.close, b.volume, b.dollar, b.ticks) for b in bars]


def market(seed: int, n: int) -> list[tuple[int, float, float]]:
    """Prices off a binary grid and fractional volumes: sums that round, as real feeds' do."""
    rng = random.Random(seed)
    price, ts, out = 100.0, 1_700_000_000_000, []
    for _ in range(n):
        ts += rng.randrange(0, 50)
        price = max(0.01, price + rng.gauss(0, 0.07))
        out.append((ts, round(price, 2), round(rng.expovariate(1 / 37), 3)))
    return out


TICKS = market(seed=3, n=5_000)


@pytest.fixture(scope="module")
def reference() -> dict[str, list[Any]]:
    """mlfinpy's bars of TICKS, each kind (one mlfinpy process for the three)."""
    cases = [(kind, THRESHOLDS[kind], TICKS) for kind in KINDS]
    return dict(zip(KINDS, mlfinpy_bars(cases), strict=True))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pieces", [1, 7, 500])
def test_bars_equal_mlfinpy_to_the_last_bit(
    kind: str, pieces: int, reference: dict[str, list[Any]]
) -> None:
    bars, _ = cut_all(kind, THRESHOLDS[kind], TICKS, pieces)
    assert len(bars) > 20
    assert as_mlfinpy(bars) == reference[kind]
    assert [b.number for b in bars] == list(range(1, len(bars) + 1))


def test_a_tick_exactly_at_the_threshold_closes_the_bar_and_belongs_to_it() -> None:
    ticks = [(1, 10.0, 2.0), (2, 11.0, 3.0), (3, 12.0, 1.0)]
    bars, bar = cut_all("volume", 5.0, ticks)
    assert [(b.first_ms, b.last_ms, b.volume, b.ticks, b.close) for b in bars] == [
        (1, 2, 5.0, 2, 11.0)
    ]
    assert (bar.ticks, bar.volume, bar.open, bar.first_ms) == (1, 1.0, 12.0, 3)


def test_a_single_tick_larger_than_the_threshold_is_a_bar_of_its_own_with_no_carry() -> None:
    ticks = [(1, 10.0, 1.0), (2, 10.5, 50.0), (3, 10.25, 1.0), (4, 10.0, 1.0)]
    bars, bar = cut_all("volume", 10.0, ticks)
    assert [(b.first_ms, b.last_ms, b.volume, b.open, b.high, b.low) for b in bars] == [
        (1, 2, 51.0, 10.0, 10.5, 10.0)
    ]
    assert (bar.ticks, bar.volume) == (2, 2.0)  # the next bar started empty
    bars, bar = cut_all("dollar", 100.0, [(1, 1000.0, 1.0), (2, 1.0, 1.0)])
    assert [(b.ticks, b.dollar) for b in bars] == [(1, 1000.0)]
    assert (bar.ticks, bar.dollar) == (1, 1.0)


def test_several_bars_close_in_one_run_and_one_stays_open_across_many() -> None:
    ticks = [(i, 100.0 + i % 3, 1.0) for i in range(10)]
    bars, bar = cut_all("tick", 3, ticks)
    assert [(b.number, b.first_ms, b.last_ms, b.ticks) for b in bars] == [
        (1, 0, 2, 3),
        (2, 3, 5, 3),
        (3, 6, 8, 3),
    ]
    assert (bar.number, bar.ticks, bar.first_ms) == (3, 1, 9)
    # One bar open over 400 runs of one tick each, carried through JSON: one bar at the end.
    ticks = [(i, 50.0 + (i % 7) / 4, 1.0) for i in range(400)]
    bars, bar = cut_all("volume", 400.0, ticks, pieces=400)
    assert [(b.first_ms, b.last_ms, b.ticks, b.high, b.low, b.close) for b in bars] == [
        (0, 399, 400, 51.5, 50.0, 50.0 + (399 % 7) / 4)
    ]
    assert bar == OpenBar(number=1)


def test_an_empty_run_changes_nothing() -> None:
    bar = OpenBar(number=4, ticks=2, volume=3.0, dollar=30.0, open=10, high=10, low=10)
    assert cut("ES", "dollar", 100.0, bar, *arrays([])) == ([], bar)


def test_thresholds_for_every_symbol_or_by_symbol_with_a_default() -> None:
    assert Thresholds.parse("off") is None
    every = Thresholds.parse("5000")
    assert every is not None
    assert (every.of("ES"), every.of("AAPL")) == (5000.0, 5000.0)
    some = Thresholds.parse("ES=5000, aapl=20000")
    assert some is not None
    assert (some.of("ES"), some.of("AAPL"), some.of("MSFT")) == (5000.0, 20000.0, None)
    with_default = Thresholds.parse("ES=5000,*=1e6")
    assert with_default is not None
    assert (with_default.of("ES"), with_default.of("MSFT")) == (5000.0, 1e6)


def test_the_settings_keep_thresholds_in_a_form_they_read_back() -> None:
    settings = load_settings({"dollar_bars": " es=5e6, *=1000000.5 ", "tick_bars": "500"})
    assert settings.dollar_bars == "ES=5000000,*=1000000.5"
    assert settings.tick_bars == "500"
    assert settings.volume_bars == "off"
    assert settings.activity_kinds == ("tick", "dollar")
    dollar = settings.thresholds("dollar")
    assert dollar is not None
    assert (dollar.of("ES"), dollar.of("NQ")) == (5e6, 1000000.5)
    assert load_settings(settings_env(settings)) == settings


@pytest.mark.parametrize("text", ["0", "-5", "ES=", "=5", "ES=abc", "nan", "inf", "ES=5,,"])
def test_a_bad_threshold_is_one_line(text: str) -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings({"volume_bars": text})
    assert str(bad.value).startswith(
        f"bad setting --volume-bars={text!r}: expected a positive number for every symbol (5000)"
    )
    assert "\n" not in str(bad.value)


def archive(rows: list[tuple[str, int, float, float]]) -> pa.Table:
    """Ticks as the archive holds them: in no particular order (in_order sorts them); each
    tick's seq is its place in ``rows``."""
    shuffled = list(enumerate(rows))
    random.Random(len(rows)).shuffle(shuffled)
    return pa.table(
        {
            "symbol": [r[0] for _, r in shuffled],
            "ts_epoch_ms": pa.array([r[1] for _, r in shuffled], pa.int64()),
            "seq": pa.array([i for i, _ in shuffled], pa.int64()),
            "event_id": [f"e{i}" for i, _ in shuffled],
            "price": [r[2] for _, r in shuffled],
            "volume": [r[3] for _, r in shuffled],
        }
    )


def test_each_symbol_is_cut_on_its_own_with_its_own_threshold() -> None:
    rows = [("AAPL", ms, 10.0, 1.0) for ms in range(5)] + [("ES", ms, 20.0, 1.0) for ms in range(7)]
    rows += [("MSFT", 3, 30.0, 1.0)]  # no threshold for it: no bars, no state
    thresholds = {"tick": Thresholds(None, {"AAPL": 2.0, "ES": 3.0})}
    closed, opens = cut_ticks(in_order(archive(rows)), thresholds, {})
    assert [(b.symbol, b.number, b.first_ms, b.last_ms) for b in closed] == [
        ("AAPL", 1, 0, 1),
        ("AAPL", 2, 2, 3),
        ("ES", 1, 0, 2),
        ("ES", 2, 3, 5),
    ]
    assert set(opens["tick"]) == {"AAPL", "ES"}
    assert (opens["tick"]["AAPL"].ticks, opens["tick"]["AAPL"].number) == (1, 2)
    assert (opens["tick"]["ES"].ticks, opens["tick"]["ES"].first_ms) == (1, 6)


def test_cutting_goes_on_from_the_open_bars_of_the_batch_before() -> None:
    thresholds = {"volume": Thresholds(4.0, {})}
    first = [("ES", ms, 20.0, 1.5) for ms in range(3)]  # 4.5 >= 4 at the third tick
    second = [("ES", 10 + ms, 21.0, 1.5) for ms in range(3)]
    closed, opens = cut_ticks(in_order(archive(first)), thresholds, {})
    more, opens = cut_ticks(in_order(archive(second)), thresholds, opens)
    whole, _ = cut_ticks(in_order(archive(first + second)), thresholds, {})
    assert closed + more == whole
    assert [(b.number, b.first_ms, b.last_ms, b.volume) for b in whole] == [
        (1, 0, 2, 4.5),
        (2, 10, 12, 4.5),
    ]
    assert opens["volume"]["ES"] == OpenBar(number=2)


def test_the_cut_runs_through_the_start_of_the_oldest_open_window() -> None:
    # A window [s, s + 60 s) is open while s + 60 s > watermark: the oldest starts at F.
    assert cut_through(NO_TIME, 60_000) == NO_TIME
    assert cut_through(120_000, 60_000) == 120_000  # [60 s, 120 s) closed at 120 s
    assert cut_through(179_999, 60_000) == 120_000
    assert cut_through(180_000, 60_000) == 180_000
    closed, still_open = split_closed({("ES", 120_000): partial(120_000)}, 179_999, 60_000)
    assert (closed, list(still_open)) == ([], [("ES", 120_000)])
    closed, _ = split_closed({("ES", 120_000): partial(120_000)}, 180_000, 60_000)
    assert [p.window_start_ms for p in closed] == [120_000]


def partial(start: int) -> Partial:
    order = (start, 0, "e")
    return Partial("ES", start, order, 1.0, order, 1.0, 1.0, 1.0, 1.0, 1.0, 1, 1.0)


def test_the_archive_is_read_by_event_time_and_put_in_cutting_order(tmp_path: Path) -> None:
    """Ticks of [lo, hi) from the archive's Delta table (appended by several batches, over two
    dates; the files outside the range skipped), then in cutting order: symbol, time, seq, and
    event_id where those tie (two producers' ticks of one instant and seq)."""
    from datetime import UTC, datetime

    from deltalake import DeltaTable, write_deltalake

    base = 1_378_079_940_000  # 2013-09-01T23:59:00Z
    rng = random.Random(5)
    rows: list[dict[str, Any]] = []
    for i in range(3_000):
        ms = base + rng.randrange(0, 120) * 1_000  # whole seconds: many ticks share an instant
        when = datetime.fromtimestamp(ms / 1000, UTC)
        rows.append(
            {
                "symbol": rng.choice(["ES", "NQ", "^GSPC"]),
                "ts": when,
                "ts_epoch_ms": ms,
                "price": float(i),  # tells the ticks apart
                "volume": 1.0,
                "seq": rng.randrange(4),
                "event_id": f"{rng.randrange(16):x}-{i}",
                "date": when.strftime("%Y-%m-%d"),
            }
        )
    table = tmp_path / "lake" / "ticks"
    for batch in range(6):  # each batch's ticks in a file of its own, as the job appends them
        part = [r for r in rows if (r["ts_epoch_ms"] - base) // 20_000 == batch]
        write_deltalake(
            str(table), pa.Table.from_pylist(part), mode="append", partition_by=["date"]
        )
    lo, hi = base + 30_000, base + 70_000  # across midnight
    with pytest.raises(NeedsEventIdsError):  # read without event_ids: ties found
        in_order(TickArchive(tmp_path / "lake").between(lo, hi))
    _, got = ordered_between(TickArchive(tmp_path / "lake"), lo, hi)  # read again with them
    key = ("symbol", "ts_epoch_ms", "seq", "event_id")
    expected = sorted(
        (r for r in rows if lo <= r["ts_epoch_ms"] < hi), key=lambda r: [r[k] for k in key]
    )
    assert (
        sum(
            1
            for a, b in itertools.pairwise(expected)
            if [a[k] for k in key[:3]] == [b[k] for k in key[:3]]
        )
        > 20
    )
    assert list(got.price) == [r["price"] for r in expected]
    assert list(got.ts_ms) == [r["ts_epoch_ms"] for r in expected]
    assert [(s, hi_ - lo_) for s, lo_, hi_ in got.runs] == [
        (s, sum(1 for r in expected if r["symbol"] == s)) for s in ("ES", "NQ", "^GSPC")
    ]
    assert TickArchive(tmp_path / "lake").between(None, lo).num_rows == sum(
        1 for r in rows if r["ts_epoch_ms"] < lo
    )
    files = DeltaTable(str(table)).to_pyarrow_dataset(
        file_pruning_predicate="ts >= '2013-09-02T00:00:10' AND ts < '2013-09-02T00:00:20'"
    )
    assert len(list(files.get_fragments())) == 1
    assert TickArchive(tmp_path / "nothing").between(None, hi).num_rows == 0
    assert ordered_between(TickArchive(tmp_path / "nothing"), None, hi)[1].runs == []
