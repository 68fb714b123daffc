"""serving.reasons on hand-built claims: every feature has a family, reasons follow the contributions and
state only facts that raise the risk (a sentence agrees with its feature values and hits), rule-hit texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pipeline import compute_features
from features.engine.state import HistoryState
from serving.reasons import MAX_REASONS, family_of, rule_hit_records, top_reasons
from tests.helpers.handmade import claim_rows, tiny_history, typed


@pytest.fixture(scope="module")
def risky(codes, rb):
    """(features X, hits, claims) of one claim over its MUE limit with an invalid diagnosis."""
    st = HistoryState.from_history(tiny_history(codes), rb)
    claim, rows = claim_rows("R1", [(codes["mue6"], 8, [])], dx=[codes["dx_invalid"]], codes=codes)
    h = typed([claim], rows)
    res = compute_features(h.claims, h.claim_lines, st, rb)
    return res.X, res.hits, h.claims


def contributions(names: list[str], **by_feature: float) -> np.ndarray:
    """One row of TreeSHAP-like contributions: the given features, 0 elsewhere, then the bias column."""
    row = np.zeros(len(names) + 1)
    for f, v in by_feature.items():
        row[names.index(f)] = v
    row[-1] = -3.0  # the bias never makes a reason
    return row[None, :]


def test_every_feature_has_a_family(risky):
    X, _, _ = risky
    assert [c for c in X.columns if family_of(c) == "other"] == []


#: typical feature values (a bundle's ``feature_reference``) for the hand-built claims
TYPICAL = {"total_units": 2.0, "n_lines": 1.0, "submission_lag_days": 3.0, "patient_claims_30d": 1.0}


def test_reasons_follow_the_contributions_and_agree_with_the_claim(risky, codes):
    X, hits, claims = risky
    names = list(X.columns)
    c = contributions(names, n_mue_exceeded=0.9, n_dx_invalid=0.5, total_units=0.3, total_charge=0.2)
    reasons = top_reasons(c, names, X, hits, claims, reference=TYPICAL)["R1"]
    assert [r["code"] for r in reasons] == ["mue", "diagnosis", "units"]  # a $100 charge states no risk
    assert [r["contribution"] for r in reasons] == [0.9, 0.5, 0.3]
    mue = reasons[0]["text"]
    assert f"8 units of {codes['mue6']}" in mue and "limit of 6" in mue and "Medicare" in mue
    assert codes["dx_invalid"] in reasons[1]["text"] and "not a valid" in reasons[1]["text"]
    assert reasons[2]["text"] == "8 units billed in total (a typical claim has 2)"


def test_sentences_that_compare_need_the_typical_values(risky):
    """Without a reference (a bundle trained before it was kept), no comparison is made up."""
    X, hits, claims = risky
    names = list(X.columns)
    c = contributions(names, n_mue_exceeded=0.9, total_units=0.3, submission_lag_days=0.2)
    assert [r["code"] for r in top_reasons(c, names, X, hits, claims)["R1"]] == ["mue"]
    late = {**TYPICAL, "submission_lag_days": 0.5}  # 9 days is 18x the typical lag, yet not late
    assert [r["code"] for r in top_reasons(c, names, X, hits, claims, reference=late)["R1"]] == ["mue", "units"]


def test_no_reason_from_a_family_whose_facts_do_not_raise_the_risk(risky):
    """A positive contribution of the coverage, duplicate or provider-history family on a claim that is
    covered, duplicates nothing and whose provider is at its peers' rate gives no sentence."""
    X, hits, claims = risky
    assert X["outside_coverage"].iloc[0] == 0 and X["dup_lines_matched"].iloc[0] == 0
    assert X["provider_recoup_ratio"].iloc[0] < 1.1
    names = list(X.columns)
    c = contributions(names, outside_coverage=0.9, dup_lines_matched=0.8, provider_recoup_ratio=0.7, n_mue_exceeded=0.1)
    reasons = top_reasons(c, names, X, hits, claims)["R1"]
    assert {"coverage", "duplicate", "provider_history"}.isdisjoint(r["code"] for r in reasons), reasons
    assert reasons[0]["code"] == "mue"


def test_at_most_five_and_only_positive_ones(risky, codes, rb):
    a, b = codes["ptp_never"]
    st = HistoryState.from_history(tiny_history(codes), rb)
    claim, rows = claim_rows(
        "R2",
        [(codes["mue6"], 8, []), (a, 1, []), (b, 1, []), (codes["addon"], 1, [])],
        dx=[codes["dx_invalid"]],
        codes=codes,
    )
    h = typed([claim], rows)
    res = compute_features(h.claims, h.claim_lines, st, rb)
    ups = (
        "n_mue_exceeded",
        "ptp_pairs",
        "n_addon_without_primary",
        "n_dx_invalid",
        "n_lines",
        "total_units",
        "has_prior_auth",
    )
    names = list(res.X.columns)
    c = contributions(names, **{f: 1.0 - 0.1 * i for i, f in enumerate(ups)})
    reasons = top_reasons(c, names, res.X, res.hits, h.claims, reference=TYPICAL)["R2"]
    assert len(reasons) == MAX_REASONS, reasons
    X, hits, claims = risky
    names = list(X.columns)
    c = contributions(
        names, n_mue_exceeded=0.9, total_charge=-0.2, n_lines=-0.3, submission_lag_days=-0.4, total_units=-0.5
    )
    reasons = top_reasons(c, names, X, hits, claims)["R1"]
    assert [r["code"] for r in reasons] == ["mue"]  # the one family that raises the risk
    assert [r["contribution"] for r in reasons] == sorted((r["contribution"] for r in reasons), reverse=True)


def test_every_reason_raises_the_risk(risky):
    X, hits, claims = risky
    names = list(X.columns)
    c = contributions(names, n_mue_exceeded=0.9, total_charge=-0.2, n_lines=-0.3, submission_lag_days=-0.4)
    reasons = top_reasons(c, names, X, hits, claims)["R1"]
    assert reasons and all(r["contribution"] > 0 for r in reasons), reasons


def test_rule_hit_texts_name_their_facts(risky, codes, rb):
    X, hits, claims = risky
    out = rule_hit_records(hits, claims, {"R1": [("payer_id", "NEWPAYER")]}, rb)["R1"]
    by_rule = {r["rule"]: r for r in out}
    assert set(by_rule) == {"mue", "invalid_icd", "unknown_code"}
    mue = by_rule["mue"]
    assert mue["code"] == codes["mue6"] and mue["value"] == 8 and mue["limit"] == 6
    assert f"8 units of {codes['mue6']}" in mue["text"] and "limit of 6" in mue["text"]
    icd = by_rule["invalid_icd"]
    assert icd["code"] == codes["dx_invalid"] and codes["dx_invalid"] in icd["text"]
    assert by_rule["unknown_code"]["code"] == "NEWPAYER" and "payer id NEWPAYER" in by_rule["unknown_code"]["text"]


def test_rule_hit_texts_of_pairs_duplicates_and_coverage(rb):
    hits = pd.DataFrame(
        [
            {
                "claim_id": "A",
                "rule": "ncci_ptp",
                "line_number": 2,
                "code": "11111",
                "other_code": "22222",
                "value": 1.0,
                "limit": np.nan,
                "ref": "same claim",
            },
            {
                "claim_id": "A",
                "rule": "duplicate",
                "line_number": 1,
                "code": "33333",
                "other_code": None,
                "value": 3.0,
                "limit": np.nan,
                "ref": "OLD-7",
            },
            {
                "claim_id": "B",
                "rule": "outside_coverage",
                "line_number": np.nan,
                "code": None,
                "other_code": None,
                "value": 12.0,
                "limit": np.nan,
                "ref": "other payer",
            },
        ]
    )
    claims = pd.DataFrame({"claim_id": ["A", "B"], "plan_type": ["commercial", "medicare"]})
    out = rule_hit_records(hits, claims, {}, rb)
    ptp, dup = out["A"]
    assert "11111 and 22222" in ptp["text"] and "modifier 59" in ptp["text"] and ptp["value"] == 1
    assert "OLD-7" in dup["text"] and "33333" in dup["text"] and dup["ref"] == "OLD-7"
    assert out["B"][0]["text"].endswith("(covered by another payer)") and "line_number" not in out["B"][0]
