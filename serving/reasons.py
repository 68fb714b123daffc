"""Plain-language reasons and rule hits.

Reasons come from LightGBM's own TreeSHAP contributions (``pred_contrib``) of the likelihood model:
features are grouped into families a billing person recognises, the families that push the risk up
most are kept (up to 5; never one that lowers it), and each is written as a sentence with the claim's specifics (codes,
units, limits, the claim it duplicates, how the provider compares with peers).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from features.contract import CAUSES
from features.rulebook import MAI_TEXT, Rulebook

MAX_REASONS = 5

# feature -> family (first matching prefix wins)
FAMILY_PREFIXES: list[tuple[str, str]] = [
    ("ptp_", "ncci"),
    ("max_mue_ratio", "mue"),
    ("n_mue_exceeded", "mue"),
    ("mue_excess", "mue"),
    ("dup_", "duplicate"),
    ("sameday_prior", "duplicate"),
    ("is_replacement", "duplicate"),
    ("is_void", "duplicate"),
    ("frequency_code", "duplicate"),
    ("outside_coverage", "coverage"),
    ("covered_by_other", "coverage"),
    ("days_outside_coverage", "coverage"),
    ("days_since_coverage", "coverage"),
    ("em_", "em_coding"),
    ("provider_em_", "em_coding"),
    ("n_dx", "diagnosis"),
    ("dx_support", "dx_support"),
    ("dx_principal", "dx_support"),
    ("attachment_", "paperwork"),
    ("prior_auth_", "paperwork"),
    ("n_procedure_lines", "claim_size"),
    ("procedure_rate_", "procedure"),
    ("procedure_recoup", "procedure"),
    ("n_addon", "addon"),
    ("mod25_without", "modifiers"),
    ("has_mod_", "modifiers"),
    ("n_modifiers", "modifiers"),
    ("provider_mod59", "modifiers"),
    ("has_prior_auth", "paperwork"),
    ("has_attachment", "paperwork"),
    ("provider_rate_", "provider_history"),
    ("provider_ratio_", "provider_history"),
    ("provider_recoup", "provider_history"),
    ("provider_", "provider_pattern"),
    ("charge_vs_provider", "charges"),
    ("charge_vs_specialty", "charges"),
    ("total_charge", "charges"),
    ("max_line_charge", "charges"),
    ("charge_per_unit", "charges"),
    ("total_units", "units"),
    ("max_line_units", "units"),
    ("n_lines", "claim_size"),
    ("n_non_em", "claim_size"),
    ("patient_", "patient_history"),
    ("payer_", "payer"),
    ("plan_type", "payer"),
    ("specialty", "specialty"),
    ("main_procedure", "procedure"),
    ("procedure_history", "procedure"),
    ("place_of_service", "place_of_service"),
    ("pos_support", "place_of_service"),
    ("submission_lag", "timing"),
    ("service_span", "timing"),
    ("claim_type", "claim_size"),
]


def family_of(feature: str) -> str:
    for prefix, fam in FAMILY_PREFIXES:
        if feature.startswith(prefix):
            return fam
    return "other"


@functools.lru_cache(maxsize=8)
def _family_members(feature_names: tuple[str, ...]) -> tuple[list[str], list[np.ndarray]]:
    """(sorted family names, the feature positions of each), cached per feature list."""
    families = np.array([family_of(f) for f in feature_names], dtype=object)
    fam_names = sorted(set(families))
    return fam_names, [np.flatnonzero(families == fam) for fam in fam_names]


def _money(x: float) -> str:
    return f"${x:,.0f}"


def _hit_dicts(hits: pd.DataFrame) -> dict[str, list[dict]]:
    """Hit rows as dicts grouped by claim_id (cheap for a few rows; no per-row Series)."""
    cols = list(hits.columns)
    data = [hits[c].tolist() for c in cols]
    out: dict[str, list[dict]] = {}
    ci = cols.index("claim_id")
    for row in zip(*data):
        out.setdefault(str(row[ci]), []).append(dict(zip(cols, row)))
    return out


def _hits_of(hits, claim_id: str, rule: str) -> list[dict]:
    """The hits of one claim and rule (``hits`` a frame or the output of :func:`_hit_dicts`)."""
    if isinstance(hits, pd.DataFrame):
        hits = _hit_dicts(hits[hits["claim_id"] == claim_id])
    return [h for h in hits.get(claim_id, ()) if h["rule"] == rule]


def _ptp_text(r: pd.Series) -> str:
    where = "on this claim" if r["ref"] in (None, "same claim") or pd.isna(r["ref"]) else f"with claim {r['ref']}"
    ind = int(r["value"]) if pd.notna(r["value"]) else -1
    tail = "NCCI edit, modifier 59 or X{EPSU} would be needed" if ind == 1 else "NCCI edit that no modifier bypasses"
    return f"{r['code']} and {r['other_code']} billed the same day for this patient {where}; {tail}"


def _mue_text(r: pd.Series, plan: str) -> str:
    per = (
        MAI_TEXT.get(int(r["ref"]) if str(r["ref"]).isdigit() else 0, "")
        .replace(" (policy)", "")
        .replace(" (clinical)", "")
    )
    per = "per day" if "day" in per else "per line"
    who = "Medicare" if str(plan).startswith("medicare") else "CMS"
    return f"{r['value']:g} units of {r['code']} exceed the {who} limit of {r['limit']:g} {per} (MUE)"


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


def _reason_text(fam: str, x: pd.Series, claim: pd.Series, hits: pd.DataFrame) -> str | None:
    cid = str(claim["claim_id"])
    plan = str(claim.get("plan_type", ""))
    if fam == "ncci":
        h = _hits_of(hits, cid, "ncci_ptp")
        if len(h):
            return _ptp_text(h[0])
        if x.get("ptp_bypassed", 0) > 0:
            return "an NCCI code pair is billed with a bypass modifier (59/X{EPSU}); payers audit these"
        return None
    if fam == "mue":
        h = _hits_of(hits, cid, "mue")
        return _mue_text(h[0], plan) if len(h) else None
    if fam == "duplicate":
        h = _hits_of(hits, cid, "duplicate")
        if len(h):
            r = h[0]
            when = (pd.Timestamp(claim["submitted_date"]) - pd.Timedelta(days=float(r["value"]))).date()
            kind = "a replacement of" if str(claim.get("frequency_code")) == "7" else "same patient, code and date as"
            return f"{kind} claim {r['ref']} submitted {when} ({r['code']})"
        if x.get("sameday_prior_lines", 0) > 0:
            return "another claim for this patient and provider on the same service date was submitted earlier"
        return None
    if fam == "coverage":
        if x.get("outside_coverage") == 1:
            d = x.get("days_outside_coverage")
            other = " (the patient was covered by another payer then)" if x.get("covered_by_other_payer") == 1 else ""
            span = "no coverage on file with this payer" if d == 999 else f"{d:.0f} days outside the coverage span"
            return f"service date is outside the patient's coverage with payer {claim['payer_id']}: {span}{other}"
        return None
    if fam == "em_coding":
        lvl = x.get("em_level", 0)
        if lvl and lvl >= 4:
            share = x.get("provider_em_high_share", np.nan)
            peers = share - x.get("provider_em_high_vs_peers", 0)
            extra = (
                f"; this provider bills level 4-5 in {share:.0%} of visits vs {peers:.0%} for peers"
                if pd.notna(share) and pd.notna(peers)
                else ""
            )
            return f"E/M level {lvl:.0f} with {x.get('n_dx', 0):.0f} diagnosis code(s){extra}"
        return None
    if fam == "dx_support":
        p1 = x.get("dx_principal_support_specialty_min", np.nan)
        if p1 is None or pd.isna(p1):
            p1 = x.get("dx_principal_support_min", np.nan)
        if p1 is not None and pd.notna(p1) and p1 < 0.05:
            return (
                f"the principal diagnosis {claim_principal(claim)} rarely goes with these procedures "
                f"(peers: {p1:.1%} of such claims)"
            )
        s = x.get("dx_support_min")
        if pd.notna(s):
            return (
                f"the diagnoses on this claim rarely go with its procedures (peers billed this pairing on "
                f"{s:.0%} of such claims)"
            )
        return None
    if fam == "diagnosis":
        h = _hits_of(hits, cid, "truncated_icd") + _hits_of(hits, cid, "invalid_icd")
        if len(h):
            r = h[0]
            what = "truncated (not a billable code)" if r["rule"] == "truncated_icd" else "not a valid ICD-10-CM code"
            return f"diagnosis {r['code']} is {what}"
        return f"{x.get('n_dx', 0):.0f} diagnosis code(s) to support the services billed"
    if fam == "addon":
        h = _hits_of(hits, cid, "addon_without_primary")
        return f"add-on code {h[0]['code']} billed without its primary procedure" if len(h) else None
    if fam == "modifiers":
        if x.get("mod25_without_procedure") == 1:
            return "modifier 25 on an E/M visit with no other procedure on the claim"
        if x.get("has_mod_59") == 1 or x.get("has_mod_x") == 1:
            return "modifier 59/X{EPSU} used; payers review distinct-procedure modifiers closely"
        return None
    if fam == "paperwork":
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
    if fam == "provider_history":
        ratios = {c: x.get(f"provider_ratio_{c}", np.nan) for c in CAUSES}
        c, r = max(ratios.items(), key=lambda kv: -np.inf if pd.isna(kv[1]) else kv[1])
        if pd.notna(r) and r >= 1.3:
            return f"this provider's claims were recouped for {c.replace('_', ' ')} {r:.1f}x as often as peers"
        rr = x.get("provider_recoup_ratio", np.nan)
        if pd.notna(rr) and rr >= 1.1:
            return f"this provider's recoupment rate is {rr:.1f}x that of peers in the specialty"
        return None  # a provider at or below its peers is no reason for risk
    if fam == "charges":
        r = x.get("charge_vs_provider_avg", np.nan)
        if pd.notna(r) and r > 1.5:
            return f"charge {_money(claim['total_charge'])} is {r:.1f}x this provider's average claim"
        return f"claim charge {_money(claim['total_charge'])}"
    if fam == "units":
        return f"{x.get('total_units', 0):g} units billed in total"
    if fam == "patient_history":
        n30 = x.get("patient_claims_30d", 0)
        rec = x.get("patient_n_recouped", 0)
        if rec:
            return f"this patient already had {rec:.0f} recouped claim(s)"
        return f"this patient had {n30:.0f} claim(s) in the last 30 days"
    if fam == "payer":
        rates = {c: x.get(f"payer_rate_{c}", np.nan) for c in CAUSES}
        c, r = max(rates.items(), key=lambda kv: -np.inf if pd.isna(kv[1]) else kv[1])
        return f"payer {claim['payer_id']} recoups {c.replace('_', ' ')} on {r:.1%} of claims"
    if fam == "procedure":
        return f"procedure {x.get('main_procedure')} is often recouped"
    if fam == "specialty":
        return f"claims of this specialty ({x.get('specialty')}) are recouped more often"
    if fam == "place_of_service":
        return f"place of service {claim['place_of_service']} is unusual for these procedures"
    if fam == "timing":
        return f"submitted {x.get('submission_lag_days', 0):.0f} days after the service"
    if fam == "provider_pattern":
        g = x.get("provider_growth_90d", np.nan)
        if pd.notna(g) and g > 1.5:
            return f"this provider's claim volume grew {g:.1f}x over the last 90 days"
        return "this provider's billing pattern differs from peers"
    if fam == "claim_size":
        return f"{x.get('n_lines', 0):.0f} service line(s) on the claim"
    return None


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
    contrib: np.ndarray, feature_names: list[str], X: pd.DataFrame | tuple, hits: pd.DataFrame, claims: pd.DataFrame
) -> dict[str, list[dict]]:
    """Per claim: up to 5 families with the largest positive TreeSHAP contributions, as sentences (none
    that lowers the risk, even when fewer remain)."""
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
    by_claim = _hit_dicts(hits) if len(hits) else {}
    for i in range(contrib.shape[0]):
        cid = str(x_ids[i])
        x = dict(zip(x_cols, x_vals[i])) if x_rows is None else x_rows[i]
        claim = {c: c_data[j][i] for j, c in enumerate(c_cols)}
        reasons = []
        for j in np.argsort(-F[i], kind="stable"):
            if len(reasons) >= MAX_REASONS or F[i, j] <= 0:  # a reason states a fact that raises risk
                break
            text = _reason_text(fam_names[j], x, claim, by_claim)
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
        if rule == "ncci_ptp":
            text = _ptp_text(r)
        elif rule == "mue":
            text = _mue_text(r, plan.get(cid, ""))
        elif rule == "duplicate":
            text = f"possible duplicate of claim {r['ref']} (same patient, provider, date and code {r['code']})"
        elif rule == "outside_coverage":
            text = "service outside the patient's coverage with this payer" + (
                " (covered by another payer)" if r["ref"] == "other payer" else ""
            )
        elif rule == "truncated_icd":
            text = f"diagnosis {r['code']} is truncated: a more specific (billable) code is required"
        elif rule == "invalid_icd":
            text = f"diagnosis {r['code']} is not in ICD-10-CM"
        elif rule == "addon_without_primary":
            text = f"add-on code {r['code']} without its primary procedure on the claim"
        else:
            text = rule
        rec = {"rule": rule, "text": text}
        for k in ("line_number", "code", "other_code", "value", "limit", "ref"):
            v = r.get(k)
            if v is not None and not (isinstance(v, float) and np.isnan(v)):
                rec[k] = v.item() if hasattr(v, "item") else v
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
