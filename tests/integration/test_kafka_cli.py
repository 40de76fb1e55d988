"""`tickstream kafka start | status | stop` as a user runs them: real processes, a real broker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import repo_jars_dir
from tests.helpers import run_tickstream
from tickstream.kafka.admin import admin_client, is_ready
from tickstream.kafka.local import free_port


def run(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TICKSTREAM_HOME": str(home),
        "TICKSTREAM_JARS_DIR": str(repo_jars_dir()),
    }
    return run_tickstream(env, *args, timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    run(tmp_path, "kafka", "stop")  # never leave a broker behind, whatever the test did


def test_start_twice_status_stop(home: Path) -> None:
    port = free_port()
    first = run(home, "kafka", "start", "--port", str(port))
    assert first.returncode == 0, first.stderr
    bootstrap = f"127.0.0.1:{port}"
    assert first.stdout.strip().splitlines()[-1] == bootstrap
    assert "kafka started" in first.stdout
    assert "created topic events" in first.stdout
    assert is_ready(bootstrap)
    topics = admin_client(bootstrap).list_topics(timeout=10).topics
    assert len(topics["events"].partitions) == 3

    second = run(home, "kafka", "start", "--port", str(port))
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout
    assert second.stdout.strip().splitlines()[-1] == bootstrap
    assert "created topic" not in second.stdout

    status = run(home, "kafka", "status")
    assert status.returncode == 0
    assert f"bootstrap {bootstrap}" in status.stdout
    assert "answering" in status.stdout
    assert str(home / "kafka" / "data") in status.stdout

    stop = run(home, "kafka", "stop")
    assert stop.returncode == 0
    assert "kafka stopped" in stop.stdout
    assert not is_ready(bootstrap, timeout=1)

    status = run(home, "kafka", "status")
    assert status.returncode == 3
    assert "not running" in status.stdout
    assert "not running" in run(home, "kafka", "stop").stdout

    # Data survives a restart: the topic is still there, not created again.
    again = run(home, "kafka", "start", "--port", str(port))
    assert again.returncode == 0, again.stderr
    assert "created topic" not in again.stdout
    assert "events" in admin_client(bootstrap).list_topics(timeout=10).topics


def test_a_second_broker_on_a_taken_port_is_refused(
    home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    assert run(home, "kafka", "start", "--port", str(port)).returncode == 0
    other_home = tmp_path_factory.mktemp("other")
    refused = run(other_home, "kafka", "start", "--port", str(port))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"tickstream: error: port {port} on 127.0.0.1 is already in use by another process; "
        f"stop that process, or start the broker on another port (--port, e.g. {port + 1})"
    ]
    assert "Traceback" not in refused.stderr
    assert not (other_home / "kafka" / "broker.json").exists()

    moved = run(home, "kafka", "start", "--port", str(free_port()))
    assert moved.returncode == 1
    assert "already runs on 127.0.0.1:" in moved.stderr
