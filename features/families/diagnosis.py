"""Diagnoses: how many, symptom (R) and status (Z) codes, and codes that are not billable ICD-10-CM
codes (rules ``invalid_icd``, ``truncated_icd``)."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import claim_list_flat
from features.families.base import Context, Reference, hits_of

NAME = "diagnosis"
COLUMNS = ("n_dx", "n_dx_z", "n_dx_r", "n_dx_invalid", "n_dx_truncated")
RULES = ("invalid_icd", "truncated_icd")
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    n = ctx.n
    dx, dx_parent = claim_list_flat(ctx.claims, "diagnosis_codes", ctx.cache)
    dx = np.asarray(dx).astype(str).astype(object)
    f = {"n_dx": np.bincount(dx_parent, minlength=n).astype(np.float64)}
    first = np.array([d[:1].upper() for d in dx.tolist()], dtype=object) if len(dx) else np.zeros(0, dtype=object)
    f["n_dx_z"] = np.bincount(dx_parent[first == "Z"], minlength=n).astype(np.float64)
    f["n_dx_r"] = np.bincount(dx_parent[first == "R"], minlength=n).astype(np.float64)
    status = ctx.ri.icd_status(dx) if len(dx) else np.zeros(0, dtype=np.int8)
    f["n_dx_invalid"] = np.bincount(dx_parent[status == 2], minlength=n).astype(np.float64)
    f["n_dx_truncated"] = np.bincount(dx_parent[status == 1], minlength=n).astype(np.float64)
    for rule, st in (("invalid_icd", 2), ("truncated_icd", 1)):
        m = status == st
        if m.any():
            ctx.claim_hits.append({"ci": dx_parent[m], "rule": rule, "code": dx[m]})
    return f


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    cid = str(claim["claim_id"])
    h = hits_of(hits, cid, "truncated_icd") + hits_of(hits, cid, "invalid_icd")
    if len(h):
        r = h[0]
        what = "truncated (not a billable code)" if r["rule"] == "truncated_icd" else "not a valid ICD-10-CM code"
        return f"diagnosis {r['code']} is {what}"
    return f"{x.get('n_dx', 0):.0f} diagnosis code(s) to support the services billed"


def hit_text(r: dict, plan: str) -> str:
    if r["rule"] == "truncated_icd":
        return f"diagnosis {r['code']} is truncated: a more specific (billable) code is required"
    return f"diagnosis {r['code']} is not in ICD-10-CM"
