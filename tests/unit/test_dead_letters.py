from __future__ import annotations

from pathlib import Path

import pytest

from tickstream.errors import TickstreamError
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


def test_a_long_torn_line_is_cut_whole(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path)
    dead.add(letter(1))
    with (tmp_path / DEAD_LETTERS).open("ab") as f:
        f.write(b'{"topic":"ticks","value":"' + b"x" * 200_000)
    dead.add(letter(2))
    assert dead.read() == [letter(1), letter(2)]
    assert (tmp_path / DEAD_LETTERS).read_text().count("\n") == 2


def test_a_damaged_line_inside_is_an_error_never_skipped(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path)
    dead.add(letter(1))
    with (tmp_path / DEAD_LETTERS).open("ab") as f:
        f.write(b"not a letter\n")
    dead.add(letter(2))
    with pytest.raises(TickstreamError, match=r"line 2 of the dead letters at .* does not read"):
        dead.read()


def test_the_commands_say_there_is_none_and_make_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tickstream.cli.app import cli

    folder = tmp_path / "spool"
    env = {"SPOOL_DIR": str(folder), "TICKSTREAM_HOME": str(tmp_path)}
    for flag in ("--resend-dead-letters", "--drop-dead-letters"):
        done = CliRunner().invoke(cli, ["produce", flag], env=env)
        assert done.exit_code == 0, done.output
        assert done.output == f"dead letters at {folder / DEAD_LETTERS}: none\n"
    assert not folder.exists()
    both = CliRunner().invoke(cli, ["produce", "--resend-dead-letters", "--drop-dead-letters"])
    assert both.exit_code != 0


def test_drop_deletes_them_and_says_how_many(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tickstream.cli.app import cli

    folder = tmp_path / "spool"
    for n in range(3):
        DeadLetters(folder).add(letter(n))
    env = {"SPOOL_DIR": str(folder), "TICKSTREAM_HOME": str(tmp_path)}
    status = CliRunner().invoke(cli, ["produce", "--status"], env=env)
    assert "3 dead letters (ticks Kafka refused for good" in status.output
    done = CliRunner().invoke(cli, ["produce", "--drop-dead-letters"], env=env)
    assert done.output == f"dropped 3 dead letters from {folder / DEAD_LETTERS}\n"
    assert DeadLetters(folder).read() == []
