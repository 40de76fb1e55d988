"""Replay real ticks from a file: CSV (optionally gzipped) or Parquet.

Two layouts: ``symbol,ts,price,volume`` (a symbol column), or ``DateTime,Price,Volume``
(no symbol column; pass ``symbol``). Timestamps are ISO-8601; naive ones are read in
``tz`` (default UTC). ``speed`` is 1 for real time, N for N times faster, None for as
fast as possible; ``rebase`` shifts all times so that the first tick is now.

Each chunk is converted column-wise; a chunk with a bad row is converted row by row
to say exactly which row is bad and why. A bad row is reported with its line number
(CSV) or row number (Parquet), then skipped or fatal (``on_bad_row``); never dropped
silently.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tickstream.errors import TickstreamError
from tickstream.sources.base import IDLE_YIELD_S, TickSource, now_ms
from tickstream.ticks.columnar import SeqCounter, TickChunk, id_prefix
from tickstream.ticks.schema import SYMBOL_RE

OnBadRow = Literal["skip", "fail"]
BadRowReporter = Callable[[str, str], None]

_ALIASES = {
    "symbol": ("symbol", "ticker", "sym"),
    "ts": ("ts", "timestamp", "datetime", "date_time", "time"),
    "price": ("price", "px"),
    "volume": ("volume", "size", "qty", "quantity"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZONED = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
MAX_CHUNK = 20_000


class ReplayError(TickstreamError):
    """The replay file cannot be read, or a bad row stops the run (--on-bad-row fail)."""


@dataclass(frozen=True)
class _Columns:
    """Which column of the file holds which field (None: symbol comes from --symbol)."""

    symbol: str | None
    ts: str
    price: str
    volume: str


def _pick_columns(names: list[str], symbol: str | None, path: Path) -> _Columns:
    lower = {n.strip().lower(): n for n in names}
    found = {
        field: next((lower[a] for a in aliases if a in lower), None)
        for field, aliases in _ALIASES.items()
    }
    missing = [f for f in ("ts", "price", "volume") if found[f] is None]
    if missing:
        raise ReplayError(
            f"{path}: no {', '.join(missing)} column among {names}",
            "expected a header symbol,ts,price,volume or DateTime,Price,Volume",
        )
    if found["symbol"] is None and symbol is None:
        raise ReplayError(
            f"{path} has no symbol column", "pass --symbol NAME to say whose ticks these are"
        )
    if found["symbol"] is not None and symbol is not None:
        raise ReplayError(
            f"{path} has a symbol column ({found['symbol']}) and --symbol was given",
            "drop --symbol: each row names its symbol",
        )
    return _Columns(found["symbol"], found["ts"] or "", found["price"] or "", found["volume"] or "")


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_text(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _csv_header(path: Path) -> list[str]:
    with _open_text(path) as fh:
        first = fh.readline().decode("utf-8-sig", errors="replace")
    return next(csv.reader([first]), [])


def count_rows(path: Path) -> int:
    """Data rows in the file (CSV: lines after the header; Parquet: from its footer)."""
    if _is_parquet(path):
        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with _open_text(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)


class _Converter:
    """Raw string/typed columns of one batch -> validated numpy columns + bad rows."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.zone = ZoneInfo(tz)

    def convert(
        self, symbols: pa.Array, ts: pa.Array, price: pa.Array, volume: pa.Array
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
        """Returns (valid mask, ts_ms, price, volume, [(row index, reason)])."""
        try:
            ts_ms = self._ts_fast(ts)
            px = pc.cast(price, pa.float64()).to_numpy(zero_copy_only=False)
            vol = pc.cast(volume, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            return self._slow(symbols, ts, price, volume)
        sym_ok = pc.fill_null(pc.match_substring_regex(symbols, SYMBOL_RE.pattern), False)
        ok = (
            sym_ok.to_numpy(zero_copy_only=False)
            & ~np.isnan(ts_ms)
            & np.isfinite(px)
            & (px > 0)
            & np.isfinite(vol)
            & (vol >= 0)
        )
        if ok.all():
            return ok, ts_ms.astype(np.int64), px, vol, []
        return self._slow(symbols, ts, price, volume)

    def _ts_fast(self, ts: pa.Array) -> np.ndarray:
        if pa.types.is_timestamp(ts.type):
            stamps = ts if ts.type.tz else pc.assume_timezone(ts, timezone=self.tz)
        elif pa.types.is_string(ts.type) or pa.types.is_large_string(ts.type):
            sample = ts.drop_null()
            zoned = len(sample) > 0 and _ZONED.search(str(sample[0])) is not None
            if zoned:
                stamps = pc.cast(ts, pa.timestamp("ns", tz="UTC"))
            else:
                naive = pc.cast(ts, pa.timestamp("ns"))
                stamps = pc.assume_timezone(
                    naive, timezone=self.tz, ambiguous="raise", nonexistent="raise"
                )
        else:
            raise ValueError("timestamps must be ISO-8601 text or a timestamp column")
        as_ms = pc.cast(pc.cast(stamps, pa.timestamp("ns", tz="UTC")), pa.int64())
        ms = pc.divide(as_ms, 1_000_000)  # integer division, truncating below a millisecond
        return np.asarray(ms.to_numpy(zero_copy_only=False), dtype=np.float64)

    def _slow(
        self, symbols: pa.Array, ts: pa.Array, price: pa.Array, volume: pa.Array
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
        n = len(ts)
        ok = np.zeros(n, dtype=bool)
        ts_ms = np.zeros(n, dtype=np.int64)
        px = np.zeros(n)
        vol = np.zeros(n)
        bad: list[tuple[int, str]] = []
        for i, (s, t, p, v) in enumerate(
            zip(
                symbols.to_pylist(),
                ts.to_pylist(),
                price.to_pylist(),
                volume.to_pylist(),
                strict=True,
            )
        ):
            reason = None
            if s is None or not SYMBOL_RE.match(s):
                reason = f"bad symbol {s!r}"
            else:
                try:
                    ts_ms[i] = self._ts_one(t)
                except ValueError as exc:
                    reason = f"bad timestamp {t!r} ({exc})"
            if reason is None:
                try:
                    px[i] = _number(p, "price", positive=True)
                    vol[i] = _number(v, "volume", positive=False)
                except ValueError as exc:
                    reason = str(exc)
            if reason is None:
                ok[i] = True
            else:
                bad.append((i, reason))
        return ok, ts_ms, px, vol, bad

    def _ts_one(self, value: object) -> int:
        if isinstance(value, datetime):
            stamp = value
        elif isinstance(value, str) and value.strip():
            stamp = datetime.fromisoformat(value.strip())
        else:
            raise ValueError("empty")
        if stamp.tzinfo is None:
            early = stamp.replace(tzinfo=self.zone, fold=0)
            round_trip = early.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None)
            if round_trip != stamp:
                raise ValueError(f"nonexistent local time in {self.tz}")
            if early.utcoffset() != stamp.replace(tzinfo=self.zone, fold=1).utcoffset():
                raise ValueError(f"ambiguous local time in {self.tz}")
            stamp = early
        return (stamp - _EPOCH) // timedelta(milliseconds=1)


def _number(value: object, name: str, *, positive: bool) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"bad {name} {value!r}") from None
    if not math.isfinite(number) or (number <= 0 if positive else number < 0):
        raise ValueError(
            f"bad {name} {value!r} (must be finite and {'> 0' if positive else '>= 0'})"
        )
    return number


class ReplaySource(TickSource):
    name = "replay"

    def __init__(
        self,
        path: Path,
        *,
        symbol: str | None = None,
        tz: str = "UTC",
        speed: float | None = None,
        rebase: bool = False,
        on_bad_row: OnBadRow = "skip",
        report_bad_row: BadRowReporter | None = None,
        stop: threading.Event | None = None,
        count: int | None = None,
    ) -> None:
        super().__init__(stop)
        self.count = count
        if not path.is_file():
            raise ReplayError(f"replay file {path} not found", "check the path")
        if speed is not None and not speed > 0:
            raise ReplayError(f"bad speed {speed}", "use a number > 0, or max")
        try:
            self._converter = _Converter(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ReplayError(
                f"unknown time zone {tz!r}", "use an IANA name such as America/Chicago"
            ) from None
        if symbol is not None and not SYMBOL_RE.match(symbol.upper()):
            raise ReplayError(f"bad symbol {symbol!r}", "use an upper-case ticker such as ES")
        self.path = path
        self.symbol = symbol.upper() if symbol else None
        self.tz = tz
        self.speed = speed
        self.rebase = rebase
        self.on_bad_row = on_bad_row
        self.report_bad_row = report_bad_row or (lambda _where, _why: None)
        self._bad_rows = 0
        self._seq = SeqCounter()
        self._digest = file_digest(path)
        self._prefixes: dict[str, str] = {}
        self._shift_ms: int | None = None
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self._pending_ts: int | None = None  # the earliest tick of the chunk not yet yielded
        self._t0 = time.monotonic()
        self._total: int | None = None

    @property
    def total(self) -> int | None:
        if self._total is None:
            self._total = count_rows(self.path)
        return self._total if self.count is None else min(self.count, self._total)

    @property
    def bad_rows(self) -> int:
        return self._bad_rows

    def clock_ms(self) -> int | None:
        # The replay's clock, held back to the earliest tick it has not yielded yet: a heartbeat
        # promises that no later tick is older, and a producer that falls behind its pace (a
        # slow broker, a busy machine) must not send a clock ahead of the ticks still to come.
        if self._first_ts is None:
            return None
        if self.speed is None:
            return self._last_ts
        paced = self._first_ts + int((time.monotonic() - self._t0) * 1000 * self.speed)
        held = self._pending_ts if self._pending_ts is not None else self._last_ts
        return paced if held is None else min(paced, held)

    # --- reading ------------------------------------------------------------------------------

    def _batches(self) -> Iterator[tuple[pa.RecordBatch, int, str]]:
        """(batch, number of its first row, 'line' or 'row')."""
        try:
            if _is_parquet(self.path):
                parquet = pq.ParquetFile(self.path)
                cols = _pick_columns(parquet.schema_arrow.names, self.symbol, self.path)
                self._cols = cols
                first = 1
                for batch in parquet.iter_batches(batch_size=MAX_CHUNK):
                    yield batch, first, "row"
                    first += batch.num_rows
                return
            names = _csv_header(self.path)
            self._cols = _pick_columns(names, self.symbol, self.path)
            # Every column as text: conversion (and its errors) is ours, row by row if needed.
            reader = pacsv.open_csv(
                pa.input_stream(str(self.path), compression="detect"),
                read_options=pacsv.ReadOptions(block_size=1 << 20),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()), quoted_strings_can_be_null=False
                ),
            )
            first = 2  # line 1 is the header
            for batch in reader:
                yield batch, first, "line"
                first += batch.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise ReplayError(
                f"cannot read {self.path}: {exc}", "check the file's format"
            ) from None

    def _convert(self, batch: pa.RecordBatch, first: int, unit: str) -> TickChunk:
        cols = self._cols
        n = batch.num_rows
        if cols.symbol is None:
            symbols = pa.array([self.symbol] * n, pa.string())
        else:
            symbols = pc.utf8_upper(
                pc.utf8_trim_whitespace(pc.cast(batch[cols.symbol], pa.string()))
            )
        ok, ts_ms, price, volume, bad = self._converter.convert(
            symbols, batch[cols.ts], batch[cols.price], batch[cols.volume]
        )
        for index, reason in bad:
            where = f"{self.path.name} {unit} {first + index}"
            if self.on_bad_row == "fail":
                raise ReplayError(f"{where}: {reason}", "fix the row, or pass --on-bad-row skip")
            self._bad_rows += 1
            self.report_bad_row(where, reason)
        if bad:
            keep = np.flatnonzero(ok)
            symbol_list = [symbols[i].as_py() for i in keep.tolist()]
            ts_ms, price, volume = ts_ms[keep], price[keep], volume[keep]
        else:
            symbol_list = symbols.to_pylist()
        if len(symbol_list) and self._shift_ms is None:
            self._shift_ms = (now_ms() - int(ts_ms[0])) if self.rebase else 0
        if self._shift_ms:
            ts_ms = ts_ms + self._shift_ms
        seqs = self._seq.assign(symbol_list)
        prefixes = self._prefixes
        for s in set(symbol_list) - prefixes.keys():
            identity = f"{self._digest};tz={self.tz};shift={self._shift_ms}"
            prefixes[s] = id_prefix(self.name, identity, s)
        event_ids = [f"{prefixes[s]}-{q}" for s, q in zip(symbol_list, seqs, strict=True)]
        return TickChunk(self.name, symbol_list, ts_ms, price, volume, seqs, event_ids)

    # --- pacing -------------------------------------------------------------------------------

    def chunks(self) -> Iterator[TickChunk]:
        self._t0 = time.monotonic()
        emitted = 0
        for batch, first, unit in self._batches():
            if self.stop.is_set() or (self.count is not None and emitted >= self.count):
                return
            chunk = self._convert(batch, first, unit)
            if self.count is not None and emitted + len(chunk) > self.count:
                chunk = chunk.slice(0, self.count - emitted)
            emitted += len(chunk)
            if not len(chunk):
                continue
            if self._first_ts is None:
                self._first_ts = int(chunk.ts_epoch_ms[0])
                self._t0 = time.monotonic()
            if self.speed is None:
                self._last_ts = int(chunk.ts_epoch_ms[-1])
                yield chunk
            else:
                yield from self._paced(chunk)

    def _paced(self, chunk: TickChunk) -> Iterator[TickChunk]:
        assert self._first_ts is not None
        assert self.speed is not None
        # When each tick is due, in seconds since the start; a tick whose time goes
        # backwards is sent right after its predecessor.
        due = np.maximum.accumulate((chunk.ts_epoch_ms - self._first_ts) / (1000.0 * self.speed))
        earliest_after = np.minimum.accumulate(chunk.ts_epoch_ms[::-1])[::-1]
        position = 0
        while position < len(chunk):
            if self.stop.is_set():
                return
            elapsed = time.monotonic() - self._t0
            ready = int(np.searchsorted(due, elapsed, side="right"))
            if ready > position:
                part = chunk.slice(position, ready)
                self._last_ts = int(part.ts_epoch_ms[-1])
                self._pending_ts = int(earliest_after[ready]) if ready < len(chunk) else None
                yield part
                position = ready
                continue
            self._pending_ts = int(earliest_after[position])
            self.wait(min(float(due[position]) - elapsed, IDLE_YIELD_S))
            yield TickChunk.empty(self.name)
        self._pending_ts = None
