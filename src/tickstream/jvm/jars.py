"""The jar cache that Maven fills from ``jvm/pom.xml``.

Jars land in ``<TICKSTREAM_HOME>/jars/<component>-<version>/``: one folder each for the
Kafka broker, Spark's Kafka connector, Delta Lake and tickstream's engine. Maven runs
once; later runs reuse the cache and need no network.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tickstream.errors import EnvironmentProblem
from tickstream.jvm.java import find_java
from tickstream.jvm.versions import Versions, build_dir, pinned

_READY_MARK = ".complete"


@dataclass(frozen=True)
class JarCache:
    """Where the jars of one set of pinned versions live (and of one state of the engine's
    sources: ``engine_digest``, see :func:`engine_digest`)."""

    root: Path
    versions: Versions
    engine_digest: str = ""

    @property
    def kafka_dir(self) -> Path:
        return self.root / f"kafka-{self.versions.kafka}"

    @property
    def connector_dir(self) -> Path:
        return self.root / f"spark-kafka-{self.versions.spark}"

    @property
    def delta_dir(self) -> Path:
        """Delta Lake for Spark (the lake's table format), at the pinned version."""
        return self.root / f"delta-{self.versions.delta}"

    @property
    def hadoop_aws_dir(self) -> Path:
        """Hadoop's S3A filesystem, the AWS SDK and Spark's cloud module (an ``s3a://`` lake)."""
        return self.root / f"hadoop-aws-{self.versions.hadoop}-spark-{self.versions.spark}"

    @property
    def s3proxy_dir(self) -> Path:
        """S3Proxy, the S3-compatible server the tests start locally."""
        return self.root / f"s3proxy-{self.versions.s3proxy}"

    @property
    def engine_dir(self) -> Path:
        """tickstream's own JVM code (``jvm/engine``), compiled against the pinned Spark, in a
        folder named by its sources' digest: changed sources name a folder not built yet, which
        `tickstream jars fetch` (scripts/up.sh and scripts/test.sh run it) builds, so a checkout
        never runs an engine jar of other Java code, whichever checkout built the cache's."""
        digest = f"-{self.engine_digest}" if self.engine_digest else ""
        return self.root / f"engine-{self.versions.spark}{digest}"

    @property
    def folders(self) -> tuple[Path, ...]:
        return (
            self.kafka_dir,
            self.connector_dir,
            self.delta_dir,
            self.hadoop_aws_dir,
            self.s3proxy_dir,
            self.engine_dir,
        )

    def is_complete(self) -> bool:
        return all((d / _READY_MARK).is_file() for d in self.folders)

    def kafka_classpath(self) -> list[Path]:
        return _jars_in(self.kafka_dir)

    def connector_jars(self, spark_jars_dir: Path | None = None) -> list[Path]:
        """The connector and the jars it needs that Spark does not already ship."""
        return _not_shipped(self.connector_dir, spark_jars_dir)

    def spark_jars(
        self, spark_jars_dir: Path | None = None, *, object_store: bool = False
    ) -> list[Path]:
        """Every jar a Spark session of tickstream attaches: the Kafka connector's, Delta
        Lake's and the engine's; with ``object_store``, also Hadoop's S3A filesystem and the AWS
        SDK (558 MB: measured, it adds ~1.7 s to a session's start, so only when needed)."""
        s3a = _not_shipped(self.hadoop_aws_dir, spark_jars_dir) if object_store else []
        return [
            *self.connector_jars(spark_jars_dir),
            *_not_shipped(self.delta_dir, spark_jars_dir),
            *s3a,
            *_jars_in(self.engine_dir),
        ]


def _not_shipped(folder: Path, spark_jars_dir: Path | None) -> list[Path]:
    """The jars of ``folder`` whose artifact Spark does not already have.

    Jars whose artifact Spark ships (scala-library, hadoop-client, slf4j, antlr...) are left out,
    so the driver and executors keep one copy of each class.
    """
    shipped = (
        {_artifact_name(p.name) for p in _jars_in(spark_jars_dir)} if spark_jars_dir else set()
    )
    return [p for p in _jars_in(folder) if _artifact_name(p.name) not in shipped]


def _jars_in(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(folder.glob("*.jar"))


def _artifact_name(jar_name: str) -> str:
    """The artifact of a jar file: 'kafka-clients-3.9.0.jar' -> 'kafka-clients'."""
    stem = jar_name.removesuffix(".jar")
    return re.sub(r"-\d+\.\d+[\w.\-]*$", "", stem)


def engine_digest(sources: Path) -> str:
    """A digest of the engine's sources (``jvm/engine``: its pom and Java files, not Maven's
    ``target/``): 12 hex digits, or "" without sources."""
    if not sources.is_dir():
        return ""
    digest = hashlib.sha256()
    files = sorted(
        f
        for f in sources.rglob("*")
        if f.is_file() and "target" not in f.relative_to(sources).parts
    )
    for f in files:
        digest.update(f.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def jar_cache(jars_dir: Path) -> JarCache:
    return JarCache(jars_dir.resolve(), pinned(), engine_digest(build_dir() / "jvm" / "engine"))


def ensure_jars(jars_dir: Path, *, quiet: bool = False) -> JarCache:
    """The jar cache for the pinned versions and the engine's sources, resolved (and the engine
    built) by Maven on first use."""
    cache = jar_cache(jars_dir)
    if cache.is_complete():
        return cache
    fetch_jars(cache, quiet=quiet)
    return cache


def fetch_jars(cache: JarCache, *, quiet: bool = False) -> None:
    """Run Maven on ``jvm/pom.xml`` to copy the pinned jars into the cache."""
    pom = build_dir() / "jvm" / "pom.xml"
    if not pom.is_file():
        raise EnvironmentProblem(
            f"the JVM build file {pom} is missing", "reinstall tickstream from a full checkout"
        )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EnvironmentProblem(
            f"the Kafka and Spark connector jars are not in {cache.root}, and Maven ('mvn') "
            "is not on PATH to fetch them",
            "install Maven (e.g. apt-get install maven) and run `tickstream jars fetch`",
        )
    find_java()
    v = cache.versions
    cache.root.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        "package",
        f"-Dspark.version={v.spark}",
        f"-Dkafka.version={v.kafka}",
        f"-Ddelta.version={v.delta}",
        f"-Dhadoop.version={v.hadoop}",
        f"-Ds3proxy.version={v.s3proxy}",
        f"-Dscala.binary.version={v.scala_binary}",
        f"-Djars.dir={cache.root}",
        f"-Dengine.dir={cache.engine_dir}",
    ]
    if not quiet:
        print(f"resolving JVM jars with Maven (Kafka {v.kafka}, {v.connector_artifact}) ...")
    result = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        tail = f": {(result.stdout or '')[-2000:]}" if quiet else ""
        raise EnvironmentProblem(
            f"Maven could not resolve the JVM jars (exit {result.returncode}){tail}",
            "check the network access to Maven Central, then run `tickstream jars fetch` again",
        )
    for folder in cache.folders:
        if not _jars_in(folder):
            raise EnvironmentProblem(
                f"Maven ran but left no jars in {folder}", "report this as a bug"
            )
        (folder / _READY_MARK).write_text("ok\n", encoding="utf-8")
