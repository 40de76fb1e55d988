"""Ticks a chunk at a time: the producer's hot path.

Sources hand the producer :class:`TickChunk` objects (columns, not objects), and
:meth:`TickChunk.encode` turns a whole chunk into JSON payloads in one pass. The
output is byte-for-byte what :func:`tickstream.ticks.codec.encode_tick` gives for
each tick (a unit test holds the two together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tickstream.ticks.schema import SCHEMA_VERSION, Tick

Int64s = npt.NDArray[np.int64]
Float64s = npt.NDArray[np.float64]


def iso_utc_many(ts_epoch_ms: Int64s) -> list[str]:
    """ISO-8601 UTC strings with milliseconds, without the trailing 'Z' (added when encoding)."""
    naive = pc.cast(pa.array(ts_epoch_ms, type=pa.int64()), pa.timestamp("ms"))
    text = pc.replace_substring(pc.cast(naive, pa.string()), " ", "T", max_replacements=1)
    out: list[str] = text.to_pylist()
    return out


def id_prefix(source: str, identity: str, symbol: str) -> str:
    """The stable part of an event id: one per (source, what it reads, symbol)."""
    return hashlib.sha256(f"{source}\x1f{identity}\x1f{symbol}".encode()).hexdigest()[:16]


class SeqCounter:
    """Per-symbol sequence numbers, strictly increasing within one producer run."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def assign(self, symbols: Sequence[str]) -> list[int]:
        counters = self._next
        out = []
        for symbol in symbols:
            n = counters.get(symbol, 0)
            counters[symbol] = n + 1
            out.append(n)
        return out


@dataclass
class TickChunk:
    """Consecutive ticks of one source, as columns of equal length."""

    source: str
    symbol: list[str]
    ts_epoch_ms: Int64s
    price: Float64s
    volume: Float64s
    seq: list[int]
    event_id: list[str]

    def __len__(self) -> int:
        return len(self.symbol)

    @classmethod
    def empty(cls, source: str) -> TickChunk:
        return cls(source, [], np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0), [], [])

    @classmethod
    def from_rows(
        cls, source: str, rows: Sequence[tuple[str, int, float, float, int, str]]
    ) -> TickChunk:
        """A chunk from (symbol, ts_epoch_ms, price, volume, seq, event_id) rows."""
        if not rows:
            return cls.empty(source)
        return cls(
            source,
            [r[0] for r in rows],
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.float64),
            np.array([r[3] for r in rows], dtype=np.float64),
            [r[4] for r in rows],
            [r[5] for r in rows],
        )

    def slice(self, start: int, stop: int) -> TickChunk:
        return TickChunk(
            self.source,
            self.symbol[start:stop],
            self.ts_epoch_ms[start:stop],
            self.price[start:stop],
            self.volume[start:stop],
            self.seq[start:stop],
            self.event_id[start:stop],
        )

    def encode(self) -> list[bytes]:
        """The JSON payload of every tick, in order."""
        head = f'{{"type":"tick","schema_version":{SCHEMA_VERSION},"event_id":"'
        tail = f'"source":"{self.source}"}}'
        return [
            f'{head}{e}","symbol":"{s}","seq":{q},"ts":"{i}Z","ts_epoch_ms":{t},'
            f'"price":{p!r},"volume":{v!r},{tail}'.encode()
            for e, s, q, i, t, p, v in zip(
                self.event_id,
                self.symbol,
                self.seq,
                iso_utc_many(self.ts_epoch_ms),
                self.ts_epoch_ms.tolist(),
                self.price.tolist(),
                self.volume.tolist(),
                strict=True,
            )
        ]

    def ticks(self) -> list[Tick]:
        """The chunk as Tick objects (for tests and small paths; the hot path uses encode)."""
        return [
            Tick(s, t, p, v, q, e, self.source)
            for s, t, p, v, q, e in zip(
                self.symbol,
                self.ts_epoch_ms.tolist(),
                self.price.tolist(),
                self.volume.tolist(),
                self.seq,
                self.event_id,
                strict=True,
            )
        ]
