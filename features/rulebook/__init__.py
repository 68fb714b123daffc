"""The packaged CMS rulebook: NCCI PTP and MUE edits, add-on codes, ICD-10-CM, POS, modifiers, CARC.

Tables live as Parquet under ``features/rulebook/data`` (rebuilt by ``python -m features.rulebook.build``).
All lookups are vectorized: codes are mapped to integer ids once and pairs are found with a binary
search over sorted int64 keys, so checking millions of lines takes seconds.

PTP edits are service-date aware: an edit applies when the service date is on or before its
deletion date (this copy of the tables has no effective dates). Where a pair appears with several
deletion dates, the row in force last is kept.
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
PTP_BYPASS_MODIFIERS = frozenset({"59", "XE", "XP", "XS", "XU", "25", "91", "E1", "E2", "E3", "E4",
                                  "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
                                  "LC", "LD", "LM", "RC", "RI", "LT", "RT", "TA", "T1", "T2", "T3",
                                  "T4", "T5", "T6", "T7", "T8", "T9", "24", "27", "57", "78", "79"})
MAI_TEXT = {1: "per line", 2: "per day (policy)", 3: "per day (clinical)"}


def _claim_type_key(claim_type: str) -> str:
    return "institutional" if str(claim_type) == "institutional" else "professional"


@dataclass
class _PtpIndex:
    vocab: pd.Index
    keys: np.ndarray  # sorted int64: id(column_1) * V + id(column_2)
    deletion: np.ndarray  # int32 YYYYMMDD
    modifier_indicator: np.ndarray  # int8


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
            v = len(vocab)
            k = vocab.get_indexer(c1).astype(np.int64) * v + vocab.get_indexer(c2).astype(np.int64)
            order = np.argsort(k, kind="stable")
            self._cache[key] = _PtpIndex(
                vocab=vocab,
                keys=k[order],
                deletion=df["deletion_date"].to_numpy()[order],
                modifier_indicator=df["modifier_indicator"].to_numpy()[order],
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
        """
        c1 = np.asarray(column_1, dtype=object)
        c2 = np.asarray(column_2, dtype=object)
        dates = pd.to_datetime(pd.Series(np.asarray(service_date))).dt.strftime("%Y%m%d").fillna("0")
        dint = dates.astype("int64").to_numpy()
        out = np.full(len(c1), -1, dtype=np.int8)
        if isinstance(claim_type, str):
            groups = {_claim_type_key(claim_type): np.arange(len(c1))}
        else:
            ct = np.where(np.asarray(claim_type, dtype=object) == "institutional", "institutional", "professional")
            groups = {t: np.flatnonzero(ct == t) for t in ("professional", "institutional")}
        for ctype, idx in groups.items():
            if len(idx) == 0:
                continue
            ix = self._ptp_index(ctype)
            i1 = ix.vocab.get_indexer(c1[idx].astype(str))
            i2 = ix.vocab.get_indexer(c2[idx].astype(str))
            known = (i1 >= 0) & (i2 >= 0)
            q = i1.astype(np.int64) * len(ix.vocab) + i2.astype(np.int64)
            pos = np.searchsorted(ix.keys, q)
            pos = np.clip(pos, 0, len(ix.keys) - 1)
            hit = known & (ix.keys[pos] == q) & (ix.deletion[pos] >= dint[idx])
            out[idx[hit]] = ix.modifier_indicator[pos[hit]]
        return out

    def ptp_pairs_among(self, codes: list[str] | set[str], claim_type: str = "professional",
                        active_on: str = "2024-07-01") -> pd.DataFrame:
        """Active PTP edits whose both codes are in ``codes`` (used by the synthetic generator)."""
        df = self.table(f"ptp_{_claim_type_key(claim_type)}")
        cutoff = int(pd.Timestamp(active_on).strftime("%Y%m%d"))
        codes = set(codes)
        m = df["column_1"].isin(codes) & df["column_2"].isin(codes) & (df["deletion_date"] >= cutoff)
        return df[m].reset_index(drop=True)

    # ---------------------------------------------------------------- MUE
    def mue_lookup(self, codes: np.ndarray | pd.Series,
                   claim_type: str | np.ndarray | pd.Series = "professional") -> tuple[np.ndarray, np.ndarray]:
        """(MUE units as float, NaN where none; MAI as int8, 0 where none) per code."""
        codes = np.asarray(codes, dtype=object).astype(str)
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
            t = self.table(f"mue_{ctype}")
            index = pd.Index(t["code"].astype(str))
            pos = index.get_indexer(codes[idx])
            ok = pos >= 0
            units[idx[ok]] = t["mue_units"].to_numpy()[pos[ok]]
            mai[idx[ok]] = t["mai"].to_numpy()[pos[ok]]
        return units, mai

    # ---------------------------------------------------------------- add-on codes
    @functools.cached_property
    def addon_primaries(self) -> dict[str, frozenset[str]]:
        """Add-on code -> its allowed primary codes (empty set: any primary, edit type 2)."""
        df = self.table("addon")
        out: dict[str, set[str]] = {}
        for add_on, prim in zip(df["add_on_code"], df["primary_code"]):
            s = out.setdefault(add_on, set())
            if prim != "CCCCC":
                s.add(prim)
        return {k: frozenset(v) for k, v in out.items()}

    # ---------------------------------------------------------------- ICD-10-CM
    @functools.cached_property
    def _icd_index(self) -> tuple[pd.Index, np.ndarray]:
        t = self.table("icd10cm")
        return pd.Index(t["code"].astype(str)), t["billable"].to_numpy()

    def icd_status(self, codes: np.ndarray | pd.Series) -> np.ndarray:
        """Per diagnosis code: 0 valid billable, 1 truncated (a category, not a billable leaf), 2 unknown."""
        index, billable = self._icd_index
        pos = index.get_indexer(np.asarray(codes, dtype=object).astype(str))
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
