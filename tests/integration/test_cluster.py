"""The distributed path: the bars job submitted to a real Spark standalone cluster.

A master and a worker are started from the installed pyspark on 127.0.0.1; `tickstream stream
--spark-master spark://...` runs against the real broker; its bars must equal the independent
computation. Executors run in the worker's JVM, get the connector jars from the driver, and
write the lake through the shared filesystem (here: the same machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest

from tests.helpers import run_tickstream, wait_until
from tests.integration.test_bars_job import WINDOW_MS, as_dicts
from tests.reference import lake_bars, reference_bars
from tests.streams import es_ticks, send_heartbeat, send_hostile
from tickstream.config import Settings
from tickstream.kafka.local import free_port

SPARK_HOME = Path(pyspark.__file__).resolve().parent


def _spark_env() -> dict[str, str]:
    return {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}


def _master_state(ui_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{ui_port}/json/"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            state: dict[str, Any] = json.load(response)
    except OSError:
        return {}
    return state


def _alive_workers(ui_port: int) -> int:
    workers = _master_state(ui_port).get("workers", [])
    return sum(1 for w in workers if w.get("state") == "ALIVE")


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A standalone master and one worker (1 core, 1 GiB) on 127.0.0.1."""
    port, ui = free_port(), free_port()
    work = tmp_path_factory.mktemp("spark-work")
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    logs = work / "logs.txt"
    with logs.open("w") as log:
        master = subprocess.Popen(
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui),
            ],
            env=_spark_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = subprocess.Popen(
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                f"spark://127.0.0.1:{port}",
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1g",
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(work),
            ],
            env=_spark_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _alive_workers(ui) == 1, timeout=120, message="a live Spark worker")
        yield f"spark://127.0.0.1:{port}", ui
    finally:
        for proc in (worker, master):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in (worker, master):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def tickstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_tickstream(env, *args, timeout=900)


def test_the_job_on_a_standalone_cluster_gives_the_same_bars(
    kafka_broker: str,
    make_topic: Callable[..., str],
    spark_cluster: tuple[str, int],
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    master, ui = spark_cluster
    topic = make_topic(partitions=3)
    ticks = es_ticks(40_000)
    send_hostile(kafka_broker, topic, ticks, seed=3)
    send_heartbeat(kafka_broker, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
    out = tmp_path / "lake"
    env = {
        **_spark_env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
        "KAFKA_TOPIC": topic,
        "OUTPUT_PATH": str(out),
        "TICKSTREAM_HOME": str(base_settings.tickstream_home),
        "TICKSTREAM_JARS_DIR": str(base_settings.jars_dir),
        "CONSOLE_BARS": "false",
    }
    done = tickstream(env, "stream", "--once", "--spark-master", master)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    # The application ran on the cluster: the master lists it as completed, with executors.
    apps = _master_state(ui).get("completedapps", [])
    assert [a["name"] for a in apps] == ["tickstream-bars"]
    assert apps[0]["cores"] >= 1

    # Rebuilt at 30 seconds from the archive on the same cluster, with the same command as on
    # a local master.
    rebuilt = tickstream(
        env,
        "lake",
        "rebuild",
        "--spark-master",
        master,
        "--window-duration",
        "30s",
        "--into",
        str(tmp_path / "rebuilt"),
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert lake_bars(str(tmp_path / "rebuilt")) == reference_bars(as_dicts(ticks), 30_000)
    apps = _master_state(ui).get("completedapps", [])
    assert sorted(a["name"] for a in apps) == ["tickstream-bars", "tickstream-lake-rebuild"]
