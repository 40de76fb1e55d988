from __future__ import annotations

import importlib.metadata
import re
import shutil
from pathlib import Path

import pytest

from tickstream.errors import EnvironmentProblem
from tickstream.jvm import jars as jvm
from tickstream.jvm import java
from tickstream.jvm.versions import Versions, build_dir, parse_versions_env, pinned

REPO = Path(__file__).resolve().parents[2]


def test_versions_env_is_the_one_place_that_pins() -> None:
    v = pinned()
    assert re.fullmatch(r"4\.0\.\d+", v.spark)
    assert re.fullmatch(r"4\.\d+\.\d+", v.kafka)
    assert v.scala_binary == "2.13"
    # The installed package's pyspark pin was generated from versions.env by hatch_build.py.
    requires = importlib.metadata.requires("tickstream") or []
    assert f"pyspark=={v.spark}" in requires
    import pyspark

    assert pyspark.__version__ == v.spark


def test_poms_hard_code_no_pinned_version() -> None:
    v = pinned()
    for pom in (build_dir() / "jvm").rglob("pom.xml"):
        text = pom.read_text()
        assert f"<version>{v.spark}</version>" not in text, pom
        assert f"<version>{v.kafka}</version>" not in text, pom
        assert f"<version>{v.delta}</version>" not in text, pom
    connector = (build_dir() / "jvm" / "spark-kafka" / "pom.xml").read_text()
    assert "<version>${spark.version}</version>" in connector
    broker = (build_dir() / "jvm" / "kafka-broker" / "pom.xml").read_text()
    assert "<version>${kafka.version}</version>" in broker
    delta = (build_dir() / "jvm" / "delta" / "pom.xml").read_text()
    assert "<version>${delta.version}</version>" in delta


def test_parse_versions_env() -> None:
    assert parse_versions_env("# c\n\nA=1\n B = 2 \n") == {"A": "1", "B": "2"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_versions_env("JUSTAWORD\n")


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25.0.1" 2025-10-21 LTS', 25),
    ],
)
def test_java_major_version(output: str, major: int) -> None:
    assert java.parse_java_major(output) == major


def test_missing_java_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem) as info:
        java.find_java()
    assert "Java was not found" in str(info.value)
    assert "JDK 17" in str(info.value)


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match=r"Java 8 .* too old"):
        java.find_java()


@pytest.mark.parametrize(
    ("jar", "artifact"),
    [
        ("kafka-clients-3.9.0.jar", "kafka-clients"),
        ("spark-sql-kafka-0-10_2.13-4.0.0.jar", "spark-sql-kafka-0-10_2.13"),
        ("scala-parallel-collections_2.13-1.2.0.jar", "scala-parallel-collections_2.13"),
        ("zstd-jni-1.5.6-10.jar", "zstd-jni"),
        ("jsr305-3.0.0.jar", "jsr305"),
    ],
)
def test_artifact_name(jar: str, artifact: str) -> None:
    assert jvm._artifact_name(jar) == artifact


def test_session_jars_leave_out_what_spark_ships(tmp_path: Path) -> None:
    cache = jvm.JarCache(
        tmp_path / "jars",
        Versions(
            spark="4.0.0",
            scala_binary="2.13",
            kafka="4.1.1",
            delta="4.0.0",
            hadoop="3.4.1",
            s3proxy="2.6.0",
        ),
    )
    folders = {
        cache.connector_dir: (
            "spark-sql-kafka-0-10_2.13-4.0.0.jar",
            "kafka-clients-3.9.0.jar",
            "scala-library-2.13.15.jar",
        ),
        cache.delta_dir: (
            "delta-spark_2.13-4.0.0.jar",
            "antlr4-runtime-4.13.1.jar",
            "scala-library-2.13.13.jar",
        ),
        cache.hadoop_aws_dir: (
            "hadoop-aws-3.4.1.jar",
            "bundle-2.24.6.jar",
            "spark-hadoop-cloud_2.13-4.0.0.jar",
        ),
        cache.s3proxy_dir: ("s3proxy-2.6.0.jar", "jetty-server-11.0.24.jar"),  # tests only
        cache.engine_dir: ("tickstream-engine.jar",),
    }
    for folder, names in folders.items():
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).touch()
    spark_jars = tmp_path / "spark-jars"
    spark_jars.mkdir()
    (spark_jars / "scala-library-2.13.16.jar").touch()
    (spark_jars / "antlr4-runtime-4.13.1.jar").touch()
    connector = [p.name for p in cache.connector_jars(spark_jars)]
    assert connector == ["kafka-clients-3.9.0.jar", "spark-sql-kafka-0-10_2.13-4.0.0.jar"]
    assert [p.name for p in cache.spark_jars(spark_jars)] == [
        *connector,
        "delta-spark_2.13-4.0.0.jar",
        "tickstream-engine.jar",
    ]
    with_s3a = [p.name for p in cache.spark_jars(spark_jars, object_store=True)]
    assert with_s3a[-4:] == [
        "bundle-2.24.6.jar",
        "hadoop-aws-3.4.1.jar",
        "spark-hadoop-cloud_2.13-4.0.0.jar",
        "tickstream-engine.jar",
    ]
    assert not cache.is_complete()


def test_missing_maven_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(EnvironmentProblem, match=r"Maven .* not on PATH"):
        jvm.ensure_jars(tmp_path / "jars")


def test_the_engine_folder_is_named_by_its_sources(tmp_path: Path) -> None:
    """A change to the engine's Java or pom names another folder (built by the next `jars
    fetch`); Maven's target/ and a file's time do not."""
    from tickstream.jvm.jars import JarCache, engine_digest
    from tickstream.jvm.versions import pinned

    sources = tmp_path / "engine"
    (sources / "src").mkdir(parents=True)
    java = sources / "src" / "DedupIndex.java"
    java.write_text("class A {}")
    (sources / "pom.xml").write_text("<project/>")
    first = engine_digest(sources)
    assert len(first) == 12
    (sources / "target").mkdir()
    (sources / "target" / "tickstream-engine.jar").write_text("built")
    java.touch()
    assert engine_digest(sources) == first
    java.write_text("class A { int b; }")
    changed = engine_digest(sources)
    assert changed != first
    assert engine_digest(tmp_path / "none") == ""
    cache = JarCache(tmp_path / "jars", pinned(), changed)
    assert cache.engine_dir.name == f"engine-{pinned().spark}-{changed}"
    # This checkout's cache is named by its own sources.
    assert jvm.jar_cache(tmp_path / "jars").engine_dir.name.startswith(f"engine-{pinned().spark}-")
