"""Payment, error facts, the recoupment oracle and the realized recoupments of the synthetic history.

For claim *i* and cause *c* the generator has an error hazard ``h[i, c]`` (from the facts of the
claim and the latent habits of its provider) and a small baseline ``b[i, c]`` (random audits that
find something on a clean claim). The payer recoups for cause *c* with probability

    q[i, c] = 1 - exp(-(s[c] * h[i, c] * audit[payer, c] * detect[c] * late * magnet + b[i, c]))

and the claim is recouped at all with ``P_any = 1 - prod_c (1 - q[i, c])``; the cause of that one
recoupment is drawn with probability ``q[i, c] / sum_c q[i, c]`` and its lag after ``paid_date``
from a log-normal with a cause-specific median. So the probability of a recoupment of cause *c*
within the horizon is ``p[i, c] = P_any * q[i, c] / sum_c q * F_c(horizon)`` and
``true_probability = sum_c p[i, c]`` (0 for claims that are not paid).

The realized recoupments are drawn from ``q`` under the claim's *realized* hidden draws: whether the
medical record is deficient, the right E/M level behind an upcoded bill, whether a bypass modifier
on an NCCI pair is abusive. The oracle does not see those coin flips (no data reveals them): it
conditions on the observable claim facts plus the entity traits (provider habits, patient audit
magnet, payer audit intensity, which a model can learn from history) and marginalizes each hidden
draw over its posterior (:func:`hidden_mixture`), mixing the per-claim vectors of within-horizon
cause probabilities of every configuration. By the law of total probability it stays calibrated
against the realized labels. The per-cause scales ``s`` are solved on this marginal (fixed-point
iterations on the expected counts) so that the expected share of claims recouped within the horizon
is the configured rate and the causes follow the configured mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from features.contract import CAUSES
from features.sources.synthetic.claims import DUP, GAMMA, REPL, SPLIT, VOID, Arrays, MechanismRates, ptp_pairs
from features.sources.synthetic.index import CatalogArrays
from features.sources.synthetic.world import Patients, Providers

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


def lag_cdf(days: float, median: np.ndarray = LAG_MEDIAN) -> np.ndarray:
    """P(lag <= days) per cause (or per entry of any array of log-normal medians)."""
    med = np.asarray(median, dtype=float)
    uniq, inv = np.unique(med, return_inverse=True)  # few distinct medians: erf on those only
    z = (math.log(days) - np.log(uniq)) / (LAG_SIGMA * math.sqrt(2))
    out = np.array([0.5 * (1 + math.erf(v)) for v in z])[inv.reshape(-1)].reshape(med.shape)
    return out


def _seg_max(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    np.maximum.at(out, owner, values)
    return out


def _seg_any(mask: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(owner, weights=mask, minlength=n) > 0


# --------------------------------------------------------------------------------------
# paperwork and payment
# --------------------------------------------------------------------------------------


def paperwork(
    rng: np.random.Generator,
    cat: CatalogArrays,
    prov: Providers,
    C: Arrays,
    L: Arrays,
    missing_attachment: float,
    missing_pa: float,
) -> None:
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


def documentation_state(
    rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays, deficient_rate: float
) -> None:
    """Latent: does the medical record fail to support the claim? Sloppy providers, risky services
    (DME, therapy, high E/M, advanced imaging) and large charges make it likelier; copies share it."""
    n = len(C["visit"])
    risk = _seg_max(cat.kind_risk[L["code"]], L["claim"], n)
    charge_f = (np.maximum(C["total_charge"], 1.0) / 200.0) ** 0.2
    p = np.clip(deficient_rate * prov.habit["sloppy"][C["provider"]] * risk * charge_f, 0, 0.9)
    C["doc_deficient"] = rng.random(n) < p
    cp = C["parent"] >= 0
    C["doc_deficient"][cp] = C["doc_deficient"][C["parent"][cp]]
    p[cp] = p[C["parent"][cp]]  # a copy's record is its parent's: P(deficient) from the parent's facts
    C["p_doc"] = p  # what the oracle uses (it never sees the draw)
    C["doc_risk"] = risk


def payments(
    rng: np.random.Generator,
    cat: CatalogArrays,
    prov: Providers,
    C: Arrays,
    L: Arrays,
    days: int,
    denial_rate: float,
    overpaid_rate: float,
) -> None:
    """Charges, denials (never recouped), payment dates (none after the data end) and paid amounts."""
    n = len(C["visit"])
    lc = L["claim"]
    charge = cat.fee[L["code"]] * L["units"] * prov.markup[C["provider"][lc]] * rng.lognormal(0, 0.03, len(lc))
    L["charge"] = np.round(charge * L["charge_adj"], 2)
    C["total_charge"] = np.round(np.bincount(lc, weights=L["charge"], minlength=n), 2)
    kind = C["kind"]
    parent = C["parent"]
    p_deny = (
        denial_rate
        + 0.35 * C["truncated"]
        + 0.25 * C["uncovered"]
        + np.where(kind == DUP, np.where(C["dup_near"], 0.3, 0.5), 0.0)
    )
    denied = (rng.random(n) < p_deny) | (kind == VOID)
    paid_day = C["sub"] + 10 + np.minimum(rng.gamma(2.0, 6.0, n), 35).astype(np.int64)
    paid = ~denied & (paid_day <= days)
    C["denied"], C["paid"] = denied, paid
    C["paid_day"] = np.where(paid, paid_day, -1)
    ratio = cat.payer_ratio[C["payer"]] * rng.lognormal(0, 0.05, n)
    over = paid & (rng.random(n) < overpaid_rate)
    C["p_over"] = np.where(paid, overpaid_rate, 0.0)  # what the oracle may know: the rate, not the draw
    ratio = np.where(over, np.minimum(ratio * rng.uniform(1.5, 2.3, n), 0.97), ratio)
    C["overpaid"] = over
    lp = np.round(np.minimum(L["charge"] * ratio[lc], L["charge"]), 2)
    L["paid"] = np.where(paid[lc], lp, np.nan)
    C["paid_amount"] = np.where(
        paid, np.round(np.bincount(lc, weights=np.nan_to_num(L["paid"]), minlength=n), 2), np.nan
    )
    C["expected_paid"] = np.where(over, C["paid_amount"] * cat.payer_ratio[C["payer"]] / ratio, C["paid_amount"])
    C["dup_of_paid"] = (kind == DUP) & ~denied[np.maximum(parent, 0)]


# --------------------------------------------------------------------------------------
# facts and hazards
# --------------------------------------------------------------------------------------


def facts(
    cat: CatalogArrays,
    prov: Providers,
    C: Arrays,
    L: Arrays,
    svc_dates: np.ndarray,
    rates: MechanismRates | None = None,
    m: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], Mixture]:
    """Per-claim error hazards ``h`` (n, 8) and recoupable amounts (n, 8) under the realized hidden
    draws (they drive the realized recoupments), named facts, and the oracle's :class:`Mixture` over
    the hidden draws given what is observable (see :func:`hidden_mixture`)."""
    rates = rates or MechanismRates()
    n = len(C["visit"])
    lc, code = L["claim"], L["code"]
    paid_line = np.nan_to_num(L["paid"])
    paid = np.nan_to_num(C["paid_amount"])
    H = np.zeros((n, len(CAUSES)))
    A = np.zeros((n, len(CAUSES)))
    F: dict[str, np.ndarray] = {}
    # duplicate
    exact = C["dup_of_paid"] & ~C["dup_near"]
    near = C["dup_of_paid"] & C["dup_near"]
    H[:, CI["duplicate"]] = 1.0 * exact + 0.7 * near + 0.02 * (C["kind"] == REPL)
    A[:, CI["duplicate"]] = paid
    F["duplicate"] = C["dup_of_paid"]
    # bundling: PTP pairs on the same claim; split claims carry their pair from construction
    a, b, mi = ptp_pairs(cat, C, L, svc_dates)
    byp: np.ndarray = cat.ptp_bypass_mask[L["mods"]].any(1)  # type: ignore[assignment]  # stubs: any(axis) may be a scalar
    bypassed = byp[a] | byp[b]
    err = (mi == 0) | ((mi == 1) & ~bypassed)
    abuse = (mi == 1) & bypassed & (L["inj_bundle"][a] | L["inj_bundle"][b])
    natural_mod = (mi == 1) & bypassed & ~abuse
    split_err = (C["kind"] == SPLIT) & ((C["split_mi"] == 0) | ((C["split_mi"] == 1) & ~C["split_bypass"]))
    split_abuse = (C["kind"] == SPLIT) & (C["split_mi"] == 1) & C["split_bypass"]
    b_err = _seg_any(err, lc[a], n) | split_err
    H[:, CI["bundling"]] = (
        1.0 * b_err + 0.25 * (_seg_any(abuse, lc[a], n) | split_abuse) + 0.03 * _seg_any(natural_mod, lc[a], n)
    )
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
    excess = np.where(
        over_line, paid_line * (1 - mue / L["units"]), np.where(over_day, day_paid * (1 - mue / day_units), 0)
    )
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
    H[:, CI["procedure_coding"]] = (
        _seg_max(np.where(up > 0, 0.6 + 0.5 * up, 0), lc, n)
        + 1.0 * _seg_any(orphan, lc, n)
        + 0.5 * _seg_any(mod25, lc, n)
    )
    A[:, CI["procedure_coding"]] = np.maximum.reduce(
        [
            _seg_max(up_amt, lc, n),
            _seg_max(np.where(orphan, paid_line, 0), lc, n),
            _seg_max(np.where(mod25, 0.35 * paid_line, 0), lc, n),
        ]
    )
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
    obs = dict(
        h_doc=1.2 * miss_att + 1.0 * miss_pa,
        b_err=b_err.astype(float),
        split_abuse=split_abuse,
        pairs=(a, b, mi),
        bypass_line=byp,
        orphan=orphan,
        h_cod=1.0 * _seg_any(orphan, lc, n) + 0.5 * _seg_any(mod25, lc, n),
        a_cod=np.maximum(
            _seg_max(np.where(orphan, paid_line, 0), lc, n), _seg_max(np.where(mod25, 0.35 * paid_line, 0), lc, n)
        ),
    )
    return H, A, F, hidden_mixture(cat, prov, C, L, H, A, obs, rates, m)


# --------------------------------------------------------------------------------------
# the oracle's view of the hidden per-claim draws
# --------------------------------------------------------------------------------------


@dataclass
class Mixture:
    """Configurations ``k`` of a claim's hidden draws (documentation deficient ``d``, abusive bypass
    modifier ``z``, upcoding steps ``u``, payer overpayment ``o`` — a pricing error that shows only
    after payment, so a scorer working before submission cannot know it) with their probability given the
    observable claim facts and the entity traits. Configuration ``k`` covers ``rows[k]`` (paid claims
    where it has probability > 0) with weights ``weight[k]`` (they sum to 1 over ``k`` for every paid
    claim) and the hazards
    ``H[k]`` and amounts ``A[k]`` of those rows under it."""

    rows: list[np.ndarray]
    weight: list[np.ndarray]
    H: list[np.ndarray]
    A: list[np.ndarray]


def _level_tables(cat: CatalogArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per visit: its level slot (-1 none); per (visit, code): the code's rank in that slot (-1 none),
    P(a non-level slot of the visit bills the code), and the (non-level) alternative that bills it (-1)."""
    nv, V = len(cat.visit_slot_start), cat.n_codes
    lvl_slot = np.full(nv, -1, np.int64)
    lvl_k = np.full((nv, V), -1, np.int64)
    natp = np.zeros((nv, V))
    alt_of = np.full((nv, V), -1, np.int64)
    for v in range(nv):
        for j in range(cat.visit_slot_start[v], cat.visit_slot_start[v] + cat.visit_slot_count[v]):
            st, K = cat.slot_alt_start[j], cat.slot_alt_count[j]
            w = cat.alt_weight[st : st + K] / cat.alt_weight[st : st + K].sum()
            for k in range(K):
                cs = cat.combo_codes[
                    cat.alt_combo_start[st + k] : cat.alt_combo_start[st + k] + cat.alt_combo_len[st + k]
                ]
                if cat.slot_level[j]:
                    lvl_slot[v] = j
                    lvl_k[v, cs] = k
                else:
                    natp[v, cs] += cat.slot_p[j] * w[k]
                    alt_of[v, cs] = st + k
    return lvl_slot, lvl_k, np.minimum(natp, 1.0), alt_of


def level_joint(
    cat: CatalogArrays, slot: np.ndarray, n_dx: np.ndarray, billed: np.ndarray, p_up: np.ndarray
) -> np.ndarray:
    """``P(billed level, upsteps = u)`` for u = 0, 1, 2 under the generator's own process
    (:func:`~features.sources.synthetic.claims.template_lines`): the right level ``t`` from the slot's weights
    tilted by the number of diagnoses, then with probability ``p_up`` (if ``t`` is not the top) a bill
    1 (70%) or 2 (30%) levels higher, capped at the top. Rows: one level line each; shape (N, 3)."""
    K = cat.slot_alt_count[slot]
    kk = np.arange(int(K.max()) if len(K) else 1)
    valid = kk[None, :] < K[:, None]
    aid = np.where(valid, cat.slot_alt_start[slot][:, None] + kk[None, :], 0)
    w = np.where(valid, cat.alt_weight[aid], 0.0)
    c = (n_dx.astype(float) - 2.5)[:, None]
    rank = kk[None, :] / np.maximum(K - 1, 1)[:, None] - 0.5
    w = w * np.exp(GAMMA * c * rank * 2)
    w = w / w.sum(1, keepdims=True)
    r = np.arange(len(slot))

    def pt(k: np.ndarray) -> np.ndarray:
        return np.where(k >= 0, w[r, np.maximum(k, 0)], 0.0)

    top = billed == K - 1
    out = np.empty((len(slot), 3))
    out[:, 0] = pt(billed) * np.where(top, 1.0, 1.0 - p_up)
    out[:, 1] = pt(billed - 1) * p_up * np.where(top, 1.0, 0.7)
    out[:, 2] = pt(billed - 2) * p_up * 0.3
    return out


def hidden_mixture(
    cat: CatalogArrays,
    prov: Providers,
    C: Arrays,
    L: Arrays,
    H: np.ndarray,
    A: np.ndarray,
    obs: dict,
    rates: MechanismRates,
    m: float,
) -> Mixture:
    """Enumerate each paid claim's hidden draws with their probability given what a model could know.

    * ``d`` documentation deficient: ``P(d) = C["p_doc"]`` (sloppiness x service risk x charge, the
      parent's for copies), the generator's own Bernoulli probability.
    * ``u`` upcoding steps of the claim's level line (E/M, psychotherapy, chiropractic, PT
      evaluation): the exact posterior over the right level given the billed level, the number of
      diagnoses and the provider's upcoding habit (:func:`level_joint`). The visit template is taken
      as known: the claim's codes identify it.
    * ``z`` a bypass modifier on an NCCI indicator-1 pair is abusive (the column-2 line was added by an
      unbundler) rather than a careful coder's modifier on a naturally co-billed pair: Bayes odds of
      the two routes to the observed line, ``P(added) = p_sel x sum over its column-1 lines of
      1 / (eligible lines x partners) x P(its modifier | added) x P(template does not bill the code)``
      against ``P(natural) = (1 - p_sel) x P(template bills the code) x P(its modifier | comply)``.
      Approximations: the template's forced first slot and the other lines' modifiers are ignored;
      several candidate lines on one claim are combined as "one of them was added".
    """
    n = len(C["visit"])
    lc, code = L["claim"], L["code"]
    pv = C["provider"]
    paid = C["paid"]
    paid_amt = np.nan_to_num(C["paid_amount"])
    paid_line = np.nan_to_num(L["paid"])
    lvl_slot, lvl_k, natp, alt_of = _level_tables(cat)
    visit_l = C["visit"][lc]
    # ---- upcoding: the claim's level line (the first line whose code is a level of its visit)
    k_line = lvl_k[visit_l, code]
    cand_l = np.flatnonzero(k_line >= 0)
    _, first = np.unique(lc[cand_l], return_index=True)
    lvl_line = np.full(n, -1, np.int64)
    lvl_line[lc[cand_l[first]]] = cand_l[first]
    has_lvl = np.flatnonzero(lvl_line >= 0)
    li = lvl_line[has_lvl]
    p_up = np.clip(rates.upcode * m * prov.habit["upcode"][pv], 0, 0.9)
    joint = level_joint(cat, lvl_slot[C["visit"][has_lvl]], C["n_dx"][has_lvl], k_line[li], p_up[has_lvl])
    lik = joint.sum(1)
    post = np.zeros((n, 3))
    post[:, 0] = 1.0
    post[has_lvl] = np.divide(joint, lik[:, None], out=np.tile([1.0, 0, 0], (len(li), 1)), where=lik[:, None] > 0)
    up_amt = np.zeros((n, 3))
    for u in (1, 2):
        ok = k_line[li] >= u
        alt = cat.slot_alt_start[lvl_slot[C["visit"][has_lvl]]] + np.maximum(k_line[li] - u, 0)
        tc = cat.combo_codes[cat.alt_combo_start[alt]]
        up_amt[has_lvl, u] = np.where(ok, paid_line[li] * (1 - cat.fee[tc] / cat.fee[code[li]]), 0.0)
    # ---- abusive bypass modifiers: candidates are the lines of bypassed indicator-1 pairs
    a, b, mi = obs["pairs"]
    byp = obs["bypass_line"]
    bp = (mi == 1) & (byp[a] | byp[b])
    ct_l = C["ct"][lc]
    cnt = cat.partner_count[ct_l, C["spec"][lc], code]
    n_elig = np.bincount(lc, weights=cnt > 0, minlength=n)
    ub = np.unique(np.concatenate([a[bp], b[bp]]))
    # the added-line route: the line is an unbundler's partner (column 2) of another line on the claim
    is_cand = np.zeros(len(lc), bool)
    is_cand[ub] = True
    on = is_cand[b]
    pa, pb = a[on], b[on]
    partner = (
        (cat.ptp_mi[ct_l[pa], code[pa], code[pb]] >= 0)
        & ~(cat.is_level_code[code[pa]] & cat.is_level_code[code[pb]])
        & (cnt[pa] > 0)
    )
    elig = np.maximum(n_elig[lc[pb]] - (cnt[pb] > 0), 1)
    contrib = np.where(partner, 1.0 / (elig * np.maximum(cnt[pa], 1)), 0.0)
    S = np.bincount(np.searchsorted(ub, pb), weights=contrib, minlength=len(ub))
    col2_mi1 = np.zeros(len(lc), bool)
    col2_mi1[b[mi == 1]] = True
    cl = lc[ub]
    vis = C["visit"][cl]
    kc = lvl_k[vis, code[ub]]
    is_lvl = ub == lvl_line[cl]
    slot = lvl_slot[vis]
    p_slot = np.where(slot >= 0, cat.slot_p[np.maximum(slot, 0)], 0.0)
    lik_c = np.zeros(len(ub))
    if is_lvl.any():
        lik_c[is_lvl] = level_joint(cat, slot[is_lvl], C["n_dx"][cl[is_lvl]], kc[is_lvl], p_up[cl[is_lvl]]).sum(1)
    # the natural routes: the visit template bills the code (a slot bills one alternative: not if
    # another line holds a different alternative of the same slot), or a careless coder's orphan add-on
    alt_l = alt_of[visit_l, code]
    slot_l = np.searchsorted(cat.slot_alt_start, alt_l, side="right") - 1
    clash = np.zeros(len(lc), bool)
    for d in range(1, 12):  # lines of a claim are contiguous; claims have at most a dozen lines
        i = np.arange(len(lc) - d)
        j = i + d
        hit = (lc[i] == lc[j]) & (alt_l[i] >= 0) & (alt_l[j] >= 0) & (slot_l[i] == slot_l[j]) & (alt_l[i] != alt_l[j])
        clash[i[hit]] = True
        clash[j[hit]] = True
    nat = np.where(is_lvl, p_slot * lik_c, np.where(clash[ub], 0.0, natp[vis, code[ub]]))
    n_addons = np.array([max(len(x), 1) for x in cat.spec_addons])[C["spec"][cl]]
    p_addon = np.clip(rates.addon * m * prov.habit["coding"][pv[cl]], 0, 0.8)
    nat = nat + np.where(obs["orphan"][ub], p_addon / n_addons, 0.0)
    # added level code: the template billed no level at all; else: it did not bill this code
    not_nat = np.where(is_lvl, 1 - p_slot, 1 - natp[vis, code[ub]])
    p_sel = np.clip(rates.bundle * m * prov.habit["unbundle"][pv[cl]], 0, 0.8)
    comply = prov.comply[pv[cl]]
    hb = byp[ub]
    num = p_sel * S * np.where(hb, rates.bundle_abuse, 1 - rates.bundle_abuse) * not_nat
    # a careful coder's modifier goes on the column-2 line of a natural indicator-1 pair
    mod_nat = np.where(col2_mi1[ub], np.where(hb, comply, 1 - comply), np.where(hb, 0.02, 1.0))
    den = (1 - p_sel) * nat * mod_nat
    lr = np.where(den > 0, num / np.maximum(den, 1e-300), np.where(num > 0, 1e12, 0.0))
    lr = np.minimum(lr, 1e12)
    sum_lr = np.bincount(cl, weights=lr, minlength=n)
    p_z = sum_lr / (1 + sum_lr)
    # the likeliest added line per claim: its pairs are abusive under z = 1, the others natural
    order = np.lexsort((-lr, cl))
    firsts = order[np.r_[True, cl[order][1:] != cl[order][:-1]]] if len(order) else order
    cand = np.full(n, -1, np.int64)
    cand[cl[firsts]] = ub[firsts]
    pa, pb = a[bp], b[bp]
    n_bp = np.bincount(lc[pa], minlength=n)
    involves = (pa == cand[lc[pa]]) | (pb == cand[lc[pa]])
    n_other = n_bp - np.bincount(lc[pa], weights=involves, minlength=n)
    cand_is_lvl = (cand >= 0) & (cand == lvl_line)
    # ---- enumerate (d, z, u)
    p_doc = np.where(paid, C["p_doc"], 0.0)
    ci_doc, ci_b, ci_c = CI["documentation"], CI["bundling"], CI["procedure_coding"]
    mix = Mixture([], [], [], [])
    ci_oth = CI["other"]
    p_over = C["p_over"]
    for d in (0, 1):
        wd = p_doc if d else 1 - p_doc
        for z in (0, 1):
            wz = p_z if z else 1 - p_z
            for u in (0, 1, 2):
                wu = np.where(cand_is_lvl, float(u == 0), post[:, u]) if z else post[:, u]
                for o in (0, 1):
                    # o: the payer overpaid (a pricing error, cause "other"); unknown at submission
                    wo = p_over if o else 1 - p_over
                    w = wd * wz * wu * wo
                    rows = np.flatnonzero(paid & (w > 0))
                    if not len(rows):
                        continue
                    h = H[rows].copy()
                    h[:, ci_doc] = obs["h_doc"][rows] + d
                    natany = (n_other[rows] > 0) if z else (n_bp[rows] > 0)
                    h[:, ci_b] = obs["b_err"][rows] + 0.25 * (bool(z) | obs["split_abuse"][rows]) + 0.03 * natany
                    h[:, ci_c] = obs["h_cod"][rows] + (0.6 + 0.5 * u if u else 0.0)
                    h[:, ci_oth] = float(o)
                    am = A[rows].copy()
                    ac = np.maximum(obs["a_cod"][rows], up_amt[rows, u])
                    ac = np.where(ac > 0, ac, 0.25 * paid_amt[rows])
                    am[:, ci_c] = np.minimum(np.maximum(np.round(ac, 2), 0.01), np.maximum(paid_amt[rows], 0.01))
                    # an overpayment of 1.5-2.3x the usual ratio takes back ~45% of the payment on average
                    am[:, ci_oth] = np.maximum(np.round((0.45 if o else 0.3) * paid_amt[rows], 2), 0.01)
                    mix.rows.append(rows)
                    mix.weight.append(w[rows])
                    mix.H.append(h)
                    mix.A.append(am)
    return mix


# --------------------------------------------------------------------------------------
# probabilities, calibration, draws
# --------------------------------------------------------------------------------------


def recoup_probabilities(
    H: np.ndarray,
    C: Arrays,
    cat: CatalogArrays,
    pat: Patients,
    risk: np.ndarray,
    rate: float,
    mix: np.ndarray,
    horizon: int,
    baseline: float,
    hidden: Mixture,
    A: np.ndarray,
    iterations: int = 25,
    hazard_mult: np.ndarray | None = None,
    lag_median: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(q per cause under the realized hidden draws, the oracle's p per cause within the horizon, the
    scales s, the oracle's expected amount within the horizon).

    The oracle marginalizes the hidden draws: ``p[i] = sum_k weight[k, i] * within(q_k[i])`` over the
    configurations of :class:`Mixture`, each a full per-claim vector of within-horizon cause
    probabilities (so the competition of causes inside a claim is mixed correctly). ``s`` is solved on
    this marginal, so ``mean(p) = rate`` and the expected positives follow ``mix`` exactly; the
    realized ``q`` (same ``s``) has the same expectation by the law of total probability.

    A world may add ``hazard_mult`` (n, 8: audit programs, per-plan cause weights) and ``lag_median``
    (n, 8: lags by payer or program); the oracle then censors each claim with its own lag distribution."""
    n = len(H)
    paid = C["paid"]
    audit = cat.payer_audit[C["payer"]]
    mult = audit * DETECT[None, :] * (np.where(C["late"], 1.3, 1.0) * pat.magnet[C["patient"]])[:, None]
    if hazard_mult is not None:
        mult = mult * hazard_mult
    mult[~paid] = 0.0
    base_mix = np.array([0.0, 0.05, 0.0, 0.1, 0.15, 0.45, 0.0, 0.25])
    B = baseline * audit * base_mix[None, :]
    B[:, CI["documentation"]] *= risk / max(risk.mean(), 1e-9)
    B[~paid] = 0.0
    F = lag_cdf(horizon) if lag_median is None else lag_cdf(horizon, lag_median)  # (8,) or per claim (n, 8)

    def rows_of(r):
        return F if F.ndim == 1 else F[r]

    cfgs = [(r, w, h * mult[r], B[r], rows_of(r)) for r, w, h in zip(hidden.rows, hidden.weight, hidden.H)]
    target = rate * n * mix
    s = np.ones(len(CAUSES))
    # solve on a systematic subsample first (fast), then polish on all claims
    step = max(1, n // 150_000)
    for st, its in ((step, iterations), (1, 3)):
        if st > 1:
            sub = [(r % st == 0) for r, _, _, _, _ in cfgs]
            part = [(w[k], E[k], Bk[k], Fk if Fk.ndim == 1 else Fk[k]) for k, (_, w, E, Bk, Fk) in zip(sub, cfgs)]
            frac = len(range(0, n, st)) / n
            Bs, Fs = B[::st], (F if F.ndim == 1 else F[::st])
        else:
            part = [(w, E, Bk, Fk) for _, w, E, Bk, Fk in cfgs]
            frac, Bs, Fs = 1.0, B, F
        base_only = _within(-np.expm1(-Bs), Fs).sum(0)
        want = np.maximum(target * frac - base_only, 1e-9)
        for _ in range(its):
            got = sum(
                (w @ _within(-np.expm1(-(E * s[None, :] + Bk)), Fk) for w, E, Bk, Fk in part), np.zeros(len(CAUSES))
            )
            s = np.clip(s * want / np.maximum(got - base_only, 1e-12), 1e-4, 1e4)
    p = np.zeros((n, len(CAUSES)))
    amount = np.zeros(n)
    for (r, w, E, Bk, Fk), Ak in zip(cfgs, hidden.A):
        pk = _within(-np.expm1(-(E * s[None, :] + Bk)), Fk)
        p[r] += w[:, None] * pk
        amount[r] += w * (pk * Ak).sum(1)
    q = -np.expm1(-(H * mult * s[None, :] + B))
    return q, p, s, amount


def _within(q: np.ndarray, F: np.ndarray) -> np.ndarray:
    tot = q.sum(1, keepdims=True)
    p_any = -np.expm1(np.log1p(-np.minimum(q, 1 - 1e-12)).sum(1, keepdims=True))
    share = np.divide(q, tot, out=np.zeros_like(q), where=tot > 0)
    return p_any * share * (F[None, :] if F.ndim == 1 else F)


def draw_recoupments(
    rng: np.random.Generator,
    q: np.ndarray,
    A: np.ndarray,
    C: Arrays,
    days: int,
    horizon: int,
    carc_missing: float,
    lag_median: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Realize one recoupment per recouped claim (cause, lag, amount, CARC); keep rows up to the data end.
    ``lag_median`` (n, 8): per-claim lag medians of a world (default: the causes' ``LAG_MEDIAN``)."""
    n = len(q)
    tot = q.sum(1)
    p_any = -np.expm1(np.log1p(-np.minimum(q, 1 - 1e-12)).sum(1))
    hit = rng.random(n) < p_any
    idx = np.flatnonzero(hit)
    cum = np.cumsum(q[idx], axis=1) / tot[idx, None]
    cause = np.minimum((cum < rng.random(len(idx))[:, None]).sum(1), len(CAUSES) - 1)
    med = LAG_MEDIAN[cause] if lag_median is None else lag_median[idx, cause]
    lag = np.ceil(np.exp(np.log(med) + LAG_SIGMA * rng.standard_normal(len(idx)))).astype(np.int64)
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
    return dict(claim=idx, cause=cause, lag=lag, day=day, amount=amount, within=within, carc=carc, written=day <= days)


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
