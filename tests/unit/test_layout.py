"""Where the lake is: its paths for Spark, deltalake and pyarrow, and the driver's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickstream.config import load_settings
from tickstream.lake.layout import Lake, ObjectStore

STORE = ObjectStore(
    endpoint="http://127.0.0.1:9000",
    region="eu-west-1",
    access_key_id="AKIA-EXAMPLE",
    secret_access_key="very-secret",
    path_style=True,
)


def test_an_s3_lake_names_each_path_for_each_reader() -> None:
    lake = Lake("s3a://bucket/lake/", STORE)
    assert lake.remote
    assert lake.url("ticks") == "s3a://bucket/lake/ticks"  # Spark (Hadoop's S3A)
    assert lake.delta_uri("ticks") == "s3://bucket/lake/ticks"  # the deltalake package
    assert lake.key("_checkpoints", "bars_state") == "bucket/lake/_checkpoints/bars_state"
    assert lake.checkpoint() == "s3a://bucket/lake/_checkpoints/bars"
    assert lake.index() == "s3a://bucket/lake/_checkpoints/bars_index"
    assert Lake("s3://bucket/lake").url() == "s3a://bucket/lake"
    with pytest.raises(ValueError, match="names no bucket"):
        Lake("s3a://")


def test_a_local_lake_is_an_absolute_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    lake = Lake("data/output")
    assert not lake.remote
    assert lake.url("bars") == (tmp_path / "data" / "output" / "bars").as_posix()
    assert lake.delta_uri("bars") == lake.url("bars")
    assert lake.storage_options is None
    assert Lake(f"file://{tmp_path}").url() == tmp_path.as_posix()


def test_the_object_store_settings_reach_s3a_and_deltalake() -> None:
    assert STORE.hadoop() == {
        "fs.s3a.path.style.access": "true",
        "fs.s3a.optimized.copy.from.local.enabled": "false",
        "fs.s3a.endpoint": "http://127.0.0.1:9000",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.endpoint.region": "eu-west-1",
        "fs.s3a.access.key": "AKIA-EXAMPLE",
        "fs.s3a.secret.key": "very-secret",
    }
    assert STORE.delta_rs() == {
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIA-EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
    }
    assert "very-secret" not in repr(STORE)
    # Nothing set: the SDKs' defaults (AWS's endpoint, the environment's or a role's keys).
    assert ObjectStore().hadoop() == {
        "fs.s3a.path.style.access": "false",
        "fs.s3a.optimized.copy.from.local.enabled": "false",
    }
    assert ObjectStore().delta_rs() == {"AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true"}


def test_the_store_is_read_from_the_settings() -> None:
    settings = load_settings(
        {
            "output_path": "s3a://bucket/lake",
            "s3_endpoint": "https://minio.example:9000/",
            "s3_access_key_id": "AKIA-EXAMPLE",
            "s3_secret_access_key": "very-secret",
            "s3_path_style_access": "true",
        }
    )
    store = Lake.from_settings(settings).store
    assert store.endpoint == "https://minio.example:9000"
    assert store.secret_access_key == "very-secret"
    assert store.hadoop()["fs.s3a.connection.ssl.enabled"] == "true"


def test_the_drivers_files_are_written_whole_listed_and_deleted(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    assert lake.read_text("_checkpoints", "bars_index.json") is None
    assert lake.names("_checkpoints", "bars_state") == []
    lake.write_text(("_checkpoints", "bars_state", "batch=3", "meta.json"), "{}")
    lake.write_text(("_checkpoints", "bars_state", "batch=3", "meta.json"), '{"a":1}')
    assert lake.read_text("_checkpoints", "bars_state", "batch=3", "meta.json") == '{"a":1}'
    assert lake.names("_checkpoints", "bars_state") == ["batch=3"]
    assert list((tmp_path / "_checkpoints" / "staging").iterdir()) == []  # renamed into place
    lake.delete_dir("_checkpoints", "bars_state", "batch=3")
    lake.delete_dir("_checkpoints", "bars_state", "batch=3")  # gone already: nothing to do
    assert not lake.exists("_checkpoints", "bars_state", "batch=3")


def test_a_lake_that_cannot_be_used_is_one_line() -> None:
    lake = Lake("s3a://bucket/lake", STORE)
    error = lake.unreachable(OSError("AWS Error ACCESS_DENIED during GetObject"))
    assert str(error) == (
        "cannot use the lake at s3a://bucket/lake: AWS Error ACCESS_DENIED during GetObject; "
        "check S3_ENDPOINT, S3_REGION, the credentials and that the bucket exists"
    )
    # deltalake explains over several lines, coloured, the cause last.
    told = "Generic S3 error: Error after 10 retries\n  \x1b[31m↳\x1b[0m Connection refused\n"
    assert "lake: Generic S3 error: Error after 10 retries (Connection refused);" in str(
        lake.unreachable(OSError(told))
    )
