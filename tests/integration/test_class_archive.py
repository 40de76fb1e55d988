"""A Spark driver started by tickstream maps the class archive that scripts/bootstrap.sh made."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tickstream.config import Settings
from tickstream.jvm.java import java_executable
from tickstream.jvm.spark import class_archive

# A driver as `tickstream stream` starts one (a local lake), asked what its JVM mapped.
DRIVER = """
import subprocess, sys
from tickstream.config import load_settings
from tickstream.jvm.spark import build_spark
spark = build_spark(load_settings(), app_name="class-archive-test")
pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
info = subprocess.run([sys.argv[1], str(pid), "VM.info"], capture_output=True, text=True).stdout
print(info)
spark.stop()
"""


def test_a_driver_maps_the_class_archive(base_settings: Settings, tmp_path: Path) -> None:
    archive = class_archive(base_settings.model_copy(update={"output_path": str(tmp_path)}))
    assert archive.is_file(), f"no class archive at {archive}: run `tickstream jars archive`"
    java = java_executable()
    assert java is not None
    env = {
        "PATH": "/usr/bin:/bin",
        "TICKSTREAM_HOME": str(base_settings.tickstream_home),
        "TICKSTREAM_JARS_DIR": str(base_settings.jars_dir),
        "OUTPUT_PATH": str(tmp_path),
    }
    info = subprocess.run(
        [sys.executable, "-c", DRIVER, str(java.resolve().parent / "jcmd")],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
        env=env,
    ).stdout
    assert f"-XX:SharedArchiveFile={archive}" in info
    # What the JVM mapped: the JDK's own archive (~13 MB) and ours on top of it. An archive that
    # did not match the class path would be left out, and the size would say so.
    mapped = re.search(r"CDS archive\(s\) mapped at: .*?, size (\d+)", info)
    assert mapped is not None, info[:2000]
    assert int(mapped.group(1)) >= archive.stat().st_size
