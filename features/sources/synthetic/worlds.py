"""Worlds: switchable realism of the synthetic generator, each switch off in the baseline world.

A :class:`World` (``GeneratorConfig.world``) changes how the history evolves over time, the way production
data does and the baseline generator does not:

* **drift** — a share of providers change habits at a random date: most start upcoding, unbundling and
  over-billing units (habits x ``drift_factor``), the rest stop (habits / ``drift_factor``). From that
  date the provider bills as a *persona* row with the changed habits (same NPI);
* **audit program** — a payer starts an audit program at a date: claims it pays from then on are
  recouped for the program's causes ``audit_factor`` times as often, with the program's own lag;
* **NCCI churn** — the world's PTP edits change by quarter: pairs the claims co-bill get a new edit
  (effective at a quarter start; the shipped rulebook lacks it) and some edits the claims hit are
  deleted at a quarter start. The generator's bundling facts, hence its recoupments and the oracle,
  follow the world's edits; features keep using the shipped rulebook;
* **new providers** — a share of providers join during the history (no claims before onboarding);
* **cause mix** — per plan type hazard weights by cause and recoupment lags by plan type (the global
  mix is ``GeneratorConfig.cause_mix``); short histories are a preset of ``start_date``.

The world's random draws come from their own stream (seeded from the config's seed), so the baseline
world's output is byte-identical to a generator without worlds. The oracle stays the true probability:
the personas' habits, the audit multiplier and the per-claim lag distributions enter it as they enter
the realized recoupments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CAUSES, PLAN_TYPES
from features.sources.synthetic.index import DATE_SHIFT, CatalogArrays, ymd
from features.sources.synthetic.world import HABITS, Providers

__all__ = ["World", "WORLDS", "world_preset", "world_rng"]

#: the habits a drifting provider changes (the coding-side ones a payer's edits catch)
DRIFT_HABITS: tuple[str, ...] = ("upcode", "unbundle", "units")
#: a separate stream for the world's draws; the baseline stream never sees them
WORLD_STREAM = 1013


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"world.{name} must be within [0, 1], got {value}")


def _window(name: str, value: tuple[float, float]) -> None:
    lo, hi = value
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"world.{name} must be two fractions of the history 0 <= lo <= hi <= 1, got {value}")


@dataclass(frozen=True)
class World:
    """Switches of realism; the defaults are the baseline world (everything off)."""

    name: str = "baseline"
    # drift: providers changing habits mid-history
    drift_share: float = 0.0  # share of providers whose habits change at a date
    drift_stop_share: float = 0.25  # of those, the share that stop (habits / factor) rather than start
    drift_factor: float = 4.0  # habit multiplier from the change date on
    drift_habits: tuple[str, ...] = DRIFT_HABITS
    drift_window: tuple[float, float] = (0.3, 0.8)  # change dates, as fractions of the history
    # audit program: a payer recoups more of some causes for claims it pays from a date on
    audit_payer: str | None = None  # payer id (catalog), None: no program
    audit_start: str | None = None  # YYYY-MM-DD; None: at audit_start_frac of the history
    audit_start_frac: float = 0.55
    audit_causes: tuple[str, ...] = ("documentation", "medical_necessity")
    audit_factor: float = 3.0  # hazard multiplier for the program's causes
    audit_lag_median: float = 80.0  # days from payment to the program's recoupments (median)
    # NCCI churn: edits added / deleted by quarter
    ncci_added: int = 0  # co-billed pairs that get a new edit at a quarter start
    ncci_removed: int = 0  # edits the claims hit that are deleted at a quarter start
    ncci_added_indicator0: float = 0.5  # share of added edits with modifier indicator 0 (no bypass)
    ncci_window: tuple[float, float] = (0.25, 0.85)  # quarter starts within these fractions of the history
    # new providers
    new_provider_share: float = 0.0  # share of providers that join during the history
    onboard_window: tuple[float, float] = (0.15, 0.75)
    # cause mix by payer and lags by payer (plan type -> cause -> hazard factor; plan type -> lag factor)
    cause_factor_by_plan: dict[str, dict[str, float]] = field(default_factory=dict)
    lag_factor_by_plan: dict[str, float] = field(default_factory=dict)

    @property
    def is_baseline(self) -> bool:
        """The baseline world: named so and no switch on (``short`` has none but is a named world)."""
        return self.name == "baseline" and self.switches() == {}

    def validate(self, cat: CatalogArrays | None = None) -> None:
        """Raise ``ValueError`` naming the first field out of bounds."""
        for name in ("drift_share", "drift_stop_share", "new_provider_share", "ncci_added_indicator0"):
            _fraction(name, getattr(self, name))
        _fraction("audit_start_frac", self.audit_start_frac)
        for name in ("drift_window", "ncci_window", "onboard_window"):
            _window(name, getattr(self, name))
        if not 0.05 <= self.drift_factor <= 50:
            raise ValueError(f"world.drift_factor must be within [0.05, 50], got {self.drift_factor}")
        if bad := [h for h in self.drift_habits if h not in HABITS]:
            raise ValueError(f"world.drift_habits: unknown habit(s) {bad}; known: {', '.join(HABITS)}")
        if not 0.0 <= self.audit_factor <= 50:
            raise ValueError(f"world.audit_factor must be within [0, 50], got {self.audit_factor}")
        if not 1.0 <= self.audit_lag_median <= 2000:
            raise ValueError(f"world.audit_lag_median must be within [1, 2000] days, got {self.audit_lag_median}")
        if bad := [c for c in self.audit_causes if c not in CAUSES]:
            raise ValueError(f"world.audit_causes: unknown cause(s) {bad}; known: {', '.join(CAUSES)}")
        if cat is not None and self.audit_payer is not None and self.audit_payer not in cat.payer_ids:
            raise ValueError(f"world.audit_payer {self.audit_payer!r} is not a payer of the catalog")
        if self.audit_start is not None:
            try:
                pd.Timestamp(self.audit_start)
            except ValueError:
                raise ValueError(f"world.audit_start must be a date YYYY-MM-DD, got {self.audit_start!r}") from None
        for name in ("ncci_added", "ncci_removed"):
            if not 0 <= getattr(self, name) <= 500:
                raise ValueError(f"world.{name} must be within [0, 500], got {getattr(self, name)}")
        for plan, by_cause in self.cause_factor_by_plan.items():
            if plan not in PLAN_TYPES or any(c not in CAUSES or not 0 <= f <= 20 for c, f in by_cause.items()):
                raise ValueError(f"world.cause_factor_by_plan[{plan!r}]: plan types {PLAN_TYPES}, causes, factors 0-20")
        for plan, f in self.lag_factor_by_plan.items():
            if plan not in PLAN_TYPES or not 0.1 <= f <= 10:
                raise ValueError(f"world.lag_factor_by_plan[{plan!r}]: plan types {PLAN_TYPES}, factors 0.1-10")

    def switches(self) -> dict[str, Any]:
        """The fields that differ from the baseline world (``name`` aside)."""
        base = World()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "name" and getattr(self, f.name) != getattr(base, f.name)
        }

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


_CAUSE_MIX_CODING = {
    "duplicate": 0.07,
    "bundling": 0.18,
    "units": 0.12,
    "procedure_coding": 0.18,
    "medical_necessity": 0.12,
    "documentation": 0.2,
    "eligibility": 0.07,
    "other": 0.06,
}
_BY_PLAN = dict(
    cause_factor_by_plan={
        "commercial": {"bundling": 2.0, "units": 1.6},
        "medicaid": {"eligibility": 2.0, "documentation": 0.6},
        "medicare_advantage": {"procedure_coding": 1.8},
    },
    lag_factor_by_plan={"medicaid": 1.6, "commercial": 0.7, "medicare_advantage": 0.85},
)
_DRIFT = dict(drift_share=0.2)
_AUDIT = dict(audit_payer="MA-SUNCREST", audit_causes=("procedure_coding", "documentation"))
_NCCI = dict(ncci_added=12, ncci_removed=6)
_NEW = dict(new_provider_share=0.3)

#: named worlds: (World fields, GeneratorConfig fields); "short" starts 540 days before the end date
WORLDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "baseline": ({}, {}),
    "drift": (_DRIFT, {}),
    "audit-program": (_AUDIT, {}),
    "ncci-churn": (_NCCI, {}),
    "new-providers": (_NEW, {}),
    "short": ({}, {"history_days": 540}),
    "cause-mix": (_BY_PLAN, {"cause_mix": _CAUSE_MIX_CODING}),
    "mixed": ({**_DRIFT, **_AUDIT, **_NCCI, **_NEW, **_BY_PLAN, "drift_share": 0.15}, {}),
}


def world_preset(name: str, end_date: str = "2025-12-31") -> tuple[World, dict[str, Any]]:
    """The named world and the GeneratorConfig fields it sets (``start_date`` for short histories)."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; worlds: {', '.join(WORLDS)}")
    fields_, cfg = WORLDS[name]
    cfg = dict(cfg)
    if "history_days" in cfg:
        cfg["start_date"] = str((pd.Timestamp(end_date) - pd.Timedelta(days=cfg.pop("history_days"))).date())
    return World(name=name, **fields_), cfg


def world_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), WORLD_STREAM])


# --------------------------------------------------------------------------------------
# providers: onboarding and changed habits
# --------------------------------------------------------------------------------------


def _day_in(rng: np.random.Generator, window: tuple[float, float], days: int, n: int) -> np.ndarray:
    return (days * rng.uniform(window[0], window[1], n)).astype(np.int64)


def world_providers(rng: np.random.Generator, prov: Providers, world: World, days: int) -> Providers:
    """Providers with onboarding days and changed-habit personas (rows appended with volume 0)."""
    P = len(prov.npi)
    onboard = np.zeros(P, np.int64)
    if world.new_provider_share > 0:
        late = rng.random(P) < world.new_provider_share
        late[np.unique(prov.spec, return_index=True)[1]] = False  # one provider per specialty from the start
        onboard[late] = np.maximum(_day_in(rng, world.onboard_window, days, int(late.sum())), 1)
    idx = np.zeros(0, np.int64)
    if world.drift_share > 0:
        idx = np.flatnonzero(rng.random(P) < world.drift_share)
    k = len(idx)
    stop = rng.random(k) < world.drift_stop_share
    factor = np.where(stop, 1.0 / world.drift_factor, world.drift_factor)
    # the change happens while the provider bills: after onboarding
    span_lo = onboard[idx] + 31
    frac = rng.uniform(world.drift_window[0], world.drift_window[1], k)
    switch = (span_lo + frac * np.maximum(days - span_lo, 0)).astype(np.int64)

    def cat_(a: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([a, extra])

    habit = {h: cat_(v, v[idx] * (factor if h in world.drift_habits else 1.0)) for h, v in prov.habit.items()}
    comply = cat_(prov.comply, np.clip(prov.comply[idx] - 0.18 * np.log(factor), 0.4, 0.99))
    switch_day = np.full(P + k, np.iinfo(np.int64).max)
    switch_day[idx] = switch
    switch_to = np.arange(P + k)
    switch_to[idx] = P + np.arange(k)
    return Providers(
        npi=cat_(prov.npi, prov.npi[idx]),
        spec=cat_(prov.spec, prov.spec[idx]),
        inst=cat_(prov.inst, prov.inst[idx]),
        state=cat_(prov.state, prov.state[idx]),
        volume=cat_(prov.volume, np.zeros(k)),
        habit=habit,
        comply=comply,
        markup=cat_(prov.markup, prov.markup[idx]),
        lag_mean=cat_(prov.lag_mean, prov.lag_mean[idx]),
        visit_cum=np.concatenate([prov.visit_cum, prov.visit_cum[idx]]),
        panel_lo=cat_(prov.panel_lo, prov.panel_lo[idx]),
        panel_size=cat_(prov.panel_size, prov.panel_size[idx]),
        base=cat_(np.arange(P), idx),
        onboard=cat_(onboard, onboard[idx]),
        switch_day=switch_day,
        switch_to=switch_to,
    )


def provider_facts(prov: Providers, start: np.datetime64) -> pd.DataFrame:
    """Per real provider: onboarding date (NaT: from the start), habit change date and direction."""
    P = len(prov.npi) if prov.base is None else int((prov.base == np.arange(len(prov.base))).sum())
    onboard = np.zeros(P, np.int64) if prov.onboard is None else prov.onboard[:P]
    change = np.full(P, -1, np.int64)
    direction = np.full(P, "", dtype=object)
    if prov.switch_day is not None and prov.switch_to is not None:
        moved = np.flatnonzero(prov.switch_to[:P] != np.arange(P))
        change[moved] = prov.switch_day[moved]
        persona = prov.switch_to[moved]
        up = prov.habit["upcode"][persona] > prov.habit["upcode"][moved]
        direction[moved] = np.where(up, "start", "stop")

    def dates(d: np.ndarray, on: np.ndarray) -> np.ndarray:
        out = (start + d.astype("timedelta64[D]")).astype("datetime64[s]")
        out[~on] = np.datetime64("NaT")
        return out

    return pd.DataFrame(
        {
            "npi": prov.npi[:P].astype(str),
            "onboard_date": dates(onboard, onboard > 0),
            "habit_change_date": dates(change, change >= 0),
            "habit_change": direction,
        }
    )


# --------------------------------------------------------------------------------------
# payers: audit program, cause weights and lags by plan
# --------------------------------------------------------------------------------------


def audit_day(world: World, start: np.datetime64, days: int) -> int | None:
    """The audit program's first day (day index), None without a program."""
    if world.audit_payer is None:
        return None
    if world.audit_start is not None:
        return int((np.datetime64(pd.Timestamp(world.audit_start).date(), "D") - start) // np.timedelta64(1, "D"))
    return int(round(world.audit_start_frac * days))


def payer_effects(
    world: World, cat: CatalogArrays, payer: np.ndarray, paid_day: np.ndarray, first_audit_day: int | None, base_lag
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(hazard multiplier (n, 8), lag medians (n, 8)) of the world's payer switches; None when all off."""
    n = len(payer)
    plan = cat.payer_plan[payer]
    mult = None
    lag = None
    if world.cause_factor_by_plan:
        per_plan = np.ones((len(PLAN_TYPES), len(CAUSES)))
        for p, by_cause in world.cause_factor_by_plan.items():
            for c, f in by_cause.items():
                per_plan[PLAN_TYPES.index(p), CAUSES.index(c)] = f
        mult = per_plan[plan]
    if world.lag_factor_by_plan:
        per_plan_lag = np.ones(len(PLAN_TYPES))
        for p, f in world.lag_factor_by_plan.items():
            per_plan_lag[PLAN_TYPES.index(p)] = f
        lag = np.asarray(base_lag, float)[None, :] * per_plan_lag[plan][:, None]
    if first_audit_day is not None and world.audit_payer is not None:
        on = (payer == cat.payer_ids.index(world.audit_payer)) & (paid_day >= first_audit_day)
        cols = [CAUSES.index(c) for c in world.audit_causes]
        mult = np.ones((n, len(CAUSES))) if mult is None else mult.copy()
        lag = np.tile(np.asarray(base_lag, float), (n, 1)) if lag is None else lag
        for ci in cols:
            mult[on, ci] *= world.audit_factor
            lag[on, ci] = world.audit_lag_median
    return mult, lag


# --------------------------------------------------------------------------------------
# NCCI churn
# --------------------------------------------------------------------------------------


def _quarter_starts(start: np.datetime64, days: int, window: tuple[float, float]) -> np.ndarray:
    lo = pd.Timestamp(start + np.timedelta64(int(days * window[0]), "D"))
    hi = pd.Timestamp(start + np.timedelta64(int(days * window[1]), "D"))
    q = pd.date_range(lo, hi, freq="QS")
    if not len(q):
        q = pd.DatetimeIndex([lo.to_period("Q").start_time])
    return q.to_numpy().astype("datetime64[D]")


def _co_billed(L: dict, ct_line: np.ndarray, V: int, max_gap: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (ct, code, code) triples co-billed on a claim, encoded ``(ct * V + c1) * V + c2``, with counts."""
    lc, code = L["claim"], L["code"]
    keys = []
    for d in range(1, max_gap):
        i = np.arange(len(lc) - d)
        j = i + d
        same = (lc[i] == lc[j]) & (code[i] != code[j])
        if not same.any():
            break
        i, j = i[same], j[same]
        keys.append((ct_line[i].astype(np.int64) * V + code[i]) * V + code[j])
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.unique(np.concatenate(keys), return_counts=True)


def churn_edits(
    rng: np.random.Generator,
    cat: CatalogArrays,
    C: dict,
    L: dict,
    world: World,
    start: np.datetime64,
    days: int,
    svc_dates: np.ndarray,
) -> tuple[CatalogArrays, pd.DataFrame]:
    """A copy of the catalog with the world's PTP edits added / deleted at quarter starts, and the changes."""
    from features.sources.synthetic.claims import ptp_pairs

    V = cat.n_codes
    ct_line = C["ct"][L["claim"]]
    quarters = _quarter_starts(start, days, world.ncci_window)
    rows = []
    keys, key_mi = cat.ptp_keys.copy(), cat.ptp_key_mi.copy()
    key_from = np.zeros(len(keys), np.int64) if cat.ptp_key_from is None else cat.ptp_key_from.copy()
    ptp_any = cat.ptp_any.copy()
    # deleted: edits the claims hit, weighted by how often
    if world.ncci_removed:
        a, b, _ = ptp_pairs(cat, C, L, svc_dates)
        trip, cnt = np.unique((ct_line[a].astype(np.int64) * V + L["code"][a]) * V + L["code"][b], return_counts=True)
        k = min(world.ncci_removed, len(trip))
        pick = trip[rng.choice(len(trip), size=k, replace=False, p=cnt / cnt.sum())] if k else trip[:0]
        when = quarters[rng.integers(0, len(quarters), k)]
        last = ymd(when - np.timedelta64(1, "D"))
        pair = keys // DATE_SHIFT
        for t, d, q in zip(pick, last, when):
            on = pair == t
            keys[on] = t * DATE_SHIFT + np.minimum(keys[on] % DATE_SHIFT, d)
            rows.append(("deleted", int(t), q, int(key_mi[on][0]) if on.any() else -1))
    # added: co-billed pairs without any edit, weighted by sqrt(frequency); column 1 = the dearer code
    if world.ncci_added:
        trip, cnt = _co_billed(L, ct_line, V)
        ct_, c1, c2 = trip // (V * V), (trip // V) % V, trip % V
        ok = ~ptp_any[ct_, c1, c2] & ~ptp_any[ct_, c2, c1] & (cat.fee[c1] >= cat.fee[c2])
        ok &= ~(cat.is_level_code[c1] & cat.is_level_code[c2])
        trip, cnt = trip[ok], cnt[ok]
        k = min(world.ncci_added, len(trip))
        w = np.sqrt(cnt.astype(float))
        pick = trip[rng.choice(len(trip), size=k, replace=False, p=w / w.sum())] if k else trip[:0]
        when = quarters[rng.integers(0, len(quarters), k)]
        mi = np.where(rng.random(k) < world.ncci_added_indicator0, 0, 1).astype(np.int8)
        keys = np.concatenate([keys, pick * DATE_SHIFT + 99991231])
        key_mi = np.concatenate([key_mi, mi])
        key_from = np.concatenate([key_from, ymd(when)])
        ptp_any[pick // (V * V), (pick // V) % V, pick % V] = True
        rows += [("added", int(t), q, int(m)) for t, q, m in zip(pick, when, mi)]
    order = np.argsort(keys, kind="stable")
    new = dataclasses.replace(
        cat, ptp_keys=keys[order], ptp_key_mi=key_mi[order], ptp_key_from=key_from[order], ptp_any=ptp_any
    )
    changes = pd.DataFrame(
        {
            "change": [r[0] for r in rows],
            "claim_type": [("professional", "institutional")[r[1] // (V * V)] for r in rows],
            "column_1": [cat.codes[(r[1] // V) % V] for r in rows],
            "column_2": [cat.codes[r[1] % V] for r in rows],
            "effective_date": pd.to_datetime([r[2] for r in rows]),
            "modifier_indicator": [r[3] for r in rows],
        }
    )
    return new, changes
