"""Charges: the claim's charge, its largest line, per unit, and against the provider's and specialty's
average claim."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_max, rate
from features.families.base import Context, Reference, num

NAME = "charges"
COLUMNS = ("total_charge", "max_line_charge", "charge_per_unit", "charge_vs_provider_avg", "charge_vs_specialty_avg")
RULES = ()
TABLES = ("provider", "specialty")
ROUNDED = ("charge_vs_provider_avg", "charge_vs_specialty_avg")

#: a charge this many times the provider's or the specialty's average claim is a reason for risk
HIGH_CHARGE_RATIO = 1.5


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


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    for col, whose in (("charge_vs_provider_avg", "this provider's"), ("charge_vs_specialty_avg", "the specialty's")):
        r = num(x, col)
        if r > HIGH_CHARGE_RATIO:
            return f"charge {_money(claim['total_charge'])} is {r:.1f}x {whose} average claim"
    return None  # a charge near its averages is no reason for risk
