"""Claim size: the claim type and how many lines, non-E/M lines and separate procedures it has."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_sum
from features.families.base import Context, Reference, above

NAME = "claim_size"
COLUMNS = ("claim_type", "n_lines", "n_non_em_lines", "n_procedure_lines")
RULES = ()
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n = ctx.ci, ctx.n
    return {
        "claim_type": ctx.categorical("claim_type"),
        "n_lines": np.bincount(ci, minlength=n).astype(np.float64),
        "n_non_em_lines": group_sum(ci, (ctx.L["em_level"] == 0).astype(float), n),
        "n_procedure_lines": ctx.procedure_lines(),
    }


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    got = above(x, ref, "n_lines")
    if got is None or got[0] < 2:
        return None
    return f"{got[0]:.0f} service lines on the claim (a typical claim has {got[1]:.0f})"
