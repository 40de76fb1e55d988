"""The rebuild's pure parts: ranges moved to window boundaries, chunks that never split a
window, the predicate a --replace removes by, and the summary's lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickstream.bars import rebuild as R
from tickstream.cli.rebuild import summary
from tickstream.config.forms import Thresholds
from tickstream.lake.layout import Lake

MIN = 60_000
DAY = 86_400_000
T0 = 1_378_080_000_000  # 2013-09-02T00:00:00Z


def test_a_time_range_moves_up_to_window_boundaries_and_others_stay_as_given() -> None:
    request = R.Request(window_ms=30_000, start_ms=T0 + 1, end_ms=T0 + 45_000)
    assert R.event_range(request) == (T0 + 30_000, T0 + 60_000)
    assert R.event_range(R.Request(window_ms=30_000)) == (None, None)
    tick = R.Request(kind="tick", start_ms=T0 + 1, end_ms=T0 + 45_000)
    assert R.event_range(tick) == (T0 + 1, T0 + 45_000)


@pytest.mark.parametrize("window", [1, 1000, 7 * MIN, 30_000, DAY])
def test_chunks_cover_the_ticks_and_never_split_a_window(window: int) -> None:
    first, last = T0 + 12_345, T0 + 3 * DAY + 999
    spans = R.chunks(first, last, DAY, window)
    assert spans[0][0] <= first
    assert spans[-1][1] > last
    assert all(a % window == 0 and b % window == 0 for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert all(b - a <= max(DAY, window) for a, b in spans)


def test_a_replace_removes_the_ranges_windows_up_to_where_the_archive_is_complete() -> None:
    request = R.Request(window_ms=MIN, symbols=("ES", "O'X"), start_ms=T0, end_ms=T0 + DAY)
    built = R.Plan(request, 3, T0 + 10 * MIN, MIN, 100, [])
    assert R.replace_predicate(built) == (
        "date >= '2013-09-02' AND window_start >= '2013-09-02T00:00:00.000Z' AND "
        "date <= '2013-09-02' AND window_start < '2013-09-02T00:10:00.000Z' AND "
        "symbol IN ('ES', 'O''X')"
    )
    whole = R.Plan(R.Request(window_ms=MIN), 3, None, MIN, 100, [])
    assert R.replace_predicate(whole) == "true"


def test_replace_is_refused_for_other_windows_and_for_activity_bars(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    other = R.Plan(R.Request(window_ms=30_000), 3, None, MIN, 100, [])
    with pytest.raises(R.RebuildError, match="--replace keeps one window"):
        R.check_target(lake, other.request, None, other)
    tick = R.Request(kind="tick", thresholds=Thresholds.parse("400"))
    with pytest.raises(R.RebuildError, match="rebuild them --into a new lake"):
        R.check_target(lake, tick, None, None)
    (tmp_path / "bars").mkdir()
    with pytest.raises(R.RebuildError, match="already holds a lake"):
        R.check_target(lake, tick, lake, None)


def test_the_summary_says_ticks_bars_rate_and_what_is_open(tmp_path: Path) -> None:
    built = R.Plan(R.Request(window_ms=30_000), 4, T0 + MIN, MIN, 1000, [])
    outcome = R.Outcome(ticks=1000, bars=12, open_bars=2, open_ticks=40, version=0)
    lines = summary(built, outcome, Lake(tmp_path), 4.0, replacing=False)
    assert lines == [
        f"rebuilt 12 time bars (30s) from 1,000 ticks in 4.0 s (250 ticks/s, whole command): "
        f"{tmp_path.resolve()}/bars version 0",
        "left open: 2 bars (40 ticks) at or after 2013-09-02T00:01:00.000Z, which the job's "
        "watermark has not closed: not written",
    ]
    outcome.replaced = 9
    assert summary(built, outcome, Lake(tmp_path), 4.0, replacing=True)[0].endswith(
        "version 0, in place of 9 stored bars"
    )


def test_the_archive_spans_and_files_of_a_range_at_a_pinned_version(tmp_path: Path) -> None:
    from tests.unit.test_activity_step import BASE, MINUTE, lake_with_ticks
    from tickstream.lake.read import TickArchive

    lake = lake_with_ticks(tmp_path, minutes=4)  # 10 ticks a minute, one file a minute
    pinned = TickArchive(lake, version=1)  # the first two minutes' commits
    assert pinned.span(None, None) == (20, BASE, BASE + MINUTE + 9000)
    assert pinned.span(BASE + 5000, BASE + MINUTE + 1000) == (6, BASE + 5000, BASE + MINUTE)
    assert pinned.span(BASE, BASE + 4 * MINUTE, ["NQ"]) == (0, 0, 0)
    files = pinned.file_uris(BASE + MINUTE, BASE + 2 * MINUTE)
    assert files is not None
    assert len(files) == 1  # the second minute's file only, by its ts statistics
    assert len(TickArchive(lake).file_uris(None, None) or []) == 4
    assert TickArchive(tmp_path / "none").current_version() is None
