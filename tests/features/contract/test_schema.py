"""The contract's rules, each defined once (features/contract/schema.py, bounds.py): patterns, CARC map, bounds."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import CARC_TO_CAUSE, CAUSE_TO_CARC, CAUSES, cause_from_carc, causes_from_carcs
from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS, MAX_MODIFIERS
from tests.helpers.contract_tables import TEXT_COLUMNS


@pytest.mark.parametrize(
    "carc, cause",
    [
        ("CO-97", "bundling"),
        ("97", "bundling"),
        ("co-97", "bundling"),
        (" OA-18 ", "duplicate"),
        ("PI-B15", "bundling"),
        ("CO-151", "units"),
        ("CO-4", "procedure_coding"),
        ("CO-50", "medical_necessity"),
        ("CO-16", "documentation"),
        ("CO-27", "eligibility"),
        ("CO-45", "other"),
        ("PR-1", "other"),
        ("CO97", "bundling"),
        ("B15", "bundling"),
        ("18", "duplicate"),
        ("CO-1", "other"),
        ("", None),
        ("  ", None),
        (None, None),
        (float("nan"), None),
        (pd.NA, None),
    ],
)
def test_cause_from_carc(carc, cause):
    assert cause_from_carc(carc) == cause
    vec = causes_from_carcs(pd.Series([carc], dtype=object))
    assert (vec.iloc[0] if pd.notna(vec.iloc[0]) else None) == cause


def test_carc_maps_are_consistent():
    assert set(CARC_TO_CAUSE.values()) <= set(CAUSES)
    assert set(CAUSE_TO_CARC) == set(CAUSES)
    for cause, carc in CAUSE_TO_CARC.items():
        assert cause_from_carc(carc) == cause


def test_bounds_are_defined_once_on_the_columns():
    """Every amount, units and line number column has a finite documented maximum; dates a year range."""
    from features.contract import DATE_YEARS, MAX_AMOUNT, MAX_LINE_NUMBER, MAX_UNITS, TABLES

    kinds = {c.name: c for cols in TABLES.values() for c in cols}
    for name in ("total_charge", "paid_amount", "line_charge", "line_paid", "recouped_amount"):
        assert kinds[name].upper == MAX_AMOUNT == 100_000_000
    assert kinds["units"].upper == MAX_UNITS == 99_999
    assert kinds["line_number"].upper == MAX_LINE_NUMBER
    for cols in TABLES.values():
        for c in cols:
            if c.kind == "date":
                assert c.years == DATE_YEARS == (1900, 2199)


def test_counts_and_lengths_are_read_from_features_bounds():
    """Every free-text column has a length and every list a count: the values of features/contract/bounds.py."""
    from features.contract import TABLES

    for cols in TABLES.values():
        for c in cols:
            if c.kind in ("id", "str"):
                key = c.name if c.name in MAX_CHARS else None
                assert c.max_chars is not None and c.max_chars == MAX_CHARS[key], c.name
            if c.kind in ("list_str", "list_int"):
                assert c.max_items is not None, c.name
    assert {(t, c) for t, c, _ in TEXT_COLUMNS} == {
        (t, c.name) for t, cols in TABLES.items() for c in cols if c.kind in ("id", "str")
    }
    kinds = {c.name: c for c in TABLES["claims"] + TABLES["claim_lines"]}
    assert kinds["diagnosis_codes"].max_items == MAX_DIAGNOSIS_CODES == 25
    assert kinds["modifiers"].max_items == MAX_MODIFIERS == 4
    assert kinds["diagnosis_pointers"].max_items == MAX_DIAGNOSIS_POINTERS == 4


@pytest.mark.parametrize(
    "pattern, good, bad",
    [
        ("PROCEDURE_PATTERN", ["99213", "0001A", "G0008", "J3490"], ["9921", "992133", "ABCDE", "g0008", "99.13"]),
        ("MODIFIER_PATTERN", ["25", "RT", "XU", "59"], ["2", "255", "rt", "2 "]),
        ("NPI_PATTERN", ["1234567893"], ["123456789", "12345678901", "12345x7893", "１２３４５６７８９３"]),
        ("ICD10_PATTERN", ["E119", "I10", "Z0000", "S72001A"], ["E11.9", "A1", "E11999999", "1E11", "e119"]),
    ],
)
def test_code_patterns_match_whole_ascii_codes(pattern, good, bad):
    """The patterns every reader of claims shares (the contract, the X12 importer) match whole codes only."""
    import features.contract.schema as schema

    regex = getattr(schema, pattern)
    assert all(regex.fullmatch(v) for v in good)
    assert not any(regex.fullmatch(v) for v in bad)


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize(
    "column, value, expected",
    [
        ("billing_npi", "１２３４５６７８９３", "a 10-digit NPI"),
        ("billing_npi", "١٢٣٤٥٦٧٨٩٣", "a 10-digit NPI"),
        ("place_of_service", "١١", "a 2-digit place-of-service code"),
        ("place_of_service", "٣", "a 2-digit place-of-service code"),
    ],
)
def test_digits_other_than_ascii_are_refused_in_codes(column, value, expected, large):
    """Full-width and Arabic-Indic digits are not digits of an NPI or a place of service (as in numbers and
    dates), however large the table (the row-wise and the vectorized checks read the same pattern)."""
    from features.contract import FAST_PATH_MAX_ROWS, validate_table
    from tests.helpers.contract_tables import good_tables

    claims = good_tables()["claims"].astype(object)
    claims.loc[0, column] = value
    if large:
        claims = pd.concat([claims] * (FAST_PATH_MAX_ROWS // 3 + 1), ignore_index=True)
        claims["claim_id"] = [f"C{i}" for i in range(len(claims))]
    _, problems, _ = validate_table(claims, "claims", "claims.csv")
    assert [(p.column, p.rows[0], p.expected) for p in problems] == [(column, 1, expected)]


def test_every_message_reads_the_bounds_of_its_column():
    """The expected text of a column names its own bounds (one place for every message)."""
    from features.contract import TABLES
    from features.contract.schema import expected, too_long, too_many

    cols = {c.name: c for cols in TABLES.values() for c in cols}
    assert expected(cols["units"]) == "a number > 0 and at most 99,999"
    assert expected(cols["submitted_date"]) == "a date YYYY-MM-DD in the years 1900 to 2199"
    assert expected(cols["plan_type"]) == "one of medicare, medicare_advantage, medicaid, commercial"
    assert too_long(cols["state"]) == "text of at most 2 characters"
    assert too_many(cols["diagnosis_pointers"]) == "at most 4 pointer(s)"
    assert too_many(cols["modifiers"]) == "at most 4 code(s)"
