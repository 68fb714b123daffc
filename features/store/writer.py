"""Staging one ingest's rows as Parquet parts (docs/store.md, "Atomicity"): rows are buffered per table and month,
flushed to hidden staged files when the buffer grows, and only renamed to their final names by :meth:`publish`
after the manifest has committed. :meth:`discard` deletes everything staged (a failed or strict-refused ingest)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import RecoupError
from features.store.layout import MONTH_PATTERN, NO_MONTH, PARTITION_COLUMNS, fsync_dir, part_relpath, staged
from features.store.manifest import Part

#: rows buffered in memory (all tables) before they are flushed to staged parts
FLUSH_ROWS = 500_000
PRIVATE_COLUMNS = ("_ingest", "_seq", "_unit")


def months_of(dates: pd.Series) -> np.ndarray:
    """``YYYY-MM`` of each date (:data:`NO_MONTH` where missing or unreadable)."""
    d = pd.to_datetime(dates, errors="coerce") if not pd.api.types.is_datetime64_any_dtype(dates) else dates
    values = np.asarray(d, dtype="datetime64[M]")
    out = np.datetime_as_string(values, unit="M").astype(object)
    out[np.isnat(values)] = NO_MONTH
    return out


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """A frame as Arrow with one schema per table across parts (texts as large strings, enums dictionary-encoded
    strings), without pandas metadata."""
    t = pa.Table.from_pandas(df, preserve_index=False)
    cols = []
    for f, col in zip(t.schema, t.columns):
        if pa.types.is_dictionary(f.type):
            col = col.cast(pa.dictionary(pa.int32(), pa.string()))
        elif pa.types.is_string(f.type):
            col = col.cast(pa.large_string())
        elif pa.types.is_null(f.type):
            col = col.cast(pa.large_string())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=t.column_names)


class Stager:
    """The parts of one ingest, staged under hidden names in the store."""

    def __init__(self, store: Path, ingest: int):
        self.store = store
        self.ingest = ingest
        self.buffers: dict[tuple[str, str | None], list[pa.Table]] = defaultdict(list)
        self.refs: dict[tuple[str, str | None], set[str]] = defaultdict(set)
        self.buffered = 0
        self.parts: list[Part] = []
        self._n = 0

    def add(self, table: str, df: pd.DataFrame, refs: np.ndarray | None = None) -> None:
        """Buffer rows of ``table`` (private columns already set). ``refs``: a month per row kept as the part's
        ref range (claim_lines: the month of their claim)."""
        if not len(df):
            return
        col = PARTITION_COLUMNS[table]
        if col is None:
            self.buffers[(table, None)].append(to_arrow(df))
        else:
            months = months_of(df[col]) if col in df.columns else np.full(len(df), NO_MONTH, dtype=object)
            for month in pd.unique(months):
                mask = months == month
                sub = df[mask] if not mask.all() else df
                self.buffers[(table, str(month))].append(to_arrow(sub))
                if refs is not None:
                    self.refs[(table, str(month))].update(pd.unique(refs[mask]).tolist())
        self.buffered += len(df)
        if self.buffered >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        folders = set()
        for (table, month), chunks in self.buffers.items():
            if month is not None and month != NO_MONTH and not MONTH_PATTERN.fullmatch(month):
                raise RecoupError(f"internal: bad partition month {month!r}")
            data = pa.concat_tables(chunks, promote_options="permissive") if len(chunks) > 1 else chunks[0]
            self._n += 1
            rel = part_relpath(table, month, self.ingest, self._n)
            final = self.store / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = staged(final)
            pq.write_table(data, tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(tmp.parent)
            refs = sorted(self.refs.get((table, month), ()))
            self.parts.append(
                Part(
                    rel, table, month, data.num_rows, self.ingest, refs[0] if refs else None, refs[-1] if refs else None
                )
            )
        for folder in folders:
            fsync_dir(folder)
        self.buffers.clear()
        self.refs.clear()
        self.buffered = 0

    def publish(self) -> None:
        """Rename the staged parts to their final names (after the manifest commit)."""
        folders = set()
        for p in self.parts:
            final = self.store / p.file
            tmp = staged(final)
            if tmp.exists():
                os.replace(tmp, final)
            folders.add(final.parent)
        for folder in folders:
            fsync_dir(folder)

    def discard(self) -> None:
        self.buffers.clear()
        for p in self.parts:
            staged(self.store / p.file).unlink(missing_ok=True)
        self.parts.clear()
