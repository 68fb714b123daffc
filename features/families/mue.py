"""MUE: units of a code above its Medically Unlikely Edit, per line (MAI 1) or per date of service
(MAI 2/3) (rule ``mue``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import factorize, group_ids, group_max, group_sum
from features.families.base import Context, Reference, hits_of
from features.rulebook import MAI_TEXT

NAME = "mue"
COLUMNS = ("max_mue_ratio", "n_mue_exceeded", "mue_excess_units")
RULES = ("mue",)
TABLES = ()
ROUNDED = ()


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n, L = ctx.ci, ctx.n, ctx.L
    units, codes, mue, mai = L["units"], L["code"], L["mue"], L["mai"]
    # (claim, code, day) groups; unknown codes get their own ids past the vocabulary
    cid_key = ctx.code_ids().copy()
    unk = cid_key < 0
    if unk.any():
        cid_key[unk] = len(ctx.ri.vocab) + factorize(codes[unk])[0]
    g_ccd = group_ids(ci, cid_key, L["day"])
    day_units = np.bincount(g_ccd, weights=units)[g_ccd] if len(g_ccd) else np.zeros(0)
    applied = np.where(mai == 1, units, day_units)
    ratio = np.where(mue > 0, applied / np.where(mue > 0, mue, 1), np.nan)
    L["mue_ratio"] = ratio  # the line helper frame carries each line's ratio
    if isinstance(ctx.la, pd.DataFrame):
        ctx.la["mue_ratio"] = ratio
    ratio0 = np.nan_to_num(ratio, nan=0.0)
    f = {"max_mue_ratio": group_max(ci, ratio0, n)}
    over = ratio0 > 1.0 + 1e-9
    first_over = np.zeros(len(ci), dtype=bool)
    if over.any():
        ov = np.flatnonzero(over)
        _, first_pos = np.unique(g_ccd[ov], return_index=True)
        first_over[ov[first_pos]] = True
    f["n_mue_exceeded"] = group_sum(ci, first_over, n)
    f["mue_excess_units"] = group_sum(ci, np.where(first_over, applied - mue, 0.0), n)
    if first_over.any():
        m = first_over
        ctx.claim_hits.append(
            {
                "ci": ci[m],
                "rule": "mue",
                "line_number": L["line_number"][m],
                "code": codes[m],
                "value": applied[m],
                "limit": mue[m],
                "ref": mai[m].astype(str).astype(object),
            }
        )
    return f


def hit_text(r: dict, plan: str) -> str:
    per = (
        MAI_TEXT.get(int(r["ref"]) if str(r["ref"]).isdigit() else 0, "")
        .replace(" (policy)", "")
        .replace(" (clinical)", "")
    )
    per = "per day" if "day" in per else "per line"
    who = "Medicare" if str(plan).startswith("medicare") else "CMS"
    return f"{r['value']:g} units of {r['code']} exceed the {who} limit of {r['limit']:g} {per} (MUE)"


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    h = hits_of(hits, str(claim["claim_id"]), "mue")
    return hit_text(h[0], str(claim.get("plan_type", ""))) if len(h) else None
