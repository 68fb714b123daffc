"""NCCI procedure-to-procedure edits: code pairs billed the same day on the claim, and with earlier
same-day claims of the patient and provider (rule ``ncci_ptp``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import group_ids, pairs_within
from features.families.base import Context, Reference, hits_of
from features.rulebook.index import ptp_pairs_ids

NAME = "ncci"
COLUMNS = (
    "ptp_pairs",
    "ptp_unbypassable",
    "ptp_needs_modifier",
    "ptp_bypassed",
    "ptp_cross_claim",
    "ptp_cross_claim_needs_modifier",
)
RULES = ("ncci_ptp",)
TABLES = ("sameday",)
ROUNDED = ("ptp_cross_claim", "ptp_cross_claim_needs_modifier")


def compute(ctx: Context) -> dict[str, np.ndarray]:
    f = _within_claim(ctx)
    f.update(_cross_claim(ctx))
    return f


def _within_claim(ctx: Context) -> dict[str, np.ndarray]:
    ci, n, L = ctx.ci, ctx.n, ctx.L
    codes, lday, line_number = L["code"], L["day"], L["line_number"]
    f = {name: np.zeros(n) for name in ("ptp_pairs", "ptp_unbypassable", "ptp_needs_modifier", "ptp_bypassed")}
    pa_, pb_ = pairs_within(group_ids(ci, lday))
    if len(pa_):
        keep = codes[pa_] != codes[pb_]
        pa_, pb_ = pa_[keep], pb_[keep]
    if not len(pa_):
        return f
    code_id, byp = ctx.code_ids(), L["mod_bypass"]
    ctype = ctx.text("claim_type")
    ind, a_first, bypassed = ptp_pairs_ids(
        ctx.ri, code_id[pa_], byp[pa_], code_id[pb_], byp[pb_], lday[pa_], ctype[ci[pa_]]
    )
    hit = ind >= 0
    pci = ci[pa_]
    f["ptp_pairs"] = np.bincount(pci[hit], minlength=n).astype(float)
    f["ptp_unbypassable"] = np.bincount(pci[ind == 0], minlength=n).astype(float)
    f["ptp_needs_modifier"] = np.bincount(pci[(ind == 1) & ~bypassed], minlength=n).astype(float)
    f["ptp_bypassed"] = np.bincount(pci[bypassed], minlength=n).astype(float)
    m = hit & ~bypassed & (ind != 9)
    if m.any():
        col1 = np.where(a_first, codes[pa_], codes[pb_])
        col2 = np.where(a_first, codes[pb_], codes[pa_])
        ln2 = np.where(a_first, line_number[pb_], line_number[pa_])
        ctx.claim_hits.append(
            {
                "ci": pci[m],
                "rule": "ncci_ptp",
                "line_number": ln2[m],
                "code": col1[m],
                "other_code": col2[m],
                "value": ind[m].astype(float),
                "ref": "same claim",
            }
        )
    return f


def _cross_claim(ctx: Context) -> dict[str, np.ndarray]:
    """Pairs between this claim's lines and earlier same-day lines of the same patient and provider."""
    ci, n, L = ctx.ci, ctx.n, ctx.L
    f = {"ptp_cross_claim": np.zeros(n), "ptp_cross_claim_needs_modifier": np.zeros(n)}
    if len(ci) == 0:
        return f
    _, earlier, _ = ctx.sameday()
    if earlier is None:
        return f
    qi, o_claim, ev = earlier
    o_code = ctx.tables.coder.vocabs["code"].decode(ev[:, 1].astype(np.int64))
    o_byp = ev[:, 2] == 1
    code = L["code"][qi]
    keep = code != o_code
    qi, o_code, o_byp, o_claim, code = qi[keep], o_code[keep], o_byp[keep], o_claim[keep], code[keep]
    if len(qi) == 0:
        return f
    ctype = ctx.text("claim_type")[ci[qi]]
    ri = ctx.ri
    ind, a_first, bypassed = ptp_pairs_ids(
        ri, ri.code_ids(code), L["mod_bypass"][qi], ri.code_ids(o_code), o_byp, L["day"][qi], ctype
    )
    hit = (ind >= 0) & (ind != 9)
    c = ci[qi]
    f["ptp_cross_claim"] = np.bincount(c[hit], minlength=n).astype(float)
    bad = hit & ~bypassed
    f["ptp_cross_claim_needs_modifier"] = np.bincount(c[bad], minlength=n).astype(float)
    if bad.any():
        col1 = np.where(a_first, code, o_code)
        col2 = np.where(a_first, o_code, code)
        ctx.history_hits.append(
            {
                "ci": c[bad],
                "rule": "ncci_ptp",
                "line_number": L["line_number"][qi][bad],
                "code": col1[bad],
                "other_code": col2[bad],
                "value": ind[bad].astype(float),
                "ref": o_claim[bad],
            }
        )
    return f


def hit_text(r: dict, plan: str) -> str:
    where = "on this claim" if r["ref"] in (None, "same claim") or pd.isna(r["ref"]) else f"with claim {r['ref']}"
    ind = int(r["value"]) if pd.notna(r["value"]) else -1
    tail = "NCCI edit, modifier 59 or X{EPSU} would be needed" if ind == 1 else "NCCI edit that no modifier bypasses"
    return f"{r['code']} and {r['other_code']} billed the same day for this patient {where}; {tail}"


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    h = hits_of(hits, str(claim["claim_id"]), "ncci_ptp")
    if len(h):
        return hit_text(h[0], "")
    if x.get("ptp_bypassed", 0) > 0:
        return "an NCCI code pair is billed with a bypass modifier (59/X{EPSU}); payers audit these"
    return None
