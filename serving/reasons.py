"""Plain-language reasons and rule hits.

Reasons come from LightGBM's own TreeSHAP contributions (``pred_contrib``) of the likelihood model:
features are grouped by the feature family that declares them (:mod:`features.families`), the families
that push the risk up most are kept (up to 5; never one that lowers it), and each family writes its
sentence with the claim's specifics (codes, units, limits, the claim it duplicates, how the provider
compares with peers). Rule-hit sentences come from the family that emits the rule.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from features.families import family, family_of, family_of_rule
from features.families.base import Reference, hit_dicts
from features.rulebook import Rulebook

MAX_REASONS = 5

__all__ = ["MAX_REASONS", "family_of", "rule_hit_records", "top_reasons"]


@functools.lru_cache(maxsize=8)
def _family_members(feature_names: tuple[str, ...]) -> tuple[list[str], list[np.ndarray]]:
    """(sorted family names, the feature positions of each), cached per feature list."""
    families = np.array([family_of(f) for f in feature_names], dtype=object)
    fam_names = sorted(set(families))
    return fam_names, [np.flatnonzero(families == fam) for fam in fam_names]


def _reason_text(fam: str, x: dict, claim: dict, hits, ref: Reference) -> str | None:
    """The sentence of family ``fam`` for one claim (None: no fact of it raises the risk)."""
    got = family(fam)
    return got.reason(x, claim, hits, ref) if got is not None else None


#: the claim fields the sentences use
_CLAIM_FIELDS = (
    "claim_id",
    "plan_type",
    "submitted_date",
    "frequency_code",
    "payer_id",
    "total_charge",
    "place_of_service",
    "diagnosis_codes",
)


def top_reasons(
    contrib: np.ndarray,
    feature_names: list[str],
    X: pd.DataFrame | tuple,
    hits: pd.DataFrame,
    claims: pd.DataFrame,
    reference: Reference | None = None,
) -> dict[str, list[dict]]:
    """Per claim: up to 5 families with the largest positive TreeSHAP contributions, as sentences (none
    that lowers the risk, even when fewer remain). ``reference``: the typical feature values (the bundle's
    ``feature_reference``); without it, sentences that compare with the typical claim are left out."""
    ref = reference or {}
    fam_names, members = _family_members(tuple(feature_names))
    F = np.zeros((contrib.shape[0], len(fam_names)))
    body = contrib[:, :-1]
    for j, idx in enumerate(members):
        F[:, j] = body[:, idx].sum(axis=1)
    out: dict[str, list[dict]] = {}
    # rows as plain dicts (per-row pd.Series are slow); hits grouped by claim once. ``X`` is the feature
    # frame, or (claim ids, rows as dicts) when the caller has the rows already
    if isinstance(X, pd.DataFrame):
        x_cols = list(X.columns)
        x_vals = X.to_numpy(dtype=object)
        x_ids = X.index.tolist()
        x_rows = None
    else:
        x_ids, x_rows = list(X[0]), X[1]
    c_cols = [c for c in _CLAIM_FIELDS if c in claims.columns]
    c_data = [claims[c].tolist() for c in c_cols]  # positions, whatever the index (same objects as
    # to_numpy(dtype=object): str, Timestamp, float, pd.NA; cheaper on categorical columns)
    by_claim = hit_dicts(hits) if len(hits) else {}
    for i in range(contrib.shape[0]):
        cid = str(x_ids[i])
        x = dict(zip(x_cols, x_vals[i])) if x_rows is None else x_rows[i]
        claim = {c: c_data[j][i] for j, c in enumerate(c_cols)}
        reasons: list[dict] = []
        for j in np.argsort(-F[i], kind="stable"):
            if len(reasons) >= MAX_REASONS or F[i, j] <= 0:  # a reason states a fact that raises risk
                break
            text = _reason_text(fam_names[j], x, claim, by_claim, ref)
            if text:
                reasons.append({"code": fam_names[j], "text": text, "contribution": round(float(F[i, j]), 4)})
        out[cid] = reasons
    return out


def rule_hit_records(
    hits: pd.DataFrame, claims: pd.DataFrame, unseen: pd.DataFrame | dict, rulebook: Rulebook
) -> dict[str, list[dict]]:
    """Deterministic findings per claim, whatever the model says.

    ``unseen``: :meth:`FeatureSpec.unseen_levels` (a frame) or :meth:`FeatureSpec.unseen_dict`.
    """
    out: dict[str, list[dict]] = {}
    cols = list(hits.columns)
    rows = zip(*[hits[c].tolist() for c in cols]) if len(hits) else ()
    plan: dict[str, str] = {}
    if len(hits) and "mue" in set(hits["rule"].tolist()):
        plan = dict(zip(claims["claim_id"].astype(str).tolist(), claims["plan_type"].astype(str).tolist()))
    for row in rows:
        r = dict(zip(cols, row))
        cid = str(r["claim_id"])
        rule = r["rule"]
        fam = family_of_rule(rule)
        text = fam.hit_text(r, plan.get(cid, "")) if fam is not None else rule
        rec = {"rule": rule, "text": text}
        for k in ("line_number", "code", "other_code", "value", "limit", "ref"):
            v = r.get(k)
            if v is not None and not (isinstance(v, float) and np.isnan(v)):
                rec[k] = v.item() if hasattr(v, "item") else v
        if isinstance(rec.get("line_number"), float) and float(rec["line_number"]).is_integer():
            # a line number is whole: 2, not 2.0 (a hits frame's column is float when some hit has none)
            rec["line_number"] = int(rec["line_number"])
        out.setdefault(cid, []).append(rec)
    if isinstance(unseen, pd.DataFrame):
        items = [
            (str(cid), [(col, val) for col, val in row.items() if pd.notna(val)]) for cid, row in unseen.iterrows()
        ]
    else:
        items = list(unseen.items())
    for cid, pairs in items:
        for col, val in pairs:
            out.setdefault(str(cid), []).append(
                {
                    "rule": "unknown_code",
                    "text": f"{col.replace('_', ' ')} {val} was not seen in training; scored as missing",
                    "code": str(val),
                }
            )
    return out
