"""The package's layers: only the modules that run Spark import pyspark, and lower layers never
import the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tickstream"

# The modules that run Spark (the bars job's steps, its writer and compaction): the only ones
# that may import pyspark when imported.
RUN_SPARK = {
    "tickstream.bars.activity_step",
    "tickstream.bars.job",
    "tickstream.bars.maintenance",
    "tickstream.bars.parse",
    "tickstream.bars.rebuild",
    "tickstream.bars.rehearsal",
    "tickstream.bars.schema",
    "tickstream.bars.source",
    "tickstream.bars.steps",
    "tickstream.bars.writer",
}

BLOCK_PYSPARK = """
import importlib, json, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError("pyspark is blocked")
sys.meta_path.insert(0, Block())
import tickstream
failed = []
for m in pkgutil.walk_packages(tickstream.__path__, "tickstream."):
    if m.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(m.name)
    except ImportError:
        failed.append(m.name)
print(json.dumps(sorted(failed)))
"""


def test_only_the_modules_that_run_spark_import_pyspark() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_PYSPARK], capture_output=True, text=True, check=True
    )
    failed = set(json.loads(done.stdout))
    assert failed == RUN_SPARK
    # reconcile, the lake's reader and the whole command line are among those that do not.
    assert not failed & {"tickstream.reconcile", "tickstream.lake.read", "tickstream.cli.app"}


def test_lower_layers_never_import_the_command_line() -> None:
    for folder in ("kafka", "jvm", "lake", "bars", "sources", "ticks", "dashboard"):
        for module in (SRC / folder).glob("*.py"):
            text = module.read_text()
            assert "tickstream.cli" not in text, f"{module} imports the command line"
