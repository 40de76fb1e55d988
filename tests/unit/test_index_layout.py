"""The dedup index's layout: chosen at a lake's first start, then fixed."""

from __future__ import annotations

import json
from pathlib import Path

from tickstream.bars.job import IndexLayout, index_layout
from tickstream.lake.layout import Lake


def test_a_new_lake_records_the_default(tmp_path: Path) -> None:
    assert index_layout(Lake(tmp_path), 2) == IndexLayout(2, sequences=True)
    assert (tmp_path / "_checkpoints" / "bars_index.json").is_file()


def test_a_later_start_keeps_the_recorded_number_whatever_the_cores(tmp_path: Path) -> None:
    """Event_ids go to state partitions by a hash modulo this number: a change would lose them."""
    index_layout(Lake(tmp_path), 2)
    assert index_layout(Lake(tmp_path), 8) == IndexLayout(2, sequences=True)
    staging = tmp_path / "_checkpoints" / "staging"
    assert not list(staging.glob("*"))  # written through a staged file, renamed into place


def test_an_index_recorded_before_chunks_keeps_every_event_id_whole(tmp_path: Path) -> None:
    """Its producer ids sit under their own keys: looking them up as chunks would miss them."""
    record = tmp_path / "_checkpoints" / "bars_index.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"partitions": 3}) + "\n")
    assert index_layout(Lake(tmp_path), 2) == IndexLayout(3, sequences=False)
