"""CLAIM/SCORE models against the data contract, and CLAIM -> typed frames through validate_frames."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from pydantic import ValidationError

from features.contract import TABLES
from serving.schemas import (
    EXCLUDED_CLAIM_COLUMNS,
    EXCLUDED_LINE_COLUMNS,
    MAX_CHARS,
    MAX_CLAIMS_PER_BATCH,
    MAX_DIAGNOSIS_CODES,
    MAX_DIAGNOSIS_POINTERS,
    MAX_LINES_PER_CLAIM,
    MAX_MODIFIERS,
    BatchRequest,
    Claim,
    Line,
    Score,
    ScoreRequest,
    claims_to_frames,
    frames_to_claims,
    list_text_chars,
    pydantic_fields,
)
from serving.scorer import SCORE_FIELDS

CLAIM = {
    "claim_id": "C-1",
    "patient_id": "P-1",
    "billing_npi": "1234567890",
    "payer_id": "MCR",
    "plan_type": "medicare",
    "claim_type": "professional",
    "place_of_service": "11",
    "frequency_code": "1",
    "submitted_date": "2025-03-04",
    "total_charge": 250.0,
    "diagnosis_codes": ["E119", "I10"],
    "has_attachment": False,
    "lines": [
        {
            "line_number": 1,
            "service_date": "2025-03-01",
            "procedure_code": "99214",
            "modifiers": ["25"],
            "units": 1,
            "line_charge": 200.0,
            "diagnosis_pointers": [1, 2],
        },
        {"line_number": 2, "service_date": "2025-03-01", "procedure_code": "36415", "units": 1, "line_charge": 50.0},
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
    assert list(Score.model_fields) == [*SCORE_FIELDS, "recorded"]  # recorded: online only


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


@pytest.mark.parametrize(
    "mutate, field",
    [
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
        (lambda c: c["lines"][0].update(modifiers=["25", "5"]), "claim.lines[0].modifiers"),
        (lambda c: c["lines"][0].update(diagnosis_pointers=[13]), "claim.lines[0].diagnosis_pointers"),
        (lambda c: c.update(place_of_service="1A"), "claim.place_of_service"),
        (lambda c: c["lines"][1].update(line_number=1), "claim.lines[1].line_number"),
        (lambda c: c.update(claim_id=""), "claim.claim_id"),
    ],
)
def test_contract_problems_name_the_field(mutate, field):
    c = copy.deepcopy(CLAIM)
    mutate(c)
    conv = claims_to_frames([Claim.model_validate(c)], ["claim"])
    assert conv.ok == [] and field in _fields(conv)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c.pop("submitted_date"), "claim.submitted_date"),
        (lambda c: c["lines"][0].pop("units"), "claim.lines[0].units"),
        (lambda c: c["lines"][0].update(units="many"), "claim.lines[0].units"),
        (lambda c: c.update(total_charge=float("nan")), "claim.total_charge"),
        (lambda c: c.update(lines=[]), "claim.lines"),
        (
            lambda c: c.update(lines=[dict(c["lines"][1], line_number=i + 1) for i in range(MAX_LINES_PER_CLAIM + 1)]),
            "claim.lines",
        ),
    ],
)
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
    import features.contract.load as contract

    pos = ["11", "22", "81", "12"]
    raw = []
    for i in range(90):  # 180 lines: several chunks
        c = dict(
            copy.deepcopy(CLAIM),
            claim_id=f"C-{i}",
            place_of_service=pos[i % len(pos)] if i < 60 else "23",
            frequency_code="7" if i % 9 == 0 else "1",
        )
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


# --------------------------------------------------------------------------------------
# bounds: every list and string of a request (issue 11, section 3)
# --------------------------------------------------------------------------------------

#: (where in a CLAIM, bound) for every text field
TEXT_BOUNDS = [
    (("claim_id",), MAX_CHARS["claim_id"]),
    (("patient_id",), MAX_CHARS["patient_id"]),
    (("billing_npi",), MAX_CHARS["npi"]),
    (("rendering_npi",), MAX_CHARS["npi"]),
    (("payer_id",), MAX_CHARS["payer_id"]),
    (("plan_type",), MAX_CHARS["enum"]),
    (("claim_type",), MAX_CHARS["enum"]),
    (("place_of_service",), MAX_CHARS["place_of_service"]),
    (("frequency_code",), MAX_CHARS["frequency_code"]),
    (("submitted_date",), MAX_CHARS["date"]),
    (("prior_auth_number",), MAX_CHARS["prior_auth_number"]),
    (("lines", 0, "service_date"), MAX_CHARS["date"]),
    (("lines", 0, "procedure_code"), MAX_CHARS["procedure_code"]),
]

#: (where, items, bound on items, bound on an item's characters, item over the bound)
LIST_BOUNDS = [
    (("diagnosis_codes",), "E119", MAX_DIAGNOSIS_CODES, MAX_CHARS["diagnosis_code"]),
    (("lines", 0, "modifiers"), "25", MAX_MODIFIERS, MAX_CHARS["modifier"]),
    (("lines", 0, "diagnosis_pointers"), 1, MAX_DIAGNOSIS_POINTERS, MAX_CHARS["diagnosis_pointer"]),
]


def _with(where: tuple, value) -> dict:
    c = copy.deepcopy(CLAIM)
    obj = c
    for k in where[:-1]:
        obj = obj[k]
    obj[where[-1]] = value
    return c


def _path(prefix: str, where: tuple) -> str:
    from serving.schemas import field_path

    return field_path(prefix, list(where))


def _refused(claim: dict, prefix: str = "claims[3]") -> dict[str, str]:
    """{field: message} of a claim that pydantic must refuse, with paths as in a batch."""
    with pytest.raises(ValidationError) as e:
        Claim.model_validate(claim)
    return {f["field"]: f["message"] for f in pydantic_fields(e.value, prefix)}


@pytest.mark.parametrize("where, bound", TEXT_BOUNDS, ids=[".".join(map(str, w)) for w, _ in TEXT_BOUNDS])
def test_every_text_field_is_bounded(where, bound):
    field = _path("claims[3]", where)
    assert field in _refused(_with(where, "1" * (bound + 1)))
    assert field in _refused(_with(where, " " + "1" * (bound + 1) + " "))
    Claim.model_validate(_with(where, " " + "1" * bound + " "))  # the bound itself passes pydantic (trimmed)


@pytest.mark.parametrize("where, item, n, chars", LIST_BOUNDS, ids=[w[-1] for w, *_ in LIST_BOUNDS])
def test_every_list_field_is_bounded_as_array_and_as_text(where, item, n, chars):
    field = _path("claims[3]", where)
    too_long = "9" * (chars + 1)
    assert field in _refused(_with(where, [item] * (n + 1)))  # array: items
    assert field in _refused(_with(where, ";".join([str(item)] * (n + 1))))  # text: items after splitting
    assert field in _refused(_with(where, ";".join([str(item)] * (n - 1) + [too_long])))  # text: one item
    assert field in _refused(_with(where, "1" * (list_text_chars(n, chars) + 1)))  # text: length
    assert field in _refused(_with(where, [too_long if isinstance(item, str) else int(too_long)]))  # array: one item
    # at the bounds: n items, a space after each separator, empty items dropped as the contract drops them
    for ok in (
        [item] * n,
        "; ".join([str(item)] * n),
        ";".join([str(item)] * n) + ";;",
        [item] * (n - 1) + ["9" * chars],
    ):
        if isinstance(item, int) and isinstance(ok, list):
            ok = [int(x) for x in ok]
        Claim.model_validate(_with(where, ok))


def test_lines_and_claims_per_batch_are_bounded():
    line = CLAIM["lines"][1]
    lines = [dict(line, line_number=i + 1) for i in range(MAX_LINES_PER_CLAIM + 1)]
    assert "claims[3].lines" in _refused(dict(CLAIM, lines=lines))
    Claim.model_validate(dict(CLAIM, lines=lines[:-1]))
    with pytest.raises(ValidationError) as e:
        BatchRequest.model_validate({"claims": [{}] * (MAX_CLAIMS_PER_BATCH + 1)})
    assert [f["field"] for f in pydantic_fields(e.value, "")] == ["claims"]
    assert len(BatchRequest.model_validate({"claims": [{}] * MAX_CLAIMS_PER_BATCH}).claims) == MAX_CLAIMS_PER_BATCH


def test_claims_at_every_bound_pass_the_contract():
    """The bounds refuse only what no claim needs: a claim at every bound is valid and becomes frames."""
    c = copy.deepcopy(CLAIM)
    c["claim_id"] = "C" * MAX_CHARS["claim_id"]
    c["patient_id"] = "P" * MAX_CHARS["patient_id"]
    c["payer_id"] = "Y" * MAX_CHARS["payer_id"]
    c["prior_auth_number"] = "A" * MAX_CHARS["prior_auth_number"]
    c["diagnosis_codes"] = [f"E1{i:02d}" for i in range(MAX_DIAGNOSIS_CODES)]
    c["lines"][0]["modifiers"] = ["25", "59", "LT", "RT"][:MAX_MODIFIERS]
    c["lines"][0]["diagnosis_pointers"] = ";".join(str(i + 1) for i in range(MAX_DIAGNOSIS_POINTERS))
    c["lines"] = c["lines"] + [dict(c["lines"][1], line_number=i + 3) for i in range(MAX_LINES_PER_CLAIM - 2)]
    conv = claims_to_frames([Claim.model_validate(c)])
    assert not conv.errors and conv.ok == [0]
    assert len(conv.claims["diagnosis_codes"].iloc[0]) == MAX_DIAGNOSIS_CODES
    assert len(conv.lines) == MAX_LINES_PER_CLAIM
    assert list(conv.lines["diagnosis_pointers"].iloc[0]) == list(range(1, MAX_DIAGNOSIS_POINTERS + 1))


def test_a_million_diagnosis_codes_are_refused_naming_the_field():
    """Issue 11: 1,000,000 codes (7 MB) were accepted and took 8.4 s; the bound refuses them, and the error
    shows a short value, not the list."""
    codes = ["E119"] * 1_000_000
    for sent in (codes, ";".join(codes)):
        with pytest.raises(ValidationError) as e:
            ScoreRequest.model_validate({"claim": dict(CLAIM, diagnosis_codes=sent)})
        fields = pydantic_fields(e.value, "")
        assert [f["field"] for f in fields] == ["claim.diagnosis_codes"]
        assert "at most" in fields[0]["message"] and len(str(fields[0]["value"])) <= 60


NOT_NUMBERS = [True, False, "2", "many", None, [1], {"n": 1}]


@pytest.mark.parametrize(
    "where", [("total_charge",), ("lines", 0, "units"), ("lines", 0, "line_charge"), ("lines", 0, "line_number")]
)
def test_numbers_are_json_numbers_never_booleans_or_text(where):
    """``units: true`` was scored as 1 unit (probability 1.0); ``"2"`` was taken as 2."""
    field = _path("claims[3]", where)
    for v in NOT_NUMBERS:
        assert field in _refused(_with(where, v)), v
    assert _refused(_with(where, True))[field] == "expected a JSON number, not a boolean"
    for v in (2, 2.0):
        Claim.model_validate(_with(where, v))


def test_booleans_and_codes_take_only_their_json_types():
    assert "claims[3].has_attachment" in _refused(dict(CLAIM, has_attachment="yes"))
    assert "claims[3].has_attachment" in _refused(dict(CLAIM, has_attachment=1))
    for flag in ("explain", "record"):
        with pytest.raises(ValidationError):
            ScoreRequest.model_validate({"claim": CLAIM, flag: "false"})
    # codes and ids: text, or a whole JSON number of at most 15 digits (never a boolean, a fraction, < 0)
    assert Claim.model_validate(dict(CLAIM, billing_npi=1234567890, place_of_service=11.0)).billing_npi == "1234567890"
    for v in (True, 11.5, -1, 10**15, [11]):
        assert "claims[3].place_of_service" in _refused(dict(CLAIM, place_of_service=v)), v
    assert "claims[3].lines[0].modifiers" in _refused(_with(("lines", 0, "modifiers"), [True]))
    assert "claims[3].lines[0].diagnosis_pointers" in _refused(_with(("lines", 0, "diagnosis_pointers"), ["1"]))
    assert "claims[3].diagnosis_codes" in _refused(dict(CLAIM, diagnosis_codes={"a": 1}))


# --------------------------------------------------------------------------------------
# one set of bounds: the service and the claims history loader refuse the same values
# --------------------------------------------------------------------------------------

from features.contract import bounds  # noqa: E402

#: (where in a CLAIM, contract table, bound from features/contract/bounds.py, a value of k items / characters)
SHARED_BOUNDS = [
    (("claim_id",), "claims", bounds.MAX_CHARS["claim_id"], lambda k: "C" * k),
    (("patient_id",), "claims", bounds.MAX_CHARS["patient_id"], lambda k: "P" * k),
    (("payer_id",), "claims", bounds.MAX_CHARS["payer_id"], lambda k: "Y" * k),
    (("prior_auth_number",), "claims", bounds.MAX_CHARS["prior_auth_number"], lambda k: "A" * k),
    (("diagnosis_codes",), "claims", bounds.MAX_DIAGNOSIS_CODES, lambda k: ["E119"] * k),
    (("lines", 0, "modifiers"), "claim_lines", bounds.MAX_MODIFIERS, lambda k: ["25"] * k),
    (("lines", 0, "diagnosis_pointers"), "claim_lines", bounds.MAX_DIAGNOSIS_POINTERS, lambda k: [1] * k),
]


def _loader_result(tmp_path, where: tuple, table: str, value) -> list:
    """Contract problems of :data:`CLAIM` written as a CSV history with ``value`` in its column (text form)."""
    from features.contract import ContractError, load_history, write_history

    conv = claims_to_frames([Claim.model_validate(CLAIM)])
    d = write_history({"claims": conv.claims, "claim_lines": conv.lines}, tmp_path / "h")
    df = pd.read_csv(d / f"{table}.csv", dtype=str, keep_default_na=False)
    text = ";".join(map(str, value)) if isinstance(value, list) else value
    if where[-1] == "claim_id":  # a claim id is renamed in both tables
        for t in ("claims", "claim_lines"):
            other = pd.read_csv(d / f"{t}.csv", dtype=str, keep_default_na=False)
            other["claim_id"] = text
            other.to_csv(d / f"{t}.csv", index=False)
        df = pd.read_csv(d / f"{table}.csv", dtype=str, keep_default_na=False)
    else:
        df.loc[0, where[-1]] = text
    df.to_csv(d / f"{table}.csv", index=False)
    try:
        load_history(d)
    except ContractError as exc:
        return [(p.file, p.column) for p in exc.problems]
    return []


@pytest.mark.parametrize("where, table, bound, make", SHARED_BOUNDS, ids=[w[-1] for w, *_ in SHARED_BOUNDS])
def test_service_and_loader_refuse_the_same_values(tmp_path, where, table, bound, make):
    """At the bound both accept; one over it both refuse, each naming the field (the service) or the file and
    column (the loader): the bounds are features/contract/bounds.py's, read by both."""
    at, over = make(bound), make(bound + 1)
    conv = claims_to_frames([Claim.model_validate(_with(where, at))])
    assert not conv.errors
    assert _loader_result(tmp_path / "at", where, table, at) == []
    assert _path("claims[3]", where) in _refused(_with(where, over))
    assert (f"{table}.csv", where[-1]) in _loader_result(tmp_path / "over", where, table, over)
