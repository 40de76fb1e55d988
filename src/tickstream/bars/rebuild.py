"""Rebuilding bars from the tick archive (`tickstream lake rebuild`): any window, any bar kind,
with the live job's own bar logic.

The archive (``ticks/``) holds every tick the job accepted, once. A rebuild reads one version of
it and computes:

- **time bars** with the job's aggregation (:func:`~tickstream.bars.steps.partial_aggregates`,
  the Spark expressions each micro-batch reduces its ticks with) and the job's finishing
  (:func:`~tickstream.bars.partials.to_bar`): one Spark batch job per chunk of about a day of
  windows, on whatever master the session runs;
- **tick, volume and dollar bars** with the job's cutting (:func:`~tickstream.bars.activity
  .in_order` and :func:`~tickstream.bars.activity.cut_ticks`), over the archive read by event
  time with ``deltalake``, as the live job's step reads it (the cut is sequential per symbol).

**Where the archive is complete.** The job's latest state record gives its watermark and window;
F, the start of the job's oldest open window (:func:`~tickstream.bars.activity_step.cut_through`),
is the first instant whose ticks can still be accepted. The record is read before the archive's
version is fixed, and a batch records its state only after its archive commit, so every tick
before F is in the version read. A rebuilt time bar whose window ends after F, and the ticks
after F for the other kinds, are **open**: reported, not written. A lake without a state record
(no job ran on it) is taken as complete, and the summary says so.

**Where the bars go.** Into a new lake (``--into``: one commit to its table, and the CSV export
for time bars), or over a range of the lake's own time bars in one Delta commit (``--replace``:
``deltalake``'s overwrite with a predicate, Delta's replaceWhere), which a reader sees whole or
not at all. Both tables are written by the driver through ``deltalake``, as the job writes them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tickstream.bars.activity import OpenBar, bar_row, cut_ticks
from tickstream.bars.activity_step import cut_through, ordered_between
from tickstream.bars.partials import Partial, to_bar
from tickstream.bars.schema import ACTIVITY_BAR, BAR, BAR_COLUMNS, TICK
from tickstream.bars.source import window_start_ms
from tickstream.bars.state import StateStore
from tickstream.bars.steps import partial_aggregates, partial_of
from tickstream.bars.writer import DRIVER_COMMITS, LakeWriter, arrow_schema
from tickstream.config.forms import Thresholds
from tickstream.errors import TickstreamError
from tickstream.lake.layout import (
    ACTIVITY_TABLES,
    CSV_TABLE,
    Lake,
)
from tickstream.lake.read import TickArchive

KINDS = ("time", *ACTIVITY_TABLES)
DAY_MS = 86_400_000
# Ticks a chunk holds, about: each chunk is one Spark job (or one read and cut) and one step of
# the progress line; whole days of about this many ticks (one day at least).
CHUNK_TICKS = 2_000_000
# Marks a rebuild's commit in a table's log (``userMetadata``); the job's own commits are
# marked ``tickstream-bars-job:<batch>``, and its restart steps over any other.
REBUILD_APP_ID = "tickstream-rebuild"


class RebuildError(TickstreamError):
    """A rebuild that cannot run as asked (exit code 2): nothing was written."""

    exit_code = 2


@dataclass(frozen=True)
class Request:
    """What to rebuild: a kind of bar (its window or its thresholds), symbols (all if none),
    and [start_ms, end_ms) of event time (open-ended if None)."""

    kind: str = "time"
    window_ms: int = 60_000
    thresholds: Thresholds | None = None
    symbols: tuple[str, ...] = ()
    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def table(self) -> str:
        return "bars" if self.kind == "time" else ACTIVITY_TABLES[self.kind]


@dataclass(frozen=True)
class Plan:
    """A rebuild as it will run: the archive's version, where it is complete (F; None: all of
    it), the job's window, the ticks in range, and the chunks of event time read one by one."""

    request: Request
    version: int
    complete_ms: int | None
    job_window_ms: int
    ticks: int
    chunks: list[tuple[int, int]]


@dataclass
class Outcome:
    """What a rebuild did: ticks read, bars written, and what was left open."""

    ticks: int = 0
    bars: int = 0
    open_bars: int = 0  # time windows ending after F, or each symbol's last, unfinished bar
    open_ticks: int = 0  # the ticks in them (and, for activity bars, those after F)
    replaced: int = 0  # --replace: the stored bars the commit removed
    version: int = -1  # the version of the table written


def _floor(ms: int, step: int) -> int:
    return (ms // step) * step


def _ceil(ms: int, step: int) -> int:
    return -((-ms) // step) * step


def iso(ms: int) -> str:
    """An instant as ISO-8601 UTC with milliseconds (``2013-09-02T00:00:00.000Z``)."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def event_range(request: Request) -> tuple[int | None, int | None]:
    """The ticks a request reads: for time bars, the windows that start in [start, end), so
    both ends move up to a window boundary (no window is cut in two); as given otherwise."""
    lo, hi = request.start_ms, request.end_ms
    if request.kind != "time":
        return lo, hi
    w = request.window_ms
    return (None if lo is None else _ceil(lo, w)), (None if hi is None else _ceil(hi, w))


def chunks(first_ms: int, last_ms: int, step_ms: int, align_ms: int) -> list[tuple[int, int]]:
    """[lo, hi) spans of about ``step_ms`` covering [first_ms, last_ms], each boundary a
    multiple of ``align_ms`` (a window: no window is split between chunks)."""
    step = max(align_ms, _floor(step_ms, align_ms))
    lo, end = _floor(first_ms, align_ms), _ceil(last_ms + 1, align_ms)
    spans = []
    while lo < end:
        spans.append((lo, min(lo + step, end)))
        lo += step
    return spans


def plan(lake: Lake, request: Request, default_job_window_ms: int) -> Plan:
    """Where the archive is complete, its version, the ticks in range and the chunks, without
    Spark. Raises :class:`RebuildError` for a lake without an archive or a range without ticks.
    """
    # The state first, then the archive (see the module's docstring).
    snapshot = StateStore.read_latest(lake)
    job_window = snapshot.window_ms or default_job_window_ms
    complete_ms: int | None = None
    if snapshot.batch_id >= 0:
        complete_ms = cut_through(snapshot.watermark_ms, job_window)
    archive = TickArchive(lake)
    version = archive.current_version()
    if version is None:
        raise RebuildError(
            f"no tick archive in {lake}: {lake.url('ticks')} is not a Delta table",
            "run the bars job on this lake first (it keeps every accepted tick there), or set "
            "OUTPUT_PATH to a lake that has one",
        )
    lo, hi = event_range(request)
    count, first, last = TickArchive(lake, version=version).span(lo, hi, request.symbols)
    if count == 0:
        where = f" of {', '.join(request.symbols)}" if request.symbols else ""
        span = f"between {iso(lo) if lo is not None else 'the first'} and " + (
            iso(hi) if hi is not None else "the last"
        )
        raise RebuildError(
            f"no ticks{where} in the archive {span} (version {version})",
            "widen --from/--to, or check --symbol (`tickstream bars` lists what the lake holds)",
        )
    align = request.window_ms if request.kind == "time" else 1
    days = (last - first) // DAY_MS + 1
    step = DAY_MS * max(1, CHUNK_TICKS * days // count)  # whole days of about CHUNK_TICKS
    return Plan(
        request=request,
        version=version,
        complete_ms=complete_ms,
        job_window_ms=job_window,
        ticks=count,
        chunks=chunks(first, last, step, align),
    )


# --- computing the bars, chunk by chunk -----------------------------------------------------


def time_partials(
    spark: SparkSession, archive: TickArchive, span: tuple[int, int], request: Request
) -> list[Partial]:
    """The partial aggregate of each (symbol, window) of the archive's ticks in ``span``: a
    Spark batch job with the job's own aggregates.

    Spark reads the Parquet files of the archive's version that can hold the span, as listed
    by its Delta log through ``deltalake``; reading them through Delta's Spark reader costs
    ~3 s more in a new JVM (it rebuilds the table's snapshot with Spark jobs; measured in
    docs/rebuild.md). A table that needs a Delta reader (a reader feature) is read by it."""
    lo, hi = span
    ts = F.col("ts_epoch_ms")
    lake, version = archive.lake, archive.version
    files = archive.file_uris(lo, hi)
    if files is None:
        ticks = spark.read.format("delta").option("versionAsOf", version).load(lake.url("ticks"))
    elif not files:
        return []
    else:
        uris = [("s3a://" + f.removeprefix("s3://")) if lake.remote else f for f in files]
        ticks = spark.read.schema(ARCHIVE_FILE).parquet(*uris)
    rows = ticks.where((ts >= lo) & (ts < hi))
    if request.symbols:
        rows = rows.where(F.col("symbol").isin(list(request.symbols)))
    grouped = rows.groupBy(
        "symbol", window_start_ms(ts, request.window_ms).alias("window_start_ms")
    ).agg(*partial_aggregates())
    return [partial_of(row) for row in grouped.collect()]


# The columns of the archive's data files that a bar needs (read by name).
ARCHIVE_FILE = T.StructType(
    [TICK[name] for name in ("symbol", "ts_epoch_ms", "seq", "event_id", "price", "volume")]
)

BarBatches = Iterator[tuple[list[dict[str, object]], int]]  # (bar rows, ticks read)


def time_bars(spark: SparkSession, lake: Lake, built: Plan, outcome: Outcome) -> BarBatches:
    """Each chunk's closed time bars (in bar order), and the ticks it read."""
    w = built.request.window_ms
    archive = TickArchive(lake, version=built.version)
    for span in built.chunks:
        parts = sorted(time_partials(spark, archive, span, built.request), key=_order)
        end = built.complete_ms
        closed = [p for p in parts if end is None or p.window_start_ms + w <= end]
        read = sum(p.count for p in parts)
        outcome.open_bars += len(parts) - len(closed)
        outcome.open_ticks += read - sum(p.count for p in closed)
        yield [to_bar(p, w) for p in closed], read


def _order(p: Partial) -> tuple[int, str]:
    return (p.window_start_ms, p.symbol)


def activity_bars(lake: Lake, built: Plan, outcome: Outcome) -> BarBatches:
    """Each chunk's closed tick, volume or dollar bars, cut in order from the first tick in
    range through F (the ticks after F are counted open), and the ticks it read."""
    request = built.request
    assert request.thresholds is not None
    archive = TickArchive(lake, version=built.version)
    opens: dict[str, dict[str, OpenBar]] = {request.kind: {}}
    for lo, hi in built.chunks:
        lo = max(lo, request.start_ms) if request.start_ms is not None else lo
        hi = min(hi, request.end_ms) if request.end_ms is not None else hi
        upto = hi if built.complete_ms is None else min(hi, built.complete_ms)
        if upto <= lo:  # after F: read only to count
            left = archive.span(lo, hi, request.symbols)[0]
            outcome.open_ticks += left
            yield [], left
            continue
        ticks, ordered = ordered_between(archive, lo, upto, symbols=request.symbols)
        closed, opens = cut_ticks(ordered, {request.kind: request.thresholds}, opens)
        left = archive.span(upto, hi, request.symbols)[0] if upto < hi else 0
        outcome.open_ticks += left
        yield [bar_row(bar) for bar in closed], ticks.num_rows + left
    unfinished = [bar for bar in opens[request.kind].values() if bar.ticks]
    outcome.open_bars += len(unfinished)
    outcome.open_ticks += sum(bar.ticks for bar in unfinished)


def compute(spark: SparkSession | None, lake: Lake, built: Plan, outcome: Outcome) -> BarBatches:
    if built.request.kind == "time":
        assert spark is not None, "time bars are rebuilt by Spark"
        return time_bars(spark, lake, built, outcome)
    return activity_bars(lake, built, outcome)


# --- writing ----------------------------------------------------------------------------------


def check_target(lake: Lake, request: Request, into: Lake | None, built: Plan | None) -> None:
    """Refuse, in one line, a target that would lose or mix bars."""
    if into is not None:
        if into.holds_lake():
            raise RebuildError(
                f"{into} already holds a lake: --into writes a new one",
                "choose an empty or new path, or --replace to rewrite this lake's bars",
            )
        return
    if request.kind != "time":
        raise RebuildError(
            f"--replace rewrites time bars; {request.kind} bars run on across any range, and the "
            "job carries each symbol's open one",
            "rebuild them --into a new lake",
        )
    if built is not None and request.window_ms != built.job_window_ms:
        raise RebuildError(
            f"--replace keeps one window in {lake.url('bars')}: the job's, "
            f"{built.job_window_ms} ms, not {request.window_ms} ms",
            "rebuild other windows --into a new lake",
        )


def replace_predicate(built: Plan) -> str:
    """The stored bars a --replace removes: the range's windows (up to F), its symbols."""
    request = built.request
    lo, hi = event_range(request)
    if built.complete_ms is not None:
        hi = built.complete_ms if hi is None else min(hi, built.complete_ms)
    where = []
    if lo is not None:
        where += [f"date >= '{iso(lo)[:10]}'", f"window_start >= '{iso(lo)}'"]
    if hi is not None:
        where += [f"date <= '{iso(hi)[:10]}'", f"window_start < '{iso(hi)}'"]
    if request.symbols:
        names = ", ".join("'" + s.replace("'", "''") + "'" for s in request.symbols)
        where.append(f"symbol IN ({names})")
    return " AND ".join(where) or "true"


def run(
    spark: SparkSession | None,
    lake: Lake,
    built: Plan,
    *,
    into: Lake | None = None,
    progress: Callable[[int], None] = lambda done: None,
) -> Outcome:
    """Compute the plan's bars and write them: into a new lake (``into``), or over the range
    of ``lake``'s own bars (one commit). Raises :class:`RebuildError`, writing nothing, if no
    window in range is closed."""
    request = built.request
    target = into or lake
    check_target(lake, request, into, built)
    outcome = Outcome()
    schema = arrow_schema(BAR if request.kind == "time" else ACTIVITY_BAR)
    csv = LakeWriter(target) if into is not None and request.kind == "time" else None
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for number, (rows, read) in enumerate(compute(spark, lake, built, outcome)):
                outcome.ticks += read
                progress(outcome.ticks)
                if not rows:
                    continue
                outcome.bars += len(rows)
                if csv is not None:
                    csv.write_csv(rows, BAR_COLUMNS, CSV_TABLE, number)
                yield pa.RecordBatch.from_pylist(rows, schema)
        except BaseException as exc:  # kept: the writer reports it as an Arrow stream error
            failure.append(exc)
            raise

    stream = _ahead(batches())
    first = next(stream, None)
    if first is None:
        if failure:
            raise failure[0]
        raise RebuildError(
            f"no closed bars to write: the {outcome.open_bars} bars in range are still open "
            f"(the job's watermark has not passed {iso(built.complete_ms or 0)})",
            "rebuild a range that ends earlier, or once the job has run further",
        )

    def rest() -> Iterator[pa.RecordBatch]:
        yield first
        yield from stream

    reader = pa.RecordBatchReader.from_batches(schema, rest())
    marker = CommitProperties(
        custom_metadata={"userMetadata": f"{REBUILD_APP_ID}:{request.kind}:{built.version}"}
    )
    uri = target.delta_uri(request.table)
    try:
        with DRIVER_COMMITS:
            if into is None:
                predicate = replace_predicate(built)
                outcome.replaced = _count(target, request.table, predicate)
                write_deltalake(
                    uri,
                    reader,
                    mode="overwrite",
                    predicate=predicate,
                    partition_by=["date"],
                    storage_options=target.write_options,
                    commit_properties=marker,
                )
            else:
                target.make_root()
                write_deltalake(
                    uri,
                    reader,
                    mode="error",
                    partition_by=["date"],
                    storage_options=target.write_options,
                    commit_properties=marker,
                )
    except Exception:
        if into is not None:
            for name in (request.table, CSV_TABLE):
                into.delete_dir(name)
        if failure:
            raise failure[0] from None
        raise
    outcome.version = DeltaTable(uri, storage_options=target.storage_options).version()
    return outcome


_DONE = object()


def _ahead(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """``batches``, computed on a thread of their own, at most ``depth`` ahead of the reader.

    The writer pulls the stream from a thread of ``deltalake``'s async runtime, and reading
    the archive with ``deltalake`` there would start a runtime inside it (a panic): the
    chunks are read and cut on this thread instead, and handed over through a queue."""
    handover: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        handover.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handover.put(_DONE)
        except BaseException as exc:  # handed to the reader, raised there
            handover.put(exc)

    worker = threading.Thread(target=produce, name="tickstream-rebuild", daemon=True)
    worker.start()
    try:
        while True:
            item = handover.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, pa.RecordBatch)
            yield item
    finally:
        stop.set()
        worker.join()


def _count(lake: Lake, table: str, predicate: str) -> int:
    """How many rows of a table a predicate selects (0 if the table has none yet)."""
    try:
        found = DeltaTable(lake.delta_uri(table), storage_options=lake.storage_options)
    except TableNotFoundError:  # no table yet: nothing to replace
        return 0
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("t", found.to_pyarrow_dataset())
    query = predicate.replace("window_start >= '", "window_start >= TIMESTAMPTZ '").replace(
        "window_start < '", "window_start < TIMESTAMPTZ '"
    )
    (n,) = con.execute(f"SELECT count(*) FROM t WHERE {query}").fetchone() or (0,)  # noqa: S608
    return int(n)
