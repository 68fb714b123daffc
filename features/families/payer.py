"""Payer: the plan type and payer, and how often the payer recouped earlier claims, overall and by cause
(smoothed toward the overall rate)."""

from __future__ import annotations

import numpy as np

from features.contract import CAUSES
from features.families.base import Context, Reference, above

NAME = "payer"
COLUMNS = ("plan_type", "payer_id", *(f"payer_rate_{c}" for c in CAUSES), "payer_recoup_rate")
RULES = ()
TABLES = ("payer", "all")
ROUNDED = COLUMNS[2:]
#: smoothing weight (pseudo-claims) toward the overall rate
PAYER_PRIOR_WEIGHT = 200.0


def compute(ctx: Context) -> dict[str, np.ndarray]:
    py = ctx.entity("payer")
    w = PAYER_PRIOR_WEIGHT
    f = {"plan_type": ctx.categorical("plan_type"), "payer_id": ctx.categorical("payer_id")}
    den = py["n_claims"] + w
    for c in CAUSES:
        f[f"payer_rate_{c}"] = (py[f"rc_{c}"] + w * ctx.overall_rate(f"rc_{c}")) / den
    f["payer_recoup_rate"] = (py["n_recouped"] + w * ctx.overall_rate()) / den
    return f


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    best: tuple[float, str, float, float] | None = None
    for c in CAUSES:
        got = above(x, ref, f"payer_rate_{c}")
        if got is not None and (best is None or got[0] / max(got[1], 1e-12) > best[0]):
            best = (got[0] / max(got[1], 1e-12), c, *got)
    if best is None:
        return None  # a payer recouping no more than usual is no reason for risk
    _, c, r, typical = best
    cause = c.replace("_", " ")
    return f"payer {claim['payer_id']} recouped {cause} on {r:.1%} of earlier claims (typically {typical:.1%})"
