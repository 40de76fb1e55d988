from __future__ import annotations

import io

from tickstream.cli.progress import ProgressLine, format_eta


def test_format_eta() -> None:
    assert format_eta(42.9) == "42s"
    assert format_eta(185) == "3m05s"
    assert format_eta(7620) == "2h07m"


def test_progress_line_on_a_terminal() -> None:
    out = io.StringIO()
    line = ProgressLine("replay", 1000, stream=out, interval=0.0, enabled=True)
    line.update(0)
    line.update(250, "queued 10")
    line.close()
    text = out.getvalue()
    assert "replay: 250/1,000 (25.0%)" in text
    assert "queued 10" in text
    assert "ETA" in text
    assert text.endswith("\n")


def test_no_progress_line_when_not_a_terminal() -> None:
    out = io.StringIO()  # isatty() is False
    line = ProgressLine("replay", 10, stream=out, interval=0.0)
    line.update(5)
    line.close()
    assert out.getvalue() == ""
