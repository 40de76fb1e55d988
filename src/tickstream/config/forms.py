"""The forms settings' values take (durations, instants, bootstrap lists, topic names) and
their parsers, shared by the roles' settings and by the commands that read such values."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DURATION_UNITS = {
    "millisecond": 0.001,
    "ms": 0.001,
    "second": 1.0,
    "sec": 1.0,
    "s": 1.0,
    "minute": 60.0,
    "min": 60.0,
    "m": 60.0,
    "hour": 3600.0,
    "h": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
}
_SPARK_UNIT = {
    0.001: "millisecond",
    1.0: "second",
    60.0: "minute",
    3600.0: "hour",
    86400.0: "day",
}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
DURATION_FORM = "a whole number and a unit, such as '2 minutes', '30 seconds' or '500 ms'"

_HOST_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?)$")
BOOTSTRAP_FORM = "host:port[,host:port...], such as '127.0.0.1:9092' or 'kafka:9092'"

TICKERS_FORM = "comma-separated symbols, such as 'AAPL,MSFT,GOOG'"

S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def parse_duration(text: str) -> tuple[int, float]:
    """Parse a duration into (count, seconds per unit); raise ValueError if malformed.

    >>> parse_duration("2 minutes")
    (2, 60.0)
    """
    match = _DURATION_RE.match(text.lower())
    unit = match.group(2) if match else ""
    if unit not in _DURATION_UNITS:
        unit = unit.removesuffix("s")  # plural: 'minutes' -> 'minute'
    if not match or unit not in _DURATION_UNITS:
        raise ValueError(f"expected {DURATION_FORM}")
    count = int(match.group(1))
    if count <= 0:
        raise ValueError(f"expected a positive duration: {DURATION_FORM}")
    return count, _DURATION_UNITS[unit]


def normalize_duration(text: str) -> str:
    """The canonical form Spark's interval parser accepts: ``'2min'`` -> ``'2 minutes'``."""
    count, unit_seconds = parse_duration(text)
    unit = _SPARK_UNIT[unit_seconds]
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration_seconds(text: str) -> float:
    count, unit_seconds = parse_duration(text)
    return count * unit_seconds


def parse_instant_ms(text: str) -> int:
    """An ISO-8601 time with a zone, as epoch milliseconds."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected an ISO-8601 time such as '2024-03-01T14:30:00Z'") from None
    if stamp.tzinfo is None:
        raise ValueError("expected a time zone, e.g. a trailing 'Z'")
    return (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def parse_bootstrap(text: str) -> list[tuple[str, int]]:
    """Split a bootstrap list into (host, port) pairs; raise ValueError if malformed."""
    pairs: list[tuple[str, int]] = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not _HOST_RE.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected {BOOTSTRAP_FORM}")
        pairs.append((host, int(port)))
    return pairs


TOPIC_RE = re.compile(r"[A-Za-z0-9._\-]{1,249}")


def topic_name(value: str) -> str:
    """A Kafka topic name; raise ValueError if it is not one."""
    if not TOPIC_RE.fullmatch(value) or value in {".", ".."}:
        raise ValueError("expected a Kafka topic name: letters, digits, '.', '_', '-'")
    return value


def optional_topic(value: str | None) -> str | None:
    """A topic name, or None for a topic turned off (unset, ``off`` or ``none``)."""
    if value is None or value.strip().lower() in {"off", "none"}:
        return None
    return topic_name(value.strip())


THRESHOLDS_FORM = (
    "a positive number for every symbol (5000), or some by symbol with an optional default "
    "(ES=5000,AAPL=20000,*=1000), or off"
)


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of a kind of activity bar: one for every symbol (``default``), and some
    by symbol."""

    default: float | None
    by_symbol: Mapping[str, float]

    def of(self, symbol: str) -> float | None:
        """The symbol's threshold, or None: no bars of this kind for it."""
        return self.by_symbol.get(symbol, self.default)

    @classmethod
    def parse(cls, text: str) -> Thresholds | None:
        """``off`` (or empty): None. ``5000``: every symbol. ``ES=5000,AAPL=20000``: those
        symbols only; ``*=1000`` among them sets the others'. Raise ValueError if malformed.

        >>> Thresholds.parse("ES=5000,*=1e6").of("NQ")
        1000000.0
        """
        text = text.strip()
        if text.lower() in ("", "off"):
            return None
        default: float | None = None
        by_symbol: dict[str, float] = {}
        for item in text.split(","):
            name, sep, value = item.strip().rpartition("=")
            name = name.strip() if sep else "*"
            number = _positive(value)
            if name == "*":
                default = number
            elif name:
                by_symbol[name.upper()] = number
            else:
                raise ValueError(f"expected {THRESHOLDS_FORM}")
        return cls(default, by_symbol)

    def text(self) -> str:
        """The canonical form, which :meth:`parse` reads back."""
        items = [f"{symbol}={_number(n)}" for symbol, n in sorted(self.by_symbol.items())]
        if self.default is not None:
            items.append(_number(self.default) if not items else f"*={_number(self.default)}")
        return ",".join(items)


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"expected {THRESHOLDS_FORM}")
    return number


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
