"""The data contract: tables, columns, causes, CARC map; load and validate a claims history directory.

A *claims history directory* holds ``claims``, ``claim_lines`` and optionally ``coverage``,
``providers`` and ``recoupments``, each as ``NAME.csv`` or ``NAME.parquet`` (see CONTRACT.md).
``load_history`` returns typed DataFrames:

- identifiers and codes as pandas strings; enums as categoricals with fixed levels;
- dates as ``datetime64[s]``; money and units as ``float64``;
- lists (diagnosis codes, modifiers, diagnosis pointers) as Arrow list columns.

Every problem of a file is collected into one :class:`ContractError` that names the file,
the row numbers (1-based data rows; CSV line = row + 1), the column and what was expected.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import RecoupError

log = logging.getLogger(__name__)

CAUSES: tuple[str, ...] = (
    "duplicate",
    "bundling",
    "units",
    "procedure_coding",
    "medical_necessity",
    "documentation",
    "eligibility",
    "other",
)
PLAN_TYPES: tuple[str, ...] = ("medicare", "medicare_advantage", "medicaid", "commercial")
CLAIM_TYPES: tuple[str, ...] = ("professional", "institutional")
FREQUENCY_CODES: tuple[str, ...] = ("1", "7", "8")
DEFAULT_HORIZON_DAYS = 365

#: CARC (without group prefix) -> cause, per the contract. Anything else maps to ``other``.
CARC_TO_CAUSE: dict[str, str] = {
    **dict.fromkeys(["18"], "duplicate"),
    **dict.fromkeys(["97", "234", "B15"], "bundling"),
    **dict.fromkeys(["151", "119", "35"], "units"),
    **dict.fromkeys(["4", "5", "6", "181", "182", "189"], "procedure_coding"),
    **dict.fromkeys(["11", "50", "167", "146"], "medical_necessity"),
    **dict.fromkeys(["16", "252", "226"], "documentation"),
    **dict.fromkeys(["26", "27", "31", "22", "24", "109", "200"], "eligibility"),
}
#: The usual CARC a payer puts on a recoupment of each cause (used by the generator).
CAUSE_TO_CARC: dict[str, str] = {
    "duplicate": "CO-18",
    "bundling": "CO-97",
    "units": "CO-151",
    "procedure_coding": "CO-4",
    "medical_necessity": "CO-50",
    "documentation": "CO-16",
    "eligibility": "CO-27",
    "other": "CO-45",
}
#: group code prefix of a CARC (``CO-97``, ``CO97``, ``CO 97``): removed before the lookup
_GROUP_PREFIX = r"^(?:CO|PI|OA|PR|CR)[-\s]?(?=[A-Z]?\d)"


def cause_from_carc(carc: str | None) -> str | None:
    """Map a CARC such as ``CO-97``, ``co97`` or ``97`` to its cause; ``None`` for an empty code.

    Group prefixes ``CO``, ``PI``, ``OA``, ``PR`` and ``CR`` are accepted; any code not in
    :data:`CARC_TO_CAUSE` maps to ``other``.
    """
    if carc is None or (np.ndim(carc) == 0 and pd.isna(carc)):
        return None
    text = str(carc).strip().upper()
    if not text:
        return None
    code = re.sub(_GROUP_PREFIX, "", text)
    return CARC_TO_CAUSE.get(code, "other")


def causes_from_carcs(carcs: pd.Series) -> pd.Series:
    """Vectorized :func:`cause_from_carc` over a Series (missing or empty -> ``None``)."""
    s = pd.Series(carcs).astype("string").str.strip().str.upper()
    code = s.str.replace(_GROUP_PREFIX, "", regex=True)
    out = code.map(CARC_TO_CAUSE).astype("object")
    out = out.where(code.isna() | (code == "") | out.notna(), "other")
    out = out.where(~(code.isna() | (code == "")), None)
    return out


# --------------------------------------------------------------------------------------
# Column specifications
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One contract column: its name, kind, whether it is required, and allowed values."""

    name: str
    kind: str  # id | npi | enum | pos | date | money | money_pos | units | int_pos | bool | list_str | list_int | str
    required: bool = True
    levels: tuple[str, ...] = ()
    min_items: int = 0


TABLES: dict[str, tuple[Column, ...]] = {
    "claims": (
        Column("claim_id", "id"),
        Column("patient_id", "id"),
        Column("billing_npi", "npi"),
        Column("rendering_npi", "npi", required=False),
        Column("payer_id", "id"),
        Column("plan_type", "enum", levels=PLAN_TYPES),
        Column("claim_type", "enum", levels=CLAIM_TYPES),
        Column("place_of_service", "pos"),
        Column("frequency_code", "enum", levels=FREQUENCY_CODES),
        Column("submitted_date", "date"),
        Column("total_charge", "money"),
        Column("diagnosis_codes", "list_str", min_items=1),
        Column("prior_auth_number", "str", required=False),
        Column("has_attachment", "bool", required=False),
        Column("paid_date", "date", required=False),
        Column("paid_amount", "money", required=False),
    ),
    "claim_lines": (
        Column("claim_id", "id"),
        Column("line_number", "int_pos"),
        Column("service_date", "date"),
        Column("procedure_code", "procedure"),
        Column("modifiers", "list_str", required=False),
        Column("units", "units"),
        Column("line_charge", "money"),
        Column("diagnosis_pointers", "list_int", required=False),
        Column("line_paid", "money", required=False),
    ),
    "coverage": (
        Column("patient_id", "id"),
        Column("payer_id", "id"),
        Column("plan_type", "enum", levels=PLAN_TYPES),
        Column("coverage_start", "date"),
        Column("coverage_end", "date", required=False),
    ),
    "providers": (
        Column("npi", "npi"),
        Column("taxonomy_code", "str", required=False),
        Column("state", "str", required=False),
    ),
    "recoupments": (
        Column("claim_id", "id"),
        Column("recouped_date", "date"),
        Column("recouped_amount", "money_pos"),
        Column("carc", "str", required=False),
        Column("cause", "enum", required=False, levels=CAUSES),
    ),
}
REQUIRED_TABLES = ("claims", "claim_lines")
OPTIONAL_TABLES = ("coverage", "providers", "recoupments")

_EXPECTED = {
    "id": "a non-empty identifier",
    "npi": "a 10-digit NPI",
    "enum": "one of {levels}",
    "pos": "a 2-digit place-of-service code",
    "date": "a date YYYY-MM-DD",
    "money": "an amount >= 0",
    "money_pos": "an amount > 0",
    "units": "a number > 0",
    "int_pos": "a whole number >= 1",
    "bool": "true/false (also 1/0, yes/no, Y/N)",
    "list_str": "a ';'-separated list of codes",
    "list_int": "a ';'-separated list of whole numbers 1..12",
    "str": "text",
    "procedure": "a CPT or HCPCS code (5 characters: 5 digits, 4 digits + letter, or letter + 4 digits)",
}
_PROCEDURE_RE = r"^(?:\d{4}[0-9A-Z]|[A-Z]\d{4})$"
_ICD10_RE = r"^[A-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?$"
_MODIFIER_RE = r"^[0-9A-Z]{2}$"
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n", ""}


# --------------------------------------------------------------------------------------
# Problems and errors
# --------------------------------------------------------------------------------------


@dataclass
class Problem:
    """Rows of one file that break one rule of one column."""

    file: str
    column: str
    expected: str
    rows: list[int] = field(default_factory=list)  # 1-based data rows
    examples: list[str] = field(default_factory=list)

    def describe(self, max_rows: int = 5) -> str:
        if not self.rows:
            return f"{self.file}: column '{self.column}': expected {self.expected}"
        shown = ", ".join(str(r) for r in self.rows[:max_rows])
        more = f", ... and {len(self.rows) - max_rows} more" if len(self.rows) > max_rows else ""
        ex = ""
        if self.examples:
            ex = " (got " + ", ".join(repr(e) for e in self.examples[:3]) + ")"
        plural = "s" if len(self.rows) > 1 else ""
        return f"{self.file} row{plural} {shown}{more}: column '{self.column}': expected {self.expected}{ex}"


class ContractError(RecoupError, ValueError):
    """A claims history (or one claim) does not follow the data contract."""

    def __init__(self, problems: list[Problem], max_shown: int = 20):
        self.problems = problems
        lines = [p.describe() for p in problems[:max_shown]]
        if len(problems) > max_shown:
            lines.append(f"... and {len(problems) - max_shown} more problems")
        n_rows = sum(max(len(p.rows), 1) for p in problems)
        head = f"{len(problems)} contract problem(s) affecting {n_rows} row(s):"
        super().__init__("\n".join([head, *("  - " + line for line in lines)]))


# --------------------------------------------------------------------------------------
# Typed history
# --------------------------------------------------------------------------------------


@dataclass
class History:
    """The tables of a claims history directory, typed and validated."""

    claims: pd.DataFrame
    claim_lines: pd.DataFrame
    coverage: pd.DataFrame | None = None
    providers: pd.DataFrame | None = None
    recoupments: pd.DataFrame | None = None
    source: str = ""

    def tables(self) -> dict[str, pd.DataFrame | None]:
        return {
            "claims": self.claims,
            "claim_lines": self.claim_lines,
            "coverage": self.coverage,
            "providers": self.providers,
            "recoupments": self.recoupments,
        }

    @property
    def last_date(self) -> pd.Timestamp:
        """The last date seen anywhere in the data (the default training as-of date)."""
        dates = [self.claims["submitted_date"].max(), self.claims["paid_date"].max()]
        if self.recoupments is not None and len(self.recoupments):
            dates.append(self.recoupments["recouped_date"].max())
        return pd.Timestamp(max(d for d in dates if pd.notna(d)))


def empty_table(table: str) -> pd.DataFrame:
    """An empty, correctly typed DataFrame of a contract table."""
    cols = {c.name: pd.Series([], dtype="string") for c in TABLES[table]}
    typed, problems, _ = validate_table(pd.DataFrame(cols), table, f"{table} (empty)")
    assert not problems
    return typed


def _find_file(directory: Path, table: str) -> Path | None:
    for ext in (".parquet", ".csv", ".csv.gz"):
        p = directory / f"{table}{ext}"
        if p.exists():
            return p
    return None


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


def load_history(
    directory: str | Path,
    *,
    require_recoupments: bool = False,
    max_shown: int = 20,
) -> History:
    """Load and validate a claims history directory; raise :class:`ContractError` on any problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ContractError([Problem(str(directory), "-", "a claims history directory")])
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame | None] = {}
    files: dict[str, str] = {}
    needed = REQUIRED_TABLES + (("recoupments",) if require_recoupments else ())
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        path = _find_file(directory, table)
        if path is None:
            if table in needed:
                problems.append(
                    Problem(str(directory / f"{table}.csv"), "-", f"a {table} file (.csv or .parquet)")
                )
            typed[table] = None
            continue
        try:
            raw = read_table_file(path)
        except Exception as exc:  # unreadable file: report, keep collecting
            problems.append(Problem(str(path), "-", f"a readable CSV/Parquet file ({exc})"))
            typed[table] = None
            continue
        files[table] = path.name
        df, probs, _ = validate_table(raw, table, path.name)
        problems.extend(probs)
        typed[table] = df
    problems.extend(check_relations(typed, files))
    if problems:
        raise ContractError(problems, max_shown=max_shown)
    return History(
        claims=typed["claims"],  # type: ignore[arg-type]
        claim_lines=typed["claim_lines"],  # type: ignore[arg-type]
        coverage=typed["coverage"],
        providers=typed["providers"],
        recoupments=typed["recoupments"],
        source=str(directory),
    )


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
        arr = pa.chunked_array(s.array._pa_array).combine_chunks()  # type: ignore[attr-defined]
    elif s.dtype == object and s.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
        values = [
            [str(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else (
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
        ok = pc.match_substring_regex(values, r"^\d{1,2}$")
        ints = pc.if_else(ok, pc.cast(pc.if_else(ok, values, "0"), pa.int16()), pa.scalar(-1, pa.int16()))
    out = pa.ListArray.from_arrays(offsets, ints)
    return pd.Series(pd.arrays.ArrowExtensionArray(out), index=s.index)


def validate_table(
    raw: pd.DataFrame, table: str, file: str
) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    """Type and check one table. Returns (typed frame, problems, warnings)."""
    spec = TABLES[table]
    problems: list[Problem] = []
    notes: list[str] = []
    raw = raw.reset_index(drop=True)
    known = {c.name for c in spec}
    extra = [c for c in raw.columns if c not in known]
    if extra:
        msg = f"{file}: ignoring unknown column(s) {', '.join(map(str, extra))}"
        notes.append(msg)
        warnings.warn(msg, stacklevel=2)
    out: dict[str, pd.Series] = {}
    n = len(raw)
    for col in spec:
        expected = _EXPECTED[col.kind].format(levels=", ".join(col.levels))
        if col.name not in raw.columns:
            if col.required:
                problems.append(Problem(file, col.name, "this required column to be present"))
                continue
            src = pd.Series([pd.NA] * n, dtype="string")
        else:
            src = raw[col.name]
        blank = _blank(src) if not (
            isinstance(src.dtype, pd.ArrowDtype) and pa.types.is_list(src.dtype.pyarrow_dtype)
        ) else src.isna()
        if col.required and col.kind not in ("list_str",) and blank.any():
            problems.append(Problem(file, col.name, f"a value ({expected})", _rows(blank)))
        k = col.kind
        if k in ("id", "str"):
            s = _as_str(src)
        elif k == "npi":
            s = _as_str(src)
            bad = s.notna() & ~s.str.fullmatch(r"\d{10}").fillna(False)
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
        elif k == "pos":
            s = _as_str(src)
            s = s.where(~s.str.fullmatch(r"\d").fillna(False), "0" + s)
            bad = s.notna() & ~s.str.fullmatch(r"\d{2}").fillna(False)
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
            s = s.astype("category")
        elif k == "procedure":
            s = _as_str(src).str.upper()
            bad = s.notna() & ~s.str.fullmatch(_PROCEDURE_RE).fillna(False)
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
        elif k == "enum":
            s = _as_str(src)
            if col.name in ("plan_type", "claim_type", "cause"):
                s = s.str.lower()
            bad = s.notna() & ~s.isin(col.levels)
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
            s = pd.Categorical(s.where(~bad, pd.NA), categories=list(col.levels))
            s = pd.Series(s, index=raw.index)
        elif k == "date":
            if pd.api.types.is_datetime64_any_dtype(src.dtype):
                s = pd.to_datetime(src).astype("datetime64[s]")
                bad = pd.Series(False, index=raw.index)
            else:
                txt = _as_str(src)
                s = pd.to_datetime(txt, format="%Y-%m-%d", errors="coerce")
                bad = txt.notna() & s.isna()
                s = s.astype("datetime64[s]")
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
        elif k in ("money", "money_pos", "units", "int_pos"):
            txt = src if pd.api.types.is_numeric_dtype(src.dtype) else _as_str(src)
            s = pd.to_numeric(txt, errors="coerce").astype("float64")
            notnum = txt.notna() & s.isna()
            if k == "money":
                bad = notnum | (s < 0)
            elif k == "int_pos":
                bad = notnum | (s < 1) | (s.notna() & (s % 1 != 0))
            else:
                bad = notnum | (s <= 0)
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
            if k == "int_pos":  # invalid or missing -> 0 (already reported)
                s = s.where(~bad, np.nan).fillna(0).astype("int32")
        elif k == "bool":
            if pd.api.types.is_bool_dtype(src.dtype):
                s = src.fillna(False).astype(bool)
            else:
                txt = _as_str(src).str.lower().fillna("")
                bad = ~txt.isin(_TRUE | _FALSE)
                if bad.any():
                    problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
                s = txt.isin(_TRUE)
        elif k == "list_str":
            s = _to_list(src, "str")
            lengths = s.list.len().fillna(0)
            if col.min_items and col.required:
                bad = lengths < col.min_items
                if bad.any():
                    problems.append(
                        Problem(file, col.name, f"at least {col.min_items} code(s)", _rows(bad))
                    )
            pattern = _ICD10_RE if col.name == "diagnosis_codes" else _MODIFIER_RE
            what = (
                "ICD-10-CM codes without dots (letter, digit, 1-5 more characters)"
                if col.name == "diagnosis_codes"
                else "2-character modifiers, at most 4"
            )
            flat = s.list.flatten()
            flat_bad = ~flat.str.fullmatch(pattern).fillna(False)
            bad = pd.Series(False, index=raw.index)
            if flat_bad.any():
                bad.loc[flat.index[flat_bad.to_numpy()].unique()] = True
            if col.name == "modifiers":
                bad |= lengths > 4
            if bad.any():
                problems.append(Problem(file, col.name, what, _rows(bad), _examples(src, bad)))
        elif k == "list_int":
            s = _to_list(src, "int")
            flat = s.list.flatten()
            flat_bad = (flat < 1) | (flat > 12)
            bad = pd.Series(False, index=raw.index)
            if flat_bad.any():
                bad.loc[flat.index[flat_bad.to_numpy()].unique()] = True
            if bad.any():
                problems.append(Problem(file, col.name, expected, _rows(bad), _examples(src, bad)))
        else:  # pragma: no cover - spec typo guard
            raise AssertionError(k)
        out[col.name] = pd.Series(s, index=raw.index) if not isinstance(s, pd.Series) else s
    typed = pd.DataFrame(out, index=raw.index)
    problems.extend(_table_rules(typed, table, file))
    return typed, problems, notes


def _table_rules(df: pd.DataFrame, table: str, file: str) -> list[Problem]:
    problems: list[Problem] = []
    if any(c.required and c.name not in df.columns for c in TABLES[table]):
        return problems  # a required column is missing (already reported): row rules cannot run
    if table == "claims":
        dup = df["claim_id"].duplicated(keep=False)
        if dup.any():
            problems.append(Problem(file, "claim_id", "unique claim ids (duplicate claim_id)", _rows(dup),
                                    _examples(df["claim_id"], dup)))
        bad = df["paid_date"].notna() & (df["paid_date"] < df["submitted_date"])
        if bad.any():
            problems.append(Problem(file, "paid_date", "a date on or after submitted_date", _rows(bad)))
    elif table == "claim_lines":
        dup = df.duplicated(["claim_id", "line_number"], keep=False) & (df["line_number"] >= 1)
        if dup.any():
            problems.append(Problem(file, "line_number", "unique line numbers within a claim", _rows(dup)))
    elif table == "coverage":
        bad = df["coverage_end"].notna() & (df["coverage_end"] < df["coverage_start"])
        if bad.any():
            problems.append(Problem(file, "coverage_end", "a date on or after coverage_start", _rows(bad)))
    elif table == "providers":
        dup = df["npi"].duplicated(keep=False)
        if dup.any():
            problems.append(Problem(file, "npi", "unique NPIs", _rows(dup), _examples(df["npi"], dup)))
    elif table == "recoupments":
        derived = causes_from_carcs(df["carc"])
        cause = df["cause"].astype("object").where(df["cause"].notna(), derived)
        df["cause"] = pd.Categorical(cause.fillna("other"), categories=list(CAUSES))
    return problems


def _arrow_str(s: pd.Series) -> pa.Array:
    if isinstance(s.array, pd.arrays.ArrowStringArray):
        arr = pa.array(s.array)
    else:
        arr = pa.array(s.astype("string").to_numpy(dtype=object, na_value=None), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.cast(arr, pa.large_string())


def _isin(values: pd.Series, pool: pd.Series) -> np.ndarray:
    """``values.isin(pool)`` for string columns, via Arrow (pandas' isin on Arrow strings is slow)."""
    hit = pc.is_in(_arrow_str(values), value_set=pc.unique(_arrow_str(pool)))
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def check_relations(tables: dict[str, pd.DataFrame | None],
                    files: dict[str, str] | None = None) -> list[Problem]:
    """Cross-table rules: every line and recoupment refers to a known claim, every claim has a line.

    ``files`` names the file of each table in the messages (default: the table name).
    """
    files = files or {}
    problems: list[Problem] = []

    def ok(name: str) -> pd.DataFrame | None:
        df = tables.get(name)
        return df if df is not None and "claim_id" in df.columns else None

    claims = ok("claims")
    if claims is None:
        return problems
    ids = claims["claim_id"]
    lines = ok("claim_lines")
    if lines is not None:
        orphan = ~_isin(lines["claim_id"], ids)
        if orphan.any():
            problems.append(Problem(files.get("claim_lines", "claim_lines"), "claim_id",
                                    "a claim_id present in claims (line without a claim)",
                                    _rows(orphan), _examples(lines["claim_id"], orphan)))
        no_lines = ~_isin(ids, lines["claim_id"])
        if no_lines.any():
            problems.append(Problem(files.get("claims", "claims"), "claim_id",
                                    "at least one line in claim_lines (claim without lines)",
                                    _rows(no_lines), _examples(ids, no_lines)))
    rec = ok("recoupments")
    if rec is not None:
        unknown = ~_isin(rec["claim_id"], ids)
        if unknown.any():
            problems.append(Problem(files.get("recoupments", "recoupments"), "claim_id",
                                    "a claim_id present in claims (recoupment of an unknown claim)",
                                    _rows(unknown), _examples(rec["claim_id"], unknown)))
    return problems


def validate_frames(tables: dict[str, pd.DataFrame | None], *, max_shown: int = 20) -> History:
    """Validate in-memory raw tables (e.g. from the X12 importer or the generator) into a History."""
    problems: list[Problem] = []
    typed: dict[str, pd.DataFrame | None] = {}
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        raw = tables.get(table)
        if raw is None:
            if table in REQUIRED_TABLES:
                problems.append(Problem(table, "-", f"a {table} table"))
            typed[table] = None
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df, probs, _ = validate_table(raw, table, table)
        problems.extend(probs)
        typed[table] = df
    problems.extend(check_relations(typed))
    if problems:
        raise ContractError(problems, max_shown=max_shown)
    return History(**{k: v for k, v in typed.items()})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _list_to_text(s: pd.Series) -> pd.Series:
    arr = pa.chunked_array(s.array._pa_array).combine_chunks()  # type: ignore[attr-defined]
    flat = pc.cast(pc.list_flatten(arr), pa.string())
    parents = pc.list_parent_indices(arr).to_numpy()
    txt = pd.Series(flat.to_numpy(zero_copy_only=False), dtype=object)
    joined = txt.groupby(parents).agg(";".join)
    out = pd.Series("", index=range(len(s)), dtype=object)
    out.iloc[joined.index.to_numpy()] = joined.to_numpy()
    out.index = s.index
    return out


_MONEY_COLUMNS = frozenset(c.name for cols in TABLES.values() for c in cols if c.kind in ("money", "money_pos"))


def to_contract_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Render a typed table with ISO dates and ';'-joined lists, ready for CSV."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if pd.api.types.is_float_dtype(s.dtype) and c in _MONEY_COLUMNS:
            out[c] = s.round(2)  # cents; written in the shortest exact form (120.5, not 120.50)
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[c] = s.dt.strftime("%Y-%m-%d").fillna("")
        elif isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_list(s.dtype.pyarrow_dtype):
            out[c] = _list_to_text(s)
        elif s.dtype == object and len(s) and isinstance(s.iloc[0], (list, tuple)):
            out[c] = s.map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else "")
    return out


def write_history(history: History | dict[str, pd.DataFrame | None], directory: str | Path,
                  fmt: str = "csv") -> Path:
    """Write the tables as ``NAME.csv`` or ``NAME.parquet`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tables = history.tables() if isinstance(history, History) else history
    for name, df in tables.items():
        if df is None:
            continue
        for old in directory.glob(f"{name}.*"):
            old.unlink()
        if fmt == "parquet":
            df.to_parquet(directory / f"{name}.parquet", index=False)
        else:
            to_contract_frame(df).to_csv(directory / f"{name}.csv", index=False)
    return directory


def iter_problems_text(err: ContractError) -> Iterable[str]:
    """The lines of a contract error, for a CLI to print."""
    return str(err).splitlines()
