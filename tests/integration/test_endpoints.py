"""The dashboard as a real process bound beyond loopback (0.0.0.0, as in Compose), reached at
this machine's own non-loopback address: refused without a credential, 401 without it, served
with it; served to anyone only when declared public."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tickstream.config import Settings
from tickstream.kafka.local import free_port


def own_address() -> str:
    """This machine's address on its default route (no packet is sent), or loopback if it has
    none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        found = str(probe.getsockname()[0])
    except OSError:
        found = "127.0.0.1"
    finally:
        probe.close()
    return found


def dashboard(settings: Settings, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tickstream", "dashboard"],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "OUTPUT_PATH": str(tmp_path / "lake"),
            "DASHBOARD_HOST": "0.0.0.0",
            "BARS_TOPIC": "off",
            "BARS_LIVE_TOPIC": "off",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status(url: str, header: str | None = None) -> tuple[int, dict[str, str]]:
    """The HTTP status of a GET (0 while nothing listens) and its headers."""
    request = urllib.request.Request(url, headers={"Authorization": header} if header else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers)
    except (urllib.error.URLError, ConnectionError):  # not listening yet
        return 0, {}


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        proc.wait(30)


def test_beyond_loopback_the_dashboard_needs_its_credential(
    kafka_broker: str,
    base_settings: Settings,
    tmp_path: Path,
    stopped: list[subprocess.Popen[str]],
) -> None:
    settings = base_settings.model_copy(update={"kafka_bootstrap_servers": kafka_broker})
    host = own_address()
    assert host != "127.0.0.1", "the machine has no non-loopback address to test on"

    # Without a credential it does not start: one line, exit 2.
    refused = dashboard(settings, tmp_path, DASHBOARD_PORT=str(free_port()))
    out, err = refused.communicate(timeout=60)
    assert refused.returncode == 2, out + err
    assert err.count("\n") == 1
    assert "reachable from other machines, without a credential" in err

    # With one (from a secret file): 401 without it or with a wrong one, 200 with it.
    secret = tmp_path / "dashboard_token"
    secret.write_text("correct horse battery\n")
    port = free_port()
    guarded = dashboard(
        settings, tmp_path, DASHBOARD_PORT=str(port), DASHBOARD_TOKEN_FILE=str(secret)
    )
    stopped.append(guarded)
    url = f"http://{host}:{port}"
    wait_until(lambda: status(url + "/api/kinds")[0] != 0, timeout=60, message="the dashboard")
    code, headers = status(url + "/api/kinds")
    assert code == 401
    assert headers["www-authenticate"].startswith("Basic realm=")
    basic = "Basic " + base64.b64encode(b"anyone:correct horse battery").decode()
    wrong = "Basic " + base64.b64encode(b"anyone:wrong").decode()
    assert status(url + "/", wrong)[0] == 401
    assert status(url + "/static/app.js")[0] == 401  # nothing is served without it
    assert status(url + "/", basic)[0] == 200
    assert status(url + "/api/kinds", "Bearer correct horse battery")[0] == 200

    # Declared public: served to anyone.
    port = free_port()
    public = dashboard(settings, tmp_path, DASHBOARD_PORT=str(port), DASHBOARD_PUBLIC="true")
    stopped.append(public)
    url = f"http://{host}:{port}"
    wait_until(lambda: status(url + "/api/kinds")[0] != 0, timeout=60, message="the dashboard")
    assert status(url + "/api/kinds")[0] == 200
