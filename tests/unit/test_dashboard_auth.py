"""Who may read the dashboard: loopback without a credential; beyond it, with one or declared
public; the credential as basic auth's password or a bearer token."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tickstream.bars.metrics import stale_after
from tickstream.config import load_settings
from tickstream.dashboard.auth import authorized, credential, is_loopback
from tickstream.errors import ConfigError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.2", False),
        ("dashboard.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_the_dashboard_needs_a_credential_or_to_be_declared_public(
    tmp_path: Path,
) -> None:
    assert credential(load_settings({})) is None  # 127.0.0.1 by default
    with pytest.raises(ConfigError, match=r"would listen on 0\.0\.0\.0, reachable from other") as e:
        credential(load_settings({"dashboard_host": "0.0.0.0"}))
    assert "\n" not in str(e.value)
    assert (
        credential(load_settings({"dashboard_host": "0.0.0.0", "dashboard_public": True})) is None
    )
    assert credential(load_settings({"dashboard_host": "0.0.0.0", "dashboard_token": "s3"})) == "s3"
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    found = load_settings({"dashboard_host": "0.0.0.0", "dashboard_token_file": str(secret)})
    assert credential(found) == "from-a-file"
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ConfigError, match="without a credential"):
        credential(load_settings({"dashboard_host": "::", "dashboard_token_file": str(empty)}))
    with pytest.raises(ConfigError, match="cannot read DASHBOARD_TOKEN_FILE"):
        credential(load_settings({"dashboard_token_file": str(tmp_path / "missing")}))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_credential_as_basic_auth_or_bearer() -> None:
    assert authorized(_basic("anyone", "s3cr:et"), "s3cr:et")
    assert authorized("Bearer s3cr:et", "s3cr:et")
    assert authorized("bearer  s3cr:et ", "s3cr:et")
    for header in (None, "", _basic("s3cr:et", "no"), "Bearer no", "Basic !!!", "Token s3cr:et"):
        assert not authorized(header, "s3cr:et"), header


def test_a_job_is_stalled_after_two_minutes_or_six_triggers() -> None:
    assert stale_after(1.0) == 120.0
    assert stale_after(60.0) == 360.0
