"""Units: the units billed on the claim, in total and on its largest line."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_max
from features.families.base import Context

NAME = "units"
COLUMNS = ("total_units", "max_line_units")
RULES = ()
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    return {"total_units": ctx.total_units(), "max_line_units": group_max(ctx.ci, ctx.L["units"], ctx.n)}


def reason(x: dict, claim: dict, hits) -> str | None:
    return f"{x.get('total_units', 0):g} units billed in total"
