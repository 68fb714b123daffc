"""Modifiers: distinct-procedure (59, X{EPSU}), 25, 76/77 and modifier counts on the claim, modifier 25
without a separate procedure, and the provider's use of 59 compared with peers."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_max, group_sum, rate
from features.families.base import Context, Reference

NAME = "modifiers"
COLUMNS = (
    "has_mod_59",
    "has_mod_x",
    "has_mod_25",
    "has_mod_76_77",
    "n_modifiers",
    "mod25_without_procedure",
    "provider_mod59_share_vs_peers",
)
RULES = ()
TABLES = ("provider", "specialty")
ROUNDED = ("provider_mod59_share_vs_peers",)


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n, L = ctx.ci, ctx.n, ctx.L
    f = {f"has_{col}": group_max(ci, L[col], n) for col in ("mod_59", "mod_x", "mod_25", "mod_76_77")}
    f["n_modifiers"] = group_sum(ci, L["n_modifiers"], n)
    # modifier 25 marks an E/M as separate from a procedure done the same day; labs, venipuncture and
    # vaccines are not such procedures
    f["mod25_without_procedure"] = ((f["has_mod_25"] > 0) & (ctx.procedure_lines() == 0)).astype(float)
    pr, sp = ctx.entity("provider"), ctx.entity("specialty")
    pr_59 = rate(pr["mod59_lines"], pr["n_lines"] + 10)
    f["provider_mod59_share_vs_peers"] = pr_59 - rate(sp["mod59_lines"], sp["n_lines"])
    return f


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    if x.get("mod25_without_procedure") == 1:
        return "modifier 25 on an E/M visit with no other procedure on the claim"
    if x.get("has_mod_59") == 1 or x.get("has_mod_x") == 1:
        return "modifier 59/X{EPSU} used; payers review distinct-procedure modifiers closely"
    return None
