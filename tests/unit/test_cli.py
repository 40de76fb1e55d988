from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tickstream.cli.app import cli
from tickstream.config import load_settings


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "tickstream")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert len(result.output.splitlines()) > 3


def test_settings_flags_show_their_variable() -> None:
    result = CliRunner().invoke(cli, ["up", "--help"])
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "WATERMARK", "MSGS_PER_SEC", "OUTPUT_PATH"):
        assert f"env: {var}" in result.output.replace("\n", " ").replace("  ", " ")


def test_bad_setting_is_one_line_and_exit_2() -> None:
    """A real process: one line on stderr, exit code 2, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "tickstream", "config"],
        env={"WATERMARK": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tickstream: error: bad setting WATERMARK='abc': expected a whole number and a unit, "
        "such as '2 minutes', '30 seconds' or '500 ms'"
    ]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_config_prints_effective_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC", "ticks")
    result = CliRunner().invoke(cli, ["config", "--watermark", "3 minutes"])
    assert result.exit_code == 0
    assert "KAFKA_TOPIC=ticks" in result.output
    assert "WATERMARK=3 minutes" in result.output


def test_a_child_process_gets_the_secrets_themselves_not_their_mask() -> None:
    from tickstream.config import settings_env

    settings = load_settings(
        {
            "s3_access_key_id": "AKIA-EXAMPLE",
            "s3_secret_access_key": "very-secret",
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_username": "user",
            "kafka_sasl_password": "pw-secret",
        }
    )
    env = settings_env(settings)
    assert env["S3_SECRET_ACCESS_KEY"] == "very-secret"
    assert env["KAFKA_SASL_PASSWORD"] == "pw-secret"


def test_a_failure_in_the_jobs_python_code_is_its_exception_in_one_line() -> None:
    from tickstream.cli.stream import failure_line

    spark = (
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function "
        "in foreach batch sink. Reason: An exception was raised by the Python Proxy. Return "
        "Message: Traceback (most recent call last):\n"
        '  File "/x/py4j/clientserver.py", line 644, in _call_proxy\n'
        "    return_value = getattr(self.pool[obj_id], method)(*params)\n"
        '  File "/x/tickstream/lake/read.py", line 299, in between\n'
        "    dataset = table.to_pyarrow_dataset(file_pruning_predicate=where)\n"
        "_internal.DeltaError: Generic DeltaTable error: No field named window_start_ms.\n"
        "Valid fields are symbol, ts.\n"
        "\n=== Streaming Query ===\nIdentifier: tickstream-bars [id = 1]\n"
    )
    assert failure_line(spark) == (
        "_internal.DeltaError: Generic DeltaTable error: No field named window_start_ms."
    )
    assert failure_line("boom\nmore") == "boom"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--kind", "tick", "--into", "x"], "tick bars need a threshold; pass --threshold"),
        (["--kind", "dollar", "--threshold", "ES=abc", "--into", "x"], "bad --threshold 'ES=abc'"),
        (["--threshold", "500", "--into", "x"], "--threshold is for tick, volume and dollar"),
        (["--window-duration", "250us", "--into", "x"], "a window is a whole number of millis"),
        (["--from", "2013-09-03", "--to", "2013-09-02", "--into", "x"], "is not after --from"),
        (["--window-duration", "30s"], "say where the rebuilt bars go"),
        (["--into", "x", "--replace"], "say where the rebuilt bars go"),
    ],
)
def test_a_bad_rebuild_request_is_one_line_before_anything_is_read(
    args: list[str], says: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["lake", "rebuild", "--output-path", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert says in result.output


def test_bars_on_a_path_that_holds_no_lake_says_so(tmp_path: Path) -> None:
    """A mistyped OUTPUT_PATH is one line and exit 1, not an empty table and exit 0; a lake
    whose job has written no bar yet is an empty table."""
    result = CliRunner().invoke(cli, ["bars", "--output-path", str(tmp_path / "typo")])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert f"no lake at {tmp_path.resolve()}/typo" in result.output
    (tmp_path / "lake" / "_checkpoints").mkdir(parents=True)
    started = CliRunner().invoke(cli, ["bars", "--output-path", str(tmp_path / "lake")])
    assert started.exit_code == 0, started.output
    assert "(0 bars)" in started.output


_ENDING = """
import atexit, sys, threading, time
from tickstream.cli.app import end

def late():
    time.sleep(0.3)
    print("thread done")

threading.Thread(target=late).start()
atexit.register(lambda: print("atexit ran"))
sys.stdout.write("buffered, not flushed")
end({code!r})
print("never")
"""


@pytest.mark.parametrize(("code", "status", "err"), [(0, 0, ""), (3, 3, ""), ("bad", 1, "bad\n")])
def test_the_end_keeps_what_pythons_exit_does(code: int | str, status: int, err: str) -> None:
    """``end`` skips the interpreter's teardown (docs/lake.md) but not a thread's work, the
    atexit handlers or buffered output; a message is said on stderr, with exit 1."""
    done = subprocess.run(
        [sys.executable, "-c", _ENDING.format(code=code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == status
    assert done.stdout == "buffered, not flushed" + "thread done\natexit ran\n"  # nothing lost
    assert done.stderr == err
