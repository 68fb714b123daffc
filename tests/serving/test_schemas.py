"""CLAIM/SCORE models against the data contract, and CLAIM -> typed frames through validate_frames."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from pydantic import ValidationError

from features.contract import TABLES
from serving.schemas import (EXCLUDED_CLAIM_COLUMNS, EXCLUDED_LINE_COLUMNS, MAX_LINES_PER_CLAIM, Claim, Line,
                             Score, claims_to_frames, frames_to_claims, pydantic_fields)
from serving.scorer import SCORE_FIELDS

CLAIM = {
    "claim_id": "C-1", "patient_id": "P-1", "billing_npi": "1234567890", "payer_id": "MCR",
    "plan_type": "medicare", "claim_type": "professional", "place_of_service": "11", "frequency_code": "1",
    "submitted_date": "2025-03-04", "total_charge": 250.0, "diagnosis_codes": ["E119", "I10"],
    "has_attachment": False,
    "lines": [
        {"line_number": 1, "service_date": "2025-03-01", "procedure_code": "99214", "modifiers": ["25"],
         "units": 1, "line_charge": 200.0, "diagnosis_pointers": [1, 2]},
        {"line_number": 2, "service_date": "2025-03-01", "procedure_code": "36415", "units": 1,
         "line_charge": 50.0},
    ],
}


def _fields(conv, i=0):
    return {f["field"] for f in conv.errors[i]}


def test_claim_fields_are_the_contract_columns():
    claim_cols = [c for c in TABLES["claims"] if c.name not in EXCLUDED_CLAIM_COLUMNS]
    line_cols = [c for c in TABLES["claim_lines"] if c.name not in EXCLUDED_LINE_COLUMNS]
    assert set(Claim.model_fields) == {c.name for c in claim_cols} | {"lines"}
    assert set(Line.model_fields) == {c.name for c in line_cols}
    for model, cols in ((Claim, claim_cols), (Line, line_cols)):
        for c in cols:
            assert model.model_fields[c.name].is_required() == c.required, c.name
    assert Claim.model_fields["lines"].is_required()
    assert list(Score.model_fields) == SCORE_FIELDS


def test_valid_claim_becomes_typed_frames():
    conv = claims_to_frames([Claim.model_validate(CLAIM)])
    assert not conv.errors and conv.ok == [0]
    c, ln = conv.claims, conv.lines
    assert len(c) == 1 and len(ln) == 2
    assert c["submitted_date"].dtype == "datetime64[s]"
    assert list(c["diagnosis_codes"].iloc[0]) == ["E119", "I10"]
    assert ln["units"].dtype == "float64" and list(ln["claim_id"]) == ["C-1", "C-1"]
    assert list(ln["modifiers"].iloc[0]) == ["25"] and list(ln["diagnosis_pointers"].iloc[0]) == [1, 2]
    assert c["paid_date"].isna().all()


def test_semicolon_lists_and_numeric_codes_equal_json_arrays():
    alt = copy.deepcopy(CLAIM)
    alt["diagnosis_codes"] = "E119;I10"
    alt["place_of_service"] = 11
    alt["billing_npi"] = 1234567890
    alt["lines"][0]["modifiers"] = "25"
    alt["lines"][0]["diagnosis_pointers"] = "1;2"
    a = claims_to_frames([Claim.model_validate(CLAIM)])
    b = claims_to_frames([Claim.model_validate(alt)])
    pd.testing.assert_frame_equal(a.claims, b.claims)
    pd.testing.assert_frame_equal(a.lines, b.lines)


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.update(submitted_date="2025-02-30"), "claim.submitted_date"),
    (lambda c: c["lines"][1].update(service_date="03/01/2025"), "claim.lines[1].service_date"),
    (lambda c: c["lines"][0].update(units=-2), "claim.lines[0].units"),
    (lambda c: c["lines"][0].update(units=0), "claim.lines[0].units"),
    (lambda c: c["lines"][0].update(procedure_code="9921"), "claim.lines[0].procedure_code"),
    (lambda c: c.update(diagnosis_codes=["E11.9"]), "claim.diagnosis_codes"),
    (lambda c: c.update(diagnosis_codes=[]), "claim.diagnosis_codes"),
    (lambda c: c.update(billing_npi="12345"), "claim.billing_npi"),
    (lambda c: c.update(plan_type="gold"), "claim.plan_type"),
    (lambda c: c.update(total_charge=-1), "claim.total_charge"),
    (lambda c: c["lines"][0].update(modifiers=["25", "59", "XE", "LT", "RT"]), "claim.lines[0].modifiers"),
    (lambda c: c["lines"][0].update(diagnosis_pointers=[13]), "claim.lines[0].diagnosis_pointers"),
    (lambda c: c["lines"][1].update(line_number=1), "claim.lines[1].line_number"),
    (lambda c: c.update(claim_id=""), "claim.claim_id"),
])
def test_contract_problems_name_the_field(mutate, field):
    c = copy.deepcopy(CLAIM)
    mutate(c)
    conv = claims_to_frames([Claim.model_validate(c)], ["claim"])
    assert conv.ok == [] and field in _fields(conv)


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.pop("submitted_date"), "claim.submitted_date"),
    (lambda c: c["lines"][0].pop("units"), "claim.lines[0].units"),
    (lambda c: c["lines"][0].update(units="many"), "claim.lines[0].units"),
    (lambda c: c.update(total_charge=float("nan")), "claim.total_charge"),
    (lambda c: c.update(lines=[]), "claim.lines"),
    (lambda c: c.update(lines=[dict(c["lines"][1], line_number=i + 1) for i in range(MAX_LINES_PER_CLAIM + 1)]),
     "claim.lines"),
])
def test_shape_problems_name_the_field(mutate, field):
    c = copy.deepcopy(CLAIM)
    mutate(c)
    with pytest.raises(ValidationError) as e:
        Claim.model_validate(c)
    assert field in {f["field"] for f in pydantic_fields(e.value, "claim")}


def test_one_bad_claim_does_not_block_the_others():
    good, bad = copy.deepcopy(CLAIM), copy.deepcopy(CLAIM)
    bad["claim_id"] = "C-2"
    bad["lines"][0]["units"] = -1
    third = dict(copy.deepcopy(CLAIM), claim_id="C-3")
    models = [Claim.model_validate(x) for x in (good, bad, third)]
    conv = claims_to_frames(models, [f"claims[{i}]" for i in (0, 1, 2)])
    assert conv.ok == [0, 2] and list(conv.claims["claim_id"]) == ["C-1", "C-3"]
    assert _fields(conv, 1) == {"claims[1].lines[0].units"}
    assert set(conv.lines["claim_id"]) == {"C-1", "C-3"}


def test_frames_round_trip():
    conv = claims_to_frames([Claim.model_validate(CLAIM)])
    back = frames_to_claims(conv.claims, conv.lines)
    again = claims_to_frames([Claim.model_validate(back[0])])
    pd.testing.assert_frame_equal(conv.claims, again.claims)
    pd.testing.assert_frame_equal(conv.lines, again.lines)


def test_a_batch_is_validated_as_one_table(monkeypatch):
    """A batch goes through the contract as one table (its row-wise path): same frames and same errors as
    the contract's column-wise path, duplicates caught across the whole batch."""
    import features.contract as contract

    pos = ["11", "22", "81", "12"]
    raw = []
    for i in range(90):  # 180 lines: several chunks
        c = dict(copy.deepcopy(CLAIM), claim_id=f"C-{i}", place_of_service=pos[i % len(pos)] if i < 60 else "23",
                 frequency_code="7" if i % 9 == 0 else "1")
        raw.append(c)
    raw[5]["lines"][0]["units"] = -1
    raw[80]["claim_id"] = "C-3"  # a duplicate far from the first one
    models = [Claim.model_validate(x) for x in raw]
    prefixes = [f"claims[{i}]" for i in range(len(models))]
    a = claims_to_frames(models, prefixes)
    monkeypatch.setattr(contract, "FAST_PATH_MAX_ROWS", 0)
    b = claims_to_frames(models, prefixes)
    assert a.ok == b.ok and a.errors == b.errors
    assert set(a.errors) == {3, 5, 80} and _fields(a, 5) == {"claims[5].lines[0].units"}
    pd.testing.assert_frame_equal(a.claims, b.claims)  # incl. categorical levels of place of service
    pd.testing.assert_frame_equal(a.lines, b.lines)
