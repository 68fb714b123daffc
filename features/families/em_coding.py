"""E/M coding: the claim's visit level and new-patient visits, and how often the provider bills high
levels compared with peers of its specialty."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import group_max, rate
from features.families.base import Context

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


def reason(x: dict, claim: dict, hits) -> str | None:
    lvl = x.get("em_level", 0)
    if lvl and lvl >= 4:
        share = x.get("provider_em_high_share", np.nan)
        peers = share - x.get("provider_em_high_vs_peers", 0)
        extra = (
            f"; this provider bills level 4-5 in {share:.0%} of visits vs {peers:.0%} for peers"
            if pd.notna(share) and pd.notna(peers)
            else ""
        )
        return f"E/M level {lvl:.0f} with {x.get('n_dx', 0):.0f} diagnosis code(s){extra}"
    return None
