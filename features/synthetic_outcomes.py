"""Payment, error facts, the recoupment oracle and the realized recoupments of the synthetic history.

For claim *i* and cause *c* the generator has an error hazard ``h[i, c]`` (from the facts of the
claim and the latent habits of its provider) and a small baseline ``b[i, c]`` (random audits that
find something on a clean claim). The payer recoups for cause *c* with probability

    q[i, c] = 1 - exp(-(s[c] * h[i, c] * audit[payer, c] * detect[c] * late * magnet + b[i, c]))

and the claim is recouped at all with ``P_any = 1 - prod_c (1 - q[i, c])``; the cause of that one
recoupment is drawn with probability ``q[i, c] / sum_c q[i, c]`` and its lag after ``paid_date``
from a log-normal with a cause-specific median. So the probability of a recoupment of cause *c*
within the horizon is ``p[i, c] = P_any * q[i, c] / sum_c q * F_c(horizon)`` and
``true_probability = sum_c p[i, c]`` (0 for claims that are not paid). The per-cause scales ``s``
are solved (fixed-point iterations on the expected counts) so that the expected share of claims
recouped within the horizon is the configured rate and the causes follow the configured mix.
"""

from __future__ import annotations

import math

import numpy as np

from features.contract import CAUSES
from features.synthetic_claims import DUP, REPL, SPLIT, VOID, Arrays, ptp_pairs
from features.synthetic_index import CatalogArrays
from features.synthetic_world import Patients, Providers

CI = {c: i for i, c in enumerate(CAUSES)}
#: how visible an error of each cause is to a payer's post-payment review
DETECT = np.array([0.9, 0.5, 0.5, 0.35, 0.35, 0.3, 0.8, 0.3])
#: median days from payment to recoupment, by cause
LAG_MEDIAN = np.array([55.0, 120.0, 120.0, 170.0, 170.0, 200.0, 110.0, 150.0])
LAG_SIGMA = 0.75
#: CARC codes (without group) a payer uses for each cause, with weights
CARCS: dict[str, tuple[tuple[str, float], ...]] = {
    "duplicate": (("18", 1.0),),
    "bundling": (("97", 0.8), ("234", 0.1), ("B15", 0.1)),
    "units": (("151", 0.7), ("119", 0.2), ("35", 0.1)),
    "procedure_coding": (("4", 0.5), ("181", 0.2), ("182", 0.15), ("189", 0.15)),
    "medical_necessity": (("50", 0.6), ("11", 0.25), ("167", 0.1), ("146", 0.05)),
    "documentation": (("16", 0.5), ("252", 0.35), ("226", 0.15)),
    "eligibility": (("27", 0.5), ("26", 0.15), ("31", 0.1), ("22", 0.1), ("109", 0.1), ("200", 0.05)),
    "other": (("45", 0.5), ("94", 0.2), ("59", 0.15), ("A1", 0.15)),
}


def lag_cdf(days: float) -> np.ndarray:
    """P(lag <= days) per cause."""
    z = (math.log(days) - np.log(LAG_MEDIAN)) / (LAG_SIGMA * math.sqrt(2))
    return np.array([0.5 * (1 + math.erf(v)) for v in z])


def _seg_max(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    np.maximum.at(out, owner, values)
    return out


def _seg_any(mask: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(owner, weights=mask, minlength=n) > 0


# --------------------------------------------------------------------------------------
# paperwork and payment
# --------------------------------------------------------------------------------------


def paperwork(rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays,
              missing_attachment: float, missing_pa: float) -> None:
    """``has_attachment`` and prior authorization: sloppy providers skip them where they are needed."""
    n = len(C["visit"])
    lc = L["claim"]
    plan = cat.payer_plan[C["payer"]]
    C["att_needed"] = _seg_any(cat.needs_attachment[L["code"]], lc, n)
    C["pa_needed"] = _seg_any(cat.needs_pa[L["code"], plan[lc]], lc, n)
    sloppy = prov.habit["sloppy"][C["provider"]]
    miss_att = rng.random(n) < np.clip(missing_attachment * sloppy, 0, 0.9)
    C["has_attachment"] = np.where(C["att_needed"], ~miss_att, rng.random(n) < 0.03)
    miss_pa = rng.random(n) < np.clip(missing_pa * sloppy, 0, 0.9)
    C["has_pa"] = np.where(C["pa_needed"], ~miss_pa, rng.random(n) < 0.02)
    # copies keep the parent's paperwork
    cp = C["parent"] >= 0
    C["has_attachment"][cp] = C["has_attachment"][C["parent"][cp]]
    C["has_pa"][cp] = C["has_pa"][C["parent"][cp]]


def documentation_state(rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays,
                        deficient_rate: float) -> None:
    """Latent: does the medical record fail to support the claim? Sloppy providers, risky services
    (DME, therapy, high E/M, advanced imaging) and large charges make it likelier; copies share it."""
    n = len(C["visit"])
    risk = _seg_max(cat.kind_risk[L["code"]], L["claim"], n)
    charge_f = (np.maximum(C["total_charge"], 1.0) / 200.0) ** 0.2
    p = np.clip(deficient_rate * prov.habit["sloppy"][C["provider"]] * risk * charge_f, 0, 0.9)
    C["doc_deficient"] = rng.random(n) < p
    cp = C["parent"] >= 0
    C["doc_deficient"][cp] = C["doc_deficient"][C["parent"][cp]]
    C["doc_risk"] = risk


def payments(rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays, days: int,
             denial_rate: float, overpaid_rate: float) -> None:
    """Charges, denials (never recouped), payment dates (none after the data end) and paid amounts."""
    n = len(C["visit"])
    lc = L["claim"]
    charge = cat.fee[L["code"]] * L["units"] * prov.markup[C["provider"][lc]] * rng.lognormal(0, 0.03, len(lc))
    L["charge"] = np.round(charge * L["charge_adj"], 2)
    C["total_charge"] = np.round(np.bincount(lc, weights=L["charge"], minlength=n), 2)
    kind = C["kind"]
    parent = C["parent"]
    p_deny = (denial_rate + 0.35 * C["truncated"] + 0.25 * C["uncovered"]
              + np.where(kind == DUP, np.where(C["dup_near"], 0.3, 0.5), 0.0))
    denied = (rng.random(n) < p_deny) | (kind == VOID)
    paid_day = C["sub"] + 10 + np.minimum(rng.gamma(2.0, 6.0, n), 35).astype(np.int64)
    paid = ~denied & (paid_day <= days)
    C["denied"], C["paid"] = denied, paid
    C["paid_day"] = np.where(paid, paid_day, -1)
    ratio = cat.payer_ratio[C["payer"]] * rng.lognormal(0, 0.05, n)
    over = paid & (rng.random(n) < overpaid_rate)
    ratio = np.where(over, np.minimum(ratio * rng.uniform(1.5, 2.3, n), 0.97), ratio)
    C["overpaid"] = over
    lp = np.round(np.minimum(L["charge"] * ratio[lc], L["charge"]), 2)
    L["paid"] = np.where(paid[lc], lp, np.nan)
    C["paid_amount"] = np.where(paid, np.round(np.bincount(lc, weights=np.nan_to_num(L["paid"]), minlength=n), 2),
                                np.nan)
    C["expected_paid"] = np.where(over, C["paid_amount"] * cat.payer_ratio[C["payer"]] / ratio, C["paid_amount"])
    C["dup_of_paid"] = (kind == DUP) & ~denied[np.maximum(parent, 0)]


# --------------------------------------------------------------------------------------
# facts and hazards
# --------------------------------------------------------------------------------------


def facts(cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays,
          svc_dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per-claim error hazards ``h`` (n, 8), recoupable amounts (n, 8) and named facts."""
    n = len(C["visit"])
    lc, code = L["claim"], L["code"]
    paid_line = np.nan_to_num(L["paid"])
    paid = np.nan_to_num(C["paid_amount"])
    H = np.zeros((n, len(CAUSES)))
    A = np.zeros((n, len(CAUSES)))
    F: dict[str, np.ndarray] = {}
    pv = C["provider"]
    # duplicate
    exact = C["dup_of_paid"] & ~C["dup_near"]
    near = C["dup_of_paid"] & C["dup_near"]
    H[:, CI["duplicate"]] = 1.0 * exact + 0.7 * near + 0.02 * (C["kind"] == REPL)
    A[:, CI["duplicate"]] = paid
    F["duplicate"] = C["dup_of_paid"]
    # bundling: PTP pairs on the same claim; split claims carry their pair from construction
    a, b, mi = ptp_pairs(cat, C, L, svc_dates)
    byp = cat.ptp_bypass_mask[L["mods"]].any(1)
    bypassed = byp[a] | byp[b]
    err = (mi == 0) | ((mi == 1) & ~bypassed)
    abuse = (mi == 1) & bypassed & (L["inj_bundle"][a] | L["inj_bundle"][b])
    natural_mod = (mi == 1) & bypassed & ~abuse
    split_err = (C["kind"] == SPLIT) & ((C["split_mi"] == 0) | ((C["split_mi"] == 1) & ~C["split_bypass"]))
    split_abuse = (C["kind"] == SPLIT) & (C["split_mi"] == 1) & C["split_bypass"]
    b_err = _seg_any(err, lc[a], n) | split_err
    H[:, CI["bundling"]] = (1.0 * b_err + 0.25 * (_seg_any(abuse, lc[a], n) | split_abuse)
                            + 0.03 * _seg_any(natural_mod, lc[a], n))
    comp = _seg_max(paid_line[b[err]], lc[b[err]], n)
    A[:, CI["bundling"]] = np.where(C["kind"] == SPLIT, paid, np.where(comp > 0, comp, 0.3 * paid))
    F["bundling"] = b_err
    F["ptp_lines"] = np.stack([a[err], b[err]], axis=1)
    # units over the MUE: per line (MAI 1) or per code and day (MAI 2/3)
    mue = cat.mue[C["ct"][lc], code]
    mai = cat.mai[C["ct"][lc], code]
    key = lc.astype(np.int64) * cat.n_codes + code
    uk, inv = np.unique(key, return_inverse=True)
    day_units = np.bincount(inv, weights=L["units"])[inv]
    day_paid = np.bincount(inv, weights=paid_line)[inv]
    over_line = (mai == 1) & (L["units"] > mue)
    over_day = (mai >= 2) & (day_units > mue)
    ratio = np.where(over_line, L["units"] / mue, np.where(over_day, day_units / mue, 1.0))
    over = over_line | over_day
    F["units_lines"] = np.flatnonzero(over)
    excess = np.where(over_line, paid_line * (1 - mue / L["units"]),
                      np.where(over_day, day_paid * (1 - mue / day_units), 0))
    H[:, CI["units"]] = _seg_max(np.where(over, 1.0 + 0.3 * np.log2(np.maximum(ratio, 1)), 0), lc, n)
    A[:, CI["units"]] = _seg_max(np.nan_to_num(excess), lc, n)
    F["units"] = H[:, CI["units"]] > 0
    # procedure coding: upcoded levels, add-ons without a primary, modifier 25 with no procedure
    up = L["upsteps"].astype(float)
    tc = np.maximum(L["true_code"], 0)
    up_amt = np.where(up > 0, paid_line * (1 - cat.fee[tc] / cat.fee[code]), 0)
    orphan = np.zeros(len(lc), bool)
    for r, aid in enumerate(cat.addon_ids):
        on = code == aid
        if not on.any():
            continue
        with_primary = _seg_any(cat.addon_primary[r][code], lc, n)
        orphan |= on & ~with_primary[lc]
    is_em = cat.is_em[code]
    proc = _seg_any(cat.is_procedure[code] & ~is_em, lc, n)
    mod25 = is_em & (L["mods"] == cat.mod25).any(1) & ~proc[lc]
    H[:, CI["procedure_coding"]] = (_seg_max(np.where(up > 0, 0.6 + 0.5 * up, 0), lc, n) + 1.0 * _seg_any(orphan, lc, n)
                                    + 0.5 * _seg_any(mod25, lc, n))
    A[:, CI["procedure_coding"]] = np.maximum.reduce([
        _seg_max(up_amt, lc, n), _seg_max(np.where(orphan, paid_line, 0), lc, n),
        _seg_max(np.where(mod25, 0.35 * paid_line, 0), lc, n)])
    A[:, CI["procedure_coding"]] = np.where(A[:, CI["procedure_coding"]] > 0, A[:, CI["procedure_coding"]], 0.25 * paid)
    F["upcoded"] = _seg_any(up > 0, lc, n)
    F["orphan_addon"] = _seg_any(orphan, lc, n)
    F["mod25_misuse"] = _seg_any(mod25, lc, n)
    # medical necessity
    risk = _seg_max(cat.kind_risk[code], lc, n)
    nec = C["mismatch"] | C["truncated"]
    H[:, CI["medical_necessity"]] = 1.0 * C["mismatch"] + 0.8 * C["truncated"]
    A[:, CI["medical_necessity"]] = np.where(nec, paid, 0.5 * paid)
    F["medical_necessity"] = nec
    # documentation: sloppiness x risky services x charge size, missing paperwork
    miss_att = C["att_needed"] & ~C["has_attachment"]
    miss_pa = C["pa_needed"] & ~C["has_pa"]
    H[:, CI["documentation"]] = 1.0 * C["doc_deficient"] + 1.2 * miss_att + 1.0 * miss_pa
    A[:, CI["documentation"]] = paid
    F["missing_attachment"], F["missing_prior_auth"] = miss_att, miss_pa
    F["documentation"] = C["doc_deficient"] | miss_att | miss_pa
    # eligibility
    H[:, CI["eligibility"]] = 1.0 * C["uncovered"]
    A[:, CI["eligibility"]] = paid
    F["eligibility"] = C["uncovered"]
    # other: overpayments (pricing) and unexplained recoveries
    H[:, CI["other"]] = 1.0 * C["overpaid"]
    A[:, CI["other"]] = np.where(C["overpaid"], paid - np.nan_to_num(C["expected_paid"]), 0.3 * paid)
    F["overpaid"] = C["overpaid"]
    F["risk"] = risk
    A = np.minimum(np.maximum(np.round(A, 2), 0.01), np.maximum(paid, 0.01)[:, None])
    return H, A, F


# --------------------------------------------------------------------------------------
# probabilities, calibration, draws
# --------------------------------------------------------------------------------------


def recoup_probabilities(H: np.ndarray, C: Arrays, cat: CatalogArrays, pat: Patients, risk: np.ndarray,
                         rate: float, mix: np.ndarray, horizon: int, baseline: float,
                         iterations: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q per cause before the horizon, p per cause within the horizon, scales s) with s solved for
    the target rate and cause mix."""
    n = len(H)
    paid = C["paid"]
    audit = cat.payer_audit[C["payer"]]
    mult = audit * DETECT[None, :] * (np.where(C["late"], 1.3, 1.0) * pat.magnet[C["patient"]])[:, None]
    E = H * mult
    base_mix = np.array([0.0, 0.05, 0.0, 0.1, 0.15, 0.45, 0.0, 0.25])
    B = baseline * audit * base_mix[None, :]
    B[:, CI["documentation"]] *= risk / max(risk.mean(), 1e-9)
    E[~paid] = 0.0
    B[~paid] = 0.0
    F = lag_cdf(horizon)
    target = rate * n * mix
    s = np.ones(len(CAUSES))
    # solve on a systematic subsample first (fast), then polish on all claims
    sub = np.arange(0, n, max(1, n // 150_000))
    for rows, its in ((sub, iterations), (slice(None), 3)):
        Er, Br = E[rows], B[rows]
        frac = len(Er) / n
        base_only = _within(-np.expm1(-Br), F).sum(0)
        want = np.maximum(target * frac - base_only, 1e-9)
        for _ in range(its):
            got = _within(-np.expm1(-(Er * s[None, :] + Br)), F).sum(0)
            s = np.clip(s * want / np.maximum(got - base_only, 1e-12), 1e-4, 1e4)
    q = -np.expm1(-(E * s[None, :] + B))
    return q, _within(q, F), s


def _within(q: np.ndarray, F: np.ndarray) -> np.ndarray:
    tot = q.sum(1, keepdims=True)
    p_any = -np.expm1(np.log1p(-np.minimum(q, 1 - 1e-12)).sum(1, keepdims=True))
    share = np.divide(q, tot, out=np.zeros_like(q), where=tot > 0)
    return p_any * share * F[None, :]


def draw_recoupments(rng: np.random.Generator, q: np.ndarray, A: np.ndarray, C: Arrays, days: int,
                     horizon: int, carc_missing: float) -> dict[str, np.ndarray]:
    """Realize one recoupment per recouped claim (cause, lag, amount, CARC); keep rows up to the data end."""
    n = len(q)
    tot = q.sum(1)
    p_any = -np.expm1(np.log1p(-np.minimum(q, 1 - 1e-12)).sum(1))
    hit = rng.random(n) < p_any
    idx = np.flatnonzero(hit)
    cum = np.cumsum(q[idx], axis=1) / tot[idx, None]
    cause = np.minimum((cum < rng.random(len(idx))[:, None]).sum(1), len(CAUSES) - 1)
    lag = np.ceil(np.exp(np.log(LAG_MEDIAN[cause]) + LAG_SIGMA * rng.standard_normal(len(idx)))).astype(np.int64)
    lag = np.maximum(lag, 1)
    amount = A[idx, cause]
    paid = np.nan_to_num(C["paid_amount"][idx])
    # documentation and medical necessity: most often the whole claim, sometimes a part
    partial = np.isin(cause, [CI["documentation"], CI["medical_necessity"]]) & (rng.random(len(idx)) < 0.25)
    amount = np.where(partial, paid * rng.uniform(0.2, 0.8, len(idx)), amount)
    amount = np.maximum(np.round(amount, 2), 0.01)
    day = C["paid_day"][idx] + lag
    within = lag <= horizon
    carc = _carcs(rng, cause, carc_missing)
    return dict(claim=idx, cause=cause, lag=lag, day=day, amount=amount, within=within, carc=carc,
                written=day <= days)


def _carcs(rng: np.random.Generator, cause: np.ndarray, missing: float) -> np.ndarray:
    out = np.empty(len(cause), dtype=object)
    group = np.where(rng.random(len(cause)) < 0.85, "CO-", np.where(rng.random(len(cause)) < 0.6, "PI-", "OA-"))
    for ci, name in enumerate(CAUSES):
        m = np.flatnonzero(cause == ci)
        codes, w = zip(*CARCS[name])
        pick = rng.choice(len(codes), size=len(m), p=np.array(w) / sum(w))
        out[m] = np.char.add(group[m].astype(str), np.array(codes)[pick])
    out[rng.random(len(cause)) < missing] = None
    return out
