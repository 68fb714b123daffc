"""Coverage: service dates outside the patient's coverage spans with the billed payer, covered by another
payer instead, how far outside, and how long since coverage started (rule ``outside_coverage``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import as_str, days, factorize, group_max
from features.engine.coverage import CoverageArrays
from features.families.base import Context, Reference

NAME = "coverage"
COLUMNS = ("outside_coverage", "covered_by_other_payer", "days_outside_coverage", "days_since_coverage_start")
RULES = ("outside_coverage",)
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    first_day, last_day = ctx.service_days()
    cov = coverage_arrays(ctx.claims, first_day, last_day, ctx.coverage, ctx.cache)
    out_m = cov["outside_coverage"] == 1
    if out_m.any():
        ctx.claim_hits.append(
            {
                "ci": np.flatnonzero(out_m),
                "rule": "outside_coverage",
                "value": cov["days_outside_coverage"][out_m],
                "ref": np.where(cov["covered_by_other_payer"][out_m] == 1, "other payer", "no coverage").astype(object),
            }
        )
    return cov


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
    pid = cols["patient_id"] if "patient_id" in cols else as_str(claims["patient_id"])
    payer = cols["payer_id"] if "payer_id" in cols else as_str(claims["payer_id"])
    if isinstance(coverage, CoverageArrays):
        cov_pid, cov_start, cov_end, cov_payer = coverage.patient_id, coverage.start, coverage.end, coverage.payer_id
    else:
        cov_pid = as_str(coverage["patient_id"])
        cov_start = days(coverage["coverage_start"].to_numpy(dtype="datetime64[D]")).astype(float)
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
    same = (as_str(coverage["payer_id"]) if cov_payer is None else cov_payer)[r] == payer[q]
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


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    if x.get("outside_coverage") == 1:
        d = x.get("days_outside_coverage")
        other = " (the patient was covered by another payer then)" if x.get("covered_by_other_payer") == 1 else ""
        span = "no coverage on file with this payer" if d == 999 else f"{d:.0f} days outside the coverage span"
        return f"service date is outside the patient's coverage with payer {claim['payer_id']}: {span}{other}"
    return None


def hit_text(r: dict, plan: str) -> str:
    return "service outside the patient's coverage with this payer" + (
        " (covered by another payer)" if r["ref"] == "other payer" else ""
    )
