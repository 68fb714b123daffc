"""Point-in-time history features: provider, patient, payer and specialty aggregates, duplicates,
same-day NCCI pairs across claims, and diagnosis/place-of-service support learned from peers.

Everything is computed from :class:`~features.events.EventTable` queries at the claim's own time, so
only earlier claims (in submission order) and recoupments dated on or before the submission date
count. The same functions serve training (all claims of a history at once) and the service (one
claim against the online state).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.claim import (
    SMALL,
    _list_flat,
    line_arrays,
    _ptp_pairs_ids,
    _str,
    group_max,
    group_min,
    rule_index,
)
from features.contract import CAUSES
from features.events import (
    PHASE_CLAIM,
    PHASE_RECOUPMENT,
    EventTable,
    day_number,
    encode_time,
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


def claim_entity_keys(claims: pd.DataFrame, specialty: np.ndarray, cache: dict | None = None,
                      la=None) -> dict[str, np.ndarray]:
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


def claim_times(claims: pd.DataFrame, order: np.ndarray) -> np.ndarray:
    return encode_time(day_number(claims["submitted_date"]), PHASE_CLAIM, order)


def _dx3(dx: np.ndarray) -> np.ndarray:
    return np.array([d[:3] for d in dx.tolist()], dtype=object) if len(dx) else np.zeros(0, dtype=object)


def line_dx_families(claims: pd.DataFrame, lines: pd.DataFrame, ci: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(line position, diagnosis family) pairs: the line's pointed diagnoses, else all claim diagnoses."""
    dx, dx_parent = _list_flat(claims["diagnosis_codes"])
    dx = dx.astype(str)
    dx_start = np.searchsorted(dx_parent, np.arange(len(claims)))
    dx_count = np.bincount(dx_parent, minlength=len(claims))
    ptr, ptr_parent = _list_flat(lines["diagnosis_pointers"])
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


def line_keys(claims: pd.DataFrame, lines: pd.DataFrame, la: pd.DataFrame, cache: dict | None = None,
              specialty: np.ndarray | None = None) -> dict:
    """String keys of each line (computed once per call and shared by events and features)."""
    L = line_arrays(la)
    if cache is not None and "samekey" in cache:
        return cache
    out = cache if cache is not None else {}
    ci = L["ci"]
    pid = (out["patient_id"] if "patient_id" in out else _str(claims["patient_id"]))[ci]
    npi = (out["billing_npi"] if "billing_npi" in out else _str(claims["billing_npi"]))[ci]
    day = L["day"].astype(str).astype(object)
    code = L["code"]
    samekey = pid + "|" + npi + "|" + day
    out["samekey"] = samekey
    out["dupkey"] = samekey + "|" + code
    lp, fam = line_dx_families(claims, lines, ci)
    out["lp"], out["proc_dx"] = lp, code[lp] + "|" + fam
    pos = (out["place_of_service"] if "place_of_service" in out else _str(claims["place_of_service"]))[ci]
    out["proc_pos"] = code + "|" + pos
    plan = (out["plan_type"] if "plan_type" in out else _str(claims["plan_type"]))[ci]
    out["proc_plan"] = code + "|" + plan
    out["proc_dx1"] = code + "|" + principal_families(claims)[ci]
    if specialty is None:
        raise ValueError("line_keys needs the claims' specialties")
    spec = np.asarray(specialty, dtype=object)[ci]
    out["spec_proc"] = spec + "|" + code
    out["spec_proc_dx1"] = spec + "|" + out["proc_dx1"]
    return out


def principal_families(claims: pd.DataFrame) -> np.ndarray:
    """The 3-character family of each claim's principal (first) diagnosis."""
    dx, parent = _list_flat(claims["diagnosis_codes"])
    n = len(claims)
    out = np.full(n, "", dtype=object)
    if len(dx):
        first = np.searchsorted(parent, np.arange(n))
        ok = (first < len(parent)) & (parent[np.minimum(first, len(parent) - 1)] == np.arange(n))
        out[ok] = _dx3(np.asarray(dx, dtype=object)[first[ok]].astype(str))
    return out


def claim_events(
    claims: pd.DataFrame, lines: pd.DataFrame, la: pd.DataFrame, specialty: np.ndarray, order: np.ndarray,
    cache: dict | None = None,
) -> dict[str, tuple]:
    """Event rows contributed by claims: name -> (keys, times, values, payload)."""
    L = line_arrays(la)
    ci = L["ci"]
    n = len(claims)
    t = claim_times(claims, order)
    em = L["em_level"]
    vals = np.zeros((n, len(ENTITY_COLS)))
    vals[:, 0] = 1.0
    vals[:, 1] = claims["total_charge"].to_numpy(dtype=np.float64)
    vals[:, 2] = np.bincount(ci, minlength=n)
    vals[:, 3] = np.bincount(ci, weights=(em > 0).astype(float), minlength=n)
    vals[:, 4] = np.bincount(ci, weights=(em >= 4).astype(float), minlength=n)
    vals[:, 5] = np.bincount(ci, weights=(L["mod_59"] | L["mod_x"]).astype(float),
                             minlength=n)
    vals[:, 6] = np.bincount(ci, weights=em.astype(float), minlength=n)
    out: dict[str, tuple] = {}
    for name, keys in claim_entity_keys(claims, specialty, cache, la).items():
        out[name] = (keys, t, vals, None)
    # line-level keys
    lk = line_keys(claims, lines, la, cache, specialty)
    code = L["code"]
    tl = t[ci]
    ones = np.ones((len(L["ci"]), 1))
    cid = lk["claim_id"] if "claim_id" in lk else _str(claims["claim_id"])
    out["dup"] = (lk["dupkey"], tl, ones, cid[ci])
    same_payload = (code + "|" + L["mod_bypass"].astype(int).astype(str).astype(object) + "|"
                    + L["line_number"].astype(str).astype(object) + "|" + cid[ci]).astype(object)
    out["sameday"] = (lk["samekey"], tl, ones, same_payload)
    lp = lk["lp"]
    out["proc_dx"] = (lk["proc_dx"], tl[lp], np.ones((len(lp), 1)), None)
    has_att = claims["has_attachment"].to_numpy(dtype=float)[ci]
    has_pa = claims["prior_auth_number"].notna().to_numpy(dtype=float)[ci]
    out["proc"] = (code, tl, np.column_stack([np.ones(len(ci)), has_att]), None)
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


TABLE_COLUMNS = {
    **{e: ENTITY_COLS for e in ENTITIES},
    "dup": ["n"], "sameday": ["n"], "proc_dx": ["n"], "proc": ["n", "att"], "proc_pos": ["n"],
    "proc_plan": ["n", "pa"], "proc_dx1": ["n"], "spec_proc": ["n"], "spec_proc_dx1": ["n"],
}


def build_tables(parts: list[dict[str, tuple]]) -> dict[str, EventTable]:
    """Assemble event tables from several event-row dicts (claims, recoupments)."""
    tables = {}
    for name, cols in TABLE_COLUMNS.items():
        got = [p[name] for p in parts if name in p]
        keys = np.concatenate([g[0] for g in got]) if got else np.zeros(0, dtype=object)
        times = np.concatenate([g[1] for g in got]) if got else np.zeros(0, dtype=np.int64)
        vals = np.vstack([g[2] for g in got]) if got else np.zeros((0, len(cols)))
        pays = [g[3] for g in got if g[3] is not None]
        payload = np.concatenate(pays) if pays and len(pays) == len(got) else None
        tables[name] = EventTable.build(cols, keys, times, vals, payload)
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
    t = claim_times(claims, order)
    day = day_number(claims["submitted_date"])
    keys = claim_entity_keys(claims, specialty, cache, la)
    f: dict[str, np.ndarray] = {}
    ix = {c: i for i, c in enumerate(ENTITY_COLS)}
    res = {e: tables[e].query(keys[e], t)[0] for e in ENTITIES}
    g = res["all"]
    sp = res["specialty"]
    pr = res["provider"]
    pa = res["patient"]
    py = res["payer"]

    def col(a: np.ndarray, name: str) -> np.ndarray:
        return a[:, ix[name]]

    g_rate = _rate(col(g, "n_recouped"), col(g, "n_claims"))
    sp_rate = _rate(col(sp, "n_recouped") + 10 * np.nan_to_num(g_rate), col(sp, "n_claims") + 10)
    m = PROVIDER_PRIOR_WEIGHT
    f["provider_n_claims"] = col(pr, "n_claims")
    f["provider_recoup_rate"] = (col(pr, "n_recouped") + m * sp_rate) / (col(pr, "n_claims") + m)
    f["provider_recoup_ratio"] = f["provider_recoup_rate"] / np.maximum(sp_rate, 1e-6)
    for c in CAUSES:
        g_c = _rate(col(g, f"rc_{c}"), col(g, "n_claims"))
        sp_c = _rate(col(sp, f"rc_{c}") + 10 * np.nan_to_num(g_c), col(sp, "n_claims") + 10)
        pr_c = (col(pr, f"rc_{c}") + m * sp_c) / (col(pr, "n_claims") + m)
        f[f"provider_rate_{c}"] = pr_c
        f[f"provider_ratio_{c}"] = pr_c / np.maximum(sp_c, 1e-6)
        f[f"payer_rate_{c}"] = (col(py, f"rc_{c}") + PAYER_PRIOR_WEIGHT * np.nan_to_num(g_c)) / (
            col(py, "n_claims") + PAYER_PRIOR_WEIGHT)
    f["payer_recoup_rate"] = (col(py, "n_recouped") + PAYER_PRIOR_WEIGHT * np.nan_to_num(g_rate)) / (
        col(py, "n_claims") + PAYER_PRIOR_WEIGHT)
    f["specialty_recoup_rate"] = sp_rate
    # provider behaviour vs peers
    pr_em = _rate(col(pr, "em_high") + 5 * _rate(col(sp, "em_high"), col(sp, "em_lines")),
                  col(pr, "em_lines") + 5)
    sp_em = _rate(col(sp, "em_high"), col(sp, "em_lines"))
    f["provider_em_high_share"] = pr_em
    f["provider_em_high_vs_peers"] = pr_em - sp_em
    sp_lvl = _rate(col(sp, "em_level_sum"), col(sp, "em_lines"))
    pr_lvl = _rate(col(pr, "em_level_sum") + 5 * np.nan_to_num(sp_lvl), col(pr, "em_lines") + 5)
    f["provider_em_level_vs_peers"] = pr_lvl - sp_lvl
    pr_59 = _rate(col(pr, "mod59_lines"), col(pr, "n_lines") + 10)
    f["provider_mod59_share_vs_peers"] = pr_59 - _rate(col(sp, "mod59_lines"), col(sp, "n_lines"))
    total_charge = claims["total_charge"].to_numpy(dtype=float)
    avg_charge = _rate(col(pr, "charge"), col(pr, "n_claims"))
    f["charge_vs_provider_avg"] = total_charge / np.maximum(avg_charge, 1.0)
    sp_avg = _rate(col(sp, "charge"), col(sp, "n_claims"))
    f["charge_vs_specialty_avg"] = total_charge / np.maximum(sp_avg, 1.0)
    # windows: one batched query per table (claim time and the window starts)
    t90 = time_of_day_start(day - 90)
    t180 = time_of_day_start(day - 180)
    pw = tables["provider"].query(np.concatenate([keys["provider"]] * 3), np.concatenate([t, t90, t180]),
                                  columns=[0])[0][:, 0]
    p_t, p_90, p_180 = pw[:n], pw[n:2 * n], pw[2 * n:]
    w1 = p_t - p_90
    w0 = p_90 - p_180
    f["provider_claims_90d"] = w1
    f["provider_growth_90d"] = (w1 + 5) / (w0 + 5)
    # patient
    f["patient_n_claims"] = col(pa, "n_claims")
    qw = tables["patient"].query(np.concatenate([keys["patient"]] * 2),
                                 np.concatenate([time_of_day_start(day - 30), time_of_day_start(day - 365)]),
                                 columns=[0])[0][:, 0]
    f["patient_claims_30d"] = col(pa, "n_claims") - qw[:n]
    f["patient_claims_365d"] = col(pa, "n_claims") - qw[n:]
    # the claim's main procedure: how often peers' claims for it were recouped, overall and by cause
    pc = res["procedure"]
    pc_rate = (col(pc, "n_recouped") + 20 * np.nan_to_num(g_rate)) / (col(pc, "n_claims") + 20)
    f["procedure_recoup_rate"] = pc_rate
    for c in ("documentation", "medical_necessity", "procedure_coding", "bundling", "units"):
        g_c = _rate(col(g, f"rc_{c}"), col(g, "n_claims"))
        f[f"procedure_rate_{c}"] = (col(pc, f"rc_{c}") + 20 * np.nan_to_num(g_c)) / (col(pc, "n_claims") + 20)
    f["patient_n_recouped"] = col(pa, "n_recouped")
    f["patient_eligibility_recoups"] = col(pa, "rc_eligibility")

    hits: list[dict] = []
    lk = line_keys(claims, lines, la, cache, specialty)
    _duplicate_features(claims, la, tables, t, f, hits, lk, day)
    _sameday_ptp(claims, la, tables, t, f, hits, rulebook, lk, cache)
    _support_features(claims, lines, la, tables, t, f, lk)
    for k, v in f.items():
        f[k] = np.round(np.asarray(v, dtype=np.float64), ROUND)
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
    n_lines = np.bincount(ci, minlength=n)
    n_match = np.bincount(ci, weights=matched.astype(float), minlength=n)
    f["dup_lines_matched"] = n_match
    f["dup_share_lines_matched"] = n_match / np.maximum(n_lines, 1)
    f["dup_all_lines_matched"] = ((n_match == n_lines) & (n_lines > 0)).astype(float)
    same, _ = tables["sameday"].query(samekey, tl)
    f["sameday_prior_lines"] = np.bincount(ci, weights=same[:, 0], minlength=n)
    f["dup_days_since_match"] = np.full(n, np.nan)
    if matched.any():
        pay, tt = dup.latest_payload(lk["dupkey"][matched], tl[matched])
        mday = (tt >> 33).astype(float)
        sub = day.astype(float)[ci[matched]]
        f["dup_days_since_match"] = group_min(ci[matched], sub - mday, n)
        hits.append({
            "ci": ci[matched], "rule": "duplicate", "line_number": L["line_number"][matched],
            "code": L["code"][matched], "ref": pay,
            "value": sub - mday,
        })


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
    cnt, latest = tab.query(samekey, tl)
    has = cnt[:, 0] > 0
    if not has.any():
        return
    q_idx, other = [], []
    k_idx = tab.key_positions(samekey[has])
    lo = np.where(k_idx >= 0, tab.offsets[np.maximum(k_idx, 0)], 0)
    hi = latest[has] + 1
    reps = np.maximum(hi - lo, 0)
    qi = np.repeat(np.flatnonzero(has), reps)
    ev = np.repeat(lo, reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
    q_idx.append(qi)
    other.extend(tab.payload[ev].tolist())
    # delta (online additions)
    if tab.n_delta:
        for j in np.flatnonzero(has):
            for tt, _, p in tab.delta.get(samekey[j], ()):
                if tt < tl[j]:
                    q_idx.append(np.array([j]))
                    other.append(p)
    qi = np.concatenate(q_idx)
    if len(qi) == 0:
        return
    parts = [str(o).split("|", 3) for o in other]
    o_code = np.array([p[0] for p in parts], dtype=object)
    o_byp = np.array([p[1] == "1" for p in parts], dtype=bool)
    o_claim = np.array([p[3] for p in parts], dtype=object)
    code = L["code"][qi]
    keep = code != o_code
    qi, o_code, o_byp, o_claim, code = qi[keep], o_code[keep], o_byp[keep], o_claim[keep], code[keep]
    if len(qi) == 0:
        return
    ctype = (cache["claim_type"] if "claim_type" in cache else _str(claims["claim_type"]))[ci[qi]]
    ri = rule_index(rulebook)
    ind, a_first, bypassed = _ptp_pairs_ids(ri, ri.code_ids(code), L["mod_bypass"][qi],
                                            ri.code_ids(o_code), o_byp, L["day"][qi], ctype)
    hit = (ind >= 0) & (ind != 9)
    c = ci[qi]
    f["ptp_cross_claim"] = np.bincount(c[hit], minlength=n).astype(float)
    bad = hit & ~bypassed
    f["ptp_cross_claim_needs_modifier"] = np.bincount(c[bad], minlength=n).astype(float)
    if bad.any():
        col1 = np.where(a_first, code, o_code)
        col2 = np.where(a_first, o_code, code)
        hits.append({
            "ci": c[bad], "rule": "ncci_ptp", "line_number": L["line_number"][qi][bad],
            "code": col1[bad], "other_code": col2[bad], "value": ind[bad].astype(float),
            "ref": o_claim[bad],
        })


def _support_features(claims, lines, la, tables, t, f, lk) -> None:
    """How often peers billed this procedure with these diagnosis families / at this place of service."""
    L = line_arrays(la)
    n = len(claims)
    ci = L["ci"]
    code = L["code"]
    tl = t[ci]
    proc = tables["proc"].query(code, tl)[0]
    proc_n = proc[:, 0]
    enough = proc_n >= MIN_SUPPORT_COUNT
    lp = lk["lp"]
    both = tables["proc_dx"].query(lk["proc_dx"], tl[lp])[0][:, 0]
    ratio = np.where(proc_n[lp] >= MIN_SUPPORT_COUNT, both / np.maximum(proc_n[lp], 1), np.nan)
    per_line = group_max(lp, ratio, len(L["ci"]), empty=np.nan)
    f["dx_support_min"] = group_min(ci, per_line, n)
    pp = tables["proc_pos"].query(lk["proc_pos"], tl)[0][:, 0]
    r = np.where(proc_n >= MIN_SUPPORT_COUNT, pp / np.maximum(proc_n, 1), np.nan)
    f["pos_support_min"] = group_min(ci, r, n)
    f["procedure_history_min"] = np.log1p(group_min(ci, proc_n, n))
    # the principal diagnosis with each procedure (peers' share and count of such pairs)
    p1 = tables["proc_dx1"].query(lk["proc_dx1"], tl)[0][:, 0]
    f["dx_principal_support_min"] = group_min(ci, np.where(enough, p1 / np.maximum(proc_n, 1), np.nan), n)
    f["dx_principal_pairs_min"] = np.log1p(group_min(ci, p1, n))
    # the same within the provider's specialty (a diagnosis common for a code in one specialty can be
    # unrelated to the same code in another)
    sp_n = tables["spec_proc"].query(lk["spec_proc"], tl)[0][:, 0]
    sp1 = tables["spec_proc_dx1"].query(lk["spec_proc_dx1"], tl)[0][:, 0]
    f["dx_principal_support_specialty_min"] = group_min(
        ci, np.where(sp_n >= MIN_SUPPORT_COUNT, sp1 / np.maximum(sp_n, 1), np.nan), n)
    # paperwork peers usually send for these procedures (attachment; prior auth for this plan type)
    att = np.where(enough, proc[:, 1] / np.maximum(proc_n, 1), np.nan)
    f["attachment_expected"] = group_max(ci, att, n, empty=np.nan)
    pa = tables["proc_plan"].query(lk["proc_plan"], tl)[0]
    pa_rate = np.where(pa[:, 0] >= MIN_SUPPORT_COUNT, pa[:, 1] / np.maximum(pa[:, 0], 1), np.nan)
    f["prior_auth_expected"] = group_max(ci, pa_rate, n, empty=np.nan)
    has_att = claims["has_attachment"].to_numpy(dtype=float)
    has_pa = claims["prior_auth_number"].notna().to_numpy(dtype=float)
    f["attachment_missing_expected"] = f["attachment_expected"] * (1 - has_att)
    f["prior_auth_missing_expected"] = f["prior_auth_expected"] * (1 - has_pa)
