"""`tickstream up`, the README's main command: broker, producer and job on one machine; bars
stream to the console; Ctrl-C stops everything cleanly (exit 0) and a restart resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import repo_jars_dir
from tests.helpers import wait_until
from tests.reference import lake_sql
from tickstream.kafka.local import LocalKafka, free_port


def start_up(
    home: Path, out: Path, port: int, *more: str
) -> tuple[subprocess.Popen[str], list[str]]:
    env = {
        **os.environ,
        "TICKSTREAM_HOME": str(home),
        "TICKSTREAM_JARS_DIR": str(repo_jars_dir()),
        "OUTPUT_PATH": str(out),
        "SPARK_MASTER": "local[2]",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickstream",
            "up",
            "--port",
            str(port),
            "--msgs-per-sec",
            "100",
            "--window-duration",
            "5 seconds",
            "--watermark",
            "2 seconds",
            *more,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so that we can Ctrl-C its whole group, as a terminal does
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_up_streams_bars_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    home, out, port = tmp_path / "home", tmp_path / "lake", free_port()
    dashboard, metrics = free_port(), free_port()
    more = ("--dashboard-port", str(dashboard), "--metrics-port", str(metrics))
    proc, lines = start_up(home, out, port, *more)
    try:
        wait_until(
            lambda: sum(line.startswith("bar  ") for line in lines) >= 10,
            timeout=240,
            message="bars on the console",
        )
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(180) == 0, "\n".join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "\n".join(lines)
    assert f"kafka started on 127.0.0.1:{port}" in text
    assert "produce: simulate -> events (3 partitions)" in text
    assert "failed 0" in text
    assert "job  stopped; a restart resumes from the checkpoint" in text
    assert f"kafka stopped (was 127.0.0.1:{port})" in text
    assert "Traceback" not in text
    # One tidy view: the dashboard's URL, the metrics, a status line
    # per component, and a quiet stop (no Java stack trace, no warning).
    assert f"dashboard on http://127.0.0.1:{dashboard}/" in text
    assert f"metrics on http://127.0.0.1:{metrics}/metrics" in text
    assert any(line.startswith("produce: ") and "ticks/s | sent" in line for line in lines)
    assert any(line.startswith("job  ") and "ticks/s | watermark" in line for line in lines)
    noisy = [line for line in lines if " WARN " in line or "Exception" in line or "\tat " in line]
    assert noisy == []
    assert LocalKafka(home, port=port).status() is None  # the broker `up` started is gone
    assert lake_sql(out, "SELECT count(*) > 0 FROM bars") == [(True,)]
    assert any((out / "bars_csv").glob("date=*/*.csv"))
