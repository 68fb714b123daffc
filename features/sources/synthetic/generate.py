"""Synthetic claims history with realistic recoupments, and its oracle: the project's default dataset.

``generate_history(GeneratorConfig(...))`` returns a typed :class:`~features.contract.History`
(exactly what :func:`~features.contract.load_history` returns for the written directory) and the
oracle frame; ``generate_to_dir`` writes both (``DIR/oracle.csv``).

The world
    ~13 specialties (real NUCC taxonomies) with visit templates of real CPT/HCPCS codes, fees and
    units (:mod:`features.sources.synthetic.catalog`); providers with heavy-tailed latent habits
    (unbundling, upcoding, units, duplicates, sloppy paperwork, coding, medical necessity, stale
    eligibility); patients with coverage spans (payer changes, Medicaid churn lapses, terminations);
    15 payers (5 Medicare MACs, 2 Medicare Advantage, 5 Medicaid, 3 commercial) with their own
    allowed ratios and audit intensities by cause.

Error mechanisms (:mod:`features.sources.synthetic.claims`), all visible in the data the way they are in
real claims: duplicate resubmissions (frequency ``1``, 10-60 days later, exact or near copies;
replacements ``7`` and voids ``8`` also exist); real NCCI PTP pairs (from the packaged rulebook)
billed without a bypass modifier, or split across same-day claims; units over the real MUE per line
or per day; upcoded E/M / psychotherapy / chiropractic levels with weak diagnosis support; add-on
codes without their primary; modifier 25 with no procedure; diagnoses that do not support the
procedure, some truncated to non-billable categories; missing attachments and prior
authorizations; service dates outside the billed payer's coverage; payer overpayments.

The oracle (:mod:`features.sources.synthetic.outcomes`)
    For every claim, ``p_<cause>`` is the generator's probability of a recoupment of that cause
    within ``horizon_days`` of ``paid_date`` (hazard of the claim's error facts and its provider's
    habits, times payer audit intensity and cause detectability, censored by the cause's log-normal
    lag distribution); ``true_probability`` is their sum and ``true_cause`` their argmax. The oracle
    conditions on the observable claim facts plus the latent traits of providers, patients and payers,
    and marginalizes the per-claim hidden draws (documentation deficiency, the true level behind an
    upcoded bill, an abusive bypass modifier) over their posterior; realized recoupments are drawn
    from the actual draws, so the oracle is the Bayes-optimal, calibrated ceiling. Claims that
    are denied or not yet paid on ``end_date`` have probability 0. Per-cause scales are solved so the
    expected share of claims recouped within the horizon is ``recoupment_rate`` with the cause mix
    ``cause_mix``. A recoupment lagging past the horizon is written (if before ``end_date``) but
    the claim is not a positive. ``expected_amount`` is the expected dollars recouped in the horizon.

Worlds (:mod:`features.sources.synthetic.worlds`, ``GeneratorConfig.world``, ``world_config(name)``)
    switch on non-stationarity: providers changing habits, a payer's audit program, NCCI edits changing by
    quarter, providers joining, causes and lags by payer; all off in the baseline world (byte-identical output).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract import CAUSES, FREQUENCY_CODES, PLAN_TYPES, History, causes_from_carcs, write_history
from features.sources.synthetic.catalog import STATES
from features.sources.synthetic.claims import (
    MechanismRates,
    base_claims,
    comply_modifiers,
    derived_claims,
    inject_errors,
    segments,
    template_lines,
)
from features.sources.synthetic.index import catalog_arrays
from features.sources.synthetic.outcomes import (
    CI,
    LAG_MEDIAN,
    documentation_state,
    draw_recoupments,
    facts,
    paperwork,
    payments,
    recoup_probabilities,
)
from features.sources.synthetic.world import HOSPITAL_TAXONOMY, NPI_RANGE, OPEN, make_patients, make_providers
from features.sources.synthetic.worlds import (
    WORLD_STREAM,
    World,
    audit_day,
    churn_edits,
    payer_effects,
    provider_facts,
    world_preset,
    world_providers,
    world_rng,
)

__all__ = [
    "GeneratorConfig",
    "generate_history",
    "generate_with_facts",
    "generate_to_dir",
    "summarize",
    "DEFAULT_CAUSE_MIX",
    "World",
    "world_config",
]

#: share of recoupments (within the horizon, by count) per cause; by dollars documentation leads
#: (CERT: documentation ~60% of improper payments, medical necessity ~17%, coding ~13%)
DEFAULT_CAUSE_MIX: dict[str, float] = {
    "duplicate": 0.08,
    "bundling": 0.11,
    "units": 0.06,
    "procedure_coding": 0.11,
    "medical_necessity": 0.16,
    "documentation": 0.34,
    "eligibility": 0.08,
    "other": 0.06,
}


@dataclass
class GeneratorConfig:
    """Knobs of the synthetic history. Same config, same frames."""

    n_claims: int = 20_000
    seed: int = 7
    recoupment_rate: float = 0.05  # expected share of claims with a recoupment within the horizon
    start_date: str = "2023-01-01"  # first submission date
    end_date: str = "2025-12-31"  # data extraction date: nothing after it exists
    horizon_days: int = 365
    cause_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CAUSE_MIX))
    claims_per_provider: int = 250
    min_providers: int = 20
    claims_per_patient: int = 6
    annual_growth: float = 0.12  # growth of claim volume per year
    denial_rate: float = 0.025  # baseline share of claims denied (never paid, never recouped)
    overpaid_rate: float = 0.012  # payer pricing errors (cause "other"), at the default rate
    baseline_hazard: float = 0.0025  # recoupment hazard of a claim without any error (label noise)
    habit_sigma: float = 1.0  # spread of provider habits (log scale): larger = fewer bad actors
    coverage_event_scale: float = 1.0  # scales payer changes, lapses and terminations
    carc_missing: float = 0.10  # share of recoupment rows without a CARC
    mechanisms: MechanismRates = field(default_factory=MechanismRates)
    rulebook_dir: str | None = None
    world: World = field(default_factory=World)  # switchable realism (features.sources.synthetic.worlds)

    def prevalence(self) -> float:
        """Multiplier of error prevalence: errors get more common as the target rate grows."""
        return float(np.clip((max(self.recoupment_rate, 1e-6) / 0.05) ** 0.85, 0.1, 6.0))


def world_config(world: str, **kw) -> GeneratorConfig:
    """A GeneratorConfig of the named world (:data:`~features.sources.synthetic.worlds.WORLDS`); explicit
    ``kw`` (e.g. ``start_date``) win over the preset's fields."""
    w, preset = world_preset(world, kw.get("end_date", GeneratorConfig.end_date))
    return GeneratorConfig(**{**preset, **kw, "world": w})


def generate_history(
    config: GeneratorConfig, progress: Callable[[str], None] | None = None
) -> tuple[History, pd.DataFrame]:
    """Typed History (same dtypes as ``load_history``) and the oracle frame."""
    history, oracle, _ = generate_with_facts(config, progress)
    return history, oracle


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` of a partitioned generation (:mod:`features.sources.synthetic.partitioned`): an
    independent sub-world (its own providers, patients, claims and recoupments; the same payers, catalog, dates
    and targets) with its own random stream, ids prefixed by the shard and NPIs from its own sub-range."""

    index: int
    count: int

    def rng(self, seed: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([int(seed), stream, self.index, self.count])

    def npi_range(self) -> tuple[int, int]:
        lo, hi = NPI_RANGE
        width = (hi - lo) // self.count
        return lo + self.index * width, lo + (self.index + 1) * width

    def prefix(self, kind: str) -> str:
        return f"{kind}{self.index:04d}-"


#: the random stream of a shard (the single process uses ``default_rng(seed)``; worlds use WORLD_STREAM)
SHARD_STREAM = 1515


def generate_with_facts(
    config: GeneratorConfig, progress: Callable[[str], None] | None = None, shard: Shard | None = None
) -> tuple[History, pd.DataFrame, dict[str, pd.DataFrame]]:
    """:func:`generate_history` plus the generator's ground-truth error facts (for tests and docs):
    ``facts["claims"]`` (one row per claim, in claim order: kind and boolean facts),
    ``facts["ptp_pairs"]`` (claim_id, column-1 and column-2 line numbers of erroneous NCCI pairs),
    ``facts["units_lines"]`` (claim_id, line_number of lines over the MUE),
    ``facts["recoupments"]`` (every drawn recoupment, also after the data end: claim_id, cause,
    lag_days, within_horizon, written) and ``facts["scales"]`` (the solved per-cause scales).
    ``shard``: this config's claims as one :class:`Shard` of a partitioned generation (None: the whole history)."""
    step = progress or (lambda _msg: None)
    cfg = config
    rng = np.random.default_rng(cfg.seed) if shard is None else shard.rng(cfg.seed, SHARD_STREAM)
    cat = catalog_arrays(cfg.rulebook_dir)
    start = np.datetime64(pd.Timestamp(cfg.start_date).date(), "D")
    days = int((np.datetime64(pd.Timestamp(cfg.end_date).date(), "D") - start) // np.timedelta64(1, "D"))
    if days < 30:
        raise ValueError("end_date must be at least 30 days after start_date")
    n = int(cfg.n_claims)
    world = cfg.world
    world.validate(cat)
    # the world's draws never shift the baseline stream
    wrng = world_rng(cfg.seed) if shard is None else shard.rng(cfg.seed, WORLD_STREAM)
    m = cfg.prevalence()
    rates = cfg.mechanisms
    mix = np.array([cfg.cause_mix.get(c, 0.0) for c in CAUSES], dtype=float)
    mix = mix / mix.sum()

    step("providers and patients")
    n_prov = max(cfg.min_providers, round(n / cfg.claims_per_provider))
    n_pat = max(50, round(n / cfg.claims_per_patient))
    pat = make_patients(rng, cat, n_pat, days, cfg.coverage_event_scale * m)
    if shard is None:
        prov = make_providers(rng, cat, n_prov, n_pat, pat.state, cfg.habit_sigma)
    else:
        prov = make_providers(rng, cat, n_prov, n_pat, pat.state, cfg.habit_sigma, shard.npi_range())
    if world.drift_share > 0 or world.new_provider_share > 0:
        prov = world_providers(wrng, prov, world, days)

    step("claims and lines")
    counts = {
        k: int(round(n * r))
        for k, r in (
            ("split", rates.split * m),
            ("duplicate", rates.duplicate * m),
            ("replacement", rates.replacement),
            ("void", rates.void),
        )
    }
    n_base = max(n - sum(counts.values()), 1)
    C = base_claims(rng, cat, prov, pat, n_base, days, cfg.annual_growth, rates, m)
    L = template_lines(rng, cat, prov, C, rates, m)
    L = inject_errors(rng, cat, prov, C, L, rates, m)
    svc_dates = start + C["svc"]
    ncci_changes = None
    if world.ncci_added or world.ncci_removed:
        cat, ncci_changes = churn_edits(wrng, cat, C, L, world, start, days, svc_dates)
    comply_modifiers(rng, cat, prov, C, L, svc_dates)
    C, L = derived_claims(rng, cat, prov, C, L, counts, days, rates)

    step("payments and error facts")
    paperwork(rng, cat, prov, C, L, rates.missing_attachment, rates.missing_prior_auth)
    payments(rng, cat, prov, C, L, days, cfg.denial_rate, cfg.overpaid_rate * m)
    documentation_state(rng, cat, prov, C, L, rates.documentation * m)
    H, A, found, hidden = facts(cat, prov, C, L, start + C["svc"], rates, m)

    step("oracle and recoupments")
    first_audit = audit_day(world, start, days)
    hazard_mult, lag_median = payer_effects(world, cat, C["payer"], C["paid_day"], first_audit, LAG_MEDIAN)
    q, p, scales, amount = recoup_probabilities(
        H,
        C,
        cat,
        pat,
        found["risk"],
        cfg.recoupment_rate,
        mix,
        cfg.horizon_days,
        cfg.baseline_hazard,
        hidden,
        A,
        hazard_mult=hazard_mult,
        lag_median=lag_median,
    )
    del hidden
    R = draw_recoupments(rng, q, A, C, days, cfg.horizon_days, cfg.carc_missing, lag_median)

    step("typed frames")
    ids = ("CLM", "PAT") if shard is None else (shard.prefix("CLM"), shard.prefix("PAT"))
    history, oracle, rank, lrank = _frames(rng, cat, prov, pat, C, L, R, p, amount, start, ids)
    out = _facts_frames(C, R, found, scales, rank, lrank, history)
    out["providers"] = provider_facts(prov, start)
    out["ncci_changes"] = ncci_changes if ncci_changes is not None else pd.DataFrame()
    audit = None if first_audit is None else str(start + np.timedelta64(first_audit, "D"))
    out["world"] = pd.DataFrame({"key": ["name", "audit_start"], "value": [world.name, audit]})
    return history, oracle, out


def _facts_frames(C, R, F, scales, rank, lrank, history) -> dict[str, pd.DataFrame]:
    order = np.argsort(rank)
    ids = history.claims["claim_id"]
    lnum = history.claim_lines["line_number"].to_numpy()
    claims = pd.DataFrame({"claim_id": ids})
    claims["kind"] = np.asarray(["original", "duplicate", "replacement", "void", "split"])[C["kind"][order]]
    for k in (
        "duplicate",
        "bundling",
        "units",
        "upcoded",
        "orphan_addon",
        "mod25_misuse",
        "medical_necessity",
        "documentation",
        "missing_attachment",
        "missing_prior_auth",
        "eligibility",
        "overpaid",
    ):
        claims[k] = F[k][order]
    claims["truncated_dx"] = C["truncated"][order]
    claims["dx_mismatch"] = C["mismatch"][order]
    pairs = F["ptp_lines"]
    lid = history.claim_lines["claim_id"]
    ptp = pd.DataFrame(
        {
            "claim_id": lid.iloc[lrank[pairs[:, 0]]].to_numpy() if len(pairs) else [],
            "column_1_line": lnum[lrank[pairs[:, 0]]] if len(pairs) else [],
            "column_2_line": lnum[lrank[pairs[:, 1]]] if len(pairs) else [],
        }
    )
    ul = F["units_lines"]
    units = pd.DataFrame({"claim_id": lid.iloc[lrank[ul]].to_numpy(), "line_number": lnum[lrank[ul]]})
    rec = pd.DataFrame(
        {
            "claim_id": ids.iloc[rank[R["claim"]]].to_numpy(),
            "cause": np.asarray(CAUSES)[R["cause"]],
            "lag_days": R["lag"],
            "amount": R["amount"],
            "within_horizon": R["within"],
            "written": R["written"],
        }
    )
    return {
        "claims": claims,
        "ptp_pairs": ptp,
        "units_lines": units,
        "recoupments": rec,
        "scales": pd.DataFrame({"cause": list(CAUSES), "scale": scales}),
    }


# --------------------------------------------------------------------------------------
# typed frames
# --------------------------------------------------------------------------------------


def _strings(values: np.ndarray | list[str]) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def _series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    """A pandas ``string`` Series (pyarrow storage, NA missing) over an Arrow string array."""
    chunked = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    return pd.Series(pd.arrays.ArrowStringArray(chunked))


def _lists(offsets: np.ndarray, values: pa.Array) -> pd.Series:
    out = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    return pd.Series(pd.arrays.ArrowExtensionArray(out))


def _dates(start: np.datetime64, day: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    out = (start + day.astype("timedelta64[D]")).astype("datetime64[s]")
    if valid is not None:
        out[~valid] = np.datetime64("NaT")
    return out


def _category(codes: np.ndarray, levels: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=list(levels))


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _frames(
    rng, cat, prov, pat, C, L, R, p, amount, start, ids: tuple[str, str] = ("CLM", "PAT")
) -> tuple[History, pd.DataFrame, np.ndarray, np.ndarray]:
    """The history tables and the oracle, in submission order, with the claim and line ranks of that order;
    ``ids``: the prefixes of claim and patient ids."""
    n = len(C["visit"])
    order = np.lexsort((np.arange(n), C["sub"]))  # claims in submission order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    claim_ids = _strings(_ids(ids[0], n))
    pat_ids = _strings(_ids(ids[1], len(pat.state)))
    npi = _strings(prov.npi)
    payer_ids = _strings(cat.payer_ids)

    def col(a: np.ndarray) -> np.ndarray:
        return a[order]

    ct = col(C["ct"])
    billing = npi.take(pa.array(col(C["provider"])))
    # numpy's stubs reject None (an object branch) in np.where
    rendering = pa.array(np.where(ct == 0, col(prov.npi[C["provider"]]), None), type=pa.string())  # type: ignore[call-overload]
    has_pa = col(C["has_pa"])
    pa_num = np.full(n, None, dtype=object)
    k = int(has_pa.sum())
    pa_num[has_pa] = np.char.add("PA", rng.integers(10**8, 10**9, k).astype(str)) if k else []
    paid = col(C["paid"])
    n_dx = col(C["n_dx"]).astype(np.int64)
    dx = col(C["dx"])
    dx_flat = dx[np.arange(6)[None, :] < n_dx[:, None]]
    pos = pd.Series(_series(_strings(np.asarray(cat.pos_codes, dtype=object)[col(C["pos"])]))).astype("category")
    claims = pd.DataFrame(
        {
            "claim_id": _series(claim_ids),
            "patient_id": _series(pat_ids.take(pa.array(col(C["patient"])))),
            "billing_npi": _series(billing),
            "rendering_npi": _series(rendering),
            "payer_id": _series(payer_ids.take(pa.array(col(C["payer"])))),
            "plan_type": _category(cat.payer_plan[col(C["payer"])], PLAN_TYPES),
            "claim_type": _category(ct, ("professional", "institutional")),
            "place_of_service": pos,
            "frequency_code": _category(col(C["freq"]), FREQUENCY_CODES),
            "submitted_date": _dates(start, col(C["sub"])),
            "total_charge": col(C["total_charge"]),
            "diagnosis_codes": _lists(
                np.concatenate([[0], np.cumsum(n_dx)]), _strings(cat.dx_codes).take(pa.array(dx_flat.astype(np.int64)))
            ),
            "prior_auth_number": _series(pa.array(pa_num, type=pa.string())),
            "has_attachment": col(C["has_attachment"]).astype(bool),
            "paid_date": _dates(start, col(C["paid_day"]), paid),
            "paid_amount": np.where(paid, col(C["paid_amount"]), np.nan),
        }
    )
    # lines, in claim order
    lorder = np.argsort(rank[L["claim"]], kind="stable")
    lc = rank[L["claim"]][lorder]
    sizes = np.bincount(lc, minlength=n)
    _, within = segments(sizes)
    mods = L["mods"][lorder]
    mask = mods > 0
    mod_flat = mods[mask]
    mod_off = np.concatenate([[0], np.cumsum(mask.sum(1))])
    code = L["code"][lorder]
    nd = n_dx[lc]
    # pointers: 1..k with k = 1-4 (never more than the claim's diagnoses); E/M lines point to more
    k_ptr = np.minimum(
        nd,
        1 + (rng.random(len(lc)) < 0.45) + cat.is_em[code] * (rng.random(len(lc)) < 0.6) + (rng.random(len(lc)) < 0.1),
    )
    _, ptr_val = segments(k_ptr)
    claim_of_line = claim_ids.take(pa.array(lc))
    svc = col(C["svc"])[lc]
    lines = pd.DataFrame(
        {
            "claim_id": _series(claim_of_line),
            "line_number": (within + 1).astype(np.int32),
            "service_date": _dates(start, svc),
            "procedure_code": _series(_strings(cat.codes).take(pa.array(code))),
            "modifiers": _lists(
                mod_off, _strings(np.asarray(cat.mod_codes, dtype=object)).take(pa.array(mod_flat.astype(np.int64)))
            ),
            "units": L["units"][lorder].astype(float),
            "line_charge": L["charge"][lorder],
            "diagnosis_pointers": _lists(
                np.concatenate([[0], np.cumsum(k_ptr)]), pa.array((ptr_val + 1).astype(np.int16), type=pa.int16())
            ),
            "line_paid": L["paid"][lorder],
        }
    )
    # coverage
    P = len(pat.state)
    has2 = pat.payer2 >= 0
    cov_pat = np.concatenate([np.arange(P), np.flatnonzero(has2)])
    cov_payer = np.concatenate([pat.payer1, pat.payer2[has2]])
    cov_start = np.concatenate([pat.start1, pat.start2[has2]])
    cov_end = np.concatenate([pat.end1, np.full(has2.sum(), OPEN)])
    seen = np.zeros(P, dtype=bool)
    seen[C["patient"]] = True  # the eligibility file covers the patients the practices saw
    co = np.lexsort((cov_start, cov_pat))
    co = co[seen[cov_pat[co]]]
    coverage = pd.DataFrame(
        {
            "patient_id": _series(pat_ids.take(pa.array(cov_pat[co]))),
            "payer_id": _series(payer_ids.take(pa.array(cov_payer[co]))),
            "plan_type": _category(cat.payer_plan[cov_payer[co]], PLAN_TYPES),
            "coverage_start": _dates(start, cov_start[co]),
            "coverage_end": _dates(start, np.minimum(cov_end[co], 10**5), cov_end[co] < OPEN),
        }
    )
    tax = np.where(prov.inst, HOSPITAL_TAXONOMY, cat.spec_taxonomy[prov.spec])
    real = slice(None) if prov.base is None else slice(int((prov.base == np.arange(len(prov.base))).sum()))
    providers = pd.DataFrame(  # personas (rows past the real providers) share their provider's NPI
        {
            "npi": _series(_strings(prov.npi[real])),
            "taxonomy_code": _series(_strings(tax[real])),
            "state": _series(_strings(np.asarray(STATES, dtype=object)[prov.state[real]])),
            "name": _series(pa.nulls(len(prov.npi[real]), type=pa.string())),  # synthetic providers are unnamed
        }
    )
    # recoupments written before the data end, in date order
    w = R["written"]
    rc, rday = rank[R["claim"][w]], R["day"][w]
    ro = np.lexsort((rc, rday))
    carc = _series(pa.array(R["carc"][w][ro], type=pa.string()))
    recoupments = pd.DataFrame(
        {
            "claim_id": _series(claim_ids.take(pa.array(rc[ro]))),
            "recouped_date": _dates(start, rday[ro]),
            "recouped_amount": R["amount"][w][ro],
            "carc": carc,
            "cause": pd.Categorical(causes_from_carcs(carc).fillna("other"), categories=list(CAUSES)),
        }
    )
    # oracle
    po = p[order]
    tp = po.sum(1)
    true_cause = np.asarray(CAUSES, dtype=object)[np.where(tp > 0, po.argmax(1), CI["other"])]
    oracle = pd.DataFrame({"claim_id": _series(claim_ids), "true_probability": tp, "true_cause": true_cause})
    for i, c in enumerate(CAUSES):
        oracle[f"p_{c}"] = po[:, i]
    oracle["expected_amount"] = np.round(amount[order], 2)
    lrank = np.empty(len(lorder), dtype=np.int64)
    lrank[lorder] = np.arange(len(lorder))
    return (
        History(claims=claims, claim_lines=lines, coverage=coverage, providers=providers, recoupments=recoupments),
        oracle,
        rank,
        lrank,
    )


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


def summarize(history: History, oracle: pd.DataFrame, horizon_days: int = 365) -> str:
    """Counts, the recoupment rate within the horizon and the mix by cause (claims and dollars)."""
    cl, rec, providers = history.claims, history.recoupments, history.providers
    assert rec is not None and providers is not None  # a generated history has every table
    end = history.last_date
    mature = cl["paid_date"].notna() & (cl["paid_date"] + pd.Timedelta(days=horizon_days) <= end)
    r = rec.merge(cl[["claim_id", "paid_date"]], on="claim_id")
    r = r[(r["recouped_date"] - r["paid_date"]).dt.days <= horizon_days]
    pos_mature = r["claim_id"].isin(cl.loc[mature, "claim_id"])
    with_carc = r[r["carc"].notna()]
    lines = [
        f"{len(cl):,} claims, {len(history.claim_lines):,} lines, {cl['patient_id'].nunique():,} patients, "
        f"{len(providers):,} providers, {cl['payer_id'].nunique()} payers; {len(rec):,} recoupment rows",
        f"expected share of claims recouped within {horizon_days} days: {oracle['true_probability'].mean():.2%}; "
        f"on the {int(mature.sum()):,} mature claims: realized "
        f"{r.loc[pos_mature, 'claim_id'].nunique() / max(mature.sum(), 1):.2%}, "
        f"oracle {oracle['true_probability'].to_numpy()[mature.to_numpy()].mean():.2%}",
    ]
    true = oracle.set_index("claim_id")
    by = pd.DataFrame(
        {
            "claims": true[[f"p_{c}" for c in CAUSES]].sum().to_numpy(),
            "dollars": with_carc.groupby("cause", observed=False)["recouped_amount"]
            .sum()
            .reindex(list(CAUSES))
            .to_numpy(),
        },
        index=list(CAUSES),
    )
    lines.append("by cause: expected share of positives | share of recouped $ within the horizon (rows with a CARC)")
    for c in CAUSES:
        lines.append(
            f"  {c:<18} {by.loc[c, 'claims'] / by['claims'].sum():6.1%} | "
            f"{by.loc[c, 'dollars'] / max(by['dollars'].sum(), 1e-9):6.1%}"
        )
    return "\n".join(lines)


def world_metadata(cfg: GeneratorConfig, found: dict[str, pd.DataFrame]) -> dict:
    """What ``world.json`` records: the world, its parameters, the generator's and what the world drew."""
    prov = found["providers"]
    w = dict(zip(found["world"]["key"], found["world"]["value"]))
    changes = found["ncci_changes"]
    return {
        "world": cfg.world.name,
        "parameters": cfg.world.as_dict(),
        "switches": sorted(cfg.world.switches()),
        "generator": {
            "n_claims": cfg.n_claims,
            "seed": cfg.seed,
            "recoupment_rate": cfg.recoupment_rate,
            "start_date": cfg.start_date,
            "end_date": cfg.end_date,
            "horizon_days": cfg.horizon_days,
            "cause_mix": cfg.cause_mix,
        },
        "drawn": {
            "audit_start": w.get("audit_start"),
            "providers_joining": int(prov["onboard_date"].notna().sum()),
            "providers_starting_habits": int((prov["habit_change"] == "start").sum()),
            "providers_stopping_habits": int((prov["habit_change"] == "stop").sum()),
            "ncci_changes": [
                {k: (str(v.date()) if isinstance(v, pd.Timestamp) else v) for k, v in r.items()}
                for r in changes.to_dict("records")
            ],
        },
    }


def generate_to_dir(
    out,
    n_claims: int = 20_000,
    seed: int = 7,
    recoupment_rate: float = 0.05,
    fmt: str = "csv",
    overwrite: bool = False,
    world: str = "baseline",
    cluster: str | None = None,
    shards: int | None = None,
    **kw,
) -> str:
    """Write the history (``write_history``, csv or parquet) and ``DIR/oracle.csv``; return a summary.

    ``cluster`` (a :func:`features.cluster.client.connect` spec, or ``RECOUP_DASK_SCHEDULER``) or ``shards``:
    generate in shards on a Dask cluster into a claims store instead
    (:func:`features.sources.synthetic.partitioned.generate_partitioned`; ``fmt`` is not used).

    ``world`` names a preset of :data:`~features.sources.synthetic.worlds.WORLDS`; any other world also
    writes ``DIR/world.json`` (its name, parameters and what it drew: audit start, NCCI changes, providers
    that joined or changed habits), so the baseline output stays byte-identical to a generator without worlds.
    The folder is replaced whole (:func:`features.outputs.write_dir`): it must be new, empty or an
    earlier ``recoup generate`` output, unless ``overwrite``."""
    from tqdm import tqdm

    from features.outputs import check_dir_output, write_csv, write_dir, write_text

    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be 'csv' or 'parquet'")
    if cluster is not None or shards is not None:
        return _generate_on_cluster(out, n_claims, seed, recoupment_rate, overwrite, world, cluster, shards, kw)
    out = Path(out)
    check_dir_output(out, "generate", overwrite)  # before the work, not only after it
    cfg = world_config(world, n_claims=n_claims, seed=seed, recoupment_rate=recoupment_rate, **kw)
    # a bar for large histories, on a terminal only (disable=None: off when stderr is not a TTY, e.g. a log file)
    bar = tqdm(total=6, desc="generate", unit="step", disable=True if n_claims < 50_000 else None, leave=False)

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update(1)

    history, oracle, found = generate_with_facts(cfg, progress=progress)
    bar.set_postfix_str("writing")
    tables = history.tables()
    rec = history.recoupments
    assert rec is not None  # a generated history has every table
    rec = rec.copy()
    # as in a real 835 export: no cause column values; the loader derives them from the CARC
    rec["cause"] = pd.Categorical([None] * len(rec), categories=list(CAUSES))
    tables["recoupments"] = rec

    def build(d: Path) -> None:
        write_history(tables, d, fmt=fmt)
        write_csv(d / "oracle.csv", oracle, float_format="%.6g")
        if not cfg.world.is_baseline:
            write_text(d / "world.json", json.dumps(world_metadata(cfg, found), indent=1, default=str) + "\n")

    try:
        write_dir(out, "generate", build, overwrite=overwrite)
        bar.update(1)
    finally:
        bar.close()
    return f"wrote {out}\n" + summarize(history, oracle, cfg.horizon_days)


def _generate_on_cluster(out, n_claims, seed, recoupment_rate, overwrite, world, cluster, shards, kw) -> str:
    """``generate_to_dir`` with a cluster: the partitioned generation into a claims store."""
    from features.cluster.client import cluster_spec, connect
    from features.sources.synthetic.partitioned import generate_partitioned

    if kw:
        raise ValueError(f"generation in shards takes no generator options besides the world (got {sorted(kw)})")
    spec = cluster_spec(cluster) or "local"
    with connect(spec) as client:
        return generate_partitioned(
            client, out, n_claims, seed, recoupment_rate, world=world, shards=shards, overwrite=overwrite
        )
