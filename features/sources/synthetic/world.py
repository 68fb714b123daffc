"""Providers (with latent habits), patients and their coverage spans, for the synthetic generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.contract import PLAN_TYPES
from features.sources.synthetic.catalog import PLAN_MIX, STATE_WEIGHTS, STATES
from features.sources.synthetic.index import CatalogArrays

#: latent provider habits; each is heavy-tailed with mean 1 (a minority of providers causes most errors)
HABITS: tuple[str, ...] = ("unbundle", "upcode", "units", "duplicate", "sloppy", "coding", "necessity", "stale")
HOSPITAL_TAXONOMY = "282N00000X"


@dataclass
class Providers:
    npi: np.ndarray  # (P,) str
    spec: np.ndarray  # specialty index
    inst: np.ndarray  # bool: hospital outpatient department (837I)
    state: np.ndarray  # state index
    volume: np.ndarray  # claim share
    habit: dict[str, np.ndarray]  # name -> (P,) multiplier, mean 1
    comply: np.ndarray  # P(bypass modifier on a legitimately distinct NCCI pair)
    markup: np.ndarray  # charge-master multiplier
    lag_mean: np.ndarray  # mean submission lag in days
    visit_cum: np.ndarray  # (P, max visits) cumulative visit probabilities
    panel_lo: np.ndarray  # first patient index of the provider's panel
    panel_size: np.ndarray
    # worlds (features.sources.synthetic.worlds): None in the baseline world
    base: np.ndarray | None = None  # the real provider of each row (a row past P is a changed-habits persona)
    onboard: np.ndarray | None = None  # first submission day allowed (0: there from the start)
    switch_day: np.ndarray | None = None  # from this submission day the provider bills as row switch_to
    switch_to: np.ndarray | None = None


@dataclass
class Patients:
    state: np.ndarray
    complexity: np.ndarray  # expected number of chronic conditions
    magnet: np.ndarray  # latent audit attention (high utilizers, prior flags)
    payer1: np.ndarray
    end1: np.ndarray  # last covered day of span 1 (day index), large = open
    payer2: np.ndarray  # -1 none
    start2: np.ndarray  # first covered day of span 2, large = none
    start1: np.ndarray
    change: np.ndarray  # bool: span 2 is a different payer (stale-eligibility risk right after)
    terminated: np.ndarray  # bool: coverage ended (moved away / died)


OPEN = np.int64(10**6)


#: the 9-digit NPI bases drawn (the NPI starts 1 or 2)
NPI_RANGE = (100_000_000, 300_000_000)


def npis(rng: np.random.Generator, n: int, lo_hi: tuple[int, int] = NPI_RANGE) -> np.ndarray:
    """Unique 10-digit NPIs with a valid Luhn check digit (prefix 80840, as CMS specifies), bases in ``lo_hi``
    (a sub-range keeps the NPIs of a generation shard apart from the other shards')."""
    base = np.unique(rng.integers(lo_hi[0], lo_hi[1], size=2 * n + 10))  # 9 digits, starts 1 or 2
    if len(base) < n:
        raise ValueError(f"NPI range {lo_hi} too small for {n} providers")
    base = rng.permutation(base)[:n]
    digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    # Luhn over "80840" + 9 digits, doubling every second digit from the right of the payload
    dbl = digits[:, ::-1].copy()
    dbl[:, ::2] *= 2
    dbl = np.where(dbl > 9, dbl - 9, dbl)
    total = dbl.sum(1) + 24  # contribution of the 80840 prefix
    check = (10 - total % 10) % 10
    return np.array([f"{b}{c}" for b, c in zip(base, check)], dtype=object)


def make_providers(
    rng: np.random.Generator,
    cat: CatalogArrays,
    n_providers: int,
    n_patients: int,
    patient_state: np.ndarray,
    habit_sigma: float,
    npi_range: tuple[int, int] = NPI_RANGE,
) -> Providers:
    S = len(cat.spec_keys)
    spec = rng.choice(S, size=n_providers, p=cat.spec_share)
    spec[: min(S, n_providers)] = np.arange(min(S, n_providers))  # every specialty present
    inst = rng.random(n_providers) < cat.spec_inst_share[spec]
    state = rng.choice(len(STATES), size=n_providers, p=STATE_WEIGHTS)
    volume = rng.lognormal(0.0, 0.7, n_providers) * np.where(inst, 2.0, 1.0)
    volume /= volume.sum()
    z = rng.standard_normal(n_providers)  # general carelessness, shared by all habits
    habit = {}
    for name in HABITS:
        logh = habit_sigma * (0.6 * z + 0.8 * rng.standard_normal(n_providers))
        h = np.exp(logh)
        habit[name] = h / h.mean()
    comply = np.clip(0.93 - 0.18 * np.log(habit["unbundle"]), 0.4, 0.99)
    markup = rng.lognormal(0.0, 0.18, n_providers)
    lag_mean = 3.0 * np.exp(0.35 * z + 0.3 * rng.standard_normal(n_providers))
    # visit mix: specialty weights perturbed per provider
    vmax = int(cat.spec_visit_count.max())
    k = np.arange(vmax)
    valid = k[None, :] < cat.spec_visit_count[spec][:, None]
    vid = np.where(valid, cat.spec_visit_start[spec][:, None] + k[None, :], 0)
    w = np.where(valid, cat.visit_weight[vid] * rng.lognormal(0.0, 0.35, (n_providers, vmax)), 0.0)
    visit_cum = np.cumsum(w / w.sum(1, keepdims=True), axis=1)
    visit_cum[:, -1] = 1.0 + 1e-9
    # panels: a contiguous range of patients of the provider's state
    order_lo = np.searchsorted(patient_state, np.arange(len(STATES)), side="left")
    order_hi = np.searchsorted(patient_state, np.arange(len(STATES)), side="right")
    block = np.maximum(order_hi - order_lo, 1)[state]
    expected = volume * n_patients * 6
    size = np.clip((expected / 2.5).astype(np.int64), 15, None)
    size = np.minimum(size, block)
    lo = order_lo[state] + (rng.random(n_providers) * (block - size + 1)).astype(np.int64)
    return Providers(
        npis(rng, n_providers, npi_range),
        spec,
        inst,
        state,
        volume,
        habit,
        comply,
        markup,
        lag_mean,
        visit_cum,
        lo,
        size,
    )


def make_patients(rng: np.random.Generator, cat: CatalogArrays, n: int, data_days: int, event_scale: float) -> Patients:
    """Patients sorted by state, each with one or two coverage spans (payer change, lapse, or end)."""
    state = np.sort(rng.choice(len(STATES), size=n, p=STATE_WEIGHTS))
    plans = np.array(list(PLAN_MIX.values()))
    plan = rng.choice(len(PLAN_TYPES), size=n, p=plans / plans.sum())
    payer1 = _payer_for(rng, cat, plan, state)
    complexity = rng.gamma(2.0, 0.55, n) * np.where(np.isin(plan, [0, 1]), 1.4, 1.0)
    magnet = rng.lognormal(0.0, 0.35, n)
    magnet /= magnet.mean()
    medicaid = plan == PLAN_TYPES.index("medicaid")
    u = rng.random(n)
    p_change = min(0.13 * event_scale, 0.4)
    p_lapse = np.minimum(np.where(medicaid, 0.22, 0.06) * event_scale, 0.4)
    p_term = min(0.04 * event_scale, 0.15)
    change = u < p_change
    lapse = ~change & (u < p_change + p_lapse)
    term = ~change & ~lapse & (u < p_change + p_lapse + p_term)
    event_day = rng.integers(0, data_days, n)
    start1 = -rng.integers(60, 2000, n)
    end1 = np.where(change | lapse | term, event_day - 1, OPEN)
    gap = rng.integers(20, 150, n)
    start2 = np.where(change, event_day, np.where(lapse, event_day + gap, OPEN))
    new_plan = rng.choice(len(PLAN_TYPES), size=n, p=plans / plans.sum())
    payer2_new = _payer_for(rng, cat, new_plan, state)
    same = payer2_new == payer1
    payer2_new = np.where(same, _payer_for(rng, cat, (new_plan + 1) % len(PLAN_TYPES), state), payer2_new)
    payer2 = np.where(change, payer2_new, np.where(lapse, payer1, -1))
    return Patients(state, complexity, magnet, payer1, end1, payer2, start2, start1, change, term)


def _payer_for(rng: np.random.Generator, cat: CatalogArrays, plan: np.ndarray, state: np.ndarray) -> np.ndarray:
    """A payer of each plan type: the state's MAC / Medicaid agency, or a random national plan."""
    out = np.full(len(plan), -1, dtype=np.int64)
    u = rng.random(len(plan))
    for p in range(len(PLAN_TYPES)):
        ids = np.flatnonzero(cat.payer_plan == p)
        regional = cat.payer_state[ids] >= 0
        m = plan == p
        if regional.all():
            lookup = np.full(len(STATES), -1)
            lookup[cat.payer_state[ids]] = ids
            out[m] = lookup[state[m]]
        else:
            out[m] = ids[(u[m] * len(ids)).astype(np.int64)]
    return out


def coverage_at(pat: Patients, patient: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The payer covering each (patient, day), -1 when not covered."""
    in1 = (day >= pat.start1[patient]) & (day <= pat.end1[patient])
    in2 = (pat.payer2[patient] >= 0) & (day >= pat.start2[patient])
    return np.where(in1, pat.payer1[patient], np.where(in2, pat.payer2[patient], -1))
