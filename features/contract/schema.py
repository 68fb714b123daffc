"""The data contract's rules, each defined once: code patterns, enums, the CARC map, the tables and their
columns, the problems and every message text (docs/contract.md).

Every reader of claims takes its rules from here: the contract's checks (``features.contract.load``, both
check paths), the X12 importer and the scoring service. Patterns are compiled without anchors and are used
with ``.fullmatch`` (``PATTERN.pattern`` where a vectorized ``str.fullmatch`` needs the text). The bounds of
amounts, counts and lengths are in ``features/contract/bounds.py``, read here through :class:`Column`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from features.contract.bounds import (
    DATE_YEARS,
    MAX_AMOUNT,
    MAX_CHARS,
    MAX_DIAGNOSIS_CODES,
    MAX_DIAGNOSIS_POINTERS,
    MAX_LINE_NUMBER,
    MAX_MODIFIERS,
    MAX_POINTER,
    MAX_UNITS,
)
from features.errors import RecoupError

# --------------------------------------------------------------------------------------
# Patterns (ASCII only: no full-width or Arabic-Indic digits)
# --------------------------------------------------------------------------------------

# CPT (4 digits + digit/letter) or HCPCS Level II (letter + 4 digits)
PROCEDURE_PATTERN = re.compile(r"(?:[0-9]{4}[0-9A-Z]|[A-Z][0-9]{4})")
# two characters, digits or capital letters
MODIFIER_PATTERN = re.compile(r"[0-9A-Z]{2}")
# ten digits (the check digit is not verified)
NPI_PATTERN = re.compile(r"[0-9]{10}")
# ICD-10-CM without the dot: letter, digit, digit/letter, then up to 4 more
ICD10_PATTERN = re.compile(r"[A-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?")
#: a CMS place-of-service code: two digits (one digit is read with a leading zero: ``POS_SHORT_PATTERN``)
POS_PATTERN = re.compile(r"[0-9]{2}")
POS_SHORT_PATTERN = re.compile(r"[0-9]")
#: a diagnosis pointer as text (its range, 1..MAX_POINTER, is checked on the number)
POINTER_PATTERN = re.compile(r"[0-9]{1,2}")
#: a date YYYY-MM-DD (year, month, day as groups; the calendar and ``Column.years`` decide the rest)
DATE_PATTERN = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
#: a date, or a UTC time of a day to the second: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS (``T`` or a space), optionally
#: ending in ``Z`` or ``+00:00`` (groups: year, month, day, hour, minute, second; a date alone is its midnight)
DATETIME_PATTERN = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:Z|\+00:00)?)?"
)
#: a plain decimal (no exponent, inf, nan): the numbers the row-wise checker reads itself (``float()`` reads
#: them exactly as ``pd.to_numeric`` does); any other text goes to pandas
PLAIN_DECIMAL_PATTERN = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
#: group code prefix of a CARC (``CO-97``, ``CO97``, ``CO 97``): removed before the lookup
CARC_GROUP_PREFIX = re.compile(r"^(?:CO|PI|OA|PR|CR)[-\s]?(?=[A-Z]?\d)")
#: the pattern of each code list column's items
LIST_ITEM_PATTERNS: dict[str, re.Pattern[str]] = {"diagnosis_codes": ICD10_PATTERN, "modifiers": MODIFIER_PATTERN}

# --------------------------------------------------------------------------------------
# Enums and causes
# --------------------------------------------------------------------------------------

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
#: the outcomes of an audit review of one claim (the ``reviews`` table; docs/contract.md)
#: in the order of a claim's lifecycle (the order of a claim's outcomes recorded at the same time); ``withdrawn``: the
#: claim's earlier outcome was taken back (it counts as not reviewed)
REVIEW_OUTCOMES: tuple[str, ...] = (
    "no_issue",
    "error_found",
    "refunded",
    "appealed_upheld",
    "appealed_overturned",
    "withdrawn",
)
#: outcomes whose ``refund_amount`` (> 0) is a voluntary refund, i.e. a recoupment (``features.contract.reviews``)
REFUND_OUTCOMES: tuple[str, ...] = ("error_found", "refunded")
PLAN_TYPES: tuple[str, ...] = ("medicare", "medicare_advantage", "medicaid", "commercial")
CLAIM_TYPES: tuple[str, ...] = ("professional", "institutional")
FREQUENCY_CODES: tuple[str, ...] = ("1", "7", "8")
#: enum columns read case-insensitively (lowered before the check)
LOWERED_ENUMS: tuple[str, ...] = ("plan_type", "claim_type", "cause", "outcome")
#: the texts of a boolean column (lowered, trimmed; an empty cell is false)
TRUE_TEXTS = frozenset({"true", "t", "1", "yes", "y"})
FALSE_TEXTS = frozenset({"false", "f", "0", "no", "n", ""})
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
    code = CARC_GROUP_PREFIX.sub("", text)
    return CARC_TO_CAUSE.get(code, "other")


@functools.cache
def carc_codes() -> frozenset[str]:
    """The claim adjustment reason codes (CARC, without group prefix) of the packaged X12 code list."""
    from features.rulebook import DATA_DIR

    t = pd.read_parquet(DATA_DIR / "adjustment_codes.parquet", columns=["code", "type"])
    return frozenset(t.loc[t["type"] == "CARC", "code"].astype(str).str.strip().str.upper())


def unknown_carcs(carcs: pd.Series) -> np.ndarray:
    """Rows whose CARC (group prefix allowed: ``CO-97``, ``co97``, ``97``) is given but not a packaged code."""
    s = pd.Series(carcs).astype("string").str.strip().str.upper()
    code = s.str.replace(CARC_GROUP_PREFIX.pattern, "", regex=True)
    given = (code.notna() & (code != "")).to_numpy(dtype=bool)
    known = code.isin(carc_codes()).to_numpy(dtype=bool)
    return given & ~known


def causes_from_carcs(carcs: pd.Series) -> pd.Series:
    """Vectorized :func:`cause_from_carc` over a Series (missing or empty -> ``None``)."""
    s = pd.Series(carcs).astype("string").str.strip().str.upper()
    code = s.str.replace(CARC_GROUP_PREFIX.pattern, "", regex=True)
    out = code.map(CARC_TO_CAUSE).astype("object")
    out = out.where(code.isna() | (code == "") | out.notna(), "other")
    out = out.where(~(code.isna() | (code == "")), None)
    return out


# --------------------------------------------------------------------------------------
# Columns and tables
# --------------------------------------------------------------------------------------

#: The upper bound of each number kind, unless a column sets its own (the bounds: features/contract/bounds.py).
KIND_MAXIMUM = {"money": MAX_AMOUNT, "money_pos": MAX_AMOUNT, "units": MAX_UNITS, "int_pos": MAX_LINE_NUMBER}


@dataclass(frozen=True)
class Column:
    """One contract column: its name, kind, whether it is required, allowed values and bounds."""

    name: str
    #: id | npi | enum | pos | date | datetime (a date or a UTC time) | money | money_pos | units | int_pos | bool |
    #: list_str | list_int | str
    kind: str
    required: bool = True
    levels: tuple[str, ...] = ()
    min_items: int = 0
    #: the largest allowed number (money, units, int_pos kinds); None: the kind's (``KIND_MAXIMUM``)
    maximum: float | None = None
    #: the first and last allowed year (dates)
    years: tuple[int, int] = DATE_YEARS
    #: the most items of a list column (list_str, list_int); None: unbounded
    max_items: int | None = None
    #: the longest text of an id / str column, in characters after trimming (other kinds: their pattern)
    max_chars: int | None = None

    @property
    def upper(self) -> float:
        """The largest allowed value of a number column (every check path reads this)."""
        return self.maximum if self.maximum is not None else KIND_MAXIMUM[self.kind]

    @property
    def date_range(self) -> tuple[np.datetime64, np.datetime64]:
        """The first and last allowed day of a date column."""
        return np.datetime64(f"{self.years[0]:04d}-01-01", "s"), np.datetime64(f"{self.years[1]:04d}-12-31", "s")


TABLES: dict[str, tuple[Column, ...]] = {
    "claims": (
        Column("claim_id", "id", max_chars=MAX_CHARS["claim_id"]),
        Column("patient_id", "id", max_chars=MAX_CHARS["patient_id"]),
        Column("billing_npi", "npi"),
        Column("rendering_npi", "npi", required=False),
        Column("payer_id", "id", max_chars=MAX_CHARS["payer_id"]),
        Column("plan_type", "enum", levels=PLAN_TYPES),
        Column("claim_type", "enum", levels=CLAIM_TYPES),
        Column("place_of_service", "pos"),
        Column("frequency_code", "enum", levels=FREQUENCY_CODES),
        Column("submitted_date", "date"),
        Column("total_charge", "money"),
        Column("diagnosis_codes", "list_str", min_items=1, max_items=MAX_DIAGNOSIS_CODES),
        Column("prior_auth_number", "str", required=False, max_chars=MAX_CHARS["prior_auth_number"]),
        Column("has_attachment", "bool", required=False),
        Column("paid_date", "date", required=False),
        Column("paid_amount", "money", required=False),
    ),
    "claim_lines": (
        Column("claim_id", "id", max_chars=MAX_CHARS["claim_id"]),
        Column("line_number", "int_pos"),
        Column("service_date", "date"),
        Column("procedure_code", "procedure"),
        Column("modifiers", "list_str", required=False, max_items=MAX_MODIFIERS),
        Column("units", "units"),
        Column("line_charge", "money"),
        Column("diagnosis_pointers", "list_int", required=False, max_items=MAX_DIAGNOSIS_POINTERS),
        Column("line_paid", "money", required=False),
    ),
    "coverage": (
        Column("patient_id", "id", max_chars=MAX_CHARS["patient_id"]),
        Column("payer_id", "id", max_chars=MAX_CHARS["payer_id"]),
        Column("plan_type", "enum", levels=PLAN_TYPES),
        Column("coverage_start", "date"),
        Column("coverage_end", "date", required=False),
    ),
    "providers": (
        Column("npi", "npi"),
        Column("taxonomy_code", "str", required=False, max_chars=MAX_CHARS["taxonomy_code"]),
        Column("state", "str", required=False, max_chars=MAX_CHARS["state"]),
        Column("name", "str", required=False, max_chars=MAX_CHARS["name"]),
    ),
    "recoupments": (
        Column("claim_id", "id", max_chars=MAX_CHARS["claim_id"]),
        Column("recouped_date", "date"),
        Column("recouped_amount", "money_pos"),
        Column("carc", "str", required=False, max_chars=MAX_CHARS["carc"]),
        Column("cause", "enum", required=False, levels=CAUSES),
    ),
    "reviews": (
        Column("claim_id", "id", max_chars=MAX_CHARS["claim_id"]),
        Column("reviewed_at", "datetime"),
        Column("outcome", "enum", levels=REVIEW_OUTCOMES),
        Column("refund_amount", "money", required=False),
        Column("cause", "enum", required=False, levels=CAUSES),
        Column("carc", "str", required=False, max_chars=MAX_CHARS["carc"]),
        Column("reviewer", "id", max_chars=MAX_CHARS["reviewer"]),
    ),
}
REQUIRED_TABLES = ("claims", "claim_lines")
OPTIONAL_TABLES = ("coverage", "providers", "recoupments", "reviews")
#: The file forms of a contract table, ``NAME.<ext>``.
TABLE_EXTENSIONS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")
#: The columns of the rows ``load_history(..., skip_invalid=True)`` sets aside.
REJECTED_COLUMNS = ["claim_id", "submitted_date", "reject_reason"]

# --------------------------------------------------------------------------------------
# Messages: what each rule expects ("FILE row N: column 'C': expected ...")
# --------------------------------------------------------------------------------------

#: what a value of each column kind must be (``{levels}``, ``{maximum}``, ``{first}``, ``{last}``: the column's)
EXPECTED = {
    "id": "a non-empty identifier",
    "npi": "a 10-digit NPI",
    "enum": "one of {levels}",
    "pos": "a 2-digit place-of-service code",
    "date": "a date YYYY-MM-DD in the years {first} to {last}",
    "datetime": "a date YYYY-MM-DD or a UTC time YYYY-MM-DDTHH:MM:SS[Z] in the years {first} to {last}",
    "money": "an amount >= 0 and at most {maximum}",
    "money_pos": "an amount > 0 and at most {maximum}",
    "units": "a number > 0 and at most {maximum}",
    "int_pos": "a whole number >= 1 and at most {maximum}",
    "bool": "true/false (also 1/0, yes/no, Y/N)",
    "list_str": "a ';'-separated list of codes",
    "list_int": f"a ';'-separated list of whole numbers 1..{MAX_POINTER}",
    "str": "text",
    "procedure": "a CPT or HCPCS code (5 characters: 5 digits, 4 digits + letter, or letter + 4 digits)",
}
#: what the items of each code list column must be
LIST_ITEMS_EXPECTED = {
    "diagnosis_codes": "ICD-10-CM codes without dots (letter, digit, 1-5 more characters)",
    "modifiers": "2-character modifiers",
}
MISSING_COLUMN = "this required column to be present"
# table rules
DUPLICATE_CLAIM_ID = "unique claim ids (duplicate claim_id)"
PAID_BEFORE_SUBMITTED = "a date on or after submitted_date"
DUPLICATE_LINE_NUMBER = "unique line numbers within a claim"
COVERAGE_END_BEFORE_START = "a date on or after coverage_start"
DUPLICATE_NPI = "unique NPIs"
# cross-table rules
LINE_WITHOUT_CLAIM = "a claim_id present in claims (line without a claim)"
CLAIM_WITHOUT_LINES = "at least one line in claim_lines (claim without lines)"
RECOUPMENT_WITHOUT_CLAIM = "a claim_id present in claims (recoupment of an unknown claim)"
REVIEW_WITHOUT_CLAIM = "a claim_id present in claims (review of an unknown claim)"
# reviews
REFUND_MISSING = "a refund_amount > 0 for a 'refunded' review"
REFUND_WITHOUT_FINDING = "no refund_amount (or 0) for a review that is not error_found or refunded"
UNKNOWN_CARC = "a CARC of the packaged code list (features/rulebook/data/adjustment_codes.parquet), e.g. CO-97 or 97"
#: the reason of a claim set aside by ``load_history(..., skip_invalid=True)`` because it has no valid line
REJECTED_WITHOUT_LINES = "claims: claim without lines in claim_lines"
# whole files
NOT_A_DIRECTORY = "a claims history directory"


def missing_file(table: str) -> str:
    """A required table without a file in a history directory."""
    return f"a {table} file (.csv or .parquet)"


def missing_table(table: str) -> str:
    """A required table missing from in-memory tables."""
    return f"a {table} table"


def unreadable_file(exc: Exception) -> str:
    """A file the reader could not read."""
    return f"a readable CSV/Parquet file ({exc})"


def blank_value(col: Column) -> str:
    """A required cell left empty."""
    return f"a value ({expected(col)})"


def too_few(col: Column) -> str:
    """A list under its column's ``min_items``."""
    return f"at least {col.min_items} code(s)"


def too_many(col: Column) -> str:
    """A list over its column's ``max_items``."""
    return f"at most {col.max_items} {'code(s)' if col.kind == 'list_str' else 'pointer(s)'}"


def too_long(col: Column) -> str:
    """A text over its column's ``max_chars`` (no example: the value may be huge)."""
    return f"{expected(col)} of at most {col.max_chars} characters"


def list_items_expected(col: Column) -> str:
    """What the items of a code list column must be."""
    return LIST_ITEMS_EXPECTED.get(col.name, LIST_ITEMS_EXPECTED["modifiers"])


_EXPECTED_TEXT: dict[Column, str] = {}


def expected(col: Column) -> str:
    """What a column expects, bounds included (the text of both check paths)."""
    text = _EXPECTED_TEXT.get(col)
    if text is None:
        maximum = f"{col.upper:,}" if col.kind in KIND_MAXIMUM else ""
        text = _EXPECTED_TEXT[col] = EXPECTED[col.kind].format(
            levels=", ".join(col.levels), maximum=maximum, first=col.years[0], last=col.years[1]
        )
    return text


# --------------------------------------------------------------------------------------
# Problems and errors
# --------------------------------------------------------------------------------------

#: an example value longer than this is shown cut (a 5,000-character id costs one line of a report, not pages)
MAX_EXAMPLE_CHARS = 40


def _clip(value: str) -> str:
    if not isinstance(value, str) or len(value) <= MAX_EXAMPLE_CHARS:
        return value
    return value[: MAX_EXAMPLE_CHARS - 3] + "..."


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
            ex = " (got " + ", ".join(repr(_clip(e)) for e in self.examples[:3]) + ")"
        plural = "s" if len(self.rows) > 1 else ""
        return f"{self.file} row{plural} {shown}{more}: column '{self.column}': expected {self.expected}{ex}"

    def row_reason(self, row: int) -> str:
        """The problem of one of its rows (the reason of a claim set aside)."""
        return f"{self.file} row {row}: column '{self.column}': expected {self.expected}"


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


def iter_problems_text(err: ContractError) -> Iterable[str]:
    """The lines of a contract error, for a CLI to print."""
    return str(err).splitlines()


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
    #: audit review outcomes (optional; ``error_found``/``refunded`` ones are already among ``recoupments``)
    reviews: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame | None]:
        return {
            "claims": self.claims,
            "claim_lines": self.claim_lines,
            "coverage": self.coverage,
            "providers": self.providers,
            "recoupments": self.recoupments,
            "reviews": self.reviews,
        }

    @property
    def last_date(self) -> pd.Timestamp:
        """The last date seen anywhere in the data (the default training as-of date)."""
        dates = [self.claims["submitted_date"].max(), self.claims["paid_date"].max()]
        if self.recoupments is not None and len(self.recoupments):
            dates.append(self.recoupments["recouped_date"].max())
        return pd.Timestamp(max(d for d in dates if pd.notna(d)))
