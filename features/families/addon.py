"""Add-on codes billed without one of their primary procedures on the claim (rule ``addon_without_primary``)."""

from __future__ import annotations

import numpy as np

from features.engine.arrays import group_sum
from features.families.base import Context, Reference, hits_of

NAME = "addon"
COLUMNS = ("n_addon_without_primary",)
RULES = ("addon_without_primary",)
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n, codes = ctx.ci, ctx.n, ctx.L["code"]
    out = np.zeros(n)
    prim = ctx.rulebook.addon_primaries
    get = prim.get
    code_list = codes.tolist()
    is_addon = np.fromiter((bool(get(c)) for c in code_list), dtype=bool, count=len(code_list))
    if is_addon.any():
        need = set(ci[is_addon].tolist())
        claim_codes: dict[int, set] = {}
        for c, i in zip(code_list, ci.tolist()):
            if i in need:
                claim_codes.setdefault(i, set()).add(c)
        missing = np.zeros(len(codes), dtype=bool)
        for i in np.flatnonzero(is_addon).tolist():
            missing[i] = not (prim[code_list[i]] & claim_codes[int(ci[i])])
        out = group_sum(ci, missing, n)
        if missing.any():
            ctx.claim_hits.append(
                {
                    "ci": ci[missing],
                    "rule": "addon_without_primary",
                    "line_number": ctx.L["line_number"][missing],
                    "code": codes[missing],
                }
            )
    return {"n_addon_without_primary": out}


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    h = hits_of(hits, str(claim["claim_id"]), "addon_without_primary")
    return f"add-on code {h[0]['code']} billed without its primary procedure" if len(h) else None


def hit_text(r: dict, plan: str) -> str:
    return f"add-on code {r['code']} without its primary procedure on the claim"
