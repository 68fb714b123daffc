"""Place of service: where the services were given, and how often peers bill these procedures there."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_min
from features.families.base import Context, MIN_SUPPORT_COUNT, RARE_SHARE, Reference, num

NAME = "place_of_service"
COLUMNS = ("place_of_service", "pos_support_min")
RULES = ()
TABLES = ("proc", "proc_pos")
ROUNDED = ("pos_support_min",)


def compute(ctx: Context) -> dict[str, np.ndarray]:
    proc_n = ctx.line_query("proc", "code_id")[:, 0]
    pp = ctx.line_query("proc_pos", "proc_pos")[:, 0]
    r = np.where(proc_n >= MIN_SUPPORT_COUNT, pp / np.maximum(proc_n, 1), np.nan)
    return {"place_of_service": ctx.categorical("place_of_service"), "pos_support_min": group_min(ctx.ci, r, ctx.n)}


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    s = num(x, "pos_support_min")
    if not s < RARE_SHARE:  # NaN (too few peers) or a usual place
        return None
    return f"place of service {claim['place_of_service']} is rare for these procedures (peers: {s:.1%} of such claims)"
