"""Specialty: the billing provider's specialty and how often its claims were recouped."""

from __future__ import annotations

import numpy as np

from features.families.base import Context

NAME = "specialty"
COLUMNS = ("specialty", "specialty_recoup_rate")
RULES = ()
TABLES = ("specialty", "all")
ROUNDED = ("specialty_recoup_rate",)


def compute(ctx: Context) -> dict[str, np.ndarray]:
    return {"specialty": ctx.specialty, "specialty_recoup_rate": ctx.specialty_rate()}


def reason(x: dict, claim: dict, hits) -> str | None:
    return f"claims of this specialty ({x.get('specialty')}) are recouped more often"
