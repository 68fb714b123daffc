"""Procedure: the claim's main procedure (highest-charge line), how often peers' claims for it were
recouped (overall and by cause), and how much history its procedures have."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_min
from features.families.base import Context, Reference, above

NAME = "procedure"
#: the causes a procedure's own history speaks to
RATE_CAUSES = ("documentation", "medical_necessity", "procedure_coding", "bundling", "units")
COLUMNS = (
    "main_procedure",
    "procedure_recoup_rate",
    *(f"procedure_rate_{c}" for c in RATE_CAUSES),
    "procedure_history_min",
)
RULES = ()
TABLES = ("procedure", "all", "proc")
ROUNDED = COLUMNS[1:]


def compute(ctx: Context) -> dict[str, np.ndarray]:
    pc = ctx.entity("procedure")
    den = pc["n_claims"] + 20
    f = {
        "main_procedure": ctx.keys()["procedure"],
        "procedure_recoup_rate": (pc["n_recouped"] + 20 * ctx.overall_rate()) / den,
    }
    for c in RATE_CAUSES:
        f[f"procedure_rate_{c}"] = (pc[f"rc_{c}"] + 20 * ctx.overall_rate(f"rc_{c}")) / den
    proc_n = ctx.line_query("proc", "code_id")[:, 0]
    f["procedure_history_min"] = np.log1p(group_min(ctx.ci, proc_n, ctx.n))
    return f


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    got = above(x, ref, "procedure_recoup_rate")
    if got is None:
        return None
    return (
        f"procedure {x.get('main_procedure')} was recouped on {got[0]:.1%} of earlier claims "
        f"(a typical claim's procedure: {got[1]:.1%})"
    )
