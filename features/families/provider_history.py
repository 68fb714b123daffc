"""Provider history: how often the provider's earlier claims were recouped, overall and by cause, against
peers of its specialty (smoothed toward the specialty's rate)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import CAUSES
from features.engine.arrays import rate
from features.families.base import Context, Reference

NAME = "provider_history"
COLUMNS = (
    "provider_recoup_rate",
    "provider_recoup_ratio",
    *(f"provider_{k}_{c}" for c in CAUSES for k in ("rate", "ratio")),
)
RULES = ()
TABLES = ("provider", "specialty", "all")
ROUNDED = COLUMNS
#: smoothing weight (pseudo-claims) toward the specialty's rate
PROVIDER_PRIOR_WEIGHT = 50.0


def compute(ctx: Context) -> dict[str, np.ndarray]:
    pr, sp = ctx.entity("provider"), ctx.entity("specialty")
    sp_rate = ctx.specialty_rate()
    m = PROVIDER_PRIOR_WEIGHT
    pr_den, sp_den = pr["n_claims"] + m, sp["n_claims"] + 10
    f = {"provider_recoup_rate": (pr["n_recouped"] + m * sp_rate) / pr_den}
    f["provider_recoup_ratio"] = f["provider_recoup_rate"] / np.maximum(sp_rate, 1e-6)
    for c in CAUSES:
        g_c = ctx.overall_rate(f"rc_{c}")
        sp_c = rate(sp[f"rc_{c}"] + 10 * g_c, sp_den)
        pr_c = (pr[f"rc_{c}"] + m * sp_c) / pr_den
        f[f"provider_rate_{c}"] = pr_c
        f[f"provider_ratio_{c}"] = pr_c / np.maximum(sp_c, 1e-6)
    return f


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    ratios = {c: x.get(f"provider_ratio_{c}", np.nan) for c in CAUSES}
    c, r = max(ratios.items(), key=lambda kv: -np.inf if pd.isna(kv[1]) else kv[1])
    if pd.notna(r) and r >= 1.3:
        return f"this provider's claims were recouped for {c.replace('_', ' ')} {r:.1f}x as often as peers"
    rr = x.get("provider_recoup_ratio", np.nan)
    if pd.notna(rr) and rr >= 1.1:
        return f"this provider's recoupment rate is {rr:.1f}x that of peers in the specialty"
    return None  # a provider at or below its peers is no reason for risk
