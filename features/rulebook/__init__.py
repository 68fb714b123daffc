"""The packaged CMS rulebook: NCCI PTP and MUE edits, add-on codes, ICD-10-CM, POS, modifiers, CARC.

Tables live as Parquet under ``features/rulebook/data`` (rebuilt by ``python -m features.rulebook.build``).
All lookups are vectorized: codes are mapped to integer ids once and pairs are found with a binary
search over sorted int64 keys, so checking millions of lines takes seconds.

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


_DATE_SHIFT = np.int64(100_000_000)  # composite key: pair_key * _DATE_SHIFT + YYYYMMDD
_NAT_YMD = 99991231  # a missing service date is checked against the edits in force today


def _ymd(dates) -> np.ndarray:
    """Dates (datetime64 of any unit, Timestamps, ISO strings) as int64 ``YYYYMMDD``; NaT -> 99991231."""
    arr = np.atleast_1d(np.asarray(dates))
    if arr.dtype.kind != "M":
        arr = pd.to_datetime(pd.Series(arr.ravel()), errors="coerce").to_numpy()
    d = arr.astype("datetime64[D]")
    nat = np.isnat(d)
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months).astype(np.int64) + 1
    out = year * 10000 + month * 100 + day
    out[nat] = _NAT_YMD
    return out


def _codes_array(codes, n: int | None = None) -> np.ndarray:
    """Codes as an object array of str (a scalar is broadcast to ``n``); missing -> ''."""
    if np.ndim(codes) == 0:
        return np.full(n if n is not None else 1, "" if pd.isna(codes) else str(codes), dtype=object)
    s = pd.Series(np.asarray(codes, dtype=object) if not isinstance(codes, pd.Series) else codes)
    return s.astype("string").fillna("").str.strip().to_numpy(dtype=object)


@dataclass
class _PtpIndex:
    vocab: pd.Index
    keys: np.ndarray  # sorted int64: (id(column_1) * V + id(column_2)) * 1e8 + deletion YYYYMMDD
    modifier_indicator: np.ndarray  # int8, aligned with keys


@dataclass
class Rulebook:
    """Read-only access to the packaged rulebook tables with fast vectorized checks."""

    data_dir: Path = DATA_DIR
    _cache: dict = field(default_factory=dict, repr=False)

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

    # ---------------------------------------------------------------- NCCI PTP
    def _ptp_index(self, claim_type: str) -> _PtpIndex:
        key = f"_ptp_idx_{_claim_type_key(claim_type)}"
        if key not in self._cache:
            df = self.table(f"ptp_{_claim_type_key(claim_type)}")
            c1 = df["column_1"].to_numpy(dtype=object)
            c2 = df["column_2"].to_numpy(dtype=object)
            vocab = pd.Index(np.unique(np.concatenate([c1, c2]).astype(str)))
            v = np.int64(len(vocab))
            pair = vocab.get_indexer(c1).astype(np.int64) * v + vocab.get_indexer(c2).astype(np.int64)
            k = pair * _DATE_SHIFT + df["deletion_date"].to_numpy().astype(np.int64)
            order = np.argsort(k, kind="stable")
            self._cache[key] = _PtpIndex(
                vocab=vocab,
                keys=k[order],
                modifier_indicator=df["modifier_indicator"].to_numpy().astype(np.int8)[order],
            )
        return self._cache[key]

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
        out = np.full(n, -1, dtype=np.int8)
        if isinstance(claim_type, str):
            groups = {_claim_type_key(claim_type): np.arange(n)}
        else:
            ct = np.where(np.asarray(claim_type, dtype=object) == "institutional", "institutional", "professional")
            groups = {t: np.flatnonzero(ct == t) for t in ("professional", "institutional")}
        for ctype, idx in groups.items():
            if len(idx) == 0:
                continue
            ix = self._ptp_index(ctype)
            i1 = ix.vocab.get_indexer(c1[idx])
            i2 = ix.vocab.get_indexer(c2[idx])
            known = (i1 >= 0) & (i2 >= 0)
            pair = i1.astype(np.int64) * len(ix.vocab) + i2.astype(np.int64)
            # first row of the pair whose deletion date is on or after the service date
            pos = np.searchsorted(ix.keys, pair * _DATE_SHIFT + dint[idx], side="left")
            pos = np.minimum(pos, len(ix.keys) - 1)
            hit = known & (ix.keys[pos] // _DATE_SHIFT == pair) & (ix.keys[pos] % _DATE_SHIFT >= dint[idx])
            out[idx[hit]] = ix.modifier_indicator[pos[hit]]
        return out

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
    def _mue_index(self, ctype: str) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        key = f"_mue_idx_{ctype}"
        if key not in self._cache:
            t = self.table(f"mue_{ctype}")
            self._cache[key] = (
                pd.Index(t["code"].astype(str).to_numpy(dtype=object)),
                t["mue_units"].to_numpy().astype(np.float64),
                t["mai"].to_numpy().astype(np.int8),
            )
        return self._cache[key]

    def mue_lookup(
        self, codes: np.ndarray | pd.Series, claim_type: str | np.ndarray | pd.Series = "professional"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(MUE units as float, NaN where none; MAI as int8, 0 where none) per code."""
        codes = _codes_array(codes)
        units = np.full(len(codes), np.nan)
        mai = np.zeros(len(codes), dtype=np.int8)
        if isinstance(claim_type, str):
            groups = {_claim_type_key(claim_type): np.arange(len(codes))}
        else:
            ct = np.where(np.asarray(claim_type, dtype=object) == "institutional", "institutional", "professional")
            groups = {t: np.flatnonzero(ct == t) for t in ("professional", "institutional")}
        for ctype, idx in groups.items():
            if len(idx) == 0:
                continue
            index, t_units, t_mai = self._mue_index(ctype)
            pos = index.get_indexer(codes[idx])
            ok = pos >= 0
            units[idx[ok]] = t_units[pos[ok]]
            mai[idx[ok]] = t_mai[pos[ok]]
        return units, mai

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
    @functools.cached_property
    def _icd_index(self) -> tuple[pd.Index, np.ndarray]:
        t = self.table("icd10cm")
        return pd.Index(t["code"].astype(str)), t["billable"].to_numpy()

    def icd_status(self, codes: np.ndarray | pd.Series) -> np.ndarray:
        """Per diagnosis code: 0 valid billable, 1 truncated (a category, not a billable leaf), 2 unknown.

        Codes are compared without dots and upper-cased (``e11.9`` is ``E119``).
        """
        index, billable = self._icd_index
        codes = pd.Series(_codes_array(codes), dtype="string").str.replace(".", "", regex=False).str.upper()
        pos = index.get_indexer(codes.to_numpy(dtype=object))
        out = np.full(len(pos), 2, dtype=np.int8)
        ok = pos >= 0
        out[ok] = np.where(billable[pos[ok]], 0, 1)
        return out

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
