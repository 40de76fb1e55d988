"""Who may read the dashboard: anyone on this machine, and on other addresses, whoever holds its
credential.

The dashboard listens on loopback by default (``DASHBOARD_HOST=127.0.0.1``). Bound to any other
address it is reachable from other machines, and it refuses to start without a credential
(``DASHBOARD_TOKEN``, or ``DASHBOARD_TOKEN_FILE``: a Compose secret) unless told that it is
public (``DASHBOARD_PUBLIC=true``). With a credential, every request needs it: HTTP basic auth
with the credential as password (any user name), which a browser asks for once and sends again
with each request, the page's server-sent events too, or ``Authorization: Bearer <credential>``
for scripts. Without it: 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tickstream.config import Settings
from tickstream.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REALM = "tickstream dashboard"


def is_loopback(host: str) -> bool:
    """Whether an address to listen on is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, not known to be loopback


def credential(settings: Settings) -> str | None:
    """The dashboard's credential (DASHBOARD_TOKEN, else DASHBOARD_TOKEN_FILE's first line), or
    None. Raises :class:`ConfigError`, in one line, when the dashboard would listen beyond this
    machine without one and is not declared public, or when the file cannot be read."""
    found = settings.dashboard_token.get_secret_value().strip() if settings.dashboard_token else ""
    path = settings.dashboard_token_file
    if not found and path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"cannot read DASHBOARD_TOKEN_FILE {path}: {exc.strerror or exc}",
                "point it at a readable file whose first line is the credential",
            ) from None
        found = lines[0].strip() if lines else ""
    host = settings.dashboard_host
    if not found and not is_loopback(host) and not settings.dashboard_public:
        raise ConfigError(
            f"the dashboard would listen on {host}, reachable from other machines, without a "
            "credential",
            "set DASHBOARD_TOKEN (or DASHBOARD_TOKEN_FILE), or DASHBOARD_PUBLIC=true to serve "
            "it to anyone, or DASHBOARD_HOST=127.0.0.1",
        )
    return found or None


def authorized(header: str | None, secret: str) -> bool:
    """Whether an ``Authorization`` header carries the credential (basic auth's password, or a
    bearer token), compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    given = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(given, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))


class RequireCredential:
    """ASGI middleware: a request without the credential gets 401 and nothing else."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization")
        if authorized(header.decode("latin-1") if header else None, self.secret):
            await self.app(scope, receive, send)
            return
        body = b'{"error": "the dashboard needs its credential (DASHBOARD_TOKEN)"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
