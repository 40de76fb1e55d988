"""The dedup index's state partitions: chosen at a lake's first start, then fixed."""

from __future__ import annotations

from pathlib import Path

from tickstream.bars.job import index_partitions
from tickstream.lake.layout import Lake


def test_a_new_lake_records_the_default(tmp_path: Path) -> None:
    assert index_partitions(Lake(tmp_path), 2) == 2
    assert (tmp_path / "_checkpoints" / "bars_index.json").is_file()


def test_a_later_start_keeps_the_recorded_number_whatever_the_cores(tmp_path: Path) -> None:
    """Event_ids go to state partitions by a hash modulo this number: a change would lose them."""
    index_partitions(Lake(tmp_path), 2)
    assert index_partitions(Lake(tmp_path), 8) == 2
    staging = tmp_path / "_checkpoints" / "staging"
    assert not list(staging.glob("*"))  # written through a staged file, renamed into place
