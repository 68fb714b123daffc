"""Point-in-time history features: provider, patient, payer and specialty aggregates, duplicates,
same-day NCCI pairs across claims, and diagnosis/place-of-service support learned from peers.

Everything is computed from :class:`~features.engine.events.EventTable` queries at the claim's own time, so
only earlier claims (in submission order) and recoupments dated on or before the submission date
count. The same functions serve training (all claims of a history at once) and the service (one
claim against the online state).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.families.claim import (
    SMALL,
    line_arrays,
    _ptp_pairs_ids,
    _str,
    claim_list_flat,
    group_max,
    group_min,
    rule_index,
    small_cached,
)
from features.contract import CAUSES
from features.engine.events import (
    PHASE_CLAIM,
    PHASE_RECOUPMENT,
    EventTable,
    Vocab,
    release_memory,
    day_number,
    encode_time,
    pack,
    time_of_day_start,
)
from features.rulebook import Rulebook

CLAIM_COLS = ["n_claims", "charge", "n_lines", "em_lines", "em_high", "mod59_lines", "em_level_sum"]
RECOUP_COLS = ["n_recouped", "recouped_amount"] + [f"rc_{c}" for c in CAUSES]
ENTITY_COLS = CLAIM_COLS + RECOUP_COLS
ENTITIES = ("provider", "patient", "payer", "specialty", "procedure", "all")
#: entities of a claim kept in the state's claim keys (recoupments are attributed to them)
KEYED_ENTITIES = ("provider", "patient", "payer", "specialty", "procedure")
#: smoothing weights (pseudo-claims) toward the prior
PROVIDER_PRIOR_WEIGHT = 50.0
PAYER_PRIOR_WEIGHT = 200.0
MIN_SUPPORT_COUNT = 20
ROUND = 9


def main_procedures(la, n: int) -> np.ndarray:
    """The procedure of each claim's highest-charge line (first line on ties)."""
    L = line_arrays(la)
    ci = L["ci"]
    main = np.full(n, None, dtype=object)
    if len(ci):
        o = np.lexsort((L["line_number"], -L["charge"], ci))
        first = o[np.r_[True, ci[o][1:] != ci[o][:-1]]]
        main[ci[first]] = L["code"][first]
    return main


def claim_entity_keys(
    claims: pd.DataFrame, specialty: np.ndarray, cache: dict | None = None, la=None
) -> dict[str, np.ndarray]:
    """The entity keys of each claim (the main procedure needs the line frame ``la`` or the cache)."""
    n = len(claims)
    cache = cache if cache is not None else {}
    for c in ("billing_npi", "patient_id", "payer_id"):
        if c not in cache:
            cache[c] = _str(claims[c])
    if "main_procedure" not in cache:
        if la is None:
            raise ValueError("claim_entity_keys needs the claims' lines for the main procedure")
        cache["main_procedure"] = main_procedures(la, n)
    return {
        "provider": cache["billing_npi"],
        "patient": cache["patient_id"],
        "payer": cache["payer_id"],
        "specialty": np.asarray(specialty, dtype=object),
        "procedure": cache["main_procedure"],
        "all": np.full(n, "all", dtype=object),
    }


def claim_days(claims: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
    """Submission day numbers (read once per call for small inputs; callers must not modify them)."""
    return small_cached(cache, "_day", len(claims), lambda: day_number(claims["submitted_date"]))


def claim_times(claims: pd.DataFrame, order: np.ndarray, cache: dict | None = None) -> np.ndarray:
    return encode_time(claim_days(claims, cache), PHASE_CLAIM, order)


def _claim_floats(claims: pd.DataFrame, cache: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total charge, has attachment, has prior auth) as floats (read once per call for small inputs)."""
    n = len(claims)
    return (
        small_cached(cache, "_total_charge", n, lambda: claims["total_charge"].to_numpy(dtype=np.float64)),
        small_cached(cache, "_has_att", n, lambda: claims["has_attachment"].to_numpy(dtype=float)),
        small_cached(cache, "_has_pa", n, lambda: claims["prior_auth_number"].notna().to_numpy(dtype=float)),
    )


def _dx3(dx: np.ndarray) -> np.ndarray:
    return np.array([d[:3] for d in dx.tolist()], dtype=object) if len(dx) else np.zeros(0, dtype=object)


def line_dx_families(
    claims: pd.DataFrame, lines: pd.DataFrame, ci: np.ndarray, cache: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(line position, diagnosis family) pairs: the line's pointed diagnoses, else all claim diagnoses."""
    dx, dx_parent = claim_list_flat(claims, "diagnosis_codes", cache)
    dx = dx.astype(str)
    dx_start = np.searchsorted(dx_parent, np.arange(len(claims)))
    dx_count = np.bincount(dx_parent, minlength=len(claims))
    ptr, ptr_parent = claim_list_flat(lines, "diagnosis_pointers", cache if len(claims) <= SMALL else None)
    ptr = ptr.astype(np.int64)
    line_pos, fam = [], []
    if len(ptr):
        c = ci[ptr_parent]
        ok = (ptr >= 1) & (ptr <= dx_count[c])
        line_pos.append(ptr_parent[ok])
        fam.append(_dx3(dx[dx_start[c[ok]] + ptr[ok] - 1]))
    has_ptr = np.zeros(len(lines), dtype=bool)
    if len(ptr):
        has_ptr[ptr_parent] = True
    rest = np.flatnonzero(~has_ptr)
    if len(rest):
        reps = dx_count[ci[rest]]
        lp = np.repeat(rest, reps)
        starts = np.repeat(dx_start[ci[rest]], reps)
        within = np.arange(len(lp)) - np.repeat(np.cumsum(reps) - reps, reps)
        line_pos.append(lp)
        fam.append(_dx3(dx[starts + within]))
    if not line_pos:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    lp = np.concatenate(line_pos)
    fm = np.concatenate(fam)
    # drop duplicate (line, family) pairs, keeping the first occurrence in order
    if len(lp) <= SMALL:
        seen: set = set()
        keep = np.zeros(len(lp), dtype=bool)
        for i, kf in enumerate(zip(lp.tolist(), fm.tolist())):
            if kf not in seen:
                seen.add(kf)
                keep[i] = True
    else:
        keep = ~pd.DataFrame({"l": lp, "f": fm}).duplicated().to_numpy()
    return lp[keep], fm[keep].astype(object)


#: from this many claims on, a call is a batch: search indexes are dropped after use and memory trimmed
BATCH_CLAIMS = 50_000

#: vocabularies of the components of the line tables' composite keys (and of intermediate pairs)
LINE_VOCABS = (
    "patient",
    "npi",
    "day",
    "code",
    "family",
    "pos",
    "plan",
    "specialty",
    "patient_npi",
    "sameday",
    "specialty_code",
)


class KeyCoder:
    """Integer keys of the line-level event tables, from one :class:`~features.engine.events.Vocab` per key
    component: e.g. the same-day key (patient, provider, day) is ``pack(id(patient, provider), id(day))``
    and the duplicate key ``pack(id(same-day key), id(code))``. Equal components give equal keys, so the
    keys identify the same events the former ``"patient|npi|day|code"`` strings did."""

    def __init__(self, vocabs: dict[str, Vocab] | None = None) -> None:
        self.vocabs = vocabs if vocabs is not None else {name: Vocab() for name in LINE_VOCABS}

    def ids(self, name: str, values, add: bool) -> np.ndarray:
        return self.vocabs[name].ids(values, add)

    def sub(self, name: str, packed: np.ndarray, add: bool) -> np.ndarray:
        """Ids of packed keys (-1 stays -1: an unseen component)."""
        ok = packed >= 0
        if ok.all():
            return self.vocabs[name].ids(packed, add)
        out = np.full(len(packed), -1, dtype=np.int64)
        out[ok] = self.vocabs[name].ids(packed[ok], add)
        return out


class Tables(dict):
    """Event tables by name, with the :class:`KeyCoder` of their integer keys (``coder``)."""

    def __init__(self, *args, coder: KeyCoder | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.coder = coder if coder is not None else KeyCoder()


def line_keys(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    la: pd.DataFrame,
    cache: dict | None = None,
    specialty: np.ndarray | None = None,
    coder: KeyCoder | None = None,
    add: bool = False,
) -> dict:
    """Integer keys of each line (computed once per call and shared by events and features).

    ``add`` gives unseen components new ids (recording events); otherwise their keys are -1 (found
    nowhere). Keys computed without ``add`` are recomputed when events are recorded.
    """
    L = line_arrays(la)
    if cache is not None and "samekey" in cache and (cache.get("_keys_added") or not add):
        return cache
    if coder is None:
        raise ValueError("line_keys needs the state's key coder")
    if specialty is None:
        raise ValueError("line_keys needs the claims' specialties")
    out = cache if cache is not None else {}
    ci = L["ci"]

    def claim_ids(vocab: str, col: str) -> np.ndarray:
        return coder.ids(vocab, out[col] if col in out else _str(claims[col]), add)

    pn = coder.sub("patient_npi", pack(claim_ids("patient", "patient_id"), claim_ids("npi", "billing_npi")), add)
    samekey = pack(pn[ci], coder.ids("day", L["day"], add))
    del pn
    code = coder.ids("code", L["code"], add)
    out["samekey"] = samekey
    out["dupkey"] = pack(coder.sub("sameday", samekey, add), code)
    out["code_id"] = code
    lp, fam = line_dx_families(claims, lines, ci, cache)
    out["lp"], out["proc_dx"] = lp, pack(code[lp], coder.ids("family", fam, add))
    del fam
    out["proc_pos"] = pack(code, claim_ids("pos", "place_of_service")[ci])
    out["proc_plan"] = pack(code, claim_ids("plan", "plan_type")[ci])
    dx1 = coder.ids("family", principal_families(claims, cache), add)[ci]
    out["proc_dx1"] = pack(code, dx1)
    spec = coder.ids("specialty", np.asarray(specialty, dtype=object), add)[ci]
    out["spec_proc"] = pack(spec, code)
    out["spec_proc_dx1"] = pack(coder.sub("specialty_code", out["spec_proc"], add), dx1)
    out["_keys_added"] = add
    return out


def principal_families(claims: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
    """The 3-character family of each claim's principal (first) diagnosis."""
    dx, parent = claim_list_flat(claims, "diagnosis_codes", cache)
    n = len(claims)
    out = np.full(n, "", dtype=object)
    if len(dx):
        first = np.searchsorted(parent, np.arange(n))
        ok = (first < len(parent)) & (parent[np.minimum(first, len(parent) - 1)] == np.arange(n))
        out[ok] = _dx3(np.asarray(dx, dtype=object)[first[ok]].astype(str))
    return out


def claim_events(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    la: pd.DataFrame,
    specialty: np.ndarray,
    order: np.ndarray,
    cache: dict | None = None,
    coder: KeyCoder | None = None,
) -> dict[str, tuple]:
    """Event rows contributed by claims: name -> (keys, times, values, payload). Unseen key components
    get ids in ``coder`` (the state's)."""
    L = line_arrays(la)
    ci = L["ci"]
    n = len(claims)
    t = claim_times(claims, order, cache)
    charge, has_att, has_pa = _claim_floats(claims, cache)
    em = L["em_level"]
    vals = np.zeros((n, len(ENTITY_COLS)))
    vals[:, 0] = 1.0
    vals[:, 1] = charge
    vals[:, 2] = np.bincount(ci, minlength=n)
    vals[:, 3] = np.bincount(ci, weights=(em > 0).astype(float), minlength=n)
    vals[:, 4] = np.bincount(ci, weights=(em >= 4).astype(float), minlength=n)
    vals[:, 5] = np.bincount(ci, weights=(L["mod_59"] | L["mod_x"]).astype(float), minlength=n)
    vals[:, 6] = np.bincount(ci, weights=em.astype(float), minlength=n)
    out: dict[str, tuple] = {}
    for name, keys in claim_entity_keys(claims, specialty, cache, la).items():
        out[name] = (keys, t, vals, None)
    # line-level keys
    lk = line_keys(claims, lines, la, cache, specialty, coder, add=True)
    tl = t[ci]
    ones = np.ones((len(L["ci"]), 1))
    if "claim_id" not in lk:
        lk["claim_id"] = _str(claims["claim_id"])  # kept in the cache: one set of id strings per call
    cid = lk["claim_id"]
    out["dup"] = (lk["dupkey"], tl, ones, cid[ci])
    # same-day lines: the code (id) and modifier bypass ride along as values, the claim id as payload
    out["sameday"] = (
        lk["samekey"],
        tl,
        np.column_stack([ones[:, 0], lk["code_id"], L["mod_bypass"].astype(np.float64)]),
        cid[ci],
    )
    lp = lk["lp"]
    out["proc_dx"] = (lk["proc_dx"], tl[lp], np.ones((len(lp), 1)), None)
    has_att = has_att[ci]
    has_pa = has_pa[ci]
    out["proc"] = (lk["code_id"], tl, np.column_stack([np.ones(len(ci)), has_att]), None)
    out["proc_pos"] = (lk["proc_pos"], tl, ones, None)
    out["proc_plan"] = (lk["proc_plan"], tl, np.column_stack([np.ones(len(ci)), has_pa]), None)
    out["proc_dx1"] = (lk["proc_dx1"], tl, ones, None)
    out["spec_proc"] = (lk["spec_proc"], tl, ones, None)
    out["spec_proc_dx1"] = (lk["spec_proc_dx1"], tl, ones, None)
    return out


def recoupment_events(rec: pd.DataFrame, claim_keys: pd.DataFrame) -> dict[str, tuple]:
    """Event rows contributed by recoupments, keyed by the recouped claim's entities.

    ``claim_keys`` is indexed by claim_id with columns provider, patient, payer, specialty.
    """
    rec = rec[rec["claim_id"].astype(str).isin(claim_keys.index)]
    n = len(rec)
    keys = claim_keys.loc[rec["claim_id"].astype(str).to_numpy()]
    t = encode_time(day_number(rec["recouped_date"]), PHASE_RECOUPMENT, 0)
    vals = np.zeros((n, len(ENTITY_COLS)))
    k = len(CLAIM_COLS)
    vals[:, k] = 1.0
    vals[:, k + 1] = rec["recouped_amount"].to_numpy(dtype=np.float64)
    cause = rec["cause"].astype(str).to_numpy()
    for j, c in enumerate(CAUSES):
        vals[:, k + 2 + j] = cause == c
    out = {}
    for name in KEYED_ENTITIES:
        if name in keys.columns:
            out[name] = (keys[name].to_numpy(dtype=object), t, vals, None)
    out["all"] = (np.full(n, "all", dtype=object), t, vals, None)
    return out


_RC = [f"rc_{c}" for c in CAUSES]
#: the columns each entity table keeps (those its features read; events carry all ENTITY_COLS)
ENTITY_TABLE_COLS = {
    "all": ["n_claims", "n_recouped", *_RC],
    "payer": ["n_claims", "n_recouped", *_RC],
    "patient": ["n_claims", "n_recouped", "rc_eligibility"],
    "procedure": ["n_claims", "n_recouped", *_RC],
    "provider": [c for c in ENTITY_COLS if c != "recouped_amount"],
    "specialty": [c for c in ENTITY_COLS if c != "recouped_amount"],
}
_ENTITY_COL_POS = {e: [ENTITY_COLS.index(c) for c in cols] for e, cols in ENTITY_TABLE_COLS.items()}


def table_values(name: str, vals: np.ndarray) -> np.ndarray:
    """The columns of event values (ENTITY_COLS wide for entity tables) that table ``name`` keeps."""
    pos = _ENTITY_COL_POS.get(name)
    if pos is None or vals.shape[1] == len(pos):
        return vals
    return vals[:, pos]


TABLE_COLUMNS = {
    **ENTITY_TABLE_COLS,
    "dup": ["n"],
    "sameday": ["n", "code", "bypass"],
    "proc_dx": ["n"],
    "proc": ["n", "att"],
    "proc_pos": ["n"],
    "proc_plan": ["n", "pa"],
    "proc_dx1": ["n"],
    "spec_proc": ["n"],
    "spec_proc_dx1": ["n"],
}


def build_tables(parts: list[dict[str, tuple]], coder: KeyCoder | None = None) -> Tables:
    """Assemble event tables from several event-row dicts (claims, recoupments), one table at a time;
    each table's rows are dropped from ``parts`` once it is built (memory)."""
    tables = Tables(coder=coder)
    for name, cols in TABLE_COLUMNS.items():
        got = [p.pop(name) for p in parts if name in p]
        keys = np.concatenate([g[0] for g in got]) if got else np.zeros(0, dtype=object)
        times = np.concatenate([g[1] for g in got]) if got else np.zeros(0, dtype=np.int64)
        vals = np.vstack([table_values(name, g[2]) for g in got]) if got else np.zeros((0, len(cols)))
        pays = [g[3] for g in got if g[3] is not None]
        payload = np.concatenate(pays) if pays and len(pays) == len(got) else None
        del got, pays
        tables[name] = EventTable.build(cols, keys, times, vals, payload)
        del keys, times, vals, payload
    release_memory()
    return tables


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def history_features(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    la: pd.DataFrame,
    tables: dict[str, EventTable],
    specialty: np.ndarray,
    order: np.ndarray,
    rulebook: Rulebook,
    cache: dict | None = None,
    as_arrays: bool = False,
):
    """History features of ``claims`` as of their submission (time and order), and history rule hits.

    Returns (DataFrame indexed like ``claims``, hit parts); with ``as_arrays`` a dict of arrays instead of
    the DataFrame (what :func:`features.pipeline.compute_features` uses).
    """
    n = len(claims)
    cache = cache if cache is not None else {}
    t = claim_times(claims, order, cache)
    day = claim_days(claims, cache)
    keys = claim_entity_keys(claims, specialty, cache, la)
    f: dict[str, np.ndarray] = {}

    def entity(e: str) -> dict[str, np.ndarray]:
        cols = tables[e].columns
        sums = tables[e].query(keys[e], t)[0]
        return {c: sums[:, j] for j, c in enumerate(cols)}

    g = entity("all")
    sp = entity("specialty")
    pr = entity("provider")
    pa = entity("patient")
    py = entity("payer")

    def col(a: dict[str, np.ndarray], name: str) -> np.ndarray:
        return a[name]

    g_rate = _rate(col(g, "n_recouped"), col(g, "n_claims"))
    g_rate0 = np.nan_to_num(g_rate)
    g_c0: dict[str, np.ndarray] = {}  # small inputs: per cause the overall rate, NaN -> 0 (computed once)
    sp_rate = _rate(col(sp, "n_recouped") + 10 * g_rate0, col(sp, "n_claims") + 10)
    m = PROVIDER_PRIOR_WEIGHT
    f["provider_n_claims"] = col(pr, "n_claims")
    f["provider_recoup_rate"] = (col(pr, "n_recouped") + m * sp_rate) / (col(pr, "n_claims") + m)
    f["provider_recoup_ratio"] = f["provider_recoup_rate"] / np.maximum(sp_rate, 1e-6)
    for c in CAUSES:
        g_c = np.nan_to_num(_rate(col(g, f"rc_{c}"), col(g, "n_claims")))
        if n <= SMALL:
            g_c0[c] = g_c
        sp_c = _rate(col(sp, f"rc_{c}") + 10 * g_c, col(sp, "n_claims") + 10)
        pr_c = (col(pr, f"rc_{c}") + m * sp_c) / (col(pr, "n_claims") + m)
        f[f"provider_rate_{c}"] = pr_c
        f[f"provider_ratio_{c}"] = pr_c / np.maximum(sp_c, 1e-6)
        f[f"payer_rate_{c}"] = (col(py, f"rc_{c}") + PAYER_PRIOR_WEIGHT * g_c) / (
            col(py, "n_claims") + PAYER_PRIOR_WEIGHT
        )
    f["payer_recoup_rate"] = (col(py, "n_recouped") + PAYER_PRIOR_WEIGHT * g_rate0) / (
        col(py, "n_claims") + PAYER_PRIOR_WEIGHT
    )
    f["specialty_recoup_rate"] = sp_rate
    # provider behaviour vs peers
    pr_em = _rate(col(pr, "em_high") + 5 * _rate(col(sp, "em_high"), col(sp, "em_lines")), col(pr, "em_lines") + 5)
    sp_em = _rate(col(sp, "em_high"), col(sp, "em_lines"))
    f["provider_em_high_share"] = pr_em
    f["provider_em_high_vs_peers"] = pr_em - sp_em
    sp_lvl = _rate(col(sp, "em_level_sum"), col(sp, "em_lines"))
    pr_lvl = _rate(col(pr, "em_level_sum") + 5 * np.nan_to_num(sp_lvl), col(pr, "em_lines") + 5)
    f["provider_em_level_vs_peers"] = pr_lvl - sp_lvl
    pr_59 = _rate(col(pr, "mod59_lines"), col(pr, "n_lines") + 10)
    f["provider_mod59_share_vs_peers"] = pr_59 - _rate(col(sp, "mod59_lines"), col(sp, "n_lines"))
    total_charge = _claim_floats(claims, cache)[0]
    avg_charge = _rate(col(pr, "charge"), col(pr, "n_claims"))
    f["charge_vs_provider_avg"] = total_charge / np.maximum(avg_charge, 1.0)
    sp_avg = _rate(col(sp, "charge"), col(sp, "n_claims"))
    f["charge_vs_specialty_avg"] = total_charge / np.maximum(sp_avg, 1.0)
    # windows: one batched query per table (claim time and the window starts)
    t90 = time_of_day_start(day - 90)
    t180 = time_of_day_start(day - 180)
    pw = tables["provider"].query(np.concatenate([keys["provider"]] * 3), np.concatenate([t, t90, t180]), columns=[0])[
        0
    ][:, 0]
    p_t, p_90, p_180 = pw[:n], pw[n : 2 * n], pw[2 * n :]
    w1 = p_t - p_90
    w0 = p_90 - p_180
    f["provider_claims_90d"] = w1
    f["provider_growth_90d"] = (w1 + 5) / (w0 + 5)
    # patient
    f["patient_n_claims"] = col(pa, "n_claims")
    qw = tables["patient"].query(
        np.concatenate([keys["patient"]] * 2),
        np.concatenate([time_of_day_start(day - 30), time_of_day_start(day - 365)]),
        columns=[0],
    )[0][:, 0]
    f["patient_claims_30d"] = col(pa, "n_claims") - qw[:n]
    f["patient_claims_365d"] = col(pa, "n_claims") - qw[n:]
    # the claim's main procedure: how often peers' claims for it were recouped, overall and by cause
    del pr, sp, py
    pc = entity("procedure")
    pc_rate = (col(pc, "n_recouped") + 20 * g_rate0) / (col(pc, "n_claims") + 20)
    f["procedure_recoup_rate"] = pc_rate
    for c in ("documentation", "medical_necessity", "procedure_coding", "bundling", "units"):
        g_c = g_c0[c] if c in g_c0 else np.nan_to_num(_rate(col(g, f"rc_{c}"), col(g, "n_claims")))
        f[f"procedure_rate_{c}"] = (col(pc, f"rc_{c}") + 20 * g_c) / (col(pc, "n_claims") + 20)
    f["patient_n_recouped"] = col(pa, "n_recouped")
    f["patient_eligibility_recoups"] = col(pa, "rc_eligibility")
    del g, pa, pc, g_c0, g_c, g_rate0

    hits: list[dict] = []
    lk = line_keys(claims, lines, la, cache, specialty, getattr(tables, "coder", None))
    big = n >= BATCH_CLAIMS
    if big:
        for e in ENTITIES:
            tables[e].release_index()
    _duplicate_features(claims, la, tables, t, f, hits, lk, day)
    _sameday_ptp(claims, la, tables, t, f, hits, rulebook, lk, cache)
    if big:
        tables["dup"].release_index()
        tables["sameday"].release_index()
    _support_features(claims, lines, la, tables, t, f, lk, big, cache)
    if n <= SMALL:  # one rounding pass over all features (same numbers, fewer numpy calls)
        mat = np.empty((len(f), n))
        for j, v in enumerate(f.values()):
            mat[j] = v
        np.round(mat, ROUND, out=mat)
        for j, k in enumerate(f):
            f[k] = mat[j]
    else:
        for k, v in f.items():
            f[k] = np.round(np.asarray(v, dtype=np.float64), ROUND)
    if big:
        for k in (
            "samekey",
            "dupkey",
            "code_id",
            "lp",
            "proc_dx",
            "proc_pos",
            "proc_plan",
            "proc_dx1",
            "spec_proc",
            "spec_proc_dx1",
            "_keys_added",
        ):
            cache.pop(k, None)  # recomputed if the claims are recorded afterwards
        release_memory()
    if as_arrays:
        return f, hits
    return pd.DataFrame(f, index=claims.index), hits


def _duplicate_features(claims, la, tables, t, f, hits, lk, day) -> None:
    L = line_arrays(la)
    ci = L["ci"]
    n = len(claims)
    samekey = lk["samekey"]
    tl = t[ci]
    dup = tables["dup"]
    cnt, _ = dup.query(lk["dupkey"], tl)
    matched = cnt[:, 0] > 0
    if matched.any():
        rows = np.flatnonzero(matched)
        pay, tt = _latest_other_claim(dup, lk["dupkey"][rows], tl[rows], _claim_ids(claims, lk)[ci[rows]])
        matched[rows[tt < 0]] = False  # only the claim's own previous version: no duplicate
        pay, tt = pay[tt >= 0], tt[tt >= 0]
    n_lines = np.bincount(ci, minlength=n)
    n_match = np.bincount(ci, weights=matched.astype(float), minlength=n)
    f["dup_lines_matched"] = n_match
    f["dup_share_lines_matched"] = n_match / np.maximum(n_lines, 1)
    f["dup_all_lines_matched"] = ((n_match == n_lines) & (n_lines > 0)).astype(float)
    same, _ = tables["sameday"].query(samekey, tl, columns=[0])
    f["sameday_prior_lines"] = np.bincount(ci, weights=same[:, 0], minlength=n)
    f["dup_days_since_match"] = np.full(n, np.nan)
    if matched.any():
        mday = (tt >> 33).astype(float)
        sub = day.astype(float)[ci[matched]]
        f["dup_days_since_match"] = group_min(ci[matched], sub - mday, n)
        hits.append(
            {
                "ci": ci[matched],
                "rule": "duplicate",
                "line_number": L["line_number"][matched],
                "code": L["code"][matched],
                "ref": pay,
                "value": sub - mday,
            }
        )


def _claim_ids(claims, lk) -> np.ndarray:
    return lk["claim_id"] if "claim_id" in lk else _str(claims["claim_id"])


def _latest_other_claim(
    dup: EventTable, keys: np.ndarray, times: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(claim id, time) of the latest earlier event of each key whose claim is not ``own`` (time -1 if
    none): a claim is never a duplicate of itself (its previous version, when it replaces one)."""
    pay, tt = dup.latest_payload(keys, times)
    mine = (pay == own) & (tt >= 0)
    while mine.any():  # look before the claim's own event (rare: a replacement)
        r = np.flatnonzero(mine)
        p2, t2 = dup.latest_payload(keys[r], tt[r])
        pay[r], tt[r] = p2, t2
        mine = np.zeros(len(pay), dtype=bool)
        mine[r] = (p2 == own[r]) & (t2 >= 0)
    return pay, tt


def _sameday_ptp(claims, la, tables, t, f, hits, rulebook, lk, cache) -> None:
    """NCCI pairs between this claim's lines and earlier same-day lines of the same patient and provider."""
    L = line_arrays(la)
    n = len(claims)
    f["ptp_cross_claim"] = np.zeros(n)
    f["ptp_cross_claim_needs_modifier"] = np.zeros(n)
    ci = L["ci"]
    if len(ci) == 0:
        return
    tab = tables["sameday"]
    samekey = lk["samekey"]
    tl = t[ci]
    cnt, latest = tab.query(samekey, tl, columns=[0])
    has = cnt[:, 0] > 0
    if not has.any():
        return
    hq = np.flatnonzero(has)
    # every earlier same-day line (delta of online additions included): claim id, code id, bypass
    qi, o_claim, ev = tab.payloads_before(samekey[hq], tl[hq], latest[hq], values=True)
    qi = hq[qi]
    if len(qi) == 0:
        return
    o_claim = np.asarray(o_claim, dtype=object)
    mine = o_claim == _claim_ids(claims, lk)[ci[qi]]
    if mine.any():  # the claim's own previous version (a replacement) is not an earlier same-day claim
        f["sameday_prior_lines"] = f["sameday_prior_lines"] - np.bincount(
            ci[qi[mine]], weights=ev[mine, 0], minlength=n
        )
        qi, o_claim, ev = qi[~mine], o_claim[~mine], ev[~mine]
        if len(qi) == 0:
            return
    o_code = tables.coder.vocabs["code"].decode(ev[:, 1].astype(np.int64))
    o_byp = ev[:, 2] == 1
    o_claim = np.asarray(o_claim, dtype=object)
    code = L["code"][qi]
    keep = code != o_code
    qi, o_code, o_byp, o_claim, code = qi[keep], o_code[keep], o_byp[keep], o_claim[keep], code[keep]
    if len(qi) == 0:
        return
    ctype = (cache["claim_type"] if "claim_type" in cache else _str(claims["claim_type"]))[ci[qi]]
    ri = rule_index(rulebook)
    ind, a_first, bypassed = _ptp_pairs_ids(
        ri, ri.code_ids(code), L["mod_bypass"][qi], ri.code_ids(o_code), o_byp, L["day"][qi], ctype
    )
    hit = (ind >= 0) & (ind != 9)
    c = ci[qi]
    f["ptp_cross_claim"] = np.bincount(c[hit], minlength=n).astype(float)
    bad = hit & ~bypassed
    f["ptp_cross_claim_needs_modifier"] = np.bincount(c[bad], minlength=n).astype(float)
    if bad.any():
        col1 = np.where(a_first, code, o_code)
        col2 = np.where(a_first, o_code, code)
        hits.append(
            {
                "ci": c[bad],
                "rule": "ncci_ptp",
                "line_number": L["line_number"][qi][bad],
                "code": col1[bad],
                "other_code": col2[bad],
                "value": ind[bad].astype(float),
                "ref": o_claim[bad],
            }
        )


def _support_features(claims, lines, la, tables, t, f, lk, release: bool = False, cache: dict | None = None) -> None:
    """How often peers billed this procedure with these diagnosis families / at this place of service."""
    L = line_arrays(la)

    def _query(name: str, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
        out = tables[name].query(keys, times)[0]
        if release:
            tables[name].release_index()
        return out

    n = len(claims)
    ci = L["ci"]
    tl = t[ci]
    proc = _query("proc", lk["code_id"], tl)
    proc_n = proc[:, 0]
    enough = proc_n >= MIN_SUPPORT_COUNT
    lp = lk["lp"]
    both = _query("proc_dx", lk["proc_dx"], tl[lp])[:, 0]
    ratio = np.where(proc_n[lp] >= MIN_SUPPORT_COUNT, both / np.maximum(proc_n[lp], 1), np.nan)
    per_line = group_max(lp, ratio, len(L["ci"]), empty=np.nan)
    f["dx_support_min"] = group_min(ci, per_line, n)
    pp = _query("proc_pos", lk["proc_pos"], tl)[:, 0]
    r = np.where(proc_n >= MIN_SUPPORT_COUNT, pp / np.maximum(proc_n, 1), np.nan)
    f["pos_support_min"] = group_min(ci, r, n)
    f["procedure_history_min"] = np.log1p(group_min(ci, proc_n, n))
    # the principal diagnosis with each procedure (peers' share and count of such pairs)
    p1 = _query("proc_dx1", lk["proc_dx1"], tl)[:, 0]
    f["dx_principal_support_min"] = group_min(ci, np.where(enough, p1 / np.maximum(proc_n, 1), np.nan), n)
    f["dx_principal_pairs_min"] = np.log1p(group_min(ci, p1, n))
    # the same within the provider's specialty (a diagnosis common for a code in one specialty can be
    # unrelated to the same code in another)
    sp_n = _query("spec_proc", lk["spec_proc"], tl)[:, 0]
    sp1 = _query("spec_proc_dx1", lk["spec_proc_dx1"], tl)[:, 0]
    f["dx_principal_support_specialty_min"] = group_min(
        ci, np.where(sp_n >= MIN_SUPPORT_COUNT, sp1 / np.maximum(sp_n, 1), np.nan), n
    )
    # paperwork peers usually send for these procedures (attachment; prior auth for this plan type)
    att = np.where(enough, proc[:, 1] / np.maximum(proc_n, 1), np.nan)
    f["attachment_expected"] = group_max(ci, att, n, empty=np.nan)
    pa = _query("proc_plan", lk["proc_plan"], tl)
    pa_rate = np.where(pa[:, 0] >= MIN_SUPPORT_COUNT, pa[:, 1] / np.maximum(pa[:, 0], 1), np.nan)
    f["prior_auth_expected"] = group_max(ci, pa_rate, n, empty=np.nan)
    _, has_att, has_pa = _claim_floats(claims, cache)
    f["attachment_missing_expected"] = f["attachment_expected"] * (1 - has_att)
    f["prior_auth_missing_expected"] = f["prior_auth_expected"] * (1 - has_pa)
