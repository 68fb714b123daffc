"""Reading and checking a claims history: files -> typed DataFrames, every problem collected.

A *claims history directory* holds ``claims``, ``claim_lines`` and optionally ``coverage``,
``providers`` and ``recoupments``, each as ``NAME.csv`` or ``NAME.parquet`` (docs/contract.md).
``load_history`` returns typed DataFrames:

- identifiers and codes as pandas strings; enums as categoricals with fixed levels;
- dates as ``datetime64[s]``; money and units as ``float64``;
- lists (diagnosis codes, modifiers, diagnosis pointers) as Arrow list columns.

Every problem of a file is collected into one :class:`ContractError` that names the file,
the row numbers (1-based data rows; CSV line = row + 1), the column and what was expected.
The rules themselves (patterns, bounds, messages) are in ``features/contract/schema.py``; both check paths
of a column (row-wise for small tables, vectorized for large ones) read them from there.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import warnings
from pathlib import Path
from typing import Literal, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract.bounds import MAX_POINTER
from features.contract.schema import (
    CAUSES,
    CLAIM_WITHOUT_LINES,
    COVERAGE_END_BEFORE_START,
    DATE_PATTERN,
    DATETIME_PATTERN,
    DUPLICATE_CLAIM_ID,
    DUPLICATE_LINE_NUMBER,
    DUPLICATE_NPI,
    FALSE_TEXTS,
    LINE_WITHOUT_CLAIM,
    LIST_ITEM_PATTERNS,
    LOWERED_ENUMS,
    MISSING_COLUMN,
    NOT_A_DIRECTORY,
    NPI_PATTERN,
    OPTIONAL_TABLES,
    PAID_BEFORE_SUBMITTED,
    PLAIN_DECIMAL_PATTERN,
    POINTER_PATTERN,
    POS_PATTERN,
    POS_SHORT_PATTERN,
    PROCEDURE_PATTERN,
    RECOUPMENT_WITHOUT_CLAIM,
    REFUND_MISSING,
    REFUND_WITHOUT_FINDING,
    REFUND_OUTCOMES,
    REJECTED_COLUMNS,
    REJECTED_WITHOUT_LINES,
    REQUIRED_TABLES,
    REVIEW_WITHOUT_CLAIM,
    TABLE_EXTENSIONS,
    TABLES,
    TRUE_TEXTS,
    UNKNOWN_CARC,
    Column,
    ContractError,
    History,
    Problem,
    blank_value,
    causes_from_carcs,
    expected,
    list_items_expected,
    missing_file,
    missing_table,
    too_few,
    too_long,
    too_many,
    unknown_carcs,
    unreadable_file,
)
from features.errors import RecoupError

log = logging.getLogger(__name__)


def empty_table(table: str) -> pd.DataFrame:
    """An empty, correctly typed DataFrame of a contract table."""
    cols = {c.name: pd.Series([], dtype="string") for c in TABLES[table]}
    typed, problems, _ = validate_table(pd.DataFrame(cols), table, f"{table} (empty)")
    assert not problems
    return typed


def _find_file(directory: Path, table: str) -> Path | None:
    """The file of ``table`` in a history directory; a table present in two forms is an error (which
    one is current cannot be known, so none is picked)."""
    found = [p for p in (directory / f"{table}{ext}" for ext in TABLE_EXTENSIONS) if p.exists()]
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise RecoupError(
            f"{directory} has both {names}: keep one file per table (which one is current is "
            f"not known, so none is read)"
        )
    return found[0] if found else None


def _csv_header(path: Path) -> list[str]:
    import csv
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh), [])


def read_table_file(path: Path) -> pd.DataFrame:
    """Read one contract file as raw columns (CSV: all text, empty cells as ''; header names stripped)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        df = pq.read_table(path).to_pandas(
            ignore_metadata=True,
            types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None,
        )
    else:
        import pyarrow.csv as pcsv

        header = _csv_header(path)
        if not header:
            raise ValueError("empty file, expected a header row")
        tbl = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(encoding="utf8"),
            parse_options=pcsv.ParseOptions(newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        df = tbl.to_pandas()
    df.columns = [str(c).strip() for c in df.columns]
    return df


class NotAHistoryError(ContractError):
    """The path given as a history is no folder: one line that says so (missing, or a file)."""

    def __init__(self, directory: Path):
        self.problems = [Problem(str(directory), "-", NOT_A_DIRECTORY)]
        what = "is a file, not a folder" if directory.exists() else "does not exist"
        RecoupError.__init__(
            self,
            f"{directory}: {what}; expected a claims history directory (`recoup generate`, `recoup demo`) "
            "or a claims store (`recoup ingest`)",
        )


@overload
def load_history(
    directory: str | Path, *, require_recoupments: bool = ..., max_shown: int = ..., skip_invalid: Literal[False] = ...
) -> History: ...


@overload
def load_history(
    directory: str | Path, *, require_recoupments: bool = ..., max_shown: int = ..., skip_invalid: Literal[True]
) -> tuple[History, pd.DataFrame]: ...


@overload
def load_history(
    directory: str | Path, *, require_recoupments: bool = ..., max_shown: int = ..., skip_invalid: bool
) -> History | tuple[History, pd.DataFrame]: ...


def load_history(
    directory: str | Path,
    *,
    require_recoupments: bool = False,
    max_shown: int = 20,
    skip_invalid: bool = False,
) -> History | tuple[History, pd.DataFrame]:
    """Load and validate a claims history directory; raise :class:`ContractError` on any problem.

    With ``skip_invalid`` the claims that break the contract are set aside instead: returns (history of
    the valid claims, rejected), ``rejected`` having :data:`REJECTED_COLUMNS` (see :func:`_set_aside`).
    Problems that are not about rows (a missing file or required column, an unreadable file) still raise.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotAHistoryError(directory)
    if (directory / "manifest.sqlite").is_file():  # a claims store (docs/store.md): its contract view
        return _load_store(directory, require_recoupments, max_shown, skip_invalid)
    needed = REQUIRED_TABLES + (("recoupments",) if require_recoupments else ())
    typed, files, by_table, raw_ids = _read_tables(directory, needed, keep_ids=skip_invalid)
    problems = [p for probs in by_table.values() for p in probs]
    problems.extend(check_relations(typed, files))
    if problems and skip_invalid:
        history, rejected = _set_aside(directory, typed, by_table, raw_ids)
        log.warning("%d claim(s) break the data contract and are listed as rejected", len(rejected))
        return history, rejected
    if problems:
        raise ContractError(problems, max_shown=max_shown)
    history = History(
        claims=typed["claims"],
        claim_lines=typed["claim_lines"],
        coverage=typed["coverage"],
        providers=typed["providers"],
        recoupments=typed["recoupments"],
        source=str(directory),
        reviews=typed["reviews"],
    )
    return (history, pd.DataFrame(columns=REJECTED_COLUMNS)) if skip_invalid else history


def _load_store(
    directory: Path, require_recoupments: bool, max_shown: int, skip_invalid: bool
) -> History | tuple[History, pd.DataFrame]:
    """A claims store read as a History (a store holds only valid claims: nothing is ever set aside)."""
    from features.store.read import read_store

    history = read_store(directory, max_shown=max_shown)
    if require_recoupments and history.recoupments is None:
        raise ContractError([Problem(str(directory), "-", missing_table("recoupments"))])
    return (history, pd.DataFrame(columns=REJECTED_COLUMNS)) if skip_invalid else history


def _read_tables(
    directory: Path, needed: tuple[str, ...], keep_ids: bool = False
) -> tuple[dict[str, pd.DataFrame | None], dict[str, str], dict[str, list[Problem]], dict[str, pd.DataFrame]]:
    """Find, read and type every table of a history directory.

    Returns (typed tables, file name per table, problems per table, and when ``keep_ids`` the raw
    ``claim_id`` column per table, as a frame). A missing table in ``needed`` or an unreadable file is a
    problem without rows."""
    typed: dict[str, pd.DataFrame | None] = {}
    files: dict[str, str] = {}
    problems: dict[str, list[Problem]] = {}
    raw_ids: dict[str, pd.DataFrame] = {}
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        typed[table] = None
        problems[table] = []
        path = _find_file(directory, table)
        if path is None:
            if table in needed:
                problems[table].append(Problem(str(directory / f"{table}.csv"), "-", missing_file(table)))
            continue
        try:
            raw = read_table_file(path)
        except Exception as exc:  # unreadable file: report, keep collecting
            problems[table].append(Problem(str(path), "-", unreadable_file(exc)))
            continue
        files[table] = path.name
        df, probs, _ = validate_table(raw, table, path.name)
        problems[table].extend(probs)
        typed[table] = df
        if keep_ids:  # only this column of the raw table is kept (converted if rows are set aside)
            raw_ids[table] = raw[["claim_id"]] if "claim_id" in raw.columns else raw.iloc[:, :0]
    return typed, files, problems, raw_ids


def _raw_claim_ids(raw: pd.DataFrame) -> pd.Series:
    if "claim_id" not in raw.columns:
        return pd.Series([""] * len(raw), dtype=object)
    return raw["claim_id"].astype("string").str.strip().fillna("").astype(object)


def _set_aside(
    directory: Path,
    typed: dict[str, pd.DataFrame | None],
    problems: dict[str, list[Problem]],
    raw: dict[str, pd.DataFrame],
) -> tuple[History, pd.DataFrame]:
    """The valid claims of a history, and the rejected ones with the contract's reason.

    ``rejected`` has ``claim_id``, ``submitted_date`` (NaT when unreadable) and ``reject_reason`` (the
    contract's wording, with the file and row). A claim is rejected when its row in ``claims`` breaks a
    rule, when one of its lines does, when its id is duplicated, or when it has no valid line. Invalid
    rows of ``coverage``, ``providers`` and ``recoupments`` are dropped with a warning (they are context,
    not input claims). Problems that are not about rows raise :class:`ContractError`.
    """
    fatal: list[Problem] = []
    bad_rows: dict[str, dict[int, list[str]]] = {}
    for table, probs in problems.items():
        rows: dict[int, list[str]] = {}
        for p in probs:
            if not p.rows:
                fatal.append(p)
                continue
            for r in p.rows:
                rows.setdefault(r - 1, []).append(p.row_reason(r))
        bad_rows[table] = rows
    if fatal:
        raise ContractError(fatal)
    claims, lines = typed["claims"], typed["claim_lines"]
    assert claims is not None and lines is not None
    reasons: dict[int, list[str]] = {i: list(v) for i, v in bad_rows["claims"].items()}
    raw_ids = {table: _raw_claim_ids(frame) for table, frame in raw.items()}
    ids = raw_ids["claims"]
    # lines: invalid line -> its claim is rejected; lines of unknown claims are dropped
    pos_of = pd.Series(np.arange(len(claims)), index=pd.Index(ids)).groupby(level=0).first()
    line_ids = raw_ids["claim_lines"]
    line_pos = pos_of.reindex(line_ids.to_numpy()).to_numpy()
    for li, msgs in bad_rows["claim_lines"].items():
        if not np.isnan(line_pos[li]):
            reasons.setdefault(int(line_pos[li]), []).extend(msgs)
    orphan = np.isnan(line_pos)
    if orphan.any():
        log.warning("dropping %d line(s) whose claim_id is not in claims", int(orphan.sum()))
    has_line = np.zeros(len(claims), dtype=bool)
    has_line[line_pos[~orphan].astype(int)] = True
    for i in np.flatnonzero(~has_line):
        reasons.setdefault(int(i), []).append(REJECTED_WITHOUT_LINES)
    bad = np.zeros(len(claims), dtype=bool)
    bad[list(reasons)] = True
    keep_ids = ids[~bad]
    keep_lines = ~orphan & _isin(line_ids, keep_ids)  # hashed (np.isin on objects is O(n*m))
    ctx: dict[str, pd.DataFrame | None] = {}
    for table in OPTIONAL_TABLES:
        df = typed[table]
        if df is None:
            ctx[table] = None
            continue
        ok = np.ones(len(df), dtype=bool)
        ok[list(bad_rows[table])] = False
        if (~ok).any():
            log.warning("dropping %d invalid row(s) of %s", int((~ok).sum()), table)
        if table in ("recoupments", "reviews"):
            ok &= _isin(raw_ids[table], keep_ids)
        ctx[table] = df[ok].reset_index(drop=True)
    history = History(
        claims=claims[~bad].reset_index(drop=True),
        claim_lines=lines[keep_lines].reset_index(drop=True),
        coverage=ctx["coverage"],
        providers=ctx["providers"],
        recoupments=ctx["recoupments"],
        source=str(directory),
        reviews=ctx["reviews"],
    )
    rej_idx = np.flatnonzero(bad)
    rejected = pd.DataFrame(
        {
            "claim_id": ids.to_numpy()[rej_idx],
            "submitted_date": claims["submitted_date"].to_numpy()[rej_idx],
            "reject_reason": ["; ".join(dict.fromkeys(reasons[int(i)])) for i in rej_idx],
        }
    )
    return history, rejected


def _rows(mask: np.ndarray | pd.Series) -> list[int]:
    return (np.flatnonzero(np.asarray(mask)) + 1).tolist()


def _examples(raw: pd.Series, mask: np.ndarray | pd.Series) -> list[str]:
    return [str(v) for v in raw[np.asarray(mask)].head(3).tolist()]


def _blank(s: pd.Series) -> pd.Series:
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return s.isna() | (s.astype("string").str.strip() == "")
    return s.isna()


def _as_str(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_list(s.dtype.pyarrow_dtype):
        return s
    out = s.astype("string").str.strip()
    return out.mask(out == "", pd.NA)


def _to_list(s: pd.Series, item: str) -> pd.Series:
    """Turn a ';'-separated string column (or an existing list column) into an Arrow list column."""
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_list(s.dtype.pyarrow_dtype):
        arr = pa.chunked_array(s.array._pa_array).combine_chunks()
    elif s.dtype == object and s.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
        values = [
            [str(x) for x in v]
            if isinstance(v, (list, tuple, np.ndarray))
            else (
                [] if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "" else str(v).split(";")
            )
            for v in s
        ]
        arr = pa.array(values, type=pa.list_(pa.string()))
    else:
        strs = pa.array(s.astype("string").fillna("").str.strip().to_numpy(dtype=object), type=pa.string())
        arr = pc.split_pattern(strs, ";")
        # "" -> [] rather than [""]
        arr = pc.if_else(pc.equal(strs, ""), pa.scalar([], pa.list_(pa.string())), arr)
    # Flatten (null lists and slicing handled by list_flatten/parent indices), trim items, drop
    # empty items ("E119;" and "E119; ;I10" are lists of 1 and 2 codes), rebuild the offsets.
    n = len(arr)
    values = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr)
    if item == "str" or not pa.types.is_integer(values.type):
        values = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        keep = pc.and_(pc.is_valid(values), pc.not_equal(values, ""))
        keep = pc.fill_null(keep, False)
    else:
        keep = pc.is_valid(values)
    values = pc.filter(values, keep)
    parents = pc.filter(parents, keep).to_numpy(zero_copy_only=False)
    counts = np.bincount(parents, minlength=n) if n else np.zeros(0, dtype=np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    if item == "str":
        out = pa.ListArray.from_arrays(offsets, pc.utf8_upper(values))
        return pd.Series(pd.arrays.ArrowExtensionArray(out), index=s.index)
    if pa.types.is_integer(values.type):
        in_range = pc.and_(pc.greater_equal(values, -1), pc.less_equal(values, 99))
        ints = pc.cast(pc.if_else(in_range, values, -1), pa.int16())
    else:
        ok = pc.match_substring_regex(values, f"^(?:{POINTER_PATTERN.pattern})$")
        ints = pc.if_else(ok, pc.cast(pc.if_else(ok, values, "0"), pa.int16()), pa.scalar(-1, pa.int16()))
    out = pa.ListArray.from_arrays(offsets, ints)
    return pd.Series(pd.arrays.ArrowExtensionArray(out), index=s.index)


def _over_chars(s: pd.Series, n: int) -> np.ndarray | None:
    """The rows of a string column longer than ``n`` characters, or None when there is none (via Arrow:
    one pass over the lengths, the mask only when needed)."""
    lengths = pc.utf8_length(_arrow_str(s))
    if (pc.max(lengths).as_py() or 0) <= n:
        return None
    return np.asarray(pc.fill_null(pc.greater(lengths, n), False).to_numpy(zero_copy_only=False), dtype=bool)


def _vector_datetime(src: pd.Series, index: pd.Index) -> tuple[pd.Series, pd.Series]:
    """A datetime column (a date, or a UTC time to the second) as naive UTC ``datetime64[s]``, and its bad rows.
    Datetimes are taken as they are (with a zone: converted to UTC; fractions of a second dropped)."""
    if pd.api.types.is_datetime64_any_dtype(src.dtype):
        d = pd.to_datetime(src)
        if getattr(d.dt, "tz", None) is not None:
            d = d.dt.tz_convert("UTC").dt.tz_localize(None)
        return d.dt.floor("s").astype("datetime64[s]"), pd.Series(False, index=index)
    txt = _as_str(src)
    parts = txt.str.extract(f"^(?:{DATETIME_PATTERN.pattern})$")
    time = parts[3].fillna("00") + ":" + parts[4].fillna("00") + ":" + parts[5].fillna("00")
    iso = parts[0] + "-" + parts[1] + "-" + parts[2] + "T" + time
    s = pd.to_datetime(iso, format="%Y-%m-%dT%H:%M:%S", errors="coerce")
    clock = pd.to_numeric(parts[3], errors="coerce").gt(23) | pd.to_numeric(parts[4], errors="coerce").gt(59)
    clock |= pd.to_numeric(parts[5], errors="coerce").gt(59)  # strptime takes a leap second (60)
    s = s.mask(clock.fillna(False).to_numpy(dtype=bool))
    # ASCII digits only (the pattern's [0-9] admits no other, but pandas would)
    bad = txt.notna() & (s.isna() | ~txt.str.isascii().fillna(True))
    return s.astype("datetime64[s]"), bad


def _vector_column(col: Column, src: pd.Series, index: pd.Index, file: str, problems: list[Problem]) -> pd.Series:
    """Type and check one column with vectorized pandas/pyarrow (any size, any input dtype)."""
    raw_index = index
    want = expected(col)
    blank = (
        _blank(src)
        if not (isinstance(src.dtype, pd.ArrowDtype) and pa.types.is_list(src.dtype.pyarrow_dtype))
        else src.isna()
    )
    if col.required and col.kind not in ("list_str",) and blank.any():
        problems.append(Problem(file, col.name, blank_value(col), _rows(blank)))
    k = col.kind
    if k in ("id", "str"):
        s = _as_str(src)
        if col.max_chars is not None:
            bad = _over_chars(s, col.max_chars)
            if bad is not None:
                problems.append(Problem(file, col.name, too_long(col), _rows(bad)))
    elif k == "npi":
        s = _as_str(src)
        bad = s.notna() & ~s.str.fullmatch(NPI_PATTERN.pattern).fillna(False)
        if bad.any():
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
    elif k == "pos":
        s = _as_str(src)
        s = s.where(~s.str.fullmatch(POS_SHORT_PATTERN.pattern).fillna(False), "0" + s)
        bad = s.notna() & ~s.str.fullmatch(POS_PATTERN.pattern).fillna(False)
        if bad.any():
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
        s = s.astype("category")
    elif k == "procedure":
        s = _as_str(src).str.upper()
        bad = s.notna() & ~s.str.fullmatch(PROCEDURE_PATTERN.pattern).fillna(False)
        if bad.any():
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
    elif k == "enum":
        s = _as_str(src)
        if col.name in LOWERED_ENUMS:
            s = s.str.lower()
        bad = s.notna() & ~s.isin(col.levels)
        if bad.any():
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
        s = pd.Categorical(s.where(~bad, pd.NA), categories=list(col.levels))
        s = pd.Series(s, index=raw_index)
    elif k == "date":
        if pd.api.types.is_datetime64_any_dtype(src.dtype):
            s = pd.to_datetime(src).astype("datetime64[s]")
            bad = pd.Series(False, index=raw_index)
        else:
            txt = _as_str(src)
            s = pd.to_datetime(txt, format="%Y-%m-%d", errors="coerce")
            # pandas reads full-width and other Unicode digits: ASCII only (signed years fail the range)
            bad = txt.notna() & (s.isna() | ~txt.str.isascii().fillna(True))
            s = s.astype("datetime64[s]")
        first, last = col.date_range
        bad |= s.notna() & ((s < first) | (s > last))
        if bad.any():
            s = s.mask(bad)
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
    elif k == "datetime":
        s, bad = _vector_datetime(src, raw_index)
        first, last = col.date_range
        bad |= s.notna() & ((s < first) | (s >= last + np.timedelta64(1, "D")))
        if bad.any():
            s = s.mask(bad)
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
    elif k in ("money", "money_pos", "units", "int_pos"):
        if pd.api.types.is_bool_dtype(src.dtype):  # true/false is not a number (not 1/0)
            txt = src.astype(object).map(lambda v: None if v is None or v is pd.NA else str(v))
            txt = _as_str(txt)
        else:
            txt = src if pd.api.types.is_numeric_dtype(src.dtype) else _as_str(src)
        s = pd.to_numeric(txt, errors="coerce").astype("float64")
        notnum = txt.notna() & s.isna()
        too_big = s > col.upper  # inf included
        if k == "money":
            bad = notnum | (s < 0) | too_big
        elif k == "int_pos":
            bad = notnum | (s < 1) | (s.notna() & (s % 1 != 0)) | too_big
        else:
            bad = notnum | (s <= 0) | too_big
        if bad.any():
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
        if k == "int_pos":  # invalid or missing -> 0 (already reported)
            s = s.where(~bad, np.nan).fillna(0).astype("int32")
    elif k == "bool":
        if pd.api.types.is_bool_dtype(src.dtype):
            s = src.fillna(False).astype(bool)
        else:
            txt = _as_str(src).str.lower().fillna("")
            bad = ~txt.isin(TRUE_TEXTS | FALSE_TEXTS)
            if bad.any():
                problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
            s = txt.isin(TRUE_TEXTS)
    elif k == "list_str":
        s = _to_list(src, "str")
        lengths = s.list.len().fillna(0)
        if col.min_items and col.required:
            bad = lengths < col.min_items
            if bad.any():
                problems.append(Problem(file, col.name, too_few(col), _rows(bad)))
        if col.max_items is not None:
            bad = lengths > col.max_items
            if bad.any():
                problems.append(Problem(file, col.name, too_many(col), _rows(bad)))
        flat = s.list.flatten()
        flat_bad = ~flat.str.fullmatch(LIST_ITEM_PATTERNS[col.name].pattern).fillna(False)
        bad = pd.Series(False, index=raw_index)
        if flat_bad.any():
            bad.loc[flat.index[flat_bad.to_numpy()].unique()] = True
        if bad.any():
            problems.append(Problem(file, col.name, list_items_expected(col), _rows(bad), _examples(src, bad)))
    elif k == "list_int":
        s = _to_list(src, "int")
        if col.max_items is not None:
            bad = s.list.len().fillna(0) > col.max_items
            if bad.any():
                problems.append(Problem(file, col.name, too_many(col), _rows(bad)))
        flat = s.list.flatten()
        flat_bad = (flat < 1) | (flat > MAX_POINTER)
        bad = pd.Series(False, index=raw_index)
        if flat_bad.any():
            bad.loc[flat.index[flat_bad.to_numpy()].unique()] = True
        if bad.any():
            problems.append(Problem(file, col.name, want, _rows(bad), _examples(src, bad)))
    else:  # pragma: no cover - spec typo guard
        raise AssertionError(k)
    return pd.Series(s, index=raw_index) if not isinstance(s, pd.Series) else s


# --------------------------------------------------------------------------------------
# Row-wise checker for small tables (one claim from the scoring service)
# --------------------------------------------------------------------------------------
#
# The vectorized checks above cost ~1 ms of pandas/pyarrow overhead per column however small
# the frame is. For a few rows, :func:`_fast_column` checks and types a column value by value
# in plain Python and builds the typed array in one go with pre-built dtypes. It handles the
# inputs of the service and of CSV-like text frames (object / string columns holding ``str``,
# ``int``, ``float``, ``bool``, ``None``, lists of codes) and only values whose meaning it is
# sure of; anything else (another dtype, non-ASCII text, an exponent, a date not shaped
# YYYY-MM-DD, ...) raises :class:`_Odd` and that column goes through :func:`_vector_column`.
# tests/features/contract/test_check_paths.py proves both paths give equal frames and problems.

#: tables of at most this many rows are checked row-wise. The row-wise path costs ~23 us per row and
#: the vectorized one a fixed ~25 ms plus less per row; measured on claims tables from the service: 100
#: claims 2.9 vs 30 ms, 1,000 claims 23 vs 48 ms. Above this, files of a history (millions of rows) go
#: column-wise.
FAST_PATH_MAX_ROWS = 2048


class _Odd(Exception):
    """A value the row-wise checker does not handle: its column takes the vectorized path."""


_STRING = pd.StringDtype(na_value=pd.NA)  # what ``.astype("string")`` gives
_DT_NAT = np.iinfo(np.int64).min
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_ENUM_DTYPES: dict[tuple[str, ...], pd.CategoricalDtype] = {}
_TRUE_FALSE = TRUE_TEXTS | FALSE_TEXTS


def _enum_dtype(levels: tuple[str, ...]) -> pd.CategoricalDtype:
    dt = _ENUM_DTYPES.get(levels)
    if dt is None:
        dt = _ENUM_DTYPES[levels] = pd.CategoricalDtype(list(levels))
    return dt


def _text(v: object) -> str | None:
    """A raw cell as ``_as_str`` sees it: stripped text, or None for missing/blank; :class:`_Odd` if unsure."""
    t = type(v)
    if t is str:
        if not v.isascii():  # type: ignore[attr-defined]
            raise _Odd
        return v.strip() or None  # type: ignore[attr-defined]
    if v is None or v is pd.NA:
        return None
    if t is float:
        if v != v:  # NaN
            return None
        if v in (np.inf, -np.inf):
            raise _Odd
        return repr(v)
    if t is int or t is bool:
        return str(v)
    raise _Odd


def _texts(vals: list) -> list[str | None]:
    """``[_text(v) for v in vals]``; a column of plain ASCII ``str`` (the usual case) in one pass."""
    if all(type(v) is str for v in vals) and "".join(vals).isascii():
        return [v.strip() or None for v in vals]
    return [_text(v) for v in vals]


def _number(text: str) -> float:
    """``pd.to_numeric`` of one plain decimal text (NaN if not a number); :class:`_Odd` if unsure."""
    if not PLAIN_DECIMAL_PATTERN.fullmatch(text):  # exponents, inf, nan, "1,5", ...: let pandas decide
        raise _Odd
    if len(text) > 15 and sum(ch.isdigit() for ch in text) > 15:  # beyond exact decimal -> double for every parser
        raise _Odd
    x = float(text)
    if x == 0 and text[0] == "-":  # "-0" is int 0 for pandas, -0.0 for float()
        raise _Odd
    return x


def _list_items(v: object, has_lists: bool) -> list[str]:
    """A list cell as ``_to_list`` sees it: trimmed, non-empty items (not yet upper-cased)."""
    t = type(v)
    if t is list or t is tuple:
        items = []
        for x in v:  # type: ignore[attr-defined]
            tx = type(x)
            if tx is str:
                if not x.isascii():
                    raise _Odd
            elif tx is not int:
                raise _Odd
            items.append(str(x))
    elif t is str:
        if not v.isascii():  # type: ignore[attr-defined]
            raise _Odd
        items = v.split(";")  # type: ignore[attr-defined]
    elif v is None or (t is float and v != v):
        return []
    elif v is pd.NA:
        raise _Odd  # "<NA>" next to lists, missing otherwise: let pandas decide
    elif t is int or t is float or t is bool:
        text = str(v)
        if has_lists and text.strip() == "":
            return []
        items = text.split(";")
    else:
        raise _Odd
    out = []
    for x in items:
        x = x.strip()
        if x:
            out.append(x)
    return out


def _fast_column(col: Column, vals: list, file: str, problems: list[Problem]):
    """Type and check one column row by row; returns the typed array. Raises :class:`_Odd`."""
    k = col.kind
    name = col.name
    probs: list[Problem] = []

    def report(bad: list[int], message: str, examples: bool = True) -> None:
        if bad:
            probs.append(
                Problem(file, name, message, [i + 1 for i in bad], [str(vals[i]) for i in bad[:3]] if examples else [])
            )

    if k in ("list_str", "list_int"):
        has_lists = any(type(v) is list or type(v) is tuple for v in vals)
        lists = [_list_items(v, has_lists) for v in vals]
        offsets = [0]
        flat: list = []
        bad: list[int] = []
        if k == "list_str":
            lists = [[x.upper() for x in lst] for lst in lists]
            if col.min_items and col.required:
                report(
                    [i for i, lst in enumerate(lists) if len(lst) < col.min_items],
                    too_few(col),
                    examples=False,
                )
            if col.max_items is not None:
                report([i for i, lst in enumerate(lists) if len(lst) > col.max_items], too_many(col), examples=False)
            match = LIST_ITEM_PATTERNS[name].fullmatch
            for i, lst in enumerate(lists):
                flat.extend(lst)
                offsets.append(len(flat))
                if any(not match(x) for x in lst):
                    bad.append(i)
            report(bad, list_items_expected(col))
            arr = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.string()))
        else:
            if col.max_items is not None:
                report([i for i, lst in enumerate(lists) if len(lst) > col.max_items], too_many(col), examples=False)
            pointer = POINTER_PATTERN.fullmatch
            for i, lst in enumerate(lists):
                ints = [int(x) if pointer(x) else -1 for x in lst]
                flat.extend(ints)
                offsets.append(len(flat))
                if any(x < 1 or x > MAX_POINTER for x in ints):
                    bad.append(i)
            report(bad, expected(col))
            arr = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.int16()))
        problems.extend(probs)
        return pd.arrays.ArrowExtensionArray(arr)

    texts = _texts(vals)
    want = expected(col)
    if col.required and k != "list_str":
        report([i for i, t in enumerate(texts) if t is None], blank_value(col), examples=False)
    if k in ("id", "str"):
        if col.max_chars is not None:
            n_max = col.max_chars
            report([i for i, t in enumerate(texts) if t is not None and len(t) > n_max], too_long(col), examples=False)
        out = _string_array(texts)
    elif k == "npi":
        match = NPI_PATTERN.fullmatch
        report([i for i, t in enumerate(texts) if t is not None and not match(t)], want)
        out = _string_array(texts)
    elif k == "pos":
        one = POS_SHORT_PATTERN.fullmatch
        texts = ["0" + t if t is not None and one(t) else t for t in texts]
        match = POS_PATTERN.fullmatch
        report([i for i, t in enumerate(texts) if t is not None and not match(t)], want)
        cats = sorted({t for t in texts if t is not None})
        code = {c: j for j, c in enumerate(cats)}
        dtype = pd.CategoricalDtype(pd.Index(cats, dtype=_STRING), ordered=False)
        out = pd.Categorical.from_codes([-1 if t is None else code[t] for t in texts], dtype=dtype)
    elif k == "procedure":
        texts = [None if t is None else t.upper() for t in texts]
        match = PROCEDURE_PATTERN.fullmatch
        report([i for i, t in enumerate(texts) if t is not None and not match(t)], want)
        out = _string_array(texts)
    elif k == "enum":
        if name in LOWERED_ENUMS:
            texts = [None if t is None else t.lower() for t in texts]
        levels = col.levels
        dtype = _enum_dtype(levels)
        bad = [i for i, t in enumerate(texts) if t is not None and t not in levels]
        report(bad, want)
        code = {c: j for j, c in enumerate(levels)}
        out = pd.Categorical.from_codes([code.get(t, -1) if t is not None else -1 for t in texts], dtype=dtype)
    elif k in ("date", "datetime"):
        # one loop for both: a date's pattern has three groups, a datetime's six (its time optional: midnight)
        match = (DATE_PATTERN if k == "date" else DATETIME_PATTERN).fullmatch
        timed = k == "datetime"
        first, last = col.years
        secs = []
        bad = []
        for i, t in enumerate(texts):
            if t is None:
                secs.append(_DT_NAT)
                continue
            m = match(t)
            if m is None:
                raise _Odd  # pandas accepts e.g. 2024-1-5 (and words a bad time): let the vectorized path decide
            y, mo, d = int(m[1]), int(m[2]), int(m[3])  # ASCII digits (the pattern's [0-9])
            hh, mm, ss = (int(m[j]) if m[j] is not None else 0 for j in (4, 5, 6)) if timed else (0, 0, 0)
            if not (first <= y <= last) or not (1 <= mo <= 12) or not (1 <= d <= 31) or hh > 23 or mm > 59 or ss > 59:
                bad.append(i)
                secs.append(_DT_NAT)
                continue
            try:
                day = _dt.date(y, mo, d).toordinal() - _EPOCH_ORDINAL
            except ValueError:  # 2024-02-30
                bad.append(i)
                secs.append(_DT_NAT)
                continue
            secs.append(day * 86400 + hh * 3600 + mm * 60 + ss)
        report(bad, want)
        out = np.array(secs, dtype=np.int64).view("datetime64[s]")
    elif k in ("money", "money_pos", "units", "int_pos"):
        nums = [np.nan if t is None else _number(t) for t in texts]
        upper = col.upper
        bad = []
        for i, (t, x) in enumerate(zip(texts, nums)):
            if t is None:
                continue
            if x != x or x > upper:  # not a number, or above the column's maximum
                bad.append(i)
            elif k == "money":
                if x < 0:
                    bad.append(i)
            elif k == "int_pos":
                if x < 1 or x % 1 != 0:
                    bad.append(i)
            elif x <= 0:
                bad.append(i)
        report(bad, want)
        if k == "int_pos":
            badset = set(bad)
            ints = [0 if (i in badset or x != x) else int(x) for i, x in enumerate(nums)]
            out = np.array(ints, dtype=np.int32)
        else:
            out = np.array(nums, dtype=np.float64)
    elif k == "bool":
        low = ["" if t is None else t.lower() for t in texts]
        report([i for i, t in enumerate(low) if t not in _TRUE_FALSE], want)
        out = np.array([t in TRUE_TEXTS for t in low], dtype=bool)
    else:  # pragma: no cover - spec typo guard
        raise AssertionError(k)
    problems.extend(probs)
    return out


def _string_array(texts: list) -> pd.arrays.ArrowStringArray:
    """``pd.array(texts, dtype="string")``, faster."""
    return pd.arrays.ArrowStringArray(pa.array(texts, pa.large_string()))


def _fast_ok(src: pd.Series) -> bool:
    dt = src.dtype
    return dt == object or isinstance(dt, pd.StringDtype)  # noqa: E721 (a dtype, not a type)


def _validate(
    raw: pd.DataFrame, table: str, file: str, quiet: bool = False
) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    """:func:`validate_table` without emitting its warnings (they are returned). ``quiet`` silences
    pandas' own warnings in the vectorized checks (as ``validate_frames`` always did).

    Each column of a table of at most :data:`FAST_PATH_MAX_ROWS` rows is checked row-wise
    (:func:`_fast_column`), unless a value is one it does not handle; the rest column-wise
    (:func:`_vector_column`). The table rules are one implementation for every size (:func:`_table_rules`).
    """
    spec = TABLES[table]
    problems: list[Problem] = []
    notes: list[str] = []
    known = _KNOWN[table]
    columns = raw.columns
    extra = [c for c in columns if c not in known]
    if extra:
        notes.append(f"{file}: ignoring unknown column(s) {', '.join(map(str, extra))}")
    n = len(raw)
    fast = 0 < n <= FAST_PATH_MAX_ROWS
    if not fast:
        return _validate_vectorized(raw.reset_index(drop=True), spec, table, file, problems, notes, quiet)
    idx = raw.index
    if not (type(idx) is pd.RangeIndex and idx.start == 0 and idx.step == 1):
        raw = raw.reset_index(drop=True)
    index = raw.index
    # all-object frames (the service's): every column's values from one 2-D array
    matrix = None
    if columns.is_unique and all(dt == object for dt in raw.dtypes):  # noqa: E721 (dtypes)
        matrix = raw.to_numpy(dtype=object).T
        pos = {c: j for j, c in enumerate(columns)}
    present = set(columns)
    out: dict[str, object] = {}
    for col in spec:
        name = col.name
        if name not in present:
            if col.required:
                problems.append(Problem(file, name, MISSING_COLUMN))
                continue
            src = None
            vals: list | None = [None] * n
        elif matrix is not None:
            src = None
            vals = matrix[pos[name]].tolist()
        else:
            src = raw[name]
            vals = src.tolist() if isinstance(src, pd.Series) and _fast_ok(src) else None
        if vals is not None:
            try:
                out[name] = _fast_column(col, vals, file, problems)
                continue
            except _Odd:
                pass
        if src is None:
            src = raw[name] if name in present else pd.Series([pd.NA] * n, dtype="string")
        with _quiet(quiet):
            out[name] = _vector_column(col, src, index, file, problems)
    typed = pd.DataFrame(out, index=index, copy=False)
    with _quiet(quiet):
        problems.extend(_table_rules(typed, table, file, out))
    return typed, problems, notes


def _validate_vectorized(
    raw: pd.DataFrame,
    spec: tuple[Column, ...],
    table: str,
    file: str,
    problems: list[Problem],
    notes: list[str],
    quiet: bool,
) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    out: dict[str, pd.Series] = {}
    n = len(raw)
    with _quiet(quiet):
        for col in spec:
            if col.name not in raw.columns:
                if col.required:
                    problems.append(Problem(file, col.name, MISSING_COLUMN))
                    continue
                src = pd.Series([pd.NA] * n, dtype="string")
            else:
                src = raw[col.name]
            out[col.name] = _vector_column(col, src, raw.index, file, problems)
        typed = pd.DataFrame(out, index=raw.index)
        problems.extend(_table_rules(typed, table, file))
    return typed, problems, notes


def _quiet(quiet: bool):
    """Silence all warnings (pandas' own included) when ``quiet``."""
    return warnings.catch_warnings(action="ignore") if quiet else contextlib.nullcontext()


_KNOWN = {t: frozenset(c.name for c in cols) for t, cols in TABLES.items()}
_REQUIRED = {t: frozenset(c.name for c in cols if c.required) for t, cols in TABLES.items()}


def validate_table(raw: pd.DataFrame, table: str, file: str) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    """Type and check one table. Returns (typed frame, problems, warnings)."""
    typed, problems, notes = _validate(raw, table, file)
    for msg in notes:
        warnings.warn(msg, stacklevel=2)
    return typed, problems, notes


def _table_rules(df: pd.DataFrame, table: str, file: str, typed: dict | None = None) -> list[Problem]:
    """The rules across the rows of one table (unique keys, date order), one implementation for every size:
    Arrow hashing and numpy comparisons cost microseconds on one claim and scale to millions of rows.

    ``typed``: the typed columns of ``df`` as the column checks returned them (saves pandas' column lookups)."""
    problems: list[Problem] = []
    present = set(df.columns)
    if not present.issuperset(_REQUIRED[table]):
        return problems  # a required column is missing (already reported): row rules cannot run
    col = (typed if typed is not None else df).__getitem__
    if table == "claims":
        dup = _duplicated(_codes(_arrow_str(col("claim_id"))))
        if dup.any():
            ids = pd.Series(col("claim_id"))
            problems.append(Problem(file, "claim_id", DUPLICATE_CLAIM_ID, _rows(dup), _examples(ids, dup)))
        bad = _before(col("paid_date"), col("submitted_date"))
        if bad.any():
            problems.append(Problem(file, "paid_date", PAID_BEFORE_SUBMITTED, _rows(bad)))
    elif table == "claim_lines":
        number = np.asarray(col("line_number"), dtype=np.int64)  # >= 0 (an invalid number is 0, reported)
        ids = _codes(_arrow_str(col("claim_id"))).astype(np.int64)
        pair = ids * (int(number.max(initial=0)) + 1) + number
        dup = _duplicated(pair) & (number >= 1)
        if dup.any():
            problems.append(Problem(file, "line_number", DUPLICATE_LINE_NUMBER, _rows(dup)))
    elif table == "coverage":
        bad = _before(df["coverage_end"], df["coverage_start"])
        if bad.any():
            problems.append(Problem(file, "coverage_end", COVERAGE_END_BEFORE_START, _rows(bad)))
    elif table == "providers":
        dup = _duplicated(_codes(_arrow_str(df["npi"])))
        if dup.any():
            problems.append(Problem(file, "npi", DUPLICATE_NPI, _rows(dup), _examples(df["npi"], dup)))
    elif table == "recoupments":
        derived = causes_from_carcs(df["carc"])
        cause = df["cause"].astype("object").where(df["cause"].notna(), derived)
        df["cause"] = pd.Categorical(cause.fillna("other"), categories=list(CAUSES))
    elif table == "reviews":
        problems.extend(_review_rules(df, file))
    return problems


def _review_rules(df: pd.DataFrame, file: str) -> list[Problem]:
    """A refunded review names its amount; only a finding (error_found, refunded) has one; a CARC is a known one."""
    problems: list[Problem] = []
    outcome = df["outcome"].astype("object").to_numpy()
    amount = pd.to_numeric(df["refund_amount"], errors="coerce").fillna(0).to_numpy(dtype=float)
    missing = (outcome == "refunded") & ~(amount > 0)
    if missing.any():
        problems.append(Problem(file, "refund_amount", REFUND_MISSING, _rows(missing)))
    finding = np.isin(outcome.astype(str), REFUND_OUTCOMES)
    stray = ~finding & (amount > 0) & pd.notna(outcome)
    if stray.any():
        problems.append(Problem(file, "refund_amount", REFUND_WITHOUT_FINDING, _rows(stray)))
    unknown = unknown_carcs(df["carc"])
    if unknown.any():
        problems.append(Problem(file, "carc", UNKNOWN_CARC, _rows(unknown), _examples(df["carc"], unknown)))
    return problems


def _codes(values: pa.Array) -> np.ndarray:
    """One integer per row, equal for equal values (missing values equal each other)."""
    return pc.dictionary_encode(values, null_encoding="encode").indices.to_numpy(zero_copy_only=False)


def _duplicated(codes: np.ndarray) -> np.ndarray:
    """Rows whose code (an integer >= 0) occurs more than once (``duplicated(keep=False)``): counted directly
    when the codes are dense (a claim's code and its line numbers), through a hash when they are spread."""
    if not len(codes):
        return np.zeros(0, dtype=bool)
    if int(codes.max()) > 8 * len(codes) + 1024:
        codes = _codes(pa.array(codes))
    return np.bincount(codes)[codes] > 1


def _before(later: pd.Series | np.ndarray, earlier: pd.Series | np.ndarray) -> np.ndarray:
    """Rows where both dates are present and ``later`` is before ``earlier``."""
    a, b = np.asarray(later), np.asarray(earlier)
    return ~np.isnat(a) & ~np.isnat(b) & (a < b)


def _arrow_str(s: pd.Series | pd.api.extensions.ExtensionArray) -> pa.Array:
    """A string column (or a typed column's array) as one Arrow ``large_string`` array."""
    values = s.array if isinstance(s, pd.Series) else s
    data = getattr(values, "_pa_array", None)  # a typed column: its Arrow data as is (no copy, no cast)
    if isinstance(data, pa.ChunkedArray) and data.type == pa.large_string() and data.num_chunks == 1:
        return data.chunk(0)
    if isinstance(values, pd.arrays.ArrowStringArray):
        arr = pa.array(values)
    else:
        arr = pa.array(pd.Series(values).astype("string").to_numpy(dtype=object, na_value=None), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.cast(arr, pa.large_string())


def _isin(values: pd.Series, pool: pd.Series) -> np.ndarray:
    """``values.isin(pool)`` for string columns, via Arrow (pandas' isin on Arrow strings is slow)."""
    return _isin_arrow(_arrow_str(values), _arrow_str(pool))


def _isin_arrow(values: pa.Array, pool: pa.Array) -> np.ndarray:
    hit = pc.is_in(values, value_set=pool)
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def check_relations(tables: dict[str, pd.DataFrame | None], files: dict[str, str] | None = None) -> list[Problem]:
    """Cross-table rules: every line and recoupment refers to a known claim, every claim has a line.

    ``files`` names the file of each table in the messages (default: the table name). One implementation for
    every size (Arrow hash lookups: microseconds on one claim).
    """
    files = files or {}
    ids = {name: df["claim_id"] for name, df in tables.items() if df is not None and "claim_id" in set(df.columns)}
    if "claims" not in ids:
        return []
    text = {name: _arrow_str(col) for name, col in ids.items()}
    problems: list[Problem] = []
    for table, pool, message in (
        ("claim_lines", "claims", LINE_WITHOUT_CLAIM),
        ("claims", "claim_lines", CLAIM_WITHOUT_LINES),
        ("recoupments", "claims", RECOUPMENT_WITHOUT_CLAIM),
        ("reviews", "claims", REVIEW_WITHOUT_CLAIM),
    ):
        if table in text and pool in text:
            unknown = ~_isin_arrow(text[table], text[pool])
            if unknown.any():
                examples = _examples(ids[table], unknown)
                problems.append(Problem(files.get(table, table), "claim_id", message, _rows(unknown), examples))
    return problems


def validate_frames(tables: dict[str, pd.DataFrame | None], *, max_shown: int = 20) -> History:
    """Validate in-memory raw tables (e.g. from the X12 importer or the generator) into a History."""
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame | None] = {}
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        raw = tables.get(table)
        if raw is None:
            if table in REQUIRED_TABLES:
                problems.append(Problem(table, "-", missing_table(table)))
            typed[table] = None
            continue
        df, probs, _ = _validate(raw, table, table, quiet=True)  # warnings not shown
        problems.extend(probs)
        typed[table] = df
    problems.extend(check_relations(typed))
    if problems:
        raise ContractError(problems, max_shown=max_shown)
    return History(**{k: v for k, v in typed.items()})  # type: ignore[arg-type]
