"""Claims and service lines of the synthetic history, with the error mechanisms built in.

Claims are kept as a dict of column arrays (``C``, one row per claim) and lines as another (``L``,
``L["claim"]`` indexes ``C``). Everything is vectorized over claims; loops run only over specialties
or a handful of slot alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources.synthetic.index import CatalogArrays, ptp_indicator
from features.sources.synthetic.world import Patients, Providers, coverage_at

Arrays = dict[str, np.ndarray]
N_DX = 6
GAMMA = 0.9  # how strongly the clinically right E/M level follows the number of diagnoses

#: claim kinds
BASE, DUP, REPL, VOID, SPLIT = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class MechanismRates:
    """Per-claim probabilities of each error mechanism for an average provider (habit = 1)."""

    necessity: float = 0.025  # principal diagnosis from an unsupported family or truncated
    truncated_share: float = 0.35
    upcode: float = 0.025  # per E/M-level line
    bundle: float = 0.035  # add an NCCI column-2 code to the claim
    bundle_abuse: float = 0.2  # share of added column-2 codes that carry a bypass modifier anyway
    split: float = 0.004  # claims that are a column-2 code split off to a same-day claim
    units: float = 0.06  # bill units over the MUE (claims with a unit-priced code)
    addon: float = 0.015  # add-on code without its primary (specialties with add-ons)
    mod25: float = 0.015  # modifier 25 on an E/M with no procedure
    duplicate: float = 0.012  # share of claims that are duplicate resubmissions
    replacement: float = 0.012
    void: float = 0.003
    stale: float = 0.35  # bill the old payer right after a payer change
    documentation: float = 0.05  # medical record does not support the claim (x sloppiness x service risk)
    missing_attachment: float = 0.10
    missing_prior_auth: float = 0.07


# --------------------------------------------------------------------------------------
# small array helpers
# --------------------------------------------------------------------------------------


def take(d: Arrays, idx: np.ndarray) -> Arrays:
    return {k: v[idx] for k, v in d.items()}


def concat(a: Arrays, b: Arrays) -> Arrays:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def segments(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner index, position within owner) for a repeat of each owner ``sizes`` times."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    pos = np.arange(len(owner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return owner, pos


def weighted_sample(rng: np.random.Generator, weights: np.ndarray, k: int) -> np.ndarray:
    """``k`` distinct indices drawn with probability proportional to ``weights`` (Efraimidis-Spirakis)."""
    ok = weights > 0
    k = int(min(k, ok.sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.full(len(weights), -np.inf)
    keys[ok] = np.log(rng.random(ok.sum())) / weights[ok]
    return np.sort(np.argpartition(-keys, k - 1)[:k])


def pick_line(rng: np.random.Generator, line_claim: np.ndarray, eligible: np.ndarray, n_claims: int) -> np.ndarray:
    """Per claim, a random eligible line index (-1 where none)."""
    idx = np.flatnonzero(eligible)
    out = np.full(n_claims, -1, dtype=np.int64)
    if len(idx) == 0:
        return out
    order = idx[np.lexsort((rng.random(len(idx)), line_claim[idx]))]
    oc = line_claim[order]
    last = np.r_[oc[1:] != oc[:-1], True]
    out[oc[last]] = order[last]
    return out


def claim_has(
    line_claim: np.ndarray, line_code: np.ndarray, n_codes: int, claims: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    keys = np.sort(line_claim.astype(np.int64) * n_codes + line_code)
    q = claims.astype(np.int64) * n_codes + codes
    pos = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
    return (keys[pos] == q) if len(keys) else np.zeros(len(q), dtype=bool)


def growth_days(rng: np.random.Generator, n: int, days: int, growth: float) -> np.ndarray:
    """Submission days in [0, days] with volume growing ``growth`` per year."""
    g = growth / 365.0
    u = rng.random(n)
    t = np.log1p(u * np.expm1(g * days)) / g if g > 0 else u * days
    return np.minimum(t.astype(np.int64), days)


# --------------------------------------------------------------------------------------
# base claims
# --------------------------------------------------------------------------------------


def base_claims(
    rng: np.random.Generator,
    cat: CatalogArrays,
    prov: Providers,
    pat: Patients,
    n: int,
    days: int,
    growth: float,
    rates: MechanismRates,
    m: float,
) -> Arrays:
    """Claim headers (no lines yet): who, when, which visit, payer, diagnoses."""
    P = len(prov.npi)
    provider = rng.choice(P, size=n, p=prov.volume)
    patient = prov.panel_lo[provider] + (rng.random(n) * prov.panel_size[provider]).astype(np.int64)
    sub = growth_days(rng, n, days, growth)
    if prov.onboard is not None:  # a provider that joins later: its claims fall after onboarding (+ 31 days)
        lo = prov.onboard[provider]
        sub = np.where(lo > 0, np.minimum(lo + 31 + sub * np.maximum(days - lo - 31, 0) // max(days, 1), days), sub)
    if prov.switch_day is not None and prov.switch_to is not None:  # changed habits from a date on
        provider = np.where(sub >= prov.switch_day[provider], prov.switch_to[provider], provider)
    lag = np.minimum(rng.exponential(prov.lag_mean[provider]).astype(np.int64), 30)
    late = rng.random(n) < 0.04
    lag = np.where(late, rng.integers(15, 31, n), lag)
    svc = sub - lag
    # patients who moved away or died rarely come back: redraw once from the panel
    gone = pat.terminated[patient] & (svc > pat.end1[patient])
    redraw = prov.panel_lo[provider] + (rng.random(n) * prov.panel_size[provider]).astype(np.int64)
    patient = np.where(gone, redraw, patient)
    spec = prov.spec[provider]
    k = (prov.visit_cum[provider] < rng.random(n)[:, None]).sum(1)
    visit = cat.spec_visit_start[spec] + np.minimum(k, cat.spec_visit_count[spec] - 1)
    ct = prov.inst[provider].astype(np.int8)
    pos = np.where(
        ct == 1, cat.spec_inst_pos[spec], np.where(cat.visit_pos[visit] >= 0, cat.visit_pos[visit], cat.spec_pos[spec])
    )
    tele = (ct == 0) & (np.asarray(cat.spec_keys)[spec] == "psychiatry") & (rng.random(n) < 0.25)
    pos = np.where(tele, cat.pos_codes.index("10"), pos)
    # payer: whoever covers the service date; stale eligibility right after a payer change
    covered = coverage_at(pat, patient, svc)
    in2 = (pat.payer2[patient] >= 0) & (svc >= pat.start2[patient])
    last = np.where(in2, pat.payer2[patient], pat.payer1[patient])
    since = svc - pat.start2[patient]
    p_stale = np.clip(rates.stale * m * prov.habit["stale"][provider], 0, 0.95) * np.exp(-np.maximum(since, 0) / 60.0)
    stale = pat.change[patient] & in2 & (since < 120) & (rng.random(n) < p_stale)
    payer = np.where(stale, pat.payer1[patient], np.where(covered >= 0, covered, last))
    C: Arrays = dict(
        provider=provider,
        patient=patient,
        sub=sub,
        svc=svc,
        late=lag > 20,
        spec=spec,
        visit=visit,
        ct=ct,
        pos=pos.astype(np.int16),
        payer=payer,
        uncovered=(covered < 0) | stale,
        stale=stale,
        kind=np.zeros(n, np.int8),
        parent=np.full(n, -1, np.int64),
        freq=np.zeros(n, np.int8),
        dup_near=np.zeros(n, bool),
        split_mi=np.full(n, -1, np.int8),
        split_bypass=np.zeros(n, bool),
    )
    C.update(_diagnoses(rng, cat, prov, pat, C, rates, m))
    return C


def _diagnoses(
    rng: np.random.Generator,
    cat: CatalogArrays,
    prov: Providers,
    pat: Patients,
    C: Arrays,
    rates: MechanismRates,
    m: float,
) -> Arrays:
    n = len(C["visit"])
    visit = C["visit"]
    n_dx = 1 + np.minimum(rng.poisson(0.3 + 0.8 * pat.complexity[C["patient"]]), N_DX - 1)
    fam = cat.visit_fams[visit, (rng.random(n) * cat.visit_nfam[visit]).astype(np.int64)]
    p_nec = np.clip(rates.necessity * m * prov.habit["necessity"][C["provider"]], 0, 0.9)
    inj = rng.random(n) < p_nec
    trunc = inj & (rng.random(n) < rates.truncated_share) & (cat.fam_trunc[fam] >= 0)
    mismatch = inj & ~trunc
    other = cat.visit_other_fams[visit, (rng.random(n) * cat.visit_nother[visit]).astype(np.int64)]
    fam = np.where(mismatch, other, fam)
    principal = cat.fam_codes[fam, (rng.random(n) * cat.fam_ncodes[fam]).astype(np.int64)]
    principal = np.where(trunc, cat.fam_trunc[fam], principal)
    # comorbidities: distinct codes by a strided walk over a prime-sized list
    pr = len(cat.comorbid)
    start = rng.integers(0, pr, n)
    stride = rng.integers(1, pr, n)
    j = np.arange(1, N_DX)
    sec = cat.comorbid[(start[:, None] + j[None, :] * stride[:, None]) % pr]
    sec = np.where(j[None, :] < n_dx[:, None], sec, -1)
    sec = np.where(sec == principal[:, None], -1, sec)
    sec = np.take_along_axis(sec, np.argsort(sec < 0, axis=1, kind="stable"), axis=1)
    dx = np.concatenate([principal[:, None], sec], axis=1)
    n_dx = (dx >= 0).sum(1)
    return dict(dx=dx.astype(np.int16), n_dx=n_dx.astype(np.int8), mismatch=mismatch, truncated=trunc)


# --------------------------------------------------------------------------------------
# lines
# --------------------------------------------------------------------------------------


def template_lines(
    rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, rates: MechanismRates, m: float
) -> Arrays:
    """Expand each claim's visit template; draw the right level and let upcoders bill higher."""
    n = len(C["visit"])
    ns = cat.visit_slot_count[C["visit"]]
    cl, within = segments(ns)
    sl = cat.visit_slot_start[C["visit"]][cl] + within
    inc = rng.random(len(sl)) < cat.slot_p[sl]
    has = np.bincount(cl, weights=inc, minlength=n) > 0
    inc[(np.cumsum(ns) - ns)[~has]] = True  # at least the first slot
    cl, sl = cl[inc], sl[inc]
    K = cat.slot_alt_count[sl]
    kk = np.arange(int(K.max()))
    valid = kk[None, :] < K[:, None]
    aid = np.where(valid, cat.slot_alt_start[sl][:, None] + kk[None, :], 0)
    w = np.where(valid, cat.alt_weight[aid], 0.0)
    lvl = cat.slot_level[sl]
    c = (C["n_dx"][cl].astype(float) - 2.5)[:, None]
    rank = kk[None, :] / np.maximum(K - 1, 1)[:, None] - 0.5
    w = np.where(lvl[:, None], w * np.exp(GAMMA * c * rank * 2), w)
    cum = np.cumsum(w, axis=1)
    u = rng.random(len(sl)) * cum[:, -1]
    true_k = np.minimum((cum < u[:, None]).sum(1), K - 1)
    p_up = np.clip(rates.upcode * m * prov.habit["upcode"][C["provider"][cl]], 0, 0.9)
    up = lvl & (true_k < K - 1) & (rng.random(len(sl)) < p_up)
    step = 1 + (rng.random(len(sl)) < 0.3)
    billed_k = np.where(up, np.minimum(true_k + step, K - 1), true_k)
    alt_b = cat.slot_alt_start[sl] + billed_k
    alt_t = cat.slot_alt_start[sl] + true_k
    clen = cat.alt_combo_len[alt_b]
    owner, off = segments(clen)
    code = cat.combo_codes[cat.alt_combo_start[alt_b][owner] + off]
    true_code = np.where(lvl, cat.combo_codes[cat.alt_combo_start[alt_t]], -1)[owner]
    return new_lines(rng, cat, C, cl[owner], code, true_code=true_code, upsteps=(billed_k - true_k)[owner])


def new_lines(
    rng: np.random.Generator, cat: CatalogArrays, C: Arrays, claim: np.ndarray, code: np.ndarray, **extra: np.ndarray
) -> Arrays:
    """Lines with typical units (within the MUE) and the code's routine modifiers."""
    nl = len(claim)
    lo, hi = cat.units_lo[code], cat.units_hi[code]
    units = lo + (rng.random(nl) * (hi - lo + 1)).astype(np.int64)
    mue = cat.mue[C["ct"][claim], code]
    units = np.where(np.isnan(mue), units, np.minimum(units, np.nan_to_num(mue, nan=1e9))).astype(float)
    mods = np.zeros((nl, 3), dtype=np.int8)
    mods[:, 0] = cat.routine_mod[code]
    tele = cat.pos_codes.index("10")
    rad = list(cat.spec_keys).index("radiology")
    pos22 = cat.pos_codes.index("22")
    prof_read = (C["spec"][claim] == rad) & (C["ct"][claim] == 0) & (C["pos"][claim] == pos22)
    mods[:, 2] = np.where(C["pos"][claim] == tele, cat.mod95, np.where(prof_read, cat.mod26, 0))
    L: Arrays = dict(
        claim=claim.astype(np.int64),
        code=code.astype(np.int64),
        units=units,
        mods=mods,
        true_code=np.full(nl, -1, np.int64),
        upsteps=np.zeros(nl, np.int8),
        inj_bundle=np.zeros(nl, bool),
        inj_units=np.zeros(nl, bool),
        inj_addon=np.zeros(nl, bool),
        charge_adj=np.ones(nl),
    )
    for k, v in extra.items():
        L[k] = v.astype(L[k].dtype)
    return L


def sort_lines(L: Arrays) -> Arrays:
    return take(L, np.argsort(L["claim"], kind="stable"))


def inject_errors(
    rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays, rates: MechanismRates, m: float
) -> Arrays:
    """Unbundling, units over the MUE, orphan add-ons and modifier-25 misuse, driven by provider habits."""
    n = len(C["visit"])
    V = cat.n_codes
    pv = C["provider"]
    add: list[Arrays] = []
    # -- unbundling: add an NCCI column-2 code of a code on the claim
    sel = rng.random(n) < np.clip(rates.bundle * m * prov.habit["unbundle"][pv], 0, 0.8)
    lc = L["claim"]
    cnt = cat.partner_count[C["ct"][lc], C["spec"][lc], L["code"]]
    line = pick_line(rng, lc, sel[lc] & (cnt > 0), n)
    ok = line >= 0
    cl = np.flatnonzero(ok)
    if len(cl):
        li = line[ok]
        c1 = L["code"][li]
        st = cat.partner_start[C["ct"][cl], C["spec"][cl], c1]
        c2 = cat.partners[st + (rng.random(len(cl)) * cnt[li]).astype(np.int64)]
        fresh = ~claim_has(lc, L["code"], V, cl, c2)
        cl, c2 = cl[fresh], c2[fresh]
        nl = new_lines(rng, cat, C, cl, c2, inj_bundle=np.ones(len(cl), bool))
        abuse = rng.random(len(cl)) < rates.bundle_abuse
        nl["mods"][:, 1] = np.where(abuse, bypass_for(rng, cat, c2), 0)
        add.append(nl)
    # -- units over the MUE: on one line, or across two lines of the same day (MAI 2/3)
    sel = rng.random(n) < np.clip(rates.units * m * prov.habit["units"][pv], 0, 0.8)
    mue = cat.mue[C["ct"][lc], L["code"]]
    unity = (cat.units_hi[L["code"]] > 1) & ~np.isnan(mue)
    line = pick_line(rng, lc, sel[lc] & unity, n)
    li = line[line >= 0]
    if len(li):
        lm = mue[li]
        excess = 1 + rng.geometric(0.45, len(li))
        per_day = (cat.mai[C["ct"][lc[li]], L["code"][li]] >= 2) & (rng.random(len(li)) < 0.4)
        one = li[~per_day]
        L["units"][one] = lm[~per_day] + excess[~per_day]
        L["inj_units"][one] = True
        two = li[per_day]
        if len(two):
            nl = new_lines(rng, cat, C, lc[two], L["code"][two], inj_units=np.ones(len(two), bool))
            nl["units"] = np.maximum(lm[per_day] - L["units"][two], 0) + excess[per_day]
            nl["mods"][:, 0] = L["mods"][two, 0]
            add.append(nl)
    # -- add-on code without its primary
    for si in range(len(cat.spec_keys)):
        addons = cat.spec_addons[si]
        if not len(addons):
            continue
        p_addon = np.clip(rates.addon * m * prov.habit["coding"][pv], 0, 0.8)
        cl = np.flatnonzero((C["spec"] == si) & (rng.random(n) < p_addon))
        if not len(cl):
            continue
        a = addons[(rng.random(len(cl)) * len(addons)).astype(np.int64)]
        row = np.searchsorted(cat.addon_ids, a)
        prim_lines = np.zeros(len(cl), bool)
        for r in np.unique(row):
            on = row == r
            pl = cat.addon_primary[r][L["code"]]
            claims_with = np.zeros(n, bool)
            claims_with[lc[pl]] = True
            prim_lines[on] = claims_with[cl[on]]
        keep = ~prim_lines & ~claim_has(lc, L["code"], V, cl, a)
        if keep.any():
            add.append(new_lines(rng, cat, C, cl[keep], a[keep], inj_addon=np.ones(keep.sum(), bool)))
    # -- modifier 25 on an E/M when nothing else on the claim is a procedure
    is_em = cat.is_em[L["code"]]
    proc = np.bincount(lc, weights=cat.is_procedure[L["code"]] & ~is_em, minlength=n) > 0
    sel = ~proc & (rng.random(n) < np.clip(rates.mod25 * m * prov.habit["coding"][pv], 0, 0.8))
    em_line = pick_line(rng, lc, is_em & sel[lc], n)
    L["mods"][em_line[em_line >= 0], 1] = cat.mod25
    for nl in add:
        L = concat(L, nl)
    return sort_lines(L)


def bypass_for(rng: np.random.Generator, cat: CatalogArrays, code: np.ndarray) -> np.ndarray:
    """The bypass modifier a coder would use: 25 on an E/M, else 59 / XS / XU / XE."""
    em = cat.is_em[code]
    other = cat.bypass_mod_ids[(rng.random(len(code)) * len(cat.bypass_mod_ids)).astype(np.int64)]
    return np.where(em, cat.mod25, other).astype(np.int8)


def ptp_pairs(
    cat: CatalogArrays, C: Arrays, L: Arrays, svc_dates: np.ndarray, max_gap: int = 12
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All same-claim line pairs with an NCCI PTP edit in force: (column-1 line, column-2 line, indicator)."""
    lc, code = L["claim"], L["code"]
    ct = C["ct"][lc]
    a_all, b_all = [], []
    for d in range(1, max_gap):
        i = np.arange(len(lc) - d)
        j = i + d
        same = lc[i] == lc[j]
        if not same.any():
            break
        i, j = i[same], j[same]
        for x, y in ((i, j), (j, i)):
            hit = cat.ptp_any[ct[x], code[x], code[y]]
            a_all.append(x[hit])
            b_all.append(y[hit])
    a = np.concatenate(a_all) if a_all else np.zeros(0, np.int64)
    b = np.concatenate(b_all) if b_all else np.zeros(0, np.int64)
    if not len(a):
        return a, b, np.zeros(0, np.int8)
    mi = ptp_indicator(cat, ct[a], code[a], code[b], svc_dates[lc[a]])
    keep = mi >= 0
    return a[keep], b[keep], mi[keep]


def comply_modifiers(
    rng: np.random.Generator, cat: CatalogArrays, prov: Providers, C: Arrays, L: Arrays, svc_dates: np.ndarray
) -> None:
    """On naturally co-billed NCCI pairs (indicator 1), careful providers append the bypass modifier."""
    a, b, mi = ptp_pairs(cat, C, L, svc_dates)
    nat = (mi == 1) & ~L["inj_bundle"][a] & ~L["inj_bundle"][b]
    b = b[nat]
    ok = rng.random(len(b)) < prov.comply[C["provider"][L["claim"][b]]]
    b = b[ok]
    L["mods"][b, 1] = np.where(L["mods"][b, 1] > 0, L["mods"][b, 1], bypass_for(rng, cat, L["code"][b]))


# --------------------------------------------------------------------------------------
# resubmissions: duplicates, replacements, voids, split claims
# --------------------------------------------------------------------------------------


def derived_claims(
    rng: np.random.Generator,
    cat: CatalogArrays,
    prov: Providers,
    C: Arrays,
    L: Arrays,
    counts: dict[str, int],
    days: int,
    rates: MechanismRates,
) -> tuple[Arrays, Arrays]:
    """Append split, duplicate, replacement and void claims copied from earlier claims."""
    n = len(C["visit"])
    starts = np.searchsorted(L["claim"], np.arange(n))
    ends = np.searchsorted(L["claim"], np.arange(n), side="right")
    room = C["sub"] <= days - 60
    newC, newL = [], []
    offset = n

    def copy(parents: np.ndarray, kind: int, freq: int, lag: tuple[int, int]) -> tuple[Arrays, Arrays]:
        nonlocal offset
        c = take(C, parents)
        c["kind"][:] = kind
        c["parent"] = parents.copy()
        c["freq"][:] = freq
        c["sub"] = np.minimum(c["sub"] + rng.integers(lag[0], lag[1] + 1, len(parents)), days)
        sizes = ends[parents] - starts[parents]
        owner, pos = segments(sizes)
        li = starts[parents][owner] + pos
        lines = take(L, li)
        lines["claim"] = offset + owner
        offset += len(parents)
        return c, lines

    # split: a column-2 code billed on its own same-day claim (submitted 0-3 days later)
    lc = L["claim"]
    cnt = cat.partner_count[C["ct"][lc], C["spec"][lc], L["code"]]
    has_partner = np.bincount(lc, weights=cnt > 0, minlength=n) > 0
    w = prov.habit["unbundle"][C["provider"]] * has_partner * (C["kind"] == BASE)
    parents = weighted_sample(rng, w, int(counts["split"] * 1.5) + 5)
    n_split = 0
    if len(parents):
        line = pick_line(rng, lc, cnt > 0, n)[parents]
        c1 = L["code"][line]
        ctp, sp = C["ct"][parents], C["spec"][parents]
        st = cat.partner_start[ctp, sp, c1]
        c2 = cat.partners[st + (rng.random(len(parents)) * cnt[line]).astype(np.int64)]
        fresh = ~claim_has(lc, L["code"], cat.n_codes, parents, c2)
        keep = np.flatnonzero(fresh)[: counts["split"]]
        parents, c1, c2, ctp = parents[keep], c1[keep], c2[keep], ctp[keep]
        n_split = len(parents)
        c = take(C, parents)
        c["kind"][:] = SPLIT
        c["parent"] = parents.copy()
        c["sub"] = np.minimum(c["sub"] + rng.integers(0, 4, len(parents)), days)
        c["split_mi"] = cat.ptp_mi[ctp, c1, c2]
        nl = new_lines(rng, cat, c, np.arange(len(parents)), c2, inj_bundle=np.ones(len(parents), bool))
        byp = rng.random(len(parents)) < rates.bundle_abuse
        nl["mods"][:, 1] = np.where(byp, bypass_for(rng, cat, c2), 0)
        c["split_bypass"] = byp
        c["dx"] = c["dx"].copy()
        nl["claim"] = nl["claim"] + offset
        offset += len(parents)
        newC.append(c)
        newL.append(nl)
    # duplicates: exact or near copies, original frequency code, 10-60 days later
    w = prov.habit["duplicate"][C["provider"]] * room * (C["kind"] == BASE)
    parents = weighted_sample(rng, w, counts["duplicate"])
    if len(parents):
        c, lines = copy(parents, DUP, 0, (10, 60))
        near = rng.random(len(parents)) < 0.45
        c["dup_near"] = near
        # near copies: one line's charge differs, or one line dropped
        first = np.searchsorted(lines["claim"], offset - len(parents) + np.arange(len(parents)))
        sizes = np.bincount(lines["claim"] - (offset - len(parents)), minlength=len(parents))
        drop = near & (sizes > 1) & (rng.random(len(parents)) < 0.4)
        bump = near & ~drop
        lines["charge_adj"][first[bump]] *= 1 + rng.choice([-1, 1], bump.sum()) * rng.uniform(0.01, 0.06, bump.sum())
        keep = np.ones(len(lines["claim"]), bool)
        keep[first[drop] + sizes[drop] - 1] = False
        lines = take(lines, np.flatnonzero(keep))
        newC.append(c)
        newL.append(lines)
    # legitimate replacements (frequency 7): corrected charge on one line
    n_repl = counts["replacement"] + counts["split"] - n_split  # keep the claim count exact
    parents = weighted_sample(rng, room * (C["kind"] == BASE).astype(float), n_repl)
    if len(parents):
        c, lines = copy(parents, REPL, 1, (10, 60))
        first = np.searchsorted(lines["claim"], offset - len(parents) + np.arange(len(parents)))
        lines["charge_adj"][first] *= rng.uniform(0.85, 1.15, len(parents))
        newC.append(c)
        newL.append(lines)
    # voids (frequency 8)
    parents = weighted_sample(rng, room * (C["kind"] == BASE).astype(float), counts["void"])
    if len(parents):
        c, lines = copy(parents, VOID, 2, (5, 45))
        newC.append(c)
        newL.append(lines)
    for c, lines in zip(newC, newL):
        C = concat(C, c)
        L = concat(L, lines)
    return C, sort_lines(L)
