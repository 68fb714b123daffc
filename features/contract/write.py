"""Writing a claims history: typed tables -> contract CSV / Parquet files (docs/contract.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.schema import OPTIONAL_TABLES, REQUIRED_TABLES, TABLE_EXTENSIONS, TABLES, History


def _list_to_text(s: pd.Series) -> pd.Series:
    arr = pa.chunked_array(s.array._pa_array).combine_chunks()
    flat = pc.cast(pc.list_flatten(arr), pa.string())
    parents = pc.list_parent_indices(arr).to_numpy()
    txt = pd.Series(flat.to_numpy(zero_copy_only=False), dtype=object)
    joined = txt.groupby(parents).agg(";".join)
    out = pd.Series("", index=range(len(s)), dtype=object)
    out.iloc[joined.index.to_numpy()] = joined.to_numpy()
    out.index = s.index
    return out


_MONEY_COLUMNS = frozenset(c.name for cols in TABLES.values() for c in cols if c.kind in ("money", "money_pos"))
_DATETIME_COLUMNS = frozenset(c.name for cols in TABLES.values() for c in cols if c.kind == "datetime")


def datetime_text(s: pd.Series) -> pd.Series:
    """A datetime column as contract text: ``YYYY-MM-DD`` at midnight (so a date stays the same text), else the UTC
    time ``YYYY-MM-DDTHH:MM:SSZ``; missing: ``""``."""
    d = pd.to_datetime(s)
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    d = d.dt.floor("s")
    day = d.dt.strftime("%Y-%m-%d")
    full = d.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return full.where(d != d.dt.normalize(), day).fillna("")


def to_contract_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Render a typed table with ISO dates and ';'-joined lists, ready for CSV."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_float_dtype(s.dtype) and c in _MONEY_COLUMNS:
            out[c] = s.round(2)  # cents; written in the shortest exact form (120.5, not 120.50)
        elif pd.api.types.is_datetime64_any_dtype(s.dtype) and c in _DATETIME_COLUMNS:
            out[c] = datetime_text(s)
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[c] = s.dt.strftime("%Y-%m-%d").fillna("")
        elif isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_list(s.dtype.pyarrow_dtype):
            out[c] = _list_to_text(s)
        elif s.dtype == object and len(s) and isinstance(s.iloc[0], (list, tuple)):
            out[c] = s.map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else "")
    return out


def write_history(history: History | dict[str, pd.DataFrame | None], directory: str | Path, fmt: str = "csv") -> Path:
    """Write the tables as ``NAME.csv`` or ``NAME.parquet`` into ``directory``, each file atomically
    (:func:`features.outputs.write_file`). Files of contract tables in another form, or of tables this
    history does not have, are removed: the directory then holds this history and nothing of an older one.
    CSV cells are written as they are (no formula escaping: a history is data for programs, and an
    escape would change the values read back)."""
    from features.outputs import write_csv, write_error, write_parquet

    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be 'csv' or 'parquet'")
    directory = Path(directory)
    tables = history.tables() if isinstance(history, History) else history
    written: set[str] = set()
    for name, df in tables.items():
        if df is None:
            continue
        if fmt == "parquet":
            path = write_parquet(directory / f"{name}.parquet", df)
        else:
            path = write_csv(directory / f"{name}.csv", to_contract_frame(df))
        written.add(path.name)
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        for ext in TABLE_EXTENSIONS:
            old = directory / f"{table}{ext}"
            if old.name not in written and os.path.lexists(old):
                try:
                    old.unlink()
                except OSError as exc:
                    raise write_error(old, exc) from None
    return directory
