"""Ticks Kafka refused for good, kept beside the spool with the reason.

A spooled tick is never given up while Kafka is away: it stays in the spool until Kafka takes
it. A tick Kafka *refuses* (larger than the topic's ``max.message.bytes``, an invalid record)
would be refused again at every start, and everything behind it would wait. So it is moved
here, one JSON line each, and the spool goes on::

    dead-letters.jsonl   {"topic": "ticks", "key": "ES", "value": "{...}",
                          "reason": "Broker: Message size too large", "at": "2026-...Z"}

``value`` is the message's text (``value_base64`` instead for bytes that are not UTF-8). A line
is appended and ``fsync``'d before the spool's cursor may pass its tick, so a crash between
the two sends the tick again (and refuses it again): a tick is in Kafka, in the spool or
here. A torn last line (a crash inside its write, no newline after it) is such a tick, still in
the spool: reading leaves it out, and the next letter is written in its place. Any other line
that does not read is an error, never skipped.

``tickstream produce --resend-dead-letters`` sends them again (after the topic's limit is
raised, say), ``--drop-dead-letters`` deletes them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tickstream.config.forms import parse_instant_ms
from tickstream.errors import TickstreamError
from tickstream.sources.base import now_ms
from tickstream.ticks.schema import iso_utc

if TYPE_CHECKING:
    from tickstream.config import Settings

DEAD_LETTERS = "dead-letters.jsonl"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    key: str
    value: bytes
    reason: str
    at_ms: int  # when Kafka refused it

    def to_json(self) -> str:
        record: dict[str, object] = {"topic": self.topic, "key": self.key}
        try:
            record["value"] = self.value.decode()
        except UnicodeDecodeError:
            record["value_base64"] = base64.b64encode(self.value).decode()
        record["reason"] = self.reason
        record["at"] = iso_utc(self.at_ms)
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> DeadLetter:
        record = json.loads(line)
        value = (
            record["value"].encode()
            if "value" in record
            else base64.b64decode(record["value_base64"])
        )
        return cls(
            topic=str(record["topic"]),
            key=str(record["key"]),
            value=value,
            reason=str(record["reason"]),
            at_ms=parse_instant_ms(record["at"]),
        )


class DeadLetters:
    """The dead-letter file of one spool folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / DEAD_LETTERS

    def add(self, letter: DeadLetter) -> None:
        """Append one letter, durably (a refusal is rare: an fsync each)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as f:
            _cut_torn_line(f)
            f.write(letter.to_json().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[DeadLetter]:
        """Every whole letter, oldest first."""
        if not self.path.exists():
            return []
        # What follows the last newline was torn in a crash: its tick is still in the spool.
        whole, _, _torn = self.path.read_bytes().rpartition(b"\n")
        letters = []
        for number, line in enumerate(whole.split(b"\n") if whole else [], 1):
            try:
                letters.append(DeadLetter.from_json(line.decode()))
            except (ValueError, KeyError, UnicodeDecodeError):
                raise TickstreamError(
                    f"line {number} of the dead letters at {self.path} does not read as one",
                    "mend or delete that line (a letter is one JSON object: topic, key, "
                    "value or value_base64, reason, at)",
                ) from None
        return letters

    def count(self) -> int:
        return len(self.read())

    def replace(self, letters: Iterable[DeadLetter]) -> None:
        """Keep only ``letters`` (written aside and renamed into place); none: no file."""
        kept = list(letters)
        if not kept:
            self.path.unlink(missing_ok=True)
            return
        aside = self.path.with_suffix(".tmp")
        with aside.open("wb") as f:
            f.write(b"".join(letter.to_json().encode() + b"\n" for letter in kept))
            f.flush()
            os.fsync(f.fileno())
        aside.replace(self.path)


def _cut_torn_line(f: BinaryIO) -> None:
    """Cut off a last line without its newline (a write a crash cut short)."""
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 1))
    if not size or f.read(1) == b"\n":
        return
    end = size - 1
    while end > 0:  # back, a block at a time, to the last newline
        start = max(0, end - 65536)
        f.seek(start)
        found = f.read(end - start).rfind(b"\n")
        if found >= 0:
            f.truncate(start + found + 1)
            return
        end = start
    f.truncate(0)


def resend(settings: Settings, letters: list[DeadLetter], timeout_s: float) -> list[DeadLetter]:
    """Send ``letters`` to their topics again (routed by key, as the producer routes them);
    return those Kafka refused again, with the new reason. Raises, in one line, if Kafka does
    not answer within ``timeout_s``."""
    from confluent_kafka import KafkaError, KafkaException, Message, Producer

    from tickstream.errors import EnvironmentProblem
    from tickstream.kafka.clients import producer_config

    refused: list[DeadLetter] = []
    outage: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            outage.append(err.str())

    config = producer_config(settings, on_error)
    config["delivery.report.only.error"] = False
    config["delivery.timeout.ms"] = int(timeout_s * 1000)
    producer = Producer(config)
    for letter in letters:

        def done(err: KafkaError | None, _msg: Message, letter: DeadLetter = letter) -> None:
            if err is None:
                return
            if err.code() == KafkaError._MSG_TIMED_OUT:
                outage.append(err.str())
            else:
                refused.append(replace(letter, reason=err.str(), at_ms=now_ms()))

        try:
            producer.produce(letter.topic, letter.value, letter.key, on_delivery=done)
        except KafkaException as exc:  # refused by the client itself (too large for it)
            refused.append(replace(letter, reason=exc.args[0].str(), at_ms=now_ms()))
        producer.poll(0)
    left = producer.flush(timeout_s + 5)
    if left or outage:
        raise EnvironmentProblem(
            f"Kafka at {settings.kafka_bootstrap_servers} did not take the dead letters within "
            f"{timeout_s:g}s ({outage[-1] if outage else f'{left} not acknowledged'}); they "
            "are kept (a letter sent twice is a duplicate the bars job drops)",
            "bring Kafka back and run `tickstream produce --resend-dead-letters` again",
        )
    return refused
