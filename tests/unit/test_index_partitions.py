"""The dedup index's state partitions: chosen at a lake's first start, then fixed."""

from __future__ import annotations

from pathlib import Path

from tickstream.bars.job import index_partitions


def test_a_new_lake_records_the_default(tmp_path: Path) -> None:
    checkpoints = tmp_path / "_checkpoints"
    assert index_partitions(checkpoints, 2) == 2
    assert (checkpoints / "bars_index.json").is_file()


def test_a_later_start_keeps_the_recorded_number_whatever_the_cores(tmp_path: Path) -> None:
    """Event_ids go to state partitions by a hash modulo this number: a change would lose them."""
    checkpoints = tmp_path / "_checkpoints"
    index_partitions(checkpoints, 2)
    assert index_partitions(checkpoints, 8) == 2
    assert not list(checkpoints.glob("*.tmp"))  # written through a staged file
