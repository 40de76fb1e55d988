"""The short form of the soak benchmark: a steady stream through the whole pipeline for two
minutes; state rows and JVM heap stay flat after warm-up and the consumer lag does not grow.

CI runs it at 6,000 ticks/s with 5-second bars: on the 2-core CI machine, which also runs the
broker and the producer, that is well within the job's capacity, so the verdicts are not a coin
toss. The 10,000 ticks/s figures at the default 1-minute bars come from `bench/soak.py` (see the
README); the bar-latency target of issue 9 is judged there (`--latency-target`), not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_short_soak() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--short", "--rate", "6000"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "produced 6,000 ticks/s on average" in done.stdout
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(verdicts) == 3
    assert all(line.startswith("[ok ]") for line in verdicts), verdicts
