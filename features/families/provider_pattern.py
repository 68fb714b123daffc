"""Provider pattern: the provider's claim volume, over the last 90 days and its growth on the 90 days
before."""

from __future__ import annotations

import numpy as np

from features.engine.events import time_of_day_start
from features.families.base import Context, Reference, num

NAME = "provider_pattern"
COLUMNS = ("provider_n_claims", "provider_claims_90d", "provider_growth_90d")
RULES = ()
TABLES = ("provider",)
ROUNDED = COLUMNS


def compute(ctx: Context) -> dict[str, np.ndarray]:
    n, t, day = ctx.n, ctx.times(), ctx.day()
    # one batched query: claim time and the window starts
    t90 = time_of_day_start(day - 90)
    t180 = time_of_day_start(day - 180)
    keys = ctx.keys()["provider"]
    pw = ctx.tables["provider"].query(np.concatenate([keys] * 3), np.concatenate([t, t90, t180]), columns=[0])[0][:, 0]
    p_t, p_90, p_180 = pw[:n], pw[n : 2 * n], pw[2 * n :]
    w1 = p_t - p_90
    w0 = p_90 - p_180
    return {
        "provider_n_claims": ctx.entity("provider")["n_claims"],
        "provider_claims_90d": w1,
        "provider_growth_90d": (w1 + 5) / (w0 + 5),
    }


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    g = num(x, "provider_growth_90d")
    if g > 1.5:
        return f"this provider's claim volume grew {g:.1f}x over the last 90 days"
    return None
