"""Diagnosis support: how often peers billed these procedures with these diagnosis families, and with the
principal diagnosis (overall and within the provider's specialty)."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_max, group_min
from features.families.base import Context, MIN_SUPPORT_COUNT, RARE_SHARE, Reference, num

NAME = "dx_support"
COLUMNS = ("dx_support_min", "dx_principal_support_min", "dx_principal_pairs_min", "dx_principal_support_specialty_min")
RULES = ()
TABLES = ("proc", "proc_dx", "proc_dx1", "spec_proc", "spec_proc_dx1")
ROUNDED = COLUMNS


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n = ctx.ci, ctx.n
    lp = ctx.line_keys()["lp"]
    proc_n = ctx.line_query("proc", "code_id")[:, 0]
    enough = proc_n >= MIN_SUPPORT_COUNT
    both = ctx.line_query("proc_dx", "proc_dx")[:, 0]
    ratio = np.where(proc_n[lp] >= MIN_SUPPORT_COUNT, both / np.maximum(proc_n[lp], 1), np.nan)
    per_line = group_max(lp, ratio, len(ci), empty=np.nan)
    f = {"dx_support_min": group_min(ci, per_line, n)}
    # the principal diagnosis with each procedure (peers' share and count of such pairs)
    p1 = ctx.line_query("proc_dx1", "proc_dx1")[:, 0]
    f["dx_principal_support_min"] = group_min(ci, np.where(enough, p1 / np.maximum(proc_n, 1), np.nan), n)
    f["dx_principal_pairs_min"] = np.log1p(group_min(ci, p1, n))
    # the same within the provider's specialty (a diagnosis common for a code in one specialty can be
    # unrelated to the same code in another)
    sp_n = ctx.line_query("spec_proc", "spec_proc")[:, 0]
    sp1 = ctx.line_query("spec_proc_dx1", "spec_proc_dx1")[:, 0]
    f["dx_principal_support_specialty_min"] = group_min(
        ci, np.where(sp_n >= MIN_SUPPORT_COUNT, sp1 / np.maximum(sp_n, 1), np.nan), n
    )
    return f


def claim_principal(claim) -> str:
    """The claim's principal (first) diagnosis code, whatever list form it comes in."""
    dx = claim.get("diagnosis_codes") if hasattr(claim, "get") else None
    if dx is None:
        return "on this claim"
    if isinstance(dx, str):
        dx = dx.split(";")
    elif hasattr(dx, "as_py"):  # a pyarrow list scalar
        dx = dx.as_py() or []
    try:
        items = list(dx)
    except TypeError:
        return "on this claim"
    return str(items[0]) if items else "on this claim"


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    p1 = num(x, "dx_principal_support_specialty_min")
    if np.isnan(p1):
        p1 = num(x, "dx_principal_support_min")
    if p1 < RARE_SHARE:
        return (
            f"the principal diagnosis {claim_principal(claim)} rarely goes with these procedures "
            f"(peers: {p1:.1%} of such claims)"
        )
    s = num(x, "dx_support_min")
    if s < RARE_SHARE:
        return (
            f"the diagnoses on this claim rarely go with its procedures (peers billed this pairing on "
            f"{s:.1%} of such claims)"
        )
    return None
