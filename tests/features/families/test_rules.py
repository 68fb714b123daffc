"""Behavioural tests of the features, one hand-built claim per rule and per family (minimum functionality,
invariance, direction), in the style of Made-With-ML's tests/model/test_behavioral.py.

Claims go through the public path only: the contract (``validate_frames``) types them, a
:class:`HistoryState` holds a tiny hand-built history, and ``compute_features`` gives the features and
rule hits. Codes come from the packaged rulebook (``features.rulebook``), never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.engine.lines import EM_LEVEL
from features.rulebook import PTP_BYPASS_MODIFIERS
from features.engine.state import HistoryState
from tests.helpers.handmade import SERVICE, claim_rows, features_of, score, tiny_history

RULE_FEATURES = (
    "n_mue_exceeded",
    "ptp_pairs",
    "ptp_needs_modifier",
    "ptp_unbypassable",
    "n_addon_without_primary",
    "n_dx_invalid",
    "n_dx_truncated",
    "dup_lines_matched",
    "outside_coverage",
)


def test_picked_codes_are_what_the_tests_need(rb, codes):
    day = np.array([SERVICE], dtype="datetime64[s]")
    units, _ = rb.mue_lookup(np.array([codes["mue6"]]))
    assert units[0] == 6
    for ind, key in ((1, "ptp_modifier"), (0, "ptp_never")):
        a, b = codes[key]
        assert int(rb.ptp_lookup(np.array([a]), np.array([b]), day, "professional")[0]) == ind
        assert int(rb.ptp_lookup(np.array([b]), np.array([a]), day, "professional")[0]) == -1
    assert codes["primary"] in rb.addon_primaries[codes["addon"]]
    assert list(rb.icd_status([codes["dx"], codes["dx_truncated"], codes["dx_invalid"]])) == [0, 1, 2]


@pytest.fixture(scope="module")
def state(codes, rb) -> HistoryState:
    """Read-only use (no ``record``): shared by the tests of this module."""
    return HistoryState.from_history(tiny_history(codes), rb)


# ------------------------------------------------------------------------------------------------ minimum functionality
def test_clean_claim_has_no_rule_feature_and_no_hit(state, rb, codes):
    x, hits = score(state, rb, codes, [(codes["plain"], 1, [])])
    assert len(hits) == 0, hits
    assert all(x[f] == 0 for f in RULE_FEATURES), x[list(RULE_FEATURES)]


def test_units_over_mue_limit(state, rb, codes):
    x, hits = score(state, rb, codes, [(codes["mue6"], 8, [])])
    assert x["n_mue_exceeded"] == 1 and x["mue_excess_units"] == 2
    assert x["max_mue_ratio"] == pytest.approx(8 / 6)
    mue = hits[hits["rule"] == "mue"]
    assert len(mue) == 1 and mue["code"].iloc[0] == codes["mue6"]
    assert mue["value"].iloc[0] == 8 and mue["limit"].iloc[0] == 6
    x, hits = score(state, rb, codes, [(codes["mue6"], 6, [])])  # at the limit: no finding
    assert x["n_mue_exceeded"] == 0 and not (hits["rule"] == "mue").any()


@pytest.mark.parametrize("key, indicator", [("ptp_modifier", 1), ("ptp_never", 0)])
def test_ncci_pair_on_one_date(state, rb, codes, key, indicator):
    col1, col2 = codes[key]
    x, hits = score(state, rb, codes, [(col1, 1, []), (col2, 1, [])])
    assert x["ptp_pairs"] == 1
    assert x["ptp_unbypassable"] == (indicator == 0) and x["ptp_needs_modifier"] == (indicator == 1)
    ptp = hits[hits["rule"] == "ncci_ptp"]
    assert len(ptp) == 1 and (ptp["code"].iloc[0], ptp["other_code"].iloc[0]) == (col1, col2)
    assert ptp["value"].iloc[0] == indicator and ptp["line_number"].iloc[0] == 2


@pytest.mark.parametrize("modifier", ["59", "XU"])
def test_ncci_modifier_bypasses_only_where_the_edit_allows(state, rb, codes, modifier):
    assert modifier in PTP_BYPASS_MODIFIERS
    col1, col2 = codes["ptp_modifier"]
    x, hits = score(state, rb, codes, [(col1, 1, []), (col2, 1, [modifier])])
    assert x["ptp_bypassed"] == 1 and x["ptp_needs_modifier"] == 0
    assert not (hits["rule"] == "ncci_ptp").any(), hits
    col1, col2 = codes["ptp_never"]  # indicator 0: no modifier bypasses it
    x, hits = score(state, rb, codes, [(col1, 1, []), (col2, 1, [modifier])])
    assert x["ptp_bypassed"] == 0 and x["ptp_unbypassable"] == 1
    assert (hits["rule"] == "ncci_ptp").sum() == 1


def test_ncci_pair_on_two_dates_is_no_pair(state, rb, codes):
    col1, col2 = codes["ptp_never"]
    claim, rows = claim_rows("NEW", [(col1, 1, []), (col2, 1, [])], codes=codes)
    rows[1]["service_date"] = "2024-08-02"
    x, hits = features_of(state, rb, claim, rows)
    assert x["ptp_pairs"] == 0 and len(hits) == 0


def test_addon_code_without_its_primary(state, rb, codes):
    x, hits = score(state, rb, codes, [(codes["addon"], 1, [])])
    assert x["n_addon_without_primary"] == 1
    add = hits[hits["rule"] == "addon_without_primary"]
    assert list(add["code"]) == [codes["addon"]] and list(add["line_number"]) == [1]
    x, hits = score(state, rb, codes, [(codes["primary"], 1, []), (codes["addon"], 1, [])])
    assert x["n_addon_without_primary"] == 0 and not (hits["rule"] == "addon_without_primary").any()


@pytest.mark.parametrize(
    "key, rule, feature",
    [("dx_invalid", "invalid_icd", "n_dx_invalid"), ("dx_truncated", "truncated_icd", "n_dx_truncated")],
)
def test_bad_diagnosis_code(state, rb, codes, key, rule, feature):
    x, hits = score(state, rb, codes, [(codes["plain"], 1, [])], dx=[codes["dx"], codes[key]])
    assert x[feature] == 1 and x["n_dx"] == 2
    bad = hits[hits["rule"] == rule]
    assert list(bad["code"]) == [codes[key]]
    assert set(hits["rule"]) == {rule}


@pytest.mark.parametrize("service, inside", [("2025-01-15", False), ("2024-12-31", True)])
def test_service_date_outside_coverage(state, rb, codes, service, inside):
    x, hits = score(state, rb, codes, [(codes["plain"], 1, [])], service=service, submitted="2025-01-20")
    assert x["outside_coverage"] == (0 if inside else 1)
    cov = hits[hits["rule"] == "outside_coverage"]
    if inside:
        assert len(cov) == 0
    else:
        assert len(cov) == 1 and cov["value"].iloc[0] == 15 and cov["ref"].iloc[0] == "no coverage"
        assert x["days_outside_coverage"] == 15


def test_patient_without_coverage_on_file_is_unknown_not_a_finding(state, rb, codes):
    x, hits = score(state, rb, codes, [(codes["plain"], 1, [])], patient="P-NO-COVERAGE")
    assert np.isnan(x["outside_coverage"]) and len(hits) == 0


def test_same_patient_code_and_date_as_an_earlier_claim_is_a_duplicate(codes, rb):
    st = HistoryState.from_history(tiny_history(codes), rb)  # this test records claims: its own state
    first, first_rows = claim_rows("FIRST", [(codes["plain"], 1, [])], codes=codes)
    x, hits = features_of(st, rb, first, first_rows, record=True)
    assert x["dup_lines_matched"] == 0 and not (hits["rule"] == "duplicate").any()
    again, rows = claim_rows("AGAIN", [(codes["plain"], 1, [])], codes=codes, submitted="2024-08-12")
    x, hits = features_of(st, rb, again, rows)
    assert x["dup_lines_matched"] == 1 and x["dup_all_lines_matched"] == 1 and x["dup_days_since_match"] == 2
    dup = hits[hits["rule"] == "duplicate"]
    assert list(dup["ref"]) == ["FIRST"] and list(dup["code"]) == [codes["plain"]]
    # another patient, or another date: no duplicate
    for kw in ({"patient": "P2"}, {"service": "2024-08-02"}):
        other, rows = claim_rows("OTHER", [(codes["plain"], 1, [])], codes=codes, **kw)
        x, hits = features_of(st, rb, other, rows)
        assert x["dup_lines_matched"] == 0 and not (hits["rule"] == "duplicate").any(), kw


def test_one_claim_per_rule_together(state, rb, codes):
    """Every rule at once on one claim: each hit is there, none masks another."""
    col1, col2 = codes["ptp_never"]
    x, hits = score(
        state,
        rb,
        codes,
        [(codes["mue6"], 8, []), (col1, 1, []), (col2, 1, []), (codes["addon"], 1, [])],
        dx=[codes["dx_invalid"], codes["dx_truncated"]],
        service="2025-01-15",
        submitted="2025-01-20",
    )
    assert {"mue", "ncci_ptp", "addon_without_primary", "invalid_icd", "truncated_icd", "outside_coverage"} <= set(
        hits["rule"]
    ), hits
    assert x["n_mue_exceeded"] == 1 and x["ptp_unbypassable"] >= 1 and x["n_addon_without_primary"] == 1


def test_em_visit_with_modifier_25_and_no_procedure(state, rb, codes):
    em = max(EM_LEVEL, key=lambda c: (EM_LEVEL[c], c))  # a level-5 visit code of features.engine.lines
    x, hits = score(state, rb, codes, [(em, 1, ["25"])])
    assert x["em_level"] == EM_LEVEL[em] == 5 and x["has_mod_25"] == 1 and x["mod25_without_procedure"] == 1
    x, _ = score(state, rb, codes, [(em, 1, [])])
    assert x["has_mod_25"] == 0 and x["mod25_without_procedure"] == 0


def test_paperwork_flags(state, rb, codes):
    claim, rows = claim_rows("NEW", [(codes["plain"], 1, [])], codes=codes)
    bare, _ = features_of(state, rb, claim, rows)
    sent, _ = features_of(state, rb, {**claim, "prior_auth_number": "PA123", "has_attachment": "true"}, rows)
    assert (bare["has_prior_auth"], bare["has_attachment"]) == (0, 0)
    assert (sent["has_prior_auth"], sent["has_attachment"]) == (1, 1)


# ------------------------------------------------------------------------------------------------ invariance
def test_renaming_the_claim_changes_no_feature(state, rb, codes):
    a, _ = score(state, rb, codes, [(codes["mue6"], 8, [])], cid="NEW")
    b, _ = score(state, rb, codes, [(codes["mue6"], 8, [])], cid="SOMETHING-ELSE-42")
    pd.testing.assert_series_equal(a, b, check_names=False)


def test_renaming_a_patient_everywhere_changes_no_feature(state, rb, codes):
    renamed = HistoryState.from_history(tiny_history(codes, rename={"P1": "ZZ-9"}), rb)
    a, ha = score(state, rb, codes, [(codes["plain"], 1, [])], patient="P1")
    b, hb = score(renamed, rb, codes, [(codes["plain"], 1, [])], patient="ZZ-9")
    assert a["patient_n_claims"] > 0  # the patient has a history: the test compares something
    pd.testing.assert_series_equal(a, b, check_names=False)
    assert len(ha) == len(hb) == 0


def test_modifiers_a_pair_does_not_need_change_no_rule_feature(state, rb, codes):
    a, _ = score(state, rb, codes, [(codes["mue6"], 8, [])])
    b, _ = score(state, rb, codes, [(codes["mue6"], 8, ["RT"])])
    assert (a[list(RULE_FEATURES)] == b[list(RULE_FEATURES)]).all()


# ------------------------------------------------------------------------------------------------ direction
def test_a_recoupment_in_the_providers_history_raises_its_rate(state, rb, codes):
    recouped = HistoryState.from_history(tiny_history(codes, recouped=["H3"]), rb)
    a, _ = score(state, rb, codes, [(codes["plain"], 1, [])])
    b, _ = score(recouped, rb, codes, [(codes["plain"], 1, [])])
    assert b["provider_recoup_rate"] > a["provider_recoup_rate"]
    assert b["provider_rate_units"] > a["provider_rate_units"]  # CO-151: units
    # the provider's own recoupment, not only its specialty's: a peer's (same specialty) raises it less
    peer = HistoryState.from_history(tiny_history(codes, recouped=["H12"]), rb)  # H12: OTHER_NPI's claim
    c, _ = score(peer, rb, codes, [(codes["plain"], 1, [])])
    assert b["specialty_recoup_rate"] == c["specialty_recoup_rate"]
    assert b["provider_recoup_rate"] > c["provider_recoup_rate"]
    assert b["provider_recoup_ratio"] > c["provider_recoup_ratio"]
    # a recoupment dated after the submission is not known yet: nothing changes
    late = tiny_history(codes, recouped=["H3"])
    late.recoupments["recouped_date"] = pd.Timestamp("2024-09-01")
    d, _ = score(HistoryState.from_history(late, rb), rb, codes, [(codes["plain"], 1, [])])
    assert d["provider_recoup_rate"] == a["provider_recoup_rate"]


def test_more_units_raise_the_mue_ratio(state, rb, codes):
    ratios = [score(state, rb, codes, [(codes["mue6"], u, [])])[0]["max_mue_ratio"] for u in (1, 3, 6, 9)]
    assert ratios == sorted(ratios) and len(set(ratios)) == 4


def test_recording_a_claim_raises_the_patients_count(codes, rb):
    st = HistoryState.from_history(tiny_history(codes), rb)
    a, _ = score(st, rb, codes, [(codes["plain"], 1, [])], cid="N1", patient="P2")
    claim, rows = claim_rows("N1", [(codes["plain"], 1, [])], patient="P2", codes=codes)
    features_of(st, rb, claim, rows, record=True)
    b, _ = score(
        st, rb, codes, [(codes["plain"], 1, [])], cid="N2", patient="P2", service="2024-08-03", submitted="2024-08-11"
    )
    assert b["patient_n_claims"] == a["patient_n_claims"] + 1 and b["patient_claims_30d"] == a["patient_claims_30d"] + 1
