from __future__ import annotations

from pathlib import Path

import pytest

from tickstream.config import (
    Settings,
    duration_seconds,
    load_settings,
    normalize_duration,
    parse_bootstrap,
)
from tickstream.errors import ConfigError

ALL_VARS = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_defaults_match_the_original_design() -> None:
    s = load_settings()
    assert s.kafka_topic == "events"
    assert s.tickers == ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA")
    assert s.msgs_per_sec == 5
    assert s.window_duration == "1 minute"
    assert s.watermark == "2 minutes"
    assert s.watermark_seconds == 120
    assert s.max_offsets_per_trigger == 500_000


def test_environment_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKERS", " es , nq ")
    monkeypatch.setenv("WATERMARK", "30 seconds")
    monkeypatch.setenv("MAX_OFFSETS_PER_TRIGGER", "5000")
    monkeypatch.setenv("SIMULATE_IF_NO_YFINANCE", "false")
    s = load_settings({"watermark": "45s", "kafka_topic": None})
    assert s.tickers == ("ES", "NQ")
    assert s.watermark == "45 seconds"
    assert s.max_offsets_per_trigger == 5000
    assert s.simulate_if_no_yfinance is False


def test_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_OFFSETS_PER_TRIGGER", "")
    assert load_settings().max_offsets_per_trigger == 500_000


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KAFKA_TOPIC=ticks\n")
    assert load_settings().kafka_topic == "ticks"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("WATERMARK", "abc", "a whole number and a unit"),
        ("WINDOW_DURATION", "0 minutes", "positive"),
        ("PROCESSING_TRIGGER", "5 fortnights", "a whole number and a unit"),
        ("MSGS_PER_SEC", "-1", ">= 0"),
        ("MSGS_PER_SEC", "nan", ">= 0"),
        ("SEND_TIMEOUT_SEC", "0", "> 0"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("KAFKA_BOOTSTRAP_SERVERS", "a:1,b:99999", "host:port"),
        ("KAFKA_BOOTSTRAP_SERVERS", "bad host:9092", "host:port"),
        ("KAFKA_TOPIC", "no spaces", "topic name"),
        ("TICKERS", ",,", "symbols"),
        ("TICKERS", "AAPL,AAPL", "once"),
        ("MAX_OFFSETS_PER_TRIGGER", "-5", "> 0"),
        ("MAX_OFFSETS_PER_TRIGGER", "many", "integer"),
        ("SPARK_MASTER", "mesos://x", "spark://"),
        ("SIMULATE_IF_NO_YFINANCE", "perhaps", "boolean"),
    ],
)
def test_bad_value_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith(f"bad setting {var}=")
    assert expected in text
    assert "\n" not in text
    assert info.value.exit_code == 2


def test_bad_flag_is_named_as_a_flag() -> None:
    with pytest.raises(ConfigError, match=r"^bad setting --watermark='soon'"):
        load_settings({"watermark": "soon"})


@pytest.mark.parametrize(
    ("text", "canonical", "seconds"),
    [
        ("1 minute", "1 minute", 60),
        ("2 minutes", "2 minutes", 120),
        ("2min", "2 minutes", 120),
        ("90 SECONDS", "90 seconds", 90),
        ("500 ms", "500 milliseconds", 0.5),
        ("1 hour", "1 hour", 3600),
        ("3d", "3 days", 259200),
    ],
)
def test_durations(text: str, canonical: str, seconds: float) -> None:
    assert normalize_duration(text) == canonical
    assert duration_seconds(text) == seconds


def test_bootstrap_forms() -> None:
    assert parse_bootstrap("kafka:9092, 10.0.0.1:9094") == [("kafka", 9092), ("10.0.0.1", 9094)]
    assert parse_bootstrap("[::1]:9092") == [("[::1]", 9092)]


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.kafka_topic = "other"  # type: ignore[misc]


def test_an_object_store_output_path_stays_a_uri_not_a_local_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Path would fold 's3a://bucket/lake' into a local folder 's3a:/bucket/lake'."""
    monkeypatch.setenv("OUTPUT_PATH", "s3a://bucket/lake/")
    assert load_settings().output_path == "s3a://bucket/lake"
    assert load_settings({"output_path": "s3://bucket/lake"}).output_path == "s3a://bucket/lake"
    assert load_settings({"output_path": "file:///tmp/lake"}).output_path == "/tmp/lake"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gs://bucket/lake", r"OUTPUT_PATH='gs://bucket/lake'.*gs:// is not supported"),
        ("s3a://", r"OUTPUT_PATH='s3a://'.*valid bucket name"),
        ("s3a://Bad_Bucket/lake", r"valid bucket name"),
    ],
)
def test_an_unsupported_lake_location_is_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("OUTPUT_PATH", value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_object_store_settings_are_checked_and_the_secret_is_never_shown() -> None:
    with pytest.raises(ConfigError, match=r"--s3-endpoint='minio:9000'.*http\(s\)://host"):
        load_settings({"s3_endpoint": "minio:9000"})
    with pytest.raises(ConfigError, match="S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together"):
        load_settings({"s3_access_key_id": "AKIA-EXAMPLE"})
    settings = load_settings(
        {"s3_access_key_id": "AKIA-EXAMPLE", "s3_secret_access_key": "very-secret"}
    )
    assert "very-secret" not in repr(settings)
    assert "very-secret" not in str(settings)
    with pytest.raises(ConfigError) as refused:
        load_settings({"s3_secret_access_key": 12})
    assert "12" not in str(refused.value)
