"""Specialty: the billing provider's specialty and how often its claims were recouped."""

from __future__ import annotations

import numpy as np

from features.rulebook import taxonomy_labels
from features.families.base import Context, Reference, above

NAME = "specialty"
COLUMNS = ("specialty", "specialty_recoup_rate")
RULES = ()
TABLES = ("specialty", "all")
ROUNDED = ("specialty_recoup_rate",)


def compute(ctx: Context) -> dict[str, np.ndarray]:
    return {"specialty": ctx.specialty, "specialty_recoup_rate": ctx.specialty_rate()}


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    got = above(x, ref, "specialty_recoup_rate")
    if got is None:
        return None
    code = str(x.get("specialty") or "")
    label = taxonomy_labels().get(code)
    name = label or code  # the NUCC label; the bare code only when the list lacks it
    return (
        f"claims of this specialty ({name}) were recouped on {got[0]:.1%} of earlier claims "
        f"(a typical claim's specialty: {got[1]:.1%})"
    )
