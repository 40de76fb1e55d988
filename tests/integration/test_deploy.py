"""deploy/ validated without a Docker engine: compose-go parses the file, tests check the pins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.compose_check import REPO, ComposeInvalid, build_tool, load_project, problems
from tickstream.jvm.versions import pinned

COMPOSE = REPO / "deploy" / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
DOCKERFILE = REPO / "deploy" / "Dockerfile"


@pytest.fixture(scope="module", autouse=True)
def tool() -> None:
    try:
        build_tool()
    except FileNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Go is not installed: the compose check needs it (CI has it)")


def check(compose_text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "docker-compose.yml"
    path.write_text(compose_text)
    return problems(
        load_project(path, ENV_EXAMPLE), compose_text, pinned(), ENV_EXAMPLE.read_text()
    )


def test_the_compose_file_is_valid_and_in_step(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    project = load_project(COMPOSE, ENV_EXAMPLE)
    assert set(project["services"]) == {
        "kafka",
        "topic-init",
        "spark-master",
        "spark-worker",
        "bars-job",
        "producer",
        "dashboard",
    }
    assert problems(project, text, pinned(), ENV_EXAMPLE.read_text()) == []
    job = project["services"]["bars-job"]
    assert job["environment"]["WATERMARK"] == "2 minutes"
    assert job["user"] == "1000:1000"  # from .env.example: the host user's UID, not root
    assert any(v["target"] == "/data/output" for v in job["volumes"])
    dashboard = project["services"]["dashboard"]
    assert dashboard["command"] == ["dashboard"]
    assert [p["published"] for p in dashboard["ports"]] == ["8050"]  # on the host
    assert dashboard["environment"]["METRICS_URL"] == "http://bars-job:9464/metrics"
    # Its credential is a secret's file, never an environment variable; the job has a health
    # check on its /healthz.
    assert [s["source"] for s in dashboard["secrets"]] == ["dashboard_token"]
    assert dashboard["environment"]["DASHBOARD_TOKEN_FILE"] == "/run/secrets/dashboard_token"
    assert dashboard["environment"]["DASHBOARD_TOKEN"] == ""
    assert project["secrets"]["dashboard_token"]["environment"] == "DASHBOARD_TOKEN"
    assert "http://127.0.0.1:9464/healthz" in job["healthcheck"]["test"][-1]


def test_a_version_out_of_step_is_caught(tmp_path: Path) -> None:
    v = pinned()
    drifted = COMPOSE.read_text().replace(f"apache/kafka:{v.kafka}", "apache/kafka:4.0.0", 1)
    assert check(drifted, tmp_path) == [
        f"kafka: image apache/kafka:4.0.0 is not apache/kafka:{v.kafka} (versions.env)"
    ]


def test_a_variable_not_wired_through_is_caught(tmp_path: Path) -> None:
    drifted = COMPOSE.read_text().replace("  WATERMARK: ${WATERMARK:-2 minutes}\n", "")
    found = check(drifted, tmp_path)
    assert "bars-job: settings not wired through: WATERMARK" in found
    assert "producer: settings not wired through: WATERMARK" in found


def test_a_world_writable_output_and_a_version_key_are_caught(tmp_path: Path) -> None:
    text = "version: '3.8'\n" + COMPOSE.read_text().replace(
        'command: ["stream"]',
        'command: ["sh", "-c", "chmod -R 777 /data/output && tickstream stream"]',
    )
    found = check(text, tmp_path)
    assert "a top-level 'version' key (Compose v2 files have none)" in found
    assert "a world-writable chmod" in found


def test_a_schema_error_is_caught(tmp_path: Path) -> None:
    broken = COMPOSE.read_text().replace(
        "    stop_grace_period: 2m\n", "    stop_grace_periode: 2m\n"
    )
    with pytest.raises(ComposeInvalid, match="stop_grace_periode"):
        check(broken, tmp_path)


def test_the_image_is_pinned_and_not_root() -> None:
    text = DOCKERFILE.read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == ["maven:3.9.9-eclipse-temurin-17", "python:3.11.11-slim-bookworm"]
    assert "USER 10001" in text
    assert "versions.env" in text  # the jars come from the one place that pins them
    assert ":latest" not in text
