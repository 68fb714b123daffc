"""Charges: the claim's charge, its largest line, per unit, and against the provider's and specialty's
average claim."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import group_max, rate
from features.families.base import Context

NAME = "charges"
COLUMNS = ("total_charge", "max_line_charge", "charge_per_unit", "charge_vs_provider_avg", "charge_vs_specialty_avg")
RULES = ()
TABLES = ("provider", "specialty")
ROUNDED = ("charge_vs_provider_avg", "charge_vs_specialty_avg")


def compute(ctx: Context) -> dict[str, np.ndarray]:
    charge = ctx.charge()
    pr, sp = ctx.entity("provider"), ctx.entity("specialty")
    return {
        "total_charge": charge,
        "max_line_charge": group_max(ctx.ci, ctx.L["charge"], ctx.n),
        "charge_per_unit": charge / np.maximum(ctx.total_units(), 1e-9),
        "charge_vs_provider_avg": charge / np.maximum(rate(pr["charge"], pr["n_claims"]), 1.0),
        "charge_vs_specialty_avg": charge / np.maximum(rate(sp["charge"], sp["n_claims"]), 1.0),
    }


def _money(x: float) -> str:
    return f"${x:,.0f}"


def reason(x: dict, claim: dict, hits) -> str | None:
    r = x.get("charge_vs_provider_avg", np.nan)
    if pd.notna(r) and r > 1.5:
        return f"charge {_money(claim['total_charge'])} is {r:.1f}x this provider's average claim"
    return f"claim charge {_money(claim['total_charge'])}"
