"""Units: the units billed on the claim, in total and on its largest line."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_max
from features.families.base import Context, Reference, above

NAME = "units"
COLUMNS = ("total_units", "max_line_units")
RULES = ()
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    return {"total_units": ctx.total_units(), "max_line_units": group_max(ctx.ci, ctx.L["units"], ctx.n)}


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    got = above(x, ref, "total_units")
    if got is None or got[0] <= 1:
        return None
    return f"{got[0]:g} units billed in total (a typical claim has {got[1]:g})"
