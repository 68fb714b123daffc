"""E/M coding: the claim's visit level and new-patient visits, and how often the provider bills high
levels compared with peers of its specialty."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_max, rate
from features.families.base import Context, Reference, num

NAME = "em_coding"
COLUMNS = (
    "em_level",
    "em_new_patient",
    "provider_em_high_share",
    "provider_em_high_vs_peers",
    "provider_em_level_vs_peers",
)
RULES = ()
TABLES = ("provider", "specialty")
ROUNDED = ("provider_em_high_share", "provider_em_high_vs_peers", "provider_em_level_vs_peers")


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n, L = ctx.ci, ctx.n, ctx.L
    pr, sp = ctx.entity("provider"), ctx.entity("specialty")
    pr_em = rate(pr["em_high"] + 5 * rate(sp["em_high"], sp["em_lines"]), pr["em_lines"] + 5)
    sp_em = rate(sp["em_high"], sp["em_lines"])
    sp_lvl = rate(sp["em_level_sum"], sp["em_lines"])
    pr_lvl = rate(pr["em_level_sum"] + 5 * np.nan_to_num(sp_lvl), pr["em_lines"] + 5)
    return {
        "em_level": group_max(ci, L["em_level"], n),
        "em_new_patient": group_max(ci, L["em_new"], n),
        "provider_em_high_share": pr_em,
        "provider_em_high_vs_peers": pr_em - sp_em,
        "provider_em_level_vs_peers": pr_lvl - sp_lvl,
    }


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    lvl = num(x, "em_level")
    if not lvl >= 4:
        return None
    share, vs = num(x, "provider_em_high_share"), num(x, "provider_em_high_vs_peers")
    extra = (  # the provider's habit only when it is above its peers'
        f"; this provider bills level 4-5 in {share:.0%} of visits vs {share - vs:.0%} for peers"
        if vs > 0.01 and share - vs >= 0
        else ""
    )
    return f"E/M level {lvl:.0f} with {num(x, 'n_dx'):.0f} diagnosis code(s){extra}"
