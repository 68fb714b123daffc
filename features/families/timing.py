"""Timing: days from the last service to submission, and the claim's span of service days."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import column, days
from features.families.base import Context, Reference, above

NAME = "timing"
COLUMNS = ("submission_lag_days", "service_span_days")
RULES = ()
TABLES = ()
ROUNDED = ()

#: a claim submitted this many days or more after its service (and later than typical) is late
LATE_SUBMISSION_DAYS = 30


def compute(ctx: Context) -> dict[str, np.ndarray]:
    first_day, last_day = ctx.service_days()
    sub_day = days(np.asarray(column(ctx.claims, "submitted_date"), dtype="datetime64[D]"))
    return {"submission_lag_days": sub_day - last_day, "service_span_days": last_day - first_day}


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    got = above(x, ref, "submission_lag_days")
    if got is None or got[0] < LATE_SUBMISSION_DAYS:
        return None
    return f"submitted {got[0]:.0f} days after the service (typically {got[1]:.0f})"
