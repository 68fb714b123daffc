"""Payer: the plan type and payer, and how often the payer recouped earlier claims, overall and by cause
(smoothed toward the overall rate)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import CAUSES
from features.families.base import Context

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


def reason(x: dict, claim: dict, hits) -> str | None:
    rates = {c: x.get(f"payer_rate_{c}", np.nan) for c in CAUSES}
    c, r = max(rates.items(), key=lambda kv: -np.inf if pd.isna(kv[1]) else kv[1])
    return f"payer {claim['payer_id']} recoups {c.replace('_', ' ')} on {r:.1%} of claims"
