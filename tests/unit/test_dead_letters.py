from __future__ import annotations

from pathlib import Path

from tickstream.kafka.deadletters import DEAD_LETTERS, DeadLetter, DeadLetters
from tickstream.kafka.spool import spool_status


def letter(n: int, value: bytes = b'{"type":"tick"}') -> DeadLetter:
    return DeadLetter(
        "ticks", "ES", value, f"Broker: Message size too large ({n})", 1_700_000_000_123
    )


def test_letters_are_kept_byte_for_byte_in_order(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path)
    kept = [letter(1), letter(2, b"\xff\x00 not text"), letter(3, "caf\u00e9".encode())]
    for one in kept:
        dead.add(one)
    assert dead.read() == kept
    assert '"value_base64"' in (tmp_path / DEAD_LETTERS).read_text().splitlines()[1]
    assert '"at":"2023-11-14T22:13:20.123Z"' in (tmp_path / DEAD_LETTERS).read_text()


def test_a_torn_last_line_is_left_out_and_the_next_letter_is_whole(tmp_path: Path) -> None:
    """A crash inside a write leaves a torn line; its tick is still in the spool (the cursor
    passes it only after the fsync), so it is left out, and the next letter starts a line."""
    dead = DeadLetters(tmp_path)
    dead.add(letter(1))
    with (tmp_path / DEAD_LETTERS).open("ab") as f:
        f.write(b'{"topic":"ticks","key":"ES","val')
    assert dead.read() == [letter(1)]
    dead.add(letter(2))
    assert dead.read() == [letter(1), letter(2)]


def test_replace_keeps_what_is_given_and_none_removes_the_file(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path)
    for n in range(3):
        dead.add(letter(n))
    dead.replace([letter(1)])
    assert dead.read() == [letter(1)]
    assert spool_status(tmp_path).dead_letters == 1
    dead.replace([])
    assert not (tmp_path / DEAD_LETTERS).exists()
    assert dead.read() == []
    assert spool_status(tmp_path).dead_letters == 0
