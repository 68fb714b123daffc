"""The packaged CMS rulebook: NCCI PTP and MUE edits, add-on codes, ICD-10-CM, POS, modifiers, CARC.

Tables live as Parquet under ``features/rulebook/data`` (rebuilt by ``python -m features.rulebook.build``).
All lookups are vectorized and written once, in the rulebook's index
(:class:`features.rulebook.index.RuleIndex`, ``Rulebook.index``): codes are mapped to integer ids once
and pairs are found with a binary search over sorted int64 keys, so checking millions of lines takes
seconds. ``ptp_lookup``, ``mue_lookup`` and ``icd_status`` here take codes as text (lists, arrays,
Series with missing values) and dates in any form, and call it.

PTP edits are service-date aware: an edit applies when the service date is on or before its
deletion date (this copy of the tables has no effective dates). A pair can appear with several
deletion dates, one row per period of the edit (the modifier indicator may differ between periods);
for a service date the row with the earliest deletion date on or after it applies.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.engine.arrays import ymd_of_days
from features.rulebook.index import RuleIndex, rule_index

DATA_DIR = Path(__file__).parent / "data"
#: modifiers that bypass an NCCI PTP edit whose modifier indicator is 1
PTP_BYPASS_MODIFIERS = frozenset(
    {
        "59",
        "XE",
        "XP",
        "XS",
        "XU",
        "25",
        "91",
        "E1",
        "E2",
        "E3",
        "E4",
        "FA",
        "F1",
        "F2",
        "F3",
        "F4",
        "F5",
        "F6",
        "F7",
        "F8",
        "F9",
        "LC",
        "LD",
        "LM",
        "RC",
        "RI",
        "LT",
        "RT",
        "TA",
        "T1",
        "T2",
        "T3",
        "T4",
        "T5",
        "T6",
        "T7",
        "T8",
        "T9",
        "24",
        "27",
        "57",
        "78",
        "79",
    }
)
MAI_TEXT = {1: "per line", 2: "per day (policy)", 3: "per day (clinical)"}


def _claim_type_key(claim_type: str) -> str:
    return "institutional" if str(claim_type) == "institutional" else "professional"


def _ymd(dates) -> np.ndarray:
    """Dates (datetime64 of any unit, Timestamps, ISO strings) as int64 ``YYYYMMDD``; a missing date is
    checked against the edits in force today (99991231)."""
    arr = np.atleast_1d(np.asarray(dates))
    if arr.dtype.kind != "M":
        arr = pd.to_datetime(pd.Series(arr.ravel()), errors="coerce").to_numpy()
    d = arr.astype("datetime64[D]")
    return ymd_of_days(np.where(np.isnat(d), 10**6, d.astype(np.int64)))


def _codes_array(codes, n: int | None = None) -> np.ndarray:
    """Codes as an object array of str (a scalar is broadcast to ``n``); missing -> ''."""
    if np.ndim(codes) == 0:
        return np.full(n if n is not None else 1, "" if pd.isna(codes) else str(codes), dtype=object)
    s = pd.Series(np.asarray(codes, dtype=object) if not isinstance(codes, pd.Series) else codes)
    return s.astype("string").fillna("").str.strip().to_numpy(dtype=object)


def _claim_types(claim_type: str | np.ndarray | pd.Series) -> str | np.ndarray:
    """One claim type for all rows, or one per row (anything but ``institutional`` is professional)."""
    return _claim_type_key(claim_type) if isinstance(claim_type, str) else np.asarray(claim_type, dtype=object)


@dataclass
class Rulebook:
    """Read-only access to the packaged rulebook tables with fast vectorized checks."""

    data_dir: Path = DATA_DIR
    _cache: dict = field(default_factory=dict, repr=False)

    def __reduce__(self) -> tuple:
        """Pickled as its folder, not its loaded tables: a copy sent to a Dask worker (or saved) is the rulebook
        :func:`load_rulebook` gives there (the packaged one when this is), loaded once per process."""
        return (load_rulebook, () if Path(self.data_dir) == DATA_DIR else (str(self.data_dir),))

    # ---------------------------------------------------------------- metadata
    @functools.cached_property
    def meta(self) -> dict:
        return json.loads((self.data_dir / "version.json").read_text())

    @property
    def version(self) -> str:
        """Effective quarter of the NCCI tables, e.g. ``2024Q3``."""
        return str(self.meta["rulebook_version"])

    def table(self, name: str) -> pd.DataFrame:
        """A raw packaged table (``ptp_professional``, ``mue_professional``, ``icd10cm``, ...)."""
        if name not in self._cache:
            self._cache[name] = pd.read_parquet(self.data_dir / f"{name}.parquet")
        return self._cache[name]

    # ---------------------------------------------------------------- the fast index
    @property
    def index(self) -> RuleIndex:
        """The rulebook's :class:`~features.rulebook.index.RuleIndex` (built on first use, then kept):
        the one implementation of the PTP, MUE and ICD-10-CM lookups below."""
        return rule_index(self)

    # ---------------------------------------------------------------- NCCI PTP
    def ptp_lookup(
        self,
        column_1: np.ndarray | pd.Series,
        column_2: np.ndarray | pd.Series,
        service_date: np.ndarray | pd.Series,
        claim_type: str | np.ndarray | pd.Series = "professional",
    ) -> np.ndarray:
        """Modifier indicator of the active PTP edit (column_1 comprehensive, column_2 component) per pair.

        Returns an int8 array: -1 where no edit is in force on the service date, else 0, 1 or 9.
        An edit row is in force on a service date on or before its deletion date; of several rows
        of a pair, the one with the earliest such deletion date applies. ``service_date`` may be
        one date for all pairs; a missing date is checked against the edits in force today.
        """
        c1 = _codes_array(column_1)
        c2 = _codes_array(column_2, len(c1))
        n = len(c1)
        dint = _ymd(service_date).ravel()
        if dint.size == 1 and n != 1:
            dint = np.full(n, dint[0], dtype=np.int64)
        if len(c2) != n or len(dint) != n:
            raise ValueError("ptp_lookup: column_1, column_2 and service_date must have the same length")
        ri = self.index
        return ri.ptp(ri.code_ids(c1), ri.code_ids(c2), dint, _claim_types(claim_type))

    def ptp_pairs_among(
        self,
        codes: list[str] | set[str],
        claim_type: str = "professional",
        active_on: str = "2024-07-01",
        *,
        in_force: bool = False,
    ) -> pd.DataFrame:
        """PTP edits among ``codes`` (both codes in the set), one row per pair; used by the generator.

        By default each pair's latest row (its last period, as in rulebooks before periods were
        kept), when that row's deletion date is on or after ``active_on``. With ``in_force=True``,
        the row in force on ``active_on`` instead (earliest deletion date on or after it), so the
        modifier indicator is the one that applied on that date. Columns as in the packaged table.
        """
        df = self.table(f"ptp_{_claim_type_key(claim_type)}")
        cutoff = int(_ymd(np.array([pd.Timestamp(active_on).to_datetime64()]))[0])
        codes = set(codes)
        m = df["column_1"].isin(codes) & df["column_2"].isin(codes)
        sub = df[m].sort_values(["column_1", "column_2", "deletion_date"])
        if in_force:
            sub = sub[sub["deletion_date"] >= cutoff].drop_duplicates(["column_1", "column_2"], keep="first")
        else:
            sub = sub.drop_duplicates(["column_1", "column_2"], keep="last")
            sub = sub[sub["deletion_date"] >= cutoff]
        return sub.reset_index(drop=True)

    # ---------------------------------------------------------------- MUE
    def mue_lookup(
        self, codes: np.ndarray | pd.Series, claim_type: str | np.ndarray | pd.Series = "professional"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(MUE units as float, NaN where none; MAI as int8, 0 where none) per code."""
        ri = self.index
        return ri.mue(ri.code_ids(_codes_array(codes)), _claim_types(claim_type))

    # ---------------------------------------------------------------- add-on codes
    @functools.cached_property
    def addon_primaries(self) -> dict[str, frozenset[str]]:
        """Add-on code -> its listed primary codes (empty set: any primary).

        ``CCCCC`` in the CMS table stands for "any primary"; an add-on listed with it (edit type 2,
        and 8 type-3 codes such as C9726 that list some primaries *and* CCCCC) maps to the empty set.
        """
        df = self.table("addon")
        out: dict[str, set[str]] = {}
        anyp: set[str] = set()
        for add_on, prim in zip(df["add_on_code"].astype(str), df["primary_code"].astype(str)):
            s = out.setdefault(add_on, set())
            if prim == "CCCCC":
                anyp.add(add_on)
            else:
                s.add(prim)
        return {k: frozenset() if k in anyp else frozenset(v) for k, v in out.items()}

    # ---------------------------------------------------------------- ICD-10-CM
    def icd_status(self, codes: np.ndarray | pd.Series) -> np.ndarray:
        """Per diagnosis code: 0 valid billable, 1 truncated (a category, not a billable leaf), 2 unknown.

        Codes are compared without dots and upper-cased (``e11.9`` is ``E119``).
        """
        return self.index.icd_status(_codes_array(codes))

    # ---------------------------------------------------------------- vocabularies
    @functools.cached_property
    def place_of_service_codes(self) -> frozenset[str]:
        return frozenset(self.table("place_of_service")["code"].astype(str))

    @functools.cached_property
    def modifier_codes(self) -> frozenset[str]:
        return frozenset(self.table("modifiers")["code"].astype(str))

    def carc_description(self, carc: str) -> str:
        code = str(carc).split("-")[-1]
        t = self.table("adjustment_codes")
        m = t[(t["code"] == code) & (t["type"].str.contains("CARC|Claim Adjustment", case=False, regex=True))]
        if m.empty:
            m = t[t["code"] == code]
        return "" if m.empty else str(m["description"].iloc[0])


@functools.lru_cache(maxsize=4)
def load_rulebook(data_dir: str | None = None) -> Rulebook:
    """The packaged rulebook (cached per data folder)."""
    return Rulebook(Path(data_dir) if data_dir else DATA_DIR)


@functools.lru_cache(maxsize=1)
def taxonomy_labels() -> dict[str, str]:
    """NUCC taxonomy code -> its label (the display name; else classification, specialization), from the packaged
    rulebook's ``nucc_taxonomy`` table (cached)."""
    t = load_rulebook().table("nucc_taxonomy").fillna("")
    base = t["classification"].str.cat(t["specialization"].where(t["specialization"] == "", ", " + t["specialization"]))
    label = t["display_name"].where(t["display_name"].str.strip() != "", base).str.strip()
    return dict(zip(t["code"].astype(str), label))
