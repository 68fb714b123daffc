"""Per-claim attributes and deterministic rule checks (NCCI PTP, MUE, add-on codes, ICD-10-CM, coverage).

Everything here is a function of the claims being scored, their lines, the rulebook and the patients'
coverage spans; nothing depends on other claims (that is :mod:`features.families.history`). Functions are
vectorized with numpy (bincount / ufunc.at group reductions, numpy pair generation) so one call handles
one claim (the service, in well under a millisecond) or millions (training) through the same code.

Rule hits come back as a long frame (one row per finding) with the columns of :data:`HIT_COLUMNS`;
:mod:`serving.reasons` turns them into sentences. Internally hits are collected as "parts" (dicts of
column arrays with a ``ci`` claim position) and turned into one frame at the end (:func:`hits_frame`).
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.rulebook import PTP_BYPASS_MODIFIERS, Rulebook

HIT_COLUMNS = ["claim_id", "rule", "line_number", "code", "other_code", "value", "limit", "ref"]
EM_LEVEL = {
    **{f"9920{i}": i for i in range(2, 6)},
    **{f"9921{i}": i for i in range(1, 6)},
    **{f"9928{i}": i for i in range(1, 6)},
}
EM_NEW = {f"9920{i}" for i in range(2, 6)}
X_MODIFIERS = {"XE", "XS", "XP", "XU"}
#: up to this many claims, lookups go through Python dicts instead of vectorized pandas indexers and
#: ``compute_features`` returns arrays (no frames): the service's requests. Measured (100-claim batch):
#: features 8.5 vs 15 ms and scoring 5.7 vs 9.4 ms; at 300 claims 13.9 vs 15.8 ms; at 1,000 the
#: vectorized path is ahead (28 vs 32 ms).
SMALL = 256
_DATE_SHIFT = np.int64(100_000_000)
_NAT_YMD = 99991231


# ---------------------------------------------------------------------- small numpy helpers
def _list_flat(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, parent row positions) of an Arrow list column."""
    arr = s.array._pa_array  # type: ignore[attr-defined]
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if len(arr) == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    vals = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(arr).to_numpy()
    return vals, parents.astype(np.int64)


def small_cached(cache: dict | None, key: str, n: int, make):
    """``make()`` remembered in ``cache`` under ``key`` for small inputs (``n`` <= SMALL claims: the
    service reads each claim column once per call); batches compute it every time (no per-row arrays
    kept: memory). Callers must not modify the returned array."""
    if cache is None or n > SMALL:
        return make()
    got = cache.get(key)
    if got is None:
        got = cache[key] = make()
    return got


def claim_list_flat(frame: pd.DataFrame, col: str, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_list_flat` of ``frame[col]``, flattened once per call for small inputs (see :func:`small_cached`)."""
    if cache is None or len(frame) > SMALL:
        return _list_flat(frame[col])
    return small_cached(cache, "_flat_" + col, 0, lambda: _list_flat(frame[col]))


def _small_values(s: pd.Series) -> list | None:
    """The values of a short column as a list when none is missing (else None: take the pandas path).
    Values that are all ``str`` need no ``isna`` pass."""
    if len(s) > SMALL:
        return None
    arr = s.array
    if isinstance(arr, pd.Categorical):  # the categories' values by code
        codes = arr.codes.tolist()
        # a few claims: index the categories (their ``tolist`` costs more); more: the list of categories
        cats = arr.categories if len(codes) <= 4 else arr.categories.tolist()
        vals = [cats[c] if c >= 0 else np.nan for c in codes]
        if all(type(v) is str for v in vals):
            return vals
        vals = s.tolist()
    else:
        vals = s.tolist()
    if all(type(v) is str for v in vals) or not s.hasnans:
        return vals
    return None


def _str(s: pd.Series) -> np.ndarray:
    """A column as an object array of str (what ``astype(str)`` gives)."""
    vals = _small_values(s)
    if vals is not None:
        return np.array([v if type(v) is str else str(v) for v in vals], dtype=object)
    return s.astype(str).to_numpy(dtype=object)


def string_objects(s: pd.Series) -> np.ndarray:
    """A column as ``astype("string")`` then an object array (missing -> pd.NA)."""
    vals = _small_values(s)
    if vals is not None:
        return np.array([v if type(v) is str else str(v) for v in vals], dtype=object)
    return s.astype("string").to_numpy(dtype=object)


def group_sum(ci: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(ci, weights=np.asarray(values, dtype=np.float64), minlength=n).astype(np.float64)


def group_max(ci: np.ndarray, values: np.ndarray, n: int, empty: float = 0.0) -> np.ndarray:
    """Per group maximum ignoring NaN (like pandas groupby max); ``empty`` for groups without items,
    NaN for groups whose items are all NaN."""
    out = np.full(n, -np.inf)
    v = np.asarray(values, dtype=np.float64)
    np.fmax.at(out, ci, v)
    cnt = np.bincount(ci, minlength=n)
    allnan = (out == -np.inf) & (cnt > 0)
    if allnan.any():
        allnan &= np.bincount(ci, weights=~np.isnan(v), minlength=n) == 0
        out[allnan] = np.nan
    out[cnt == 0] = empty
    return out


def group_min(ci: np.ndarray, values: np.ndarray, n: int, empty: float = np.nan) -> np.ndarray:
    """Per group minimum ignoring NaN; ``empty`` for groups without items, NaN when all are NaN."""
    out = np.full(n, np.inf)
    v = np.asarray(values, dtype=np.float64)
    np.fmin.at(out, ci, v)
    cnt = np.bincount(ci, minlength=n)
    allnan = (out == np.inf) & (cnt > 0)
    if allnan.any():
        allnan &= np.bincount(ci, weights=~np.isnan(v), minlength=n) == 0
        out[allnan] = np.nan
    out[cnt == 0] = empty
    return out


def group_ids(*cols: np.ndarray) -> np.ndarray:
    """Dense ids of the distinct tuples of integer columns."""
    if len(cols[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(cols) == 1:
        return np.unique(cols[0], return_inverse=True)[1].ravel()
    stacked = np.stack([np.asarray(c, dtype=np.int64) for c in cols], axis=1)
    return np.unique(stacked, axis=0, return_inverse=True)[1].ravel()


def pairs_within(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (a, b) with a < b and groups[a] == groups[b], ordered by (a, b) (a self-merge, in numpy)."""
    n = len(groups)
    if n < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    start_flag = np.r_[True, g[1:] != g[:-1]]
    starts = np.flatnonzero(start_flag)
    sizes = np.diff(np.r_[starts, n])
    gstart = np.repeat(starts, sizes)
    rank = np.arange(n) - gstart
    cnt = np.repeat(sizes, sizes) - rank - 1  # partners after each element in its group
    tot = int(cnt.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    a_sorted = np.repeat(np.arange(n), cnt)
    k = np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    b_sorted = a_sorted + 1 + k
    a, b = order[a_sorted], order[b_sorted]
    o = np.lexsort((b, a))
    return a[o], b[o]


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of an object array; a dict for a few values, pandas for many."""
    if len(values) <= SMALL:
        seen: dict = {}
        codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values.tolist()), dtype=np.int64, count=len(values))
        return codes, np.array(list(seen), dtype=object)
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


# ---------------------------------------------------------------------- rulebook index (cached)
class RuleIndex:
    """Our own lookup structures over the rulebook's public tables, built once per rulebook.

    Procedure codes map to integer ids (a dict for a few codes, a pandas indexer for many); PTP edits
    are sorted int64 keys ``(id1 * V + id2) * 1e8 + deletion YYYYMMDD`` searched with np.searchsorted
    (the rule of :meth:`Rulebook.ptp_lookup`: the earliest deletion date on or after the service date
    applies); MUE limits are arrays indexed by code id.
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
            k = (i1 * v + i2) * _DATE_SHIFT + d["deletion_date"].to_numpy().astype(np.int64)
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
        self._icd: dict | None = None

    def code_ids(self, codes: np.ndarray) -> np.ndarray:
        """Vocabulary id per code, -1 when unknown."""
        if len(codes) <= SMALL:
            get = self.vdict.get
            return np.fromiter((get(c, -1) for c in codes.tolist()), dtype=np.int64, count=len(codes))
        return self.vocab.get_indexer(np.asarray(codes, dtype=object)).astype(np.int64)

    @staticmethod
    def _inst(claim_type: np.ndarray) -> np.ndarray:
        return np.asarray(claim_type, dtype=object) == "institutional"

    def mue(self, ids: np.ndarray, claim_type: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inst = self._inst(claim_type)
        units = np.where(inst, self.mue_units["institutional"][ids], self.mue_units["professional"][ids])
        mai = np.where(inst, self.mue_mai["institutional"][ids], self.mue_mai["professional"][ids]).astype(np.int8)
        return units, mai

    def ptp(self, id1: np.ndarray, id2: np.ndarray, ymd: np.ndarray, claim_type: np.ndarray) -> np.ndarray:
        """Modifier indicator of the edit in force (column_1 = id1), -1 where none."""
        n = len(id1)
        out = np.full(n, -1, dtype=np.int8)
        if n == 0:
            return out
        inst = self._inst(claim_type)
        known = (id1 >= 0) & (id2 >= 0)
        pair = id1 * self.V + id2
        for t, m in (("professional", ~inst), ("institutional", inst)):
            if not m.any():
                continue
            keys = self.ptp_keys[t]
            pos = np.searchsorted(keys, pair[m] * _DATE_SHIFT + ymd[m], side="left")
            pos = np.minimum(pos, len(keys) - 1)
            kp = keys[pos]
            hit = known[m] & (kp // _DATE_SHIFT == pair[m]) & (kp % _DATE_SHIFT >= ymd[m])
            idx = np.flatnonzero(m)
            out[idx[hit]] = self.ptp_ind[t][pos[hit]]
        return out

    def icd_status(self, dx: np.ndarray) -> np.ndarray:
        if len(dx) > SMALL:
            return self.rb.icd_status(dx)
        if self._icd is None:
            t = self.rb.table("icd10cm")
            self._icd = dict(zip(t["code"].astype(str).tolist(), np.where(t["billable"].to_numpy(), 0, 1).tolist()))
        get = self._icd.get
        return np.fromiter(
            (get(str(d).strip().replace(".", "").upper(), 2) for d in dx.tolist()), dtype=np.int8, count=len(dx)
        )


def _arrow_text(s: pd.Series) -> pa.ChunkedArray:
    """A rulebook text column as Arrow large strings (zero-copy for Arrow-backed columns)."""
    arr = s.array
    data = getattr(arr, "_pa_array", None)
    if data is None:
        data = pa.chunked_array([pa.array(s.astype(str).to_numpy(dtype=object), pa.large_string())])
    return data.cast(pa.large_string()) if data.type != pa.large_string() else data


_RULE_INDEX: dict[int, tuple[Rulebook, RuleIndex]] = {}


def rule_index(rulebook: Rulebook) -> RuleIndex:
    """The cached :class:`RuleIndex` of a rulebook (kept for the rulebook's lifetime)."""
    got = _RULE_INDEX.get(id(rulebook))
    if got is None or got[0] is not rulebook:
        got = (rulebook, RuleIndex(rulebook))
        _RULE_INDEX[id(rulebook)] = got
    return got[1]


def ymd_of_days(day: np.ndarray) -> np.ndarray:
    """Days since 1970 as YYYYMMDD int64 (the rulebook's date key)."""
    d = np.asarray(day, dtype=np.int64).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    dd = (d - months).astype(np.int64) + 1
    out = year * 10000 + month * 100 + dd
    out[np.asarray(day) >= 10**6] = _NAT_YMD
    return out


# ---------------------------------------------------------------------- lines
_MINOR_RANGES = ((80047, 89398), (36415, 36416), (90460, 90749))


_EM_HCPCS = frozenset({"G2211", "G0438", "G0439", "G0402"})


def em_services(codes: np.ndarray) -> np.ndarray:
    """E/M services of any kind: CPT 99202-99499 (office, hospital, ED, critical care, preventive,
    prolonged) and the HCPCS E/M codes G0402, G0438, G0439 (wellness visits) and G2211 (complexity)."""
    out = np.zeros(len(codes), dtype=bool)
    for i, c in enumerate(np.asarray(codes, dtype=object).tolist()):
        out[i] = (len(c) == 5 and c.isdigit() and 99202 <= int(c) <= 99499) or c in _EM_HCPCS
    return out


def minor_services(codes: np.ndarray) -> np.ndarray:
    """Lab and pathology (80047-89398), venipuncture (36415-36416), immunizations (90460-90749):
    services that do not make an E/M with modifier 25 a separately identifiable visit."""
    out = np.zeros(len(codes), dtype=bool)
    for i, c in enumerate(np.asarray(codes, dtype=object).tolist()):
        if len(c) == 5 and c.isdigit():
            v = int(c)
            out[i] = any(lo <= v <= hi for lo, hi in _MINOR_RANGES)
    return out


def separate_procedures(codes: np.ndarray, rulebook: Rulebook) -> np.ndarray:
    """Lines that are procedures in their own right: not E/M, not a minor service, not an add-on code."""
    codes = np.asarray(codes, dtype=object)
    ids = None
    if len(codes) > SMALL:
        ids, codes = pd.factorize(codes)
        codes = np.asarray(codes, dtype=object)
    addon = rulebook.addon_primaries
    out = ~em_services(codes) & ~minor_services(codes) & ~np.array([c in addon for c in codes.tolist()], dtype=bool)
    return out if ids is None else out[ids]


def claim_index(claims: pd.DataFrame, lines: pd.DataFrame) -> np.ndarray:
    """Position in ``claims`` of each line's claim."""
    cid = claims["claim_id"].to_numpy(dtype=object)
    lid = lines["claim_id"].to_numpy(dtype=object)
    if len(cid) <= SMALL and len(lid) <= 4 * SMALL:
        pos = {c: i for i, c in enumerate(cid.tolist())}
        idx = np.fromiter((pos.get(c, -1) for c in lid.tolist()), dtype=np.int64, count=len(lid))
    else:
        idx = pd.Index(cid, dtype=object).get_indexer(lid)
    if (idx < 0).any():
        raise ValueError("claim_lines has lines whose claim_id is not among the claims")
    return idx


def line_attributes(lines: pd.DataFrame, claim_type: np.ndarray, rulebook: Rulebook) -> pd.DataFrame:
    """Line-level helpers: E/M level, modifier flags, MUE limit and MAI."""
    return pd.DataFrame(_line_attribute_arrays(lines, claim_type, rulebook))


def _line_attribute_arrays(lines: pd.DataFrame, claim_type: np.ndarray, rulebook: Rulebook) -> dict:
    code = _str(lines["procedure_code"])
    mods, parent = _list_flat(lines["modifiers"])
    n = len(lines)
    mods = np.asarray(mods, dtype=object)

    def flag(values: set[str]) -> np.ndarray:
        f = np.zeros(n, dtype=bool)
        if len(mods):
            f[parent[np.isin(mods, list(values))]] = True
        return f

    ri = rule_index(rulebook)
    ids = ri.code_ids(code)
    mue, mai = ri.mue(ids, claim_type)
    em = np.fromiter((EM_LEVEL.get(c, 0) for c in code.tolist()), dtype=np.int8, count=n)
    return {
        "code": code,
        "em_level": em,
        "em_new": np.isin(code, list(EM_NEW)),
        "mod_59": flag({"59"}),
        "mod_x": flag(X_MODIFIERS),
        "mod_25": flag({"25"}),
        "mod_76_77": flag({"76", "77"}),
        "mod_bypass": flag(set(PTP_BYPASS_MODIFIERS)),
        "n_modifiers": np.bincount(parent, minlength=n) if len(mods) else np.zeros(n, dtype=np.int64),
        "mue": mue,
        "mai": mai,
        "_code_id": ids,
    }


def ptp_pairs(
    a_code: np.ndarray,
    a_bypass: np.ndarray,
    b_code: np.ndarray,
    b_bypass: np.ndarray,
    service_date: np.ndarray,
    claim_type: np.ndarray,
    rulebook: Rulebook,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For candidate line pairs on the same day, look up the PTP edit in both directions.

    Returns (modifier indicator or -1, column_1 is a (bool), bypassed (bool)). A pair is bypassed when
    the indicator is 1 and either line carries an NCCI-associated modifier.
    """
    ri = rule_index(rulebook)
    day = np.asarray(service_date).astype("datetime64[D]").astype(np.int64)
    return _ptp_pairs_ids(
        ri,
        ri.code_ids(np.asarray(a_code, dtype=object)),
        np.asarray(a_bypass),
        ri.code_ids(np.asarray(b_code, dtype=object)),
        np.asarray(b_bypass),
        day,
        np.asarray(claim_type, dtype=object),
    )


def _ptp_pairs_ids(ri: RuleIndex, a_id, a_bypass, b_id, b_bypass, day, claim_type):
    ymd = ymd_of_days(day)
    ab = ri.ptp(a_id, b_id, ymd, claim_type)
    ba = ri.ptp(b_id, a_id, ymd, claim_type)
    ind = np.where(ab >= 0, ab, ba)
    a_first = ab >= 0
    bypassed = (ind == 1) & (a_bypass | b_bypass)
    return ind, a_first, bypassed


def _days(values) -> np.ndarray:
    """datetime-like column -> int64 days since 1970."""
    return np.asarray(values).astype("datetime64[D]").astype(np.int64)


def prepare_lines(claims: pd.DataFrame, lines: pd.DataFrame, rulebook: Rulebook) -> pd.DataFrame:
    """Line helper frame: claim position ``ci``, code, E/M level, modifier flags, MUE, units, day."""
    return pd.DataFrame(prepare_line_arrays(claims, lines, rulebook))


def prepare_line_arrays(
    claims: pd.DataFrame, lines: pd.DataFrame, rulebook: Rulebook, claim_type: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The columns of :func:`prepare_lines` as a dict of arrays (no DataFrame built)."""
    ci = claim_index(claims, lines)
    ctype = _str(claims["claim_type"]) if claim_type is None else claim_type
    la = _line_attribute_arrays(lines, ctype[ci], rulebook)
    la.pop("_code_id")
    la["ci"] = ci
    la["line_number"] = lines["line_number"].to_numpy()
    la["units"] = lines["units"].to_numpy(dtype=np.float64)
    la["charge"] = lines["line_charge"].to_numpy(dtype=np.float64)
    la["day"] = _days(lines["service_date"].to_numpy(dtype="datetime64[D]"))  # days since 1970
    return la


_LA_CACHE: dict[int, tuple] = {}


def line_arrays(la) -> dict[str, np.ndarray]:
    """The line helper columns as numpy arrays (``la`` a frame from :func:`prepare_lines` or already a
    dict); a frame's arrays are remembered while it lives, so each column is converted once."""
    if isinstance(la, dict):
        return la
    got = _LA_CACHE.get(id(la))
    if got is not None and got[0]() is la and got[1]["ci"].shape[0] == len(la):
        arrays = got[1]
        for c in la.columns:
            if c not in arrays:
                arrays[c] = la[c].to_numpy()
        return arrays
    arrays = {c: la[c].to_numpy(dtype=object) if c == "code" else la[c].to_numpy() for c in la.columns}
    if len(_LA_CACHE) > 8:
        _LA_CACHE.clear()
    _LA_CACHE[id(la)] = (weakref.ref(la), arrays)
    return arrays


def _code_ids_of(L: dict, rulebook: Rulebook) -> np.ndarray:
    return rule_index(rulebook).code_ids(L["code"])


# ---------------------------------------------------------------------- claims
def claim_attributes(
    claims: pd.DataFrame,
    la: pd.DataFrame,
    rulebook: Rulebook,
    coverage: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim-level features and rule hits (features indexed like ``claims``, hits long frame)."""
    f, parts = claim_attribute_arrays(claims, la, rulebook, coverage)
    return pd.DataFrame(f, index=claims.index), hits_frame(
        [parts], claims["claim_id"].astype(str).to_numpy(dtype=object)
    )


def claim_attribute_arrays(
    claims: pd.DataFrame,
    la: pd.DataFrame,
    rulebook: Rulebook,
    coverage: pd.DataFrame | None = None,
    cols: dict | None = None,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Claim-level features (name -> array aligned with ``claims``) and hit parts."""
    n = len(claims)
    cols = cols if cols is not None else {}
    L = line_arrays(la)
    ci = L["ci"]
    ctype = cols["claim_type"] if "claim_type" in cols else _str(claims["claim_type"])
    hits: list[dict] = []
    units = L["units"]
    lcharge = L["charge"]
    em_level = L["em_level"]
    line_number = L["line_number"]
    codes = L["code"]
    lday = L["day"]

    f: dict[str, np.ndarray] = {}
    charge = small_cached(cols, "_total_charge", n, lambda: claims["total_charge"].to_numpy(dtype=np.float64))
    f["total_charge"] = charge
    n_lines = np.bincount(ci, minlength=n)
    f["n_lines"] = n_lines.astype(np.float64)
    f["total_units"] = group_sum(ci, units, n)
    f["max_line_units"] = group_max(ci, units, n)
    f["max_line_charge"] = group_max(ci, lcharge, n)
    f["charge_per_unit"] = charge / np.maximum(f["total_units"], 1e-9)

    # E/M level and its support
    f["em_level"] = group_max(ci, em_level, n)
    f["em_new_patient"] = group_max(ci, L["em_new"], n)
    non_em = (em_level == 0).astype(float)
    f["n_non_em_lines"] = group_sum(ci, non_em, n)
    f["n_procedure_lines"] = group_sum(ci, separate_procedures(L["code"], rulebook).astype(float), n)
    dx, dx_parent = claim_list_flat(claims, "diagnosis_codes", cols)
    dx = np.asarray(dx).astype(str).astype(object)
    f["n_dx"] = np.bincount(dx_parent, minlength=n).astype(np.float64)
    first = np.array([d[:1].upper() for d in dx.tolist()], dtype=object) if len(dx) else np.zeros(0, dtype=object)
    f["n_dx_z"] = np.bincount(dx_parent[first == "Z"], minlength=n).astype(np.float64)
    f["n_dx_r"] = np.bincount(dx_parent[first == "R"], minlength=n).astype(np.float64)
    status = rule_index(rulebook).icd_status(dx) if len(dx) else np.zeros(0, dtype=np.int8)
    f["n_dx_invalid"] = np.bincount(dx_parent[status == 2], minlength=n).astype(np.float64)
    f["n_dx_truncated"] = np.bincount(dx_parent[status == 1], minlength=n).astype(np.float64)
    for rule, st in (("invalid_icd", 2), ("truncated_icd", 1)):
        m = status == st
        if m.any():
            hits.append({"ci": dx_parent[m], "rule": rule, "code": dx[m]})

    # Modifiers
    for col in ("mod_59", "mod_x", "mod_25", "mod_76_77"):
        f[f"has_{col}"] = group_max(ci, L[col], n)
    f["n_modifiers"] = group_sum(ci, L["n_modifiers"], n)
    # modifier 25 marks an E/M as separate from a procedure done the same day; labs, venipuncture and
    # vaccines are not such procedures
    f["mod25_without_procedure"] = ((f["has_mod_25"] > 0) & (f["n_procedure_lines"] == 0)).astype(float)

    # MUE: per line (MAI 1) or per date of service (MAI 2/3)
    code_id = _code_ids_of(L, rulebook)
    mue = L["mue"]
    mai = L["mai"]
    # (claim, code, day) groups; unknown codes get their own ids past the vocabulary
    cid_key = code_id.copy()
    unk = cid_key < 0
    if unk.any():
        cid_key[unk] = len(rule_index(rulebook).vocab) + factorize(codes[unk])[0]
    g_ccd = group_ids(ci, cid_key, lday)
    day_units = np.bincount(g_ccd, weights=units)[g_ccd] if len(g_ccd) else np.zeros(0)
    applied = np.where(mai == 1, units, day_units)
    ratio = np.where(mue > 0, applied / np.where(mue > 0, mue, 1), np.nan)
    L["mue_ratio"] = ratio
    if isinstance(la, pd.DataFrame):
        la["mue_ratio"] = ratio
    ratio0 = np.nan_to_num(ratio, nan=0.0)
    f["max_mue_ratio"] = group_max(ci, ratio0, n)
    over = ratio0 > 1.0 + 1e-9
    first_over = np.zeros(len(L["ci"]), dtype=bool)
    if over.any():
        ov = np.flatnonzero(over)
        _, first_pos = np.unique(g_ccd[ov], return_index=True)
        first_over[ov[first_pos]] = True
    f["n_mue_exceeded"] = group_sum(ci, first_over, n)
    f["mue_excess_units"] = group_sum(ci, np.where(first_over, applied - mue, 0.0), n)
    if first_over.any():
        m = first_over
        hits.append(
            {
                "ci": ci[m],
                "rule": "mue",
                "line_number": line_number[m],
                "code": codes[m],
                "value": applied[m],
                "limit": mue[m],
                "ref": mai[m].astype(str).astype(object),
            }
        )

    # NCCI PTP inside the claim (same service date)
    for name in ("ptp_pairs", "ptp_unbypassable", "ptp_needs_modifier", "ptp_bypassed"):
        f[name] = np.zeros(n)
    pa_, pb_ = pairs_within(group_ids(ci, lday))
    if len(pa_):
        keep = codes[pa_] != codes[pb_]
        pa_, pb_ = pa_[keep], pb_[keep]
    if len(pa_):
        byp = L["mod_bypass"]
        ind, a_first, bypassed = _ptp_pairs_ids(
            rule_index(rulebook), code_id[pa_], byp[pa_], code_id[pb_], byp[pb_], lday[pa_], ctype[ci[pa_]]
        )
        hit = ind >= 0
        pci = ci[pa_]
        f["ptp_pairs"] = np.bincount(pci[hit], minlength=n).astype(float)
        f["ptp_unbypassable"] = np.bincount(pci[ind == 0], minlength=n).astype(float)
        f["ptp_needs_modifier"] = np.bincount(pci[(ind == 1) & ~bypassed], minlength=n).astype(float)
        f["ptp_bypassed"] = np.bincount(pci[bypassed], minlength=n).astype(float)
        m = hit & ~bypassed & (ind != 9)
        if m.any():
            col1 = np.where(a_first, codes[pa_], codes[pb_])
            col2 = np.where(a_first, codes[pb_], codes[pa_])
            ln2 = np.where(a_first, line_number[pb_], line_number[pa_])
            hits.append(
                {
                    "ci": pci[m],
                    "rule": "ncci_ptp",
                    "line_number": ln2[m],
                    "code": col1[m],
                    "other_code": col2[m],
                    "value": ind[m].astype(float),
                    "ref": "same claim",
                }
            )

    # Add-on codes without their primary on the claim
    f["n_addon_without_primary"] = np.zeros(n)
    prim = rulebook.addon_primaries
    get = prim.get
    code_list = codes.tolist()
    is_addon = np.fromiter((bool(get(c)) for c in code_list), dtype=bool, count=len(code_list))
    if is_addon.any():
        need = set(ci[is_addon].tolist())
        claim_codes: dict[int, set] = {}
        for c, i in zip(code_list, ci.tolist()):
            if i in need:
                claim_codes.setdefault(i, set()).add(c)
        missing = np.zeros(len(codes), dtype=bool)
        for i in np.flatnonzero(is_addon).tolist():
            missing[i] = not (prim[code_list[i]] & claim_codes[int(ci[i])])
        f["n_addon_without_primary"] = group_sum(ci, missing, n)
        if missing.any():
            hits.append(
                {
                    "ci": ci[missing],
                    "rule": "addon_without_primary",
                    "line_number": line_number[missing],
                    "code": codes[missing],
                }
            )

    # Dates, paperwork, frequency
    first_day = group_min(ci, lday, n)
    last_day = group_max(ci, lday, n, empty=0.0)
    sub_day = _days(claims["submitted_date"].to_numpy(dtype="datetime64[D]"))
    f["submission_lag_days"] = sub_day - last_day
    f["service_span_days"] = last_day - first_day
    # the same cache keys as features.families.history reads them under (small inputs: read once per call)
    f["has_prior_auth"] = small_cached(
        cols, "_has_pa", n, lambda: claims["prior_auth_number"].notna().to_numpy(dtype=float)
    )
    f["has_attachment"] = small_cached(cols, "_has_att", n, lambda: claims["has_attachment"].to_numpy(dtype=float))
    freq = cols["frequency_code"] if "frequency_code" in cols else _str(claims["frequency_code"])
    f["is_replacement"] = (freq == "7").astype(float)
    f["is_void"] = (freq == "8").astype(float)

    # Coverage on the service dates
    cov = coverage_arrays(claims, first_day, last_day, coverage, cols)
    f.update(cov)
    out_m = cov["outside_coverage"] == 1
    if out_m.any():
        hits.append(
            {
                "ci": np.flatnonzero(out_m),
                "rule": "outside_coverage",
                "value": cov["days_outside_coverage"][out_m],
                "ref": np.where(cov["covered_by_other_payer"][out_m] == 1, "other payer", "no coverage").astype(object),
            }
        )
    return f, hits


class CoverageArrays:
    """Coverage spans as plain arrays (what :func:`coverage_arrays` reads from a coverage frame):
    patient and payer ids as str, start and end as days since 1970 (float; open end 1e9)."""

    def __init__(self, coverage: pd.DataFrame):
        self.patient_id = _str(coverage["patient_id"])
        self.start = _days(coverage["coverage_start"].to_numpy(dtype="datetime64[D]")).astype(float)
        e_raw = coverage["coverage_end"].to_numpy(dtype="datetime64[D]")
        self.end = np.where(np.isnat(e_raw), 1e9, e_raw.astype("int64").astype(float))
        self.payer_id = _str(coverage["payer_id"])
        rows: dict[str, list[int]] = {}
        for i, p in enumerate(self.patient_id.tolist()):
            rows.setdefault(p, []).append(i)
        self._rows = {p: np.array(r, dtype=np.int64) for p, r in rows.items()}

    def __len__(self) -> int:
        return len(self.patient_id)

    def of_patients(self, patient_ids: list[str]) -> "CoverageArrays":
        """The spans of these patients (each patient's rows in table order, patients in the given order:
        the rows ``HistoryState.coverage_for`` selects)."""
        got = [self._rows.get(p) for p in patient_ids]
        got = [r for r in got if r is not None]
        idx = np.concatenate(got) if got else np.zeros(0, dtype=np.int64)
        out = object.__new__(CoverageArrays)
        out.patient_id, out.start, out.end, out.payer_id = (
            self.patient_id[idx],
            self.start[idx],
            self.end[idx],
            self.payer_id[idx],
        )
        out._rows = {}
        return out


def coverage_attributes(
    claims: pd.DataFrame, first_day: np.ndarray, last_day: np.ndarray, coverage: pd.DataFrame | None
) -> pd.DataFrame:
    """Whether the service dates fall in a coverage span of the billed payer (NaN without coverage data)."""
    return pd.DataFrame(coverage_arrays(claims, first_day, last_day, coverage))


def coverage_arrays(
    claims: pd.DataFrame,
    first_day: np.ndarray,
    last_day: np.ndarray,
    coverage: pd.DataFrame | None,
    cols: dict | None = None,
) -> dict[str, np.ndarray]:
    n = len(claims)
    cols = cols or {}
    out = {
        "outside_coverage": np.full(n, np.nan),
        "covered_by_other_payer": np.full(n, np.nan),
        "days_outside_coverage": np.full(n, np.nan),
        "days_since_coverage_start": np.full(n, np.nan),
    }
    if coverage is None or len(coverage) == 0 or n == 0:
        return out
    pid = cols["patient_id"] if "patient_id" in cols else _str(claims["patient_id"])
    payer = cols["payer_id"] if "payer_id" in cols else _str(claims["payer_id"])
    if isinstance(coverage, CoverageArrays):
        cov_pid, cov_start, cov_end, cov_payer = coverage.patient_id, coverage.start, coverage.end, coverage.payer_id
    else:
        cov_pid = _str(coverage["patient_id"])
        cov_start = _days(coverage["coverage_start"].to_numpy(dtype="datetime64[D]")).astype(float)
        e_raw = coverage["coverage_end"].to_numpy(dtype="datetime64[D]")
        cov_end = np.where(np.isnat(e_raw), 1e9, e_raw.astype("int64").astype(float))
        cov_payer = None
    # claim x coverage rows of the same patient (an inner merge, in numpy)
    codes, uniq = factorize(np.concatenate([pid, cov_pid]))
    qc, cc = codes[:n], codes[n:]
    order = np.argsort(cc, kind="stable")
    counts = np.bincount(cc, minlength=len(uniq))
    starts = np.r_[0, np.cumsum(counts)]
    reps = counts[qc]
    if reps.sum() == 0:
        return out
    q = np.repeat(np.arange(n), reps)
    within = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    r = order[np.repeat(starts[qc], reps) + within]
    s = cov_start[r]
    e = cov_end[r]
    d0, d1 = first_day[q], last_day[q]
    inside = (s <= d0) & (d1 <= e)
    same = (_str(coverage["payer_id"]) if cov_payer is None else cov_payer)[r] == payer[q]
    dist = np.maximum(s - d0, 0) + np.maximum(d1 - e, 0)
    any_row = np.bincount(q, minlength=n) > 0
    in_same = np.bincount(q, weights=inside & same, minlength=n) > 0
    in_other = np.bincount(q, weights=inside & ~same, minlength=n) > 0
    dist_same = np.full(n, np.inf)
    np.minimum.at(dist_same, q, np.where(same, dist, np.inf))
    since = group_max(q, np.where(same & inside, d0 - s, np.nan), n, empty=np.nan)
    out["outside_coverage"][any_row] = (~in_same[any_row]).astype(float)
    out["covered_by_other_payer"][any_row] = (in_other & ~in_same)[any_row].astype(float)
    out["days_outside_coverage"][any_row] = np.where(np.isinf(dist_same), 999.0, dist_same)[any_row]
    out["days_since_coverage_start"][any_row] = since[any_row]
    return out


# ---------------------------------------------------------------------- hits
def _empty_hits() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in HIT_COLUMNS})


def _col(part: dict, c: str, size: int) -> np.ndarray:
    v = part.get(c)
    if v is None:
        return np.full(size, np.nan)
    if np.ndim(v) == 0:
        return np.full(size, v, dtype=object)
    v = np.asarray(v)
    return v.astype(object) if v.dtype.kind in "USO" else v


def _concat_group(parts: list[dict], claim_ids: np.ndarray) -> dict[str, np.ndarray] | None:
    """Columns of ``pd.concat`` of the parts' frames followed by :func:`finalize_hits` (missing column
    in some parts -> NaN there; in all parts -> None)."""
    parts = [p for p in parts if len(p["ci"])]
    if not parts:
        return None
    sizes = [len(p["ci"]) for p in parts]
    out: dict[str, np.ndarray] = {}
    total = sum(sizes)
    for c in ["ci"] + HIT_COLUMNS[1:]:
        if not any(c in p for p in parts):
            out[c] = np.full(total, None, dtype=object)
        else:
            out[c] = np.concatenate([_col(p, c, s) for p, s in zip(parts, sizes)])
    out["claim_id"] = claim_ids[out["ci"]]
    return out


def hits_frame(groups: list[list[dict]], claim_ids: np.ndarray) -> pd.DataFrame:
    """The :data:`HIT_COLUMNS` frame of several groups of hit parts, sorted by claim position and rule
    (stable), as the pandas concat/sort of the parts' frames would give it."""
    cols = [g for g in (_concat_group(p, claim_ids) for p in groups) if g is not None]
    if not cols:
        return _empty_hits()
    merged = {c: np.concatenate([g[c] for g in cols]) if len(cols) > 1 else cols[0][c] for c in cols[0]}
    rules, rcode = np.unique(merged["rule"].astype(str), return_inverse=True)
    order = np.lexsort((rcode.ravel(), merged["ci"]))
    return pd.DataFrame({c: merged[c][order] for c in HIT_COLUMNS})


def finalize_hits(parts: list, claims: pd.DataFrame) -> pd.DataFrame:
    """Concatenate hit parts (with a ``ci`` claim position) into the :data:`HIT_COLUMNS` frame."""
    parts = [p if isinstance(p, dict) else {c: p[c].to_numpy() for c in p.columns} for p in parts]
    cols = _concat_group(parts, claims["claim_id"].astype(str).to_numpy(dtype=object))
    if cols is None:
        return _empty_hits()
    return pd.DataFrame({c: cols[c] for c in HIT_COLUMNS + ["ci"]})
