"""The driver's class archive: named by what it depends on, used only when it exists."""

from __future__ import annotations

import os
from pathlib import Path

from tickstream.jvm import cds


def jars(tmp_path: Path) -> list[Path]:
    found = []
    for name in ("a.jar", "b.jar"):
        jar = tmp_path / name
        jar.write_bytes(b"jar " + name.encode())
        found.append(jar)
    return found


def test_the_key_changes_with_any_jar_and_with_java(tmp_path: Path) -> None:
    class_path = jars(tmp_path)
    java = tmp_path / "java"
    java.touch()
    key = cds.class_path_key(java, class_path)
    assert cds.class_path_key(java, class_path) == key
    assert cds.class_path_key(java, class_path[:1]) != key
    assert cds.class_path_key(java, class_path[::-1]) != key
    other_java = tmp_path / "java21"
    other_java.touch()
    assert cds.class_path_key(other_java, class_path) != key
    # A rebuilt jar (the engine's, after a change): same name, other size or time.
    stat = class_path[1].stat()
    os.utime(class_path[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cds.class_path_key(java, class_path) != key
    touched = cds.class_path_key(java, class_path)
    class_path[1].write_bytes(b"a longer jar than before")
    os.utime(class_path[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cds.class_path_key(java, class_path) != touched


def test_a_missing_archive_adds_no_option(tmp_path: Path) -> None:
    archive = cds.archive_file(tmp_path / "jars", "0123")
    assert archive == (tmp_path / "jars" / "class-archive" / "driver-0123.jsa").resolve()
    # Told to map a missing archive, a JVM would also give up the JDK's own: no option at all.
    assert cds.use_options(archive) == ""
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"x")
    assert cds.use_options(archive) == f"-XX:SharedArchiveFile={archive} -Xlog:cds*=off"
    assert cds.dump_options(archive).startswith(f"-XX:ArchiveClassesAtExit={archive} ")
