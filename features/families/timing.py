"""Timing: days from the last service to submission, and the claim's span of service days."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import column, days
from features.families.base import Context

NAME = "timing"
COLUMNS = ("submission_lag_days", "service_span_days")
RULES = ()
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    first_day, last_day = ctx.service_days()
    sub_day = days(np.asarray(column(ctx.claims, "submitted_date"), dtype="datetime64[D]"))
    return {"submission_lag_days": sub_day - last_day, "service_span_days": last_day - first_day}


def reason(x: dict, claim: dict, hits) -> str | None:
    return f"submitted {x.get('submission_lag_days', 0):.0f} days after the service"
