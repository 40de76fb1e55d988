"""The driver JVM's class archive: Java's class-data sharing (CDS) for a quicker start.

A Spark driver loads and links many thousands of classes before its first micro-batch (Spark's,
Delta Lake's, Kafka's, the engine's), most of a start-up's time. A CDS archive holds them
already parsed and verified; a JVM started with it maps the archive instead (measured in
docs/engine.md: the job's start to the end of its first micro-batch ~11 s -> ~8 s).

The archive is made once, at setup (`tickstream jars archive`, which scripts/bootstrap.sh
runs), by a rehearsal of the bars job in a JVM of its own that writes the classes it loaded
when it exits (``-XX:ArchiveClassesAtExit``, :mod:`tickstream.bars.rehearsal`). A JVM can only
use an archive made with the same Java and the same class path, so its file name holds a hash
of both: a changed jar (an upgrade, a rebuilt engine) names another file, and a session that
finds none starts as before, only slower. Only local masters use it: a cluster's executors
are other JVMs, with other class paths.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tickstream.errors import EnvironmentProblem

FOLDER = "class-archive"
# Java's class-sharing messages (a class it cannot archive, an archive it cannot map) are
# warnings on the JVM's stdout; neither changes what the job computes.
QUIET = "-Xlog:cds*=off"


def class_path_key(java: Path, class_path: Sequence[Path]) -> str:
    """A hash of what an archive depends on: the Java binary and each jar (name, size, time)."""
    digest = hashlib.sha256(str(java.resolve()).encode())
    for jar in class_path:
        stat = jar.stat()
        digest.update(f"\n{jar.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def archive_file(jars_dir: Path, key: str) -> Path:
    return jars_dir.resolve() / FOLDER / f"driver-{key}.jsa"


def use_options(archive: Path) -> str:
    """The JVM options that map ``archive`` (none when it is missing: a JVM told to use a
    missing archive also gives up the JDK's own)."""
    return f"-XX:SharedArchiveFile={archive} {QUIET}" if archive.is_file() else ""


def dump_options(archive: Path) -> str:
    return f"-XX:ArchiveClassesAtExit={archive} {QUIET}"


def make_archive(archive: Path, *, timeout: float = 600.0) -> Path:
    """Make ``archive`` by a rehearsal of the bars job in a Python and JVM of their own (the JVM
    writes the archive as it exits); other archives in its folder are removed."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "tickstream.bars.rehearsal", str(partial)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
        raise EnvironmentProblem(
            f"the rehearsal that makes the JVM's class archive failed (exit {result.returncode})"
            + (f": {' | '.join(tail)}" if tail else ""),
            "the job still runs without it (its start is slower); report this as a bug",
        )
    partial.replace(archive)
    for other in archive.parent.glob("driver-*.jsa"):
        if other != archive:
            other.unlink(missing_ok=True)
    return archive
