"""Patient history: the patient's earlier claims (all, last 30 and 365 days) and recoupments."""

from __future__ import annotations

import numpy as np

from features.engine.events import time_of_day_start
from features.families.base import Context, Reference, above, num

NAME = "patient_history"
COLUMNS = (
    "patient_n_claims",
    "patient_claims_30d",
    "patient_claims_365d",
    "patient_n_recouped",
    "patient_eligibility_recoups",
)
RULES = ()
TABLES = ("patient",)
ROUNDED = COLUMNS


def compute(ctx: Context) -> dict[str, np.ndarray]:
    n, day = ctx.n, ctx.day()
    pa = ctx.entity("patient")
    qw = ctx.tables["patient"].query(
        np.concatenate([ctx.keys()["patient"]] * 2),
        np.concatenate([time_of_day_start(day - 30), time_of_day_start(day - 365)]),
        columns=[0],
    )[0][:, 0]
    return {
        "patient_n_claims": pa["n_claims"],
        "patient_claims_30d": pa["n_claims"] - qw[:n],
        "patient_claims_365d": pa["n_claims"] - qw[n:],
        "patient_n_recouped": pa["n_recouped"],
        "patient_eligibility_recoups": pa["rc_eligibility"],
    }


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    rec = num(x, "patient_n_recouped")
    if rec > 0:
        return f"this patient already had {rec:.0f} recouped claim(s)"
    got = above(x, ref, "patient_claims_30d")
    if got is None or got[0] < 2:
        return None  # few recent claims are no reason for risk
    return f"in the last 30 days this patient had {got[0]:.0f} claims (typically {got[1]:.0f})"
