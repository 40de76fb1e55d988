"""Kafka security: SCRAM-SHA-512 over SASL_PLAINTEXT against a local broker that requires it.
The right credentials work end to end; wrong ones fail fast with one clear line, nothing is
written, and the secret is never printed."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import repo_jars_dir
from tests.helpers import run_tickstream
from tests.kafka_helpers import consume_all
from tests.reference import lake_sql
from tickstream.config import load_settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka, free_port

SECRET = "s3cr3t-Pa55-do-not-print"
WRONG = "wr0ng-Pa55-do-not-print"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(plaintext bootstrap for setup, SASL bootstrap for the clients under test)."""
    home = tmp_path_factory.mktemp("secured")
    plain, sasl, controller = free_port(), free_port(), free_port()
    broker = LocalKafka(
        home,
        port=plain,
        jars_dir=repo_jars_dir(),
        heap="512m",
        controller_port=controller,
        scram_users={"alice": SECRET},
        extra_props={
            "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
            f"CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        },
    )
    broker.start(timeout=120)
    try:
        # The ticks and the bars topics (the job publishes its bars over SASL too).
        ensure_topics(
            f"127.0.0.1:{plain}",
            [TopicSpec("secure-ticks", 3), TopicSpec("bars", 3), TopicSpec("bars-live", 3)],
        )
        yield f"127.0.0.1:{plain}", f"127.0.0.1:{sasl}"
    finally:
        broker.stop(timeout=30)


def env_for(bootstrap: str, password: str, out: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC": "secure-ticks",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": password,
        "OUTPUT_PATH": str(out),
        "TICKSTREAM_JARS_DIR": str(repo_jars_dir()),
        "SPARK_MASTER": "local[2]",
        "CONSOLE_BARS": "false",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_tickstream(env, *args)


def test_wrong_credentials_fail_fast_and_write_nothing(
    secured: tuple[str, str], tmp_path: Path
) -> None:
    plain, sasl = secured
    before = len(consume_all(plain, "secure-ticks", timeout=10))
    env = env_for(sasl, WRONG, tmp_path / "lake")
    for args in (("produce", "--count", "100", "--connect-timeout", "60"), ("stream", "--once")):
        started = time.monotonic()
        done = run(env, *args)
        assert time.monotonic() - started < 45, args  # fast, not a 60 s time-out
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
        assert errors == [
            "tickstream: error: Kafka at "
            f"{sasl} rejected the credentials of user 'alice' (SCRAM-SHA-512); "
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        ], done.stderr
        assert WRONG not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    assert len(consume_all(plain, "secure-ticks", timeout=10)) == before
    assert not (tmp_path / "lake" / "bars").exists()


def test_right_credentials_work_end_to_end(secured: tuple[str, str], tmp_path: Path) -> None:
    _plain, sasl = secured
    out = tmp_path / "lake"
    env = env_for(sasl, SECRET, out)
    produced = run(env, "produce", "--count", "3000", "--msgs-per-sec", "0", "--seed", "1")
    assert produced.returncode == 0, produced.stderr
    assert "acknowledged 3,000, failed 0" in produced.stderr
    streamed = run(env, "stream", "--once")
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr
    for done in (produced, streamed):
        assert SECRET not in done.stdout + done.stderr

    rows = lake_sql(out, "SELECT count(*) FROM ticks")
    assert rows[0][0] >= 3000


def test_the_secret_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        **os.environ,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": SECRET,
    }
    shown = run(env, "config")
    assert shown.returncode == 0
    assert "KAFKA_SASL_PASSWORD=**********" in shown.stdout
    helped = run(env, "produce", "--help")
    bad = run({**env, "KAFKA_SASL_USERNAME": ""}, "config")
    assert bad.returncode == 2
    assert "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in bad.stderr
    for done in (shown, helped, bad):
        assert SECRET not in done.stdout + done.stderr
    for name, value in env.items():
        if name.startswith("KAFKA_"):
            monkeypatch.setenv(name, value)
    settings = load_settings()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
