"""Paperwork: prior authorization and attachments sent, and whether peers usually send them for these
procedures (prior authorization: for this plan type)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import group_max
from features.families.base import Context, MIN_SUPPORT_COUNT, Reference

NAME = "paperwork"
COLUMNS = (
    "has_prior_auth",
    "has_attachment",
    "attachment_expected",
    "prior_auth_expected",
    "attachment_missing_expected",
    "prior_auth_missing_expected",
)
RULES = ()
TABLES = ("proc", "proc_plan")
ROUNDED = COLUMNS[2:]


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n = ctx.ci, ctx.n
    has_att, has_pa = ctx.paperwork()
    proc = ctx.line_query("proc", "code_id")
    proc_n = proc[:, 0]
    att = np.where(proc_n >= MIN_SUPPORT_COUNT, proc[:, 1] / np.maximum(proc_n, 1), np.nan)
    pa = ctx.line_query("proc_plan", "proc_plan")
    pa_rate = np.where(pa[:, 0] >= MIN_SUPPORT_COUNT, pa[:, 1] / np.maximum(pa[:, 0], 1), np.nan)
    f = {"has_prior_auth": has_pa, "has_attachment": has_att}
    f["attachment_expected"] = group_max(ci, att, n, empty=np.nan)
    f["prior_auth_expected"] = group_max(ci, pa_rate, n, empty=np.nan)
    f["attachment_missing_expected"] = f["attachment_expected"] * (1 - has_att)
    f["prior_auth_missing_expected"] = f["prior_auth_expected"] * (1 - has_pa)
    return f


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    parts = []
    for what, has, exp in (
        ("prior authorization number", "has_prior_auth", "prior_auth_expected"),
        ("attachment", "has_attachment", "attachment_expected"),
    ):
        e = x.get(exp, np.nan)
        if x.get(has) == 0 and e is not None and pd.notna(e) and e >= 0.3:
            parts.append(f"no {what}, though peers send one with {e:.0%} of claims for these services")
    if parts:
        return "; ".join(parts)
    missing = [
        w for w, k in (("prior authorization", "has_prior_auth"), ("attachment", "has_attachment")) if x.get(k) == 0
    ]
    return f"no {' and no '.join(missing)} sent with this claim" if missing else None
