"""mlfinpy's tick, volume and dollar bars, the reference for tickstream's activity bars.

mlfinpy pins numpy < 1.27 and tickstream's pyarrow needs numpy 2, so mlfinpy runs in a venv of
its own (made once, under ``.tickstream/test-venvs``; ``scripts/bootstrap.sh dev`` makes it),
and the tests hand it their ticks as JSON (``bars.py``): one process for many cases.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = REPO / ".tickstream" / "test-venvs" / "mlfinpy"
REQUIREMENTS = HERE / "requirements.txt"

Tick = Sequence[float]  # (ts_ms, price, volume)
Bar = tuple[int, float, float, float, float, float, float, int]


def python() -> Path:
    """The mlfinpy venv's Python, made (or remade for changed requirements) first."""
    exe = VENV / "bin" / "python"
    stamp = VENV / ".requirements"
    want = REQUIREMENTS.read_text(encoding="utf-8")
    if not exe.is_file() or not stamp.is_file() or stamp.read_text(encoding="utf-8") != want:
        print(f"making the mlfinpy venv in {VENV} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(exe), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True
        )
        stamp.write_text(want, encoding="utf-8")
    return exe


def mlfinpy_bars(cases: Sequence[tuple[str, float, Sequence[Tick]]]) -> list[list[Bar]]:
    """Each case's bars, ``(kind, threshold, ticks in order)``: as mlfinpy cuts them."""
    payload = [
        {"kind": kind, "threshold": threshold, "ticks": [list(t) for t in ticks]}
        for kind, threshold, ticks in cases
    ]
    done = subprocess.run(
        [str(python()), str(HERE / "bars.py")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mlfinpy failed: {done.stderr[-3000:]}")
    result: list[list[Any]] = json.loads(done.stdout)
    return [[tuple(bar) for bar in bars] for bars in result]


if __name__ == "__main__":  # scripts/bootstrap.sh dev: make the venv up front
    print(python())
