"""Duplicates: lines matching an earlier claim's (same patient, provider, service date and code),
earlier same-day claims, replacements and voids (rule ``duplicate``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import group_min
from features.engine.events import EventTable
from features.families.base import Context, Reference, hits_of

NAME = "duplicate"
COLUMNS = (
    "frequency_code",
    "is_replacement",
    "is_void",
    "dup_lines_matched",
    "dup_share_lines_matched",
    "dup_all_lines_matched",
    "sameday_prior_lines",
    "dup_days_since_match",
)
RULES = ("duplicate",)
TABLES = ("dup", "sameday")
ROUNDED = (
    "dup_lines_matched",
    "dup_share_lines_matched",
    "dup_all_lines_matched",
    "sameday_prior_lines",
    "dup_days_since_match",
)


def compute(ctx: Context) -> dict[str, np.ndarray]:
    ci, n, L = ctx.ci, ctx.n, ctx.L
    freq = ctx.text("frequency_code")
    f = {
        "frequency_code": ctx.categorical("frequency_code"),
        "is_replacement": (freq == "7").astype(float),
        "is_void": (freq == "8").astype(float),
    }
    lk = ctx.line_keys()
    tl = ctx.times()[ci]
    dup = ctx.tables["dup"]
    cnt, _ = dup.query(lk["dupkey"], tl)
    matched = cnt[:, 0] > 0
    if matched.any():
        rows = np.flatnonzero(matched)
        pay, tt = _latest_other_claim(dup, lk["dupkey"][rows], tl[rows], ctx.claim_ids()[ci[rows]])
        matched[rows[tt < 0]] = False  # only the claim's own previous version: no duplicate
        pay, tt = pay[tt >= 0], tt[tt >= 0]
    n_lines = np.bincount(ci, minlength=n)
    n_match = np.bincount(ci, weights=matched.astype(float), minlength=n)
    f["dup_lines_matched"] = n_match
    f["dup_share_lines_matched"] = n_match / np.maximum(n_lines, 1)
    f["dup_all_lines_matched"] = ((n_match == n_lines) & (n_lines > 0)).astype(float)
    same, _, own = ctx.sameday()
    prior = np.bincount(ci, weights=same, minlength=n)
    f["sameday_prior_lines"] = prior if own is None else prior - own
    f["dup_days_since_match"] = np.full(n, np.nan)
    if matched.any():
        mday = (tt >> 33).astype(float)
        sub = ctx.day().astype(float)[ci[matched]]
        f["dup_days_since_match"] = group_min(ci[matched], sub - mday, n)
        ctx.history_hits.append(
            {
                "ci": ci[matched],
                "rule": "duplicate",
                "line_number": L["line_number"][matched],
                "code": L["code"][matched],
                "ref": pay,
                "value": sub - mday,
            }
        )
    return f


def _latest_other_claim(
    dup: EventTable, keys: np.ndarray, times: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(claim id, time) of the latest earlier event of each key whose claim is not ``own`` (time -1 if
    none): a claim is never a duplicate of itself (its previous version, when it replaces one)."""
    pay, tt = dup.latest_payload(keys, times)
    mine = (pay == own) & (tt >= 0)
    while mine.any():  # look before the claim's own event (rare: a replacement)
        r = np.flatnonzero(mine)
        p2, t2 = dup.latest_payload(keys[r], tt[r])
        pay[r], tt[r] = p2, t2
        mine = np.zeros(len(pay), dtype=bool)
        mine[r] = (p2 == own[r]) & (t2 >= 0)
    return pay, tt


def reason(x: dict, claim: dict, hits, ref: Reference) -> str | None:
    h = hits_of(hits, str(claim["claim_id"]), "duplicate")
    if len(h):
        r = h[0]
        when = (pd.Timestamp(claim["submitted_date"]) - pd.Timedelta(days=float(r["value"]))).date()
        kind = "a replacement of" if str(claim.get("frequency_code")) == "7" else "same patient, code and date as"
        return f"{kind} claim {r['ref']} submitted {when} ({r['code']})"
    if x.get("sameday_prior_lines", 0) > 0:
        return "another claim for this patient and provider on the same service date was submitted earlier"
    return None


def hit_text(r: dict, plan: str) -> str:
    return f"possible duplicate of claim {r['ref']} (same patient, provider, date and code {r['code']})"
