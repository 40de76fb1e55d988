"""The lake: where it is (:mod:`.layout`) and reading it without Spark (:mod:`.read`)."""

from tickstream.lake.layout import DELTA_TABLES, Lake, ObjectStore
from tickstream.lake.read import bar_symbols, connect, dataset, is_delta_table, read_bars, tables_in

__all__ = [
    "DELTA_TABLES",
    "Lake",
    "ObjectStore",
    "bar_symbols",
    "connect",
    "dataset",
    "is_delta_table",
    "read_bars",
    "tables_in",
]
