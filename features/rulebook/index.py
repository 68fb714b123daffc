"""The rulebook's fast index: :class:`RuleIndex`, integer lookups over the rulebook's public tables
(procedure code ids, PTP edits as sorted int64 keys, MUE limits as arrays, ICD-10-CM status), built once
per rulebook (:func:`rule_index`). It is the one implementation of the rulebook's lookups: the feature
families call it on code ids; :meth:`Rulebook.ptp_lookup`, ``mue_lookup`` and ``icd_status`` normalise
their inputs (strings, Series, dates) and call it. Millions of lines at once, or one claim in microseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from typing import TYPE_CHECKING

from features.engine.arrays import SMALL, ymd_of_days

if TYPE_CHECKING:  # features.rulebook imports this module
    from features.rulebook import Rulebook

#: PTP keys are ``pair * DATE_SHIFT + deletion YYYYMMDD``
DATE_SHIFT = np.int64(100_000_000)


class RuleIndex:
    """Our own lookup structures over the rulebook's public tables, built once per rulebook.

    Procedure codes map to integer ids (a dict for a few codes, a pandas indexer for many); PTP edits
    are sorted int64 keys ``(id1 * V + id2) * 1e8 + deletion YYYYMMDD`` searched with np.searchsorted
    (the edit row in force is the one with the earliest deletion date on or after the service date); MUE
    limits are arrays indexed by code id (the last slot, id -1, is the unknown code).
    """

    def __init__(self, rulebook: Rulebook):
        self.rb = rulebook
        ptp = {t: rulebook.table(f"ptp_{t}") for t in ("professional", "institutional")}
        mue = {t: rulebook.table(f"mue_{t}") for t in ("professional", "institutional")}
        # codes are looked up with Arrow's hash kernels (the tables hold 5M code cells: going through
        # Python objects took ~3 s, the first time a process scored a claim)
        cols = [_arrow_text(d[c]) for d in ptp.values() for c in ("column_1", "column_2")]
        cols += [_arrow_text(d["code"]) for d in mue.values()]
        uniq = pc.unique(pa.chunked_array([c for col in cols for c in col.chunks], pa.large_string()))
        vocab = pc.take(uniq, pc.sort_indices(uniq))  # sorted (byte order = code point order for codes)
        self.vocab = pd.Index(np.asarray(vocab.to_pylist(), dtype=object), dtype=object)
        self.vdict = {c: i for i, c in enumerate(self.vocab.tolist())}
        v = np.int64(len(self.vocab))
        self.V = v

        def ids_of(col: pa.ChunkedArray) -> np.ndarray:
            got = pc.index_in(col, value_set=vocab)
            return got.fill_null(-1).to_numpy().astype(np.int64)

        self.ptp_keys, self.ptp_ind = {}, {}
        for t, d in ptp.items():
            i1 = ids_of(_arrow_text(d["column_1"]))
            i2 = ids_of(_arrow_text(d["column_2"]))
            k = (i1 * v + i2) * DATE_SHIFT + d["deletion_date"].to_numpy().astype(np.int64)
            o = np.argsort(k, kind="stable")
            self.ptp_keys[t] = k[o]
            self.ptp_ind[t] = d["modifier_indicator"].to_numpy().astype(np.int8)[o]
        self.mue_units, self.mue_mai = {}, {}
        for t, d in mue.items():
            ids = ids_of(_arrow_text(d["code"]))
            u = np.full(len(self.vocab) + 1, np.nan)  # last slot: unknown code
            m = np.zeros(len(self.vocab) + 1, dtype=np.int8)
            u[ids] = d["mue_units"].to_numpy().astype(np.float64)
            m[ids] = d["mai"].to_numpy().astype(np.int8)
            self.mue_units[t], self.mue_mai[t] = u, m
        self._icd: dict[str, int] | None = None

    def code_ids(self, codes: np.ndarray) -> np.ndarray:
        """Vocabulary id per code, -1 when unknown."""
        if len(codes) <= SMALL:
            get = self.vdict.get
            return np.fromiter((get(c, -1) for c in codes.tolist()), dtype=np.int64, count=len(codes))
        return self.vocab.get_indexer(np.asarray(codes, dtype=object)).astype(np.int64)

    @staticmethod
    def _inst(claim_type: str | np.ndarray, n: int) -> np.ndarray:
        """Per row: is the claim institutional (one claim type for all rows, or one per row)."""
        if isinstance(claim_type, str):
            return np.full(n, claim_type == "institutional")
        return np.asarray(claim_type, dtype=object) == "institutional"

    def mue(self, ids: np.ndarray, claim_type: str | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MUE units as float, NaN where none; MAI as int8, 0 where none) per code id (-1: unknown)."""
        inst = self._inst(claim_type, len(ids))
        units = np.where(inst, self.mue_units["institutional"][ids], self.mue_units["professional"][ids])
        mai = np.where(inst, self.mue_mai["institutional"][ids], self.mue_mai["professional"][ids]).astype(np.int8)
        return units, mai

    def ptp(self, id1: np.ndarray, id2: np.ndarray, ymd: np.ndarray, claim_type: str | np.ndarray) -> np.ndarray:
        """Modifier indicator of the edit in force on ``ymd`` (column_1 = id1, column_2 = id2), -1 where none."""
        n = len(id1)
        out = np.full(n, -1, dtype=np.int8)
        if n == 0:
            return out
        inst = self._inst(claim_type, n)
        known = (id1 >= 0) & (id2 >= 0)
        pair = id1 * self.V + id2
        for t, m in (("professional", ~inst), ("institutional", inst)):
            if not m.any():
                continue
            keys = self.ptp_keys[t]
            # the first row of the pair whose deletion date is on or after the service date
            pos = np.searchsorted(keys, pair[m] * DATE_SHIFT + ymd[m], side="left")
            pos = np.minimum(pos, len(keys) - 1)
            kp = keys[pos]
            hit = known[m] & (kp // DATE_SHIFT == pair[m]) & (kp % DATE_SHIFT >= ymd[m])
            idx = np.flatnonzero(m)
            out[idx[hit]] = self.ptp_ind[t][pos[hit]]
        return out

    def icd_status(self, dx: np.ndarray) -> np.ndarray:
        """Per diagnosis code: 0 valid billable, 1 truncated (a category, not a billable leaf), 2 unknown
        or missing. Codes are compared stripped, without dots and upper-cased (``e11.9`` is ``E119``)."""
        if self._icd is None:
            t = self.rb.table("icd10cm")
            self._icd = dict(zip(t["code"].astype(str).tolist(), np.where(t["billable"].to_numpy(), 0, 1).tolist()))
        get = self._icd.get
        dx = np.asarray(dx, dtype=object)
        if len(dx) <= SMALL:
            values, inv = dx.tolist(), None
        else:  # each distinct code once (a missing code gets -1, the last slot: unknown)
            inv, uniq = pd.factorize(dx)
            values = uniq.tolist()
        # non-text values (None, NaN, NA) are unknown: every ICD-10-CM code starts with a letter
        status = np.fromiter(
            (get(v.strip().replace(".", "").upper(), 2) if isinstance(v, str) else 2 for v in values),
            dtype=np.int8,
            count=len(values),
        )
        return status if inv is None else np.append(status, np.int8(2))[inv]


def _arrow_text(s: pd.Series) -> pa.ChunkedArray:
    """A rulebook text column as Arrow large strings (zero-copy for Arrow-backed columns)."""
    arr = s.array
    data = getattr(arr, "_pa_array", None)
    if data is None:
        data = pa.chunked_array([pa.array(s.astype(str).to_numpy(dtype=object), pa.large_string())])
    return data.cast(pa.large_string()) if data.type != pa.large_string() else data


def rule_index(rulebook: Rulebook) -> RuleIndex:
    """The :class:`RuleIndex` of a rulebook, built on first use and kept with the rulebook's tables."""
    got = rulebook._cache.get("rule_index")
    if got is None:
        got = rulebook._cache["rule_index"] = RuleIndex(rulebook)
    return got


def ptp_pairs_ids(ri: RuleIndex, a_id, a_bypass, b_id, b_bypass, day, claim_type):
    """PTP edits of candidate same-day line pairs (code ids), both directions: (modifier indicator or -1,
    column_1 is a (bool), bypassed (bool): the indicator is 1 and either line carries a bypass modifier)."""
    ymd = ymd_of_days(day)
    ab = ri.ptp(a_id, b_id, ymd, claim_type)
    ba = ri.ptp(b_id, a_id, ymd, claim_type)
    ind = np.where(ab >= 0, ab, ba)
    a_first = ab >= 0
    bypassed = (ind == 1) & (a_bypass | b_bypass)
    return ind, a_first, bypassed
