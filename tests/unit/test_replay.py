from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tickstream.sources.replay import ReplayError, ReplaySource, count_rows
from tickstream.ticks.schema import Tick

DATA = Path(__file__).resolve().parents[1] / "data" / "es_ticks_2013-09_120k.csv.gz"


def ticks_of(source: ReplaySource) -> list[Tick]:
    return [t for chunk in source.chunks() for t in chunk.ticks()]


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_symbol_column_layout_with_zoned_times(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        "symbol,ts,price,volume\n"
        "aapl,2024-03-01T14:30:00.001Z,180.5,100\n"
        "MSFT,2024-03-01T14:30:00.001Z,410.25,5\n"
        "AAPL,2024-03-01T09:30:00.002-05:00,180.51,0\n",
    )
    ticks = ticks_of(ReplaySource(path))
    assert [(t.symbol, t.ts_epoch_ms, t.price, t.volume, t.seq) for t in ticks] == [
        ("AAPL", 1709303400001, 180.5, 100.0, 0),
        ("MSFT", 1709303400001, 410.25, 5.0, 0),
        ("AAPL", 1709303400002, 180.51, 0.0, 1),
    ]
    assert len({t.event_id for t in ticks}) == 3


def test_es_layout_in_local_time(tmp_path: Path) -> None:
    source = ReplaySource(DATA, symbol="es", tz="America/Chicago", count=3)
    ticks = ticks_of(source)
    # 17:00:00.083 in Chicago (CDT, UTC-5) is 22:00:00.083 UTC.
    assert [(t.symbol, t.ts, t.price, t.volume) for t in ticks] == [
        ("ES", "2013-09-01T22:00:00.083Z", 1640.25, 8.0),
        ("ES", "2013-09-01T22:00:00.083Z", 1640.25, 1.0),
        ("ES", "2013-09-01T22:00:00.083Z", 1640.25, 2.0),
    ]
    assert [t.seq for t in ticks] == [0, 1, 2]


def test_the_whole_test_file_and_same_ids_on_a_second_replay() -> None:
    first = ticks_of(ReplaySource(DATA, symbol="ES", tz="America/Chicago"))
    assert len(first) == 120_000 == count_rows(DATA)
    assert len({t.event_id for t in first}) == 120_000
    again = ticks_of(ReplaySource(DATA, symbol="ES", tz="America/Chicago", count=1000))
    assert [t.event_id for t in again] == [t.event_id for t in first[:1000]]
    other_tz = ticks_of(ReplaySource(DATA, symbol="ES", tz="UTC", count=1))
    assert other_tz[0].event_id != first[0].event_id


def test_bad_rows_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.csv.gz",
        "DateTime,Price,Volume\n"
        "2013-09-01 17:00:00.083,1640.25,8\n"
        "2013-09-01 17:00:00.084,abc,1\n"
        "not a time,1640.25,1\n"
        "2013-09-01 17:00:00.085,-1,1\n"
        "2013-09-01 17:00:00.086,1640.5,-3\n"
        "2013-09-01 17:00:00.087,nan,1\n"
        "2013-09-01 17:00:00.088,,1\n"
        "2013-09-01 17:00:00.089,1641,2\n",
    )
    reported: list[tuple[str, str]] = []
    source = ReplaySource(path, symbol="ES", report_bad_row=lambda w, r: reported.append((w, r)))
    ticks = ticks_of(source)
    assert [t.price for t in ticks] == [1640.25, 1641.0]
    assert [t.seq for t in ticks] == [0, 1]
    assert [w for w, _ in reported] == [f"bad.csv.gz line {n}" for n in (3, 4, 5, 6, 7, 8)]
    reasons = [r for _, r in reported]
    assert reasons[0] == "bad price 'abc'"
    assert reasons[1].startswith("bad timestamp 'not a time'")
    assert "must be finite and > 0" in reasons[2]
    assert "bad volume '-3'" in reasons[3]
    assert source.bad_rows == 6


def test_on_bad_row_fail_stops_with_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.csv", "symbol,ts,price,volume\nA,2024-01-01T00:00:00Z,1,1\nA,x,1,1\n"
    )
    with pytest.raises(ReplayError, match=r"bad.csv line 3: bad timestamp 'x'.*--on-bad-row skip"):
        ticks_of(ReplaySource(path, on_bad_row="fail"))


def test_nonexistent_and_ambiguous_local_times_are_bad_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dst.csv",
        "DateTime,Price,Volume\n"
        "2024-03-10 02:30:00,1,1\n"  # does not exist in Chicago (spring forward)
        "2024-11-03 01:30:00,1,1\n"  # happens twice (fall back)
        "2024-11-03 03:30:00,1,1\n",
    )
    reported: list[str] = []
    ticks = ticks_of(
        ReplaySource(
            path, symbol="ES", tz="America/Chicago", report_bad_row=lambda _w, r: reported.append(r)
        )
    )
    assert len(ticks) == 1
    assert "nonexistent local time" in reported[0]
    assert "ambiguous local time" in reported[1]


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "symbol": ["ES", "NQ"],
            "ts": pa.array([1378072800083, 1378072800084], pa.timestamp("ms", tz="UTC")),
            "price": [1640.25, 15000.5],
            "volume": pa.array([8, 1], pa.int64()),
        }
    )
    pq.write_table(table, path)
    ticks = ticks_of(ReplaySource(path))
    assert [(t.symbol, t.ts_epoch_ms, t.price, t.volume) for t in ticks] == [
        ("ES", 1378072800083, 1640.25, 8.0),
        ("NQ", 1378072800084, 15000.5, 1.0),
    ]
    assert count_rows(path) == 2


def test_rebase_moves_the_first_tick_to_now(tmp_path: Path) -> None:
    import time

    ticks = ticks_of(ReplaySource(DATA, symbol="ES", tz="America/Chicago", rebase=True, count=2000))
    now = time.time() * 1000
    assert abs(ticks[0].ts_epoch_ms - now) < 60_000
    original = ticks_of(ReplaySource(DATA, symbol="ES", tz="America/Chicago", count=2000))
    shift = ticks[0].ts_epoch_ms - original[0].ts_epoch_ms
    assert all(a.ts_epoch_ms - b.ts_epoch_ms == shift for a, b in zip(ticks, original, strict=True))
    assert ticks[0].event_id != original[0].event_id


def test_paced_replay_yields_the_same_ticks(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        "DateTime,Price,Volume\n"
        + "".join(f"2013-09-01 17:00:00.{i:03d},1640.25,{i + 1}\n" for i in range(0, 200, 10)),
    )
    paced = ticks_of(ReplaySource(path, symbol="ES", speed=10.0))
    fast = ticks_of(ReplaySource(path, symbol="ES"))
    assert paced == fast


@pytest.mark.parametrize(
    ("header", "kwargs", "message"),
    [
        ("DateTime,Price,Volume", {}, "has no symbol column"),
        ("symbol,ts,price,volume", {"symbol": "ES"}, "drop --symbol"),
        ("when,Price,Volume", {"symbol": "ES"}, "no ts column"),
    ],
)
def test_layout_errors(tmp_path: Path, header: str, kwargs: dict[str, str], message: str) -> None:
    path = write(tmp_path / "x.csv", header + "\n")
    with pytest.raises(ReplayError, match=message):
        ticks_of(ReplaySource(path, **kwargs))  # type: ignore[arg-type]


def test_missing_file_and_bad_zone(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="not found"):
        ReplaySource(tmp_path / "nope.csv")
    with pytest.raises(ReplayError, match="unknown time zone"):
        ReplaySource(DATA, symbol="ES", tz="Mars/Olympus")


def test_a_producer_behind_the_pace_never_gets_a_clock_ahead_of_the_ticks_to_come() -> None:
    """A heartbeat carries ``clock_ms``; a tick yielded after it must not be older, or it is
    late. The consumer here stalls after every chunk (a slow broker, a busy machine) while the
    replay runs at ~5,000x, where 25 ms of wall time is two minutes of event time."""
    import time

    source = ReplaySource(DATA, symbol="ES", tz="America/Chicago", speed=5000.0, count=3000)
    clocks: list[int] = []
    for chunk in source.chunks():
        if len(chunk):
            assert not clocks or int(chunk.ts_epoch_ms.min()) >= max(clocks)
        time.sleep(0.03)
        clock = source.clock_ms()
        assert clock is not None
        clocks.append(clock)
    assert len(clocks) >= 5
