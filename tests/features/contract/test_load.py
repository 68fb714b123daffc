"""Loading, typing and validating a claims history directory (features/contract/load.py), CSV and Parquet."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.contract import (
    CAUSES,
    ContractError,
    History,
    Problem,
    empty_table,
    load_history,
    validate_frames,
    validate_table,
)
from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS
from tests.helpers.contract_tables import LIST_COLUMNS, TEXT_COLUMNS, good_tables, load_error, problem_line, write_dir


DATE = "a date YYYY-MM-DD in the years 1900 to 2199"


MONEY = "an amount >= 0 and at most 100,000,000"


MONEY_POS = "an amount > 0 and at most 100,000,000"


UNITS = "a number > 0 and at most 99,999"


LINE = "a whole number >= 1 and at most 999,999"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_good_history_loads_typed(tmp_path, fmt):
    h = load_history(write_dir(tmp_path / "h", good_tables(), fmt))
    assert isinstance(h, History)
    c, ln, r = h.claims, h.claim_lines, h.recoupments
    assert len(c) == 3 and len(ln) == 4 and len(r) == 4 and len(h.coverage) == 2 and len(h.providers) == 2
    # enums: categoricals with the contract's fixed levels (not just the values present)
    assert isinstance(c["plan_type"].dtype, pd.CategoricalDtype)
    assert list(c["plan_type"].cat.categories) == ["medicare", "medicare_advantage", "medicaid", "commercial"]
    assert list(c["claim_type"].cat.categories) == ["professional", "institutional"]
    assert list(c["frequency_code"].cat.categories) == ["1", "7", "8"]
    assert list(r["cause"].cat.categories) == list(CAUSES)
    # dates
    for df, col in [
        (c, "submitted_date"),
        (c, "paid_date"),
        (ln, "service_date"),
        (r, "recouped_date"),
        (h.coverage, "coverage_start"),
        (h.coverage, "coverage_end"),
    ]:
        assert pd.api.types.is_datetime64_dtype(df[col].dtype), col
    assert c["submitted_date"].iloc[0] == pd.Timestamp("2024-01-05")
    assert pd.isna(c["paid_date"].iloc[1]) and pd.isna(h.coverage["coverage_end"].iloc[0])
    # lists: Arrow list columns
    for df, col in [(c, "diagnosis_codes"), (ln, "modifiers"), (ln, "diagnosis_pointers")]:
        assert isinstance(df[col].dtype, pd.ArrowDtype) and pa.types.is_list(df[col].dtype.pyarrow_dtype), col
    assert c["diagnosis_codes"].iloc[0] == ["E119", "I10"]
    assert ln["modifiers"].tolist() == [["25"], [], [], ["RT", "LT"]]
    assert ln["diagnosis_pointers"].tolist() == [[1, 2], [1], [1], []]
    # money and units: float; line_number int; bool
    for df, col in [
        (c, "total_charge"),
        (c, "paid_amount"),
        (ln, "units"),
        (ln, "line_charge"),
        (ln, "line_paid"),
        (r, "recouped_amount"),
    ]:
        assert df[col].dtype == np.float64, col
    assert c["total_charge"].tolist() == [120.5, 80.0, 300.0]
    assert ln["units"].iloc[3] == 1.5
    assert ln["line_number"].dtype.kind == "i"
    assert c["has_attachment"].dtype == bool and c["has_attachment"].tolist() == [True, False, False]
    assert c["billing_npi"].iloc[0] == "1234567893"
    assert pd.isna(c["rendering_npi"].iloc[1])
    assert h.last_date == pd.Timestamp("2024-09-01")


def test_recoupment_cause_derived_from_carc(tmp_path):
    t = good_tables()
    t["recoupments"]["cause"] = ["", "", "", "documentation"]  # an explicit cause wins over the CARC
    h = load_history(write_dir(tmp_path / "h", t))
    # CO-97 -> bundling, 18 -> duplicate, PR-1 given as documentation, empty carc and cause -> other
    assert h.recoupments["cause"].astype(str).tolist() == ["bundling", "other", "duplicate", "documentation"]
    t["recoupments"]["cause"] = ""
    h = load_history(write_dir(tmp_path / "h2", t))
    assert h.recoupments["cause"].astype(str).tolist() == ["bundling", "other", "duplicate", "other"]


def test_optional_tables_may_be_absent_and_recoupments_can_be_required(tmp_path):
    t = good_tables()
    d = write_dir(tmp_path / "h", {"claims": t["claims"], "claim_lines": t["claim_lines"]})
    h = load_history(d)
    assert h.recoupments is None and h.coverage is None and h.providers is None
    with pytest.raises(ContractError, match=r"recoupments\.csv.*a recoupments file"):
        load_history(d, require_recoupments=True)


def test_missing_required_table(tmp_path):
    t = good_tables()
    err = load_error(tmp_path, {"claims": t["claims"]})
    assert "claim_lines.csv" in str(err) and "a claim_lines file" in str(err)


def test_unknown_extra_column_is_a_warning_not_an_error(tmp_path):
    t = good_tables()
    t["claims"]["my_notes"] = "x"
    with pytest.warns(UserWarning, match=r"claims\.csv: ignoring unknown column\(s\) my_notes"):
        h = load_history(write_dir(tmp_path / "h", t))
    assert "my_notes" not in h.claims.columns


def test_csv_with_bom_and_padded_header(tmp_path):
    t = good_tables()
    d = write_dir(tmp_path / "h", t)
    text = (d / "claims.csv").read_text()
    header, rest = text.split("\n", 1)
    (d / "claims.csv").write_text("\ufeff" + header.replace("claim_id", " claim_id ") + "\n" + rest, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = load_history(d)
    assert h.claims["claim_id"].tolist() == ["C1", "C2", "C3"]


def test_gzipped_csv_and_quoted_newlines(tmp_path):
    t = good_tables()
    t["claims"].loc[1, "prior_auth_number"] = "PA 1,\nsecond line"
    d = write_dir(tmp_path / "h", t)
    (d / "claim_lines.csv").unlink()
    t["claim_lines"].to_csv(d / "claim_lines.csv.gz", index=False)
    h = load_history(d)
    assert h.claims["prior_auth_number"].iloc[1] == "PA 1,\nsecond line"
    assert len(h.claim_lines) == 4


def test_empty_table_is_typed():
    e = empty_table("claim_lines")
    assert len(e) == 0
    assert pd.api.types.is_datetime64_dtype(e["service_date"].dtype)
    assert pa.types.is_list(e["modifiers"].dtype.pyarrow_dtype)
    assert e["units"].dtype == np.float64


def test_validate_frames_accepts_sliced_typed_frames():
    h = validate_frames(good_tables())
    sub = validate_frames({"claims": h.claims.iloc[1:], "claim_lines": h.claim_lines.iloc[2:]})
    assert sub.claim_lines["modifiers"].tolist() == [[], ["RT", "LT"]]
    assert sub.claim_lines["diagnosis_pointers"].tolist() == [[1], []]


def test_lists_ignore_empty_items_and_case():
    t = good_tables()
    t["claims"]["diagnosis_codes"] = ["e119; I10 ;", "Z0000", "M545"]
    h = validate_frames(t)
    assert h.claims["diagnosis_codes"].iloc[0] == ["E119", "I10"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_required_column(tmp_path, fmt):
    t = good_tables()
    t["claims"] = t["claims"].drop(columns=["submitted_date"])
    err = load_error(tmp_path, t, fmt)
    line = problem_line(err, "submitted_date")
    assert f"claims.{fmt}" in line and "required column to be present" in line
    assert len(err.problems) == 1  # no follow-up noise (and no crash) from the missing column


def test_missing_claim_id_column_does_not_crash_relations(tmp_path):
    t = good_tables()
    t["claim_lines"] = t["claim_lines"].drop(columns=["claim_id"])
    err = load_error(tmp_path, t)
    assert "claim_lines.csv: column 'claim_id': expected this required column to be present" in str(err)


@pytest.mark.parametrize(
    "table, column, value, expected",
    [
        ("claims", "submitted_date", "2024-02-30", f"{DATE} (got '2024-02-30')"),
        ("claims", "paid_date", "01/20/2024", f"{DATE} (got '01/20/2024')"),
        ("claims", "total_charge", "-5", f"{MONEY} (got '-5')"),
        ("claims", "total_charge", "abc", f"{MONEY} (got 'abc')"),
        ("claim_lines", "units", "0", f"{UNITS} (got '0')"),
        ("claim_lines", "units", "-1", f"{UNITS} (got '-1')"),
        ("claim_lines", "line_number", "1.5", f"{LINE} (got '1.5')"),
        ("claim_lines", "procedure_code", "9921", "a CPT or HCPCS code"),
        ("claim_lines", "procedure_code", "ABCDE", "a CPT or HCPCS code"),
        ("claims", "diagnosis_codes", "E11.9", "ICD-10-CM codes without dots"),
        ("claims", "billing_npi", "12345", "a 10-digit NPI (got '12345')"),
        ("claims", "rendering_npi", "12345678AB", "a 10-digit NPI (got '12345678AB')"),
        ("claims", "plan_type", "medicare_part_z", "one of medicare, medicare_advantage, medicaid, commercial"),
        ("claims", "frequency_code", "9", "one of 1, 7, 8 (got '9')"),
        ("claims", "has_attachment", "maybe", "true/false (also 1/0, yes/no, Y/N) (got 'maybe')"),
        ("claims", "place_of_service", "ABC", "a 2-digit place-of-service code"),
        ("claim_lines", "modifiers", "25;59;XU;RT;LT", "at most 4 code(s)"),
        ("claim_lines", "modifiers", "2", "2-character modifiers"),
        ("claim_lines", "diagnosis_pointers", "1;13", "whole numbers 1..12"),
        ("recoupments", "recouped_amount", "0", f"{MONEY_POS} (got '0')"),
        ("recoupments", "cause", "fraud", "one of duplicate, bundling"),
        ("coverage", "plan_type", "gold", "one of medicare"),
        # bounds: every amount, units, line number and date (docs/contract.md)
        ("claims", "total_charge", "1e308", f"{MONEY} (got '1e308')"),
        ("claims", "total_charge", "inf", f"{MONEY} (got 'inf')"),
        ("claims", "total_charge", "NaN", f"{MONEY} (got 'NaN')"),
        ("claims", "total_charge", "100000000.01", f"{MONEY} (got '100000000.01')"),
        ("claims", "total_charge", "-0.01", f"{MONEY} (got '-0.01')"),
        ("claims", "paid_amount", "-inf", f"{MONEY} (got '-inf')"),
        ("claims", "paid_amount", "1e20", f"{MONEY} (got '1e20')"),
        ("claim_lines", "line_charge", "Infinity", f"{MONEY} (got 'Infinity')"),
        ("claim_lines", "line_paid", "nan", f"{MONEY} (got 'nan')"),
        ("claim_lines", "line_paid", "100000001", f"{MONEY} (got '100000001')"),
        ("claim_lines", "units", "100000", f"{UNITS} (got '100000')"),
        ("claim_lines", "units", "true", f"{UNITS} (got 'true')"),
        ("claim_lines", "units", "１２", f"{UNITS} (got '１２')"),
        ("claim_lines", "units", "inf", f"{UNITS} (got 'inf')"),
        ("claim_lines", "line_number", "1000000", f"{LINE} (got '1000000')"),
        ("claim_lines", "line_number", "99999999999", f"{LINE} (got '99999999999')"),
        ("recoupments", "recouped_amount", "1e308", f"{MONEY_POS} (got '1e308')"),
        ("recoupments", "recouped_amount", "-5", f"{MONEY_POS} (got '-5')"),
        ("claims", "submitted_date", "0000-01-01", f"{DATE} (got '0000-01-01')"),
        ("claims", "submitted_date", "-2024-01-01", f"{DATE} (got '-2024-01-01')"),
        ("claims", "submitted_date", "２０２４-01-05", f"{DATE} (got '２０２４-01-05')"),
        ("claims", "paid_date", "2200-01-01", f"{DATE} (got '2200-01-01')"),
        ("claim_lines", "service_date", "1899-12-31", f"{DATE} (got '1899-12-31')"),
        ("claim_lines", "service_date", "١٩٩٩-01-01", f"{DATE} (got '١٩٩٩-01-01')"),
        ("recoupments", "recouped_date", "9999-12-31", f"{DATE} (got '9999-12-31')"),
        ("coverage", "coverage_start", "0001-01-01", f"{DATE} (got '0001-01-01')"),
        ("coverage", "coverage_end", "+2024-01-01", f"{DATE} (got '+2024-01-01')"),
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bad_value_is_reported_with_file_row_column_expectation(tmp_path, fmt, table, column, value, expected):
    t = good_tables()
    t[table].loc[1, column] = value  # data row 2
    err = load_error(tmp_path, t, fmt)
    line = problem_line(err, f"column '{column}'")
    assert line.strip().startswith(f"- {table}.{fmt} row 2: column '{column}': expected"), line
    assert expected in line
    assert len(err.problems) == 1, str(err)


def test_blank_required_value(tmp_path):
    t = good_tables()
    t["claims"].loc[2, "payer_id"] = ""
    t["claims"].loc[0, "diagnosis_codes"] = ""
    err = load_error(tmp_path, t)
    assert "claims.csv row 3: column 'payer_id': expected a value (a non-empty identifier)" in str(err)
    assert "claims.csv row 1: column 'diagnosis_codes': expected at least 1 code(s)" in str(err)


def test_duplicate_claim_id(tmp_path):
    t = good_tables()
    t["claims"].loc[2, "claim_id"] = "C1"
    t["claim_lines"].loc[3, "claim_id"] = "C1"
    t["claim_lines"].loc[3, "line_number"] = "3"
    t["recoupments"].loc[3, "claim_id"] = "C1"
    err = load_error(tmp_path, t)
    assert (
        "claims.csv rows 1, 3: column 'claim_id': expected unique claim ids (duplicate claim_id) (got 'C1', 'C1')"
        in str(err)
    )


def test_duplicate_line_number(tmp_path):
    t = good_tables()
    t["claim_lines"].loc[1, "line_number"] = "1"
    err = load_error(tmp_path, t)
    assert "claim_lines.csv rows 1, 2: column 'line_number': expected unique line numbers within a claim" in str(err)


def test_line_without_a_claim(tmp_path):
    t = good_tables()
    t["claim_lines"].loc[3, "claim_id"] = "C9"
    err = load_error(tmp_path, t)
    assert (
        "claim_lines.csv row 4: column 'claim_id': expected a claim_id present in claims "
        "(line without a claim) (got 'C9')"
    ) in str(err)
    # C3 lost its only line
    assert (
        "claims.csv row 3: column 'claim_id': expected at least one line in claim_lines "
        "(claim without lines) (got 'C3')"
    ) in str(err)


def test_recoupment_of_unknown_claim(tmp_path):
    t = good_tables()
    t["recoupments"].loc[0, "claim_id"] = "NOPE"
    err = load_error(tmp_path, t)
    assert (
        "recoupments.csv row 1: column 'claim_id': expected a claim_id present in claims "
        "(recoupment of an unknown claim) (got 'NOPE')"
    ) in str(err)


def test_paid_before_submitted(tmp_path):
    t = good_tables()
    t["claims"].loc[0, "paid_date"] = "2023-12-31"
    err = load_error(tmp_path, t)
    assert "claims.csv row 1: column 'paid_date': expected a date on or after submitted_date" in str(err)


def test_all_errors_of_all_files_in_one_report(tmp_path):
    t = good_tables()
    t["claims"].loc[0, "submitted_date"] = "yesterday"
    t["claims"].loc[1, "billing_npi"] = "1"
    t["claims"].loc[2, "plan_type"] = "other"
    t["claim_lines"].loc[2, "units"] = "0"
    t["claim_lines"].loc[0, "procedure_code"] = "X"
    t["recoupments"].loc[3, "recouped_amount"] = "-3"
    err = load_error(tmp_path, t)
    text = str(err)
    assert text.splitlines()[0] == "6 contract problem(s) affecting 6 row(s):"
    for needle in [
        "claims.csv row 1: column 'submitted_date'",
        "claims.csv row 2: column 'billing_npi'",
        "claims.csv row 3: column 'plan_type'",
        "claim_lines.csv row 3: column 'units'",
        "claim_lines.csv row 1: column 'procedure_code'",
        "recoupments.csv row 4: column 'recouped_amount'",
    ]:
        assert needle in text
    assert {p.file for p in err.problems} == {"claims.csv", "claim_lines.csv", "recoupments.csv"}
    assert all(isinstance(p, Problem) for p in err.problems)


def test_first_rows_shown_then_and_k_more(tmp_path):
    t = good_tables()
    lines = pd.concat([t["claim_lines"]] * 3, ignore_index=True)  # 12 lines
    lines["line_number"] = [str(i) for i in range(1, 13)]
    lines["units"] = "0"
    t["claim_lines"] = lines
    err = load_error(tmp_path, t)
    line = problem_line(err, "column 'units'")
    assert "claim_lines.csv rows 1, 2, 3, 4, 5, ... and 7 more: column 'units': expected a number > 0" in line
    assert err.problems[0].rows == list(range(1, 13))


def test_many_problems_shown_then_and_k_more_problems(tmp_path):
    t = good_tables()
    for col in [
        "patient_id",
        "payer_id",
        "billing_npi",
        "plan_type",
        "claim_type",
        "place_of_service",
        "frequency_code",
        "submitted_date",
        "total_charge",
        "diagnosis_codes",
    ]:
        t["claims"][col] = "???"
    err = load_error(tmp_path, t, max_shown=4)
    lines = str(err).splitlines()
    assert len(lines) == 1 + 4 + 1
    assert re.fullmatch(r"  - \.\.\. and \d+ more problems", lines[-1]), lines[-1]
    assert int(re.search(r"and (\d+) more", lines[-1]).group(1)) == len(err.problems) - 4


def test_validate_table_returns_problems_without_raising():
    t = good_tables()
    t["claim_lines"].loc[0, "units"] = "-2"
    typed, problems, notes = validate_table(t["claim_lines"], "claim_lines", "lines.csv")
    assert len(typed) == 4 and notes == []
    assert [(p.file, p.column, p.rows) for p in problems] == [("lines.csv", "units", [1])]


def test_validate_frames_raises_contract_error():
    t = good_tables()
    t["claims"].loc[0, "total_charge"] = "-1"
    with pytest.raises(ContractError, match=r"claims row 1: column 'total_charge': expected an amount >= 0"):
        validate_frames(t)
    with pytest.raises(ContractError, match="a claim_lines table"):
        validate_frames({"claims": good_tables()["claims"]})


def test_not_a_directory(tmp_path):
    with pytest.raises(ContractError, match="a claims history directory"):
        load_history(tmp_path / "nope")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_values_at_the_bounds_load(tmp_path, fmt):
    t = good_tables()
    t["claims"].loc[0, "total_charge"] = "100000000"
    t["claims"].loc[0, "submitted_date"] = "1900-01-01"
    t["claims"].loc[0, "paid_date"] = "2199-12-31"
    t["claim_lines"].loc[0, "units"] = "99999"
    t["claim_lines"].loc[0, "line_charge"] = "0"
    t["claim_lines"].loc[0, "line_number"] = "999999"
    t["recoupments"].loc[0, "recouped_amount"] = "100000000.00"
    h = load_history(write_dir(tmp_path / "h", t, fmt))
    assert h.claims["total_charge"].iloc[0] == 1e8 and h.claim_lines["units"].iloc[0] == 99_999
    assert h.claim_lines["line_number"].iloc[0] == 999_999
    assert str(h.claims["paid_date"].iloc[0].date()) == "2199-12-31"


def test_typed_parquet_columns_are_bounded(tmp_path):
    """A Parquet export with real float, bool, int and timestamp columns: inf, 1e308, NaN in a required
    column, true as units, a huge line number and dates out of range are each reported, field named."""
    t = good_tables()
    t["claims"]["total_charge"] = [np.inf, 1e308, 120.0]
    t["claims"]["paid_amount"] = [-np.inf, np.nan, 1.0]  # NaN in an optional column: missing, fine
    t["claim_lines"]["units"] = [True, False, True, True]
    t["claim_lines"]["line_number"] = np.array([1, 2**40, 1, 1], dtype=np.int64)
    t["claim_lines"]["line_charge"] = [np.nan, 1.0, 2.0, 3.0]  # required
    t["claim_lines"]["service_date"] = pd.to_datetime(["2024-01-02", "1800-01-01", "2024-01-30", "2300-01-01"]).astype(
        "datetime64[s]"
    )
    err = load_error(tmp_path, t, "parquet")
    got = {(p.column, tuple(p.rows)) for p in err.problems}
    assert ("total_charge", (1, 2)) in got
    assert ("paid_amount", (1,)) in got
    assert ("units", (1, 2, 3, 4)) in got  # booleans are not numbers, not even true -> 1
    assert ("line_number", (2,)) in got
    assert ("line_charge", (1,)) in got
    assert ("service_date", (2, 4)) in got
    assert len(got) == 6, str(err)


def test_the_service_path_rejects_the_same(monkeypatch):
    """Python values as the service hands them over (bools, floats, out-of-range dates), small-frame
    path and vectorized path alike, with the field named."""
    import features.contract.load as contract

    t = good_tables()
    claims = t["claims"].astype(object)
    lines = t["claim_lines"].astype(object)
    claims.loc[0, "total_charge"] = float("inf")
    claims.loc[1, "total_charge"] = 1e308
    claims.loc[2, "submitted_date"] = "0000-01-01"
    lines.loc[0, "units"] = True
    lines.loc[1, "units"] = -5.0
    lines.loc[2, "service_date"] = "-2024-01-01"
    lines.loc[3, "line_charge"] = float("nan")
    texts = []
    for fast in (contract.FAST_PATH_MAX_ROWS, 0):
        monkeypatch.setattr(contract, "FAST_PATH_MAX_ROWS", fast)
        with pytest.raises(ContractError) as exc:
            validate_frames({"claims": claims, "claim_lines": lines})
        texts.append(str(exc.value))
        got = {(p.column, tuple(p.rows)) for p in exc.value.problems}
        assert got >= {
            ("total_charge", (1, 2)),
            ("submitted_date", (3,)),
            ("units", (1, 2)),
            ("service_date", (3,)),
            ("line_charge", (4,)),
        }, got
    assert texts[0] == texts[1]
    assert f"column 'units': expected {UNITS}" in texts[0]


def test_skip_invalid_sets_aside_the_claims_that_break_the_contract(tmp_path):
    """One loader for both modes: strict raises; skip_invalid returns the valid claims and the rejected
    ones, each with the contract's reason (file, row, column), and drops what refers to them."""
    from features.contract import REJECTED_COLUMNS

    t = good_tables()
    t["claims"].loc[0, "total_charge"] = "-5"  # C1: bad claim row
    t["claim_lines"].loc[2, "units"] = "0"  # C2: bad line
    t["claim_lines"].loc[4] = ["C9", "1", "2024-02-28", "99213", "", "1", "10", "1", ""]  # orphan line
    d = write_dir(tmp_path / "h", t)
    with pytest.raises(ContractError):
        load_history(d)
    h, rejected = load_history(d, skip_invalid=True)
    assert list(rejected.columns) == REJECTED_COLUMNS
    reasons = dict(zip(rejected["claim_id"], rejected["reject_reason"]))
    assert set(reasons) == {"C1", "C2"}
    assert reasons["C1"] == f"claims.csv row 1: column 'total_charge': expected {MONEY}"
    assert reasons["C2"] == f"claim_lines.csv row 3: column 'units': expected {UNITS}"
    assert h.claims["claim_id"].tolist() == ["C3"]
    assert h.claim_lines["claim_id"].tolist() == ["C3"]  # lines of rejected claims and the orphan: gone
    assert set(h.recoupments["claim_id"]) == {"C3"}


def test_skip_invalid_on_a_valid_history_rejects_nothing_and_row_less_problems_still_raise(tmp_path):
    from features.contract import REJECTED_COLUMNS

    h, rejected = load_history(write_dir(tmp_path / "ok", good_tables()), skip_invalid=True)
    assert len(h.claims) == 3 and rejected.empty and list(rejected.columns) == REJECTED_COLUMNS
    t = good_tables()
    t["claims"] = t["claims"].drop(columns=["billing_npi"])
    err = load_error(tmp_path, t, skip_invalid=True)
    assert "billing_npi" in str(err)


def _with_text(table: str, column: str, value: str) -> dict[str, pd.DataFrame]:
    """The good tables with ``value`` in row 1 of ``table.column`` (a claim id renamed in every table)."""
    t = good_tables(reviews=table == "reviews")
    if column == "claim_id":
        for df in (t["claims"], t["claim_lines"], t["recoupments"], *([t["reviews"]] if "reviews" in t else [])):
            df["claim_id"] = df["claim_id"].replace("C1", value)
    else:
        t[table][column] = t[table][column].astype(object)
        t[table].loc[0, column] = value
    return t


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("table, column, what", TEXT_COLUMNS)
def test_text_over_its_length_is_refused_naming_file_row_column_and_bound(tmp_path, fmt, table, column, what):
    n = MAX_CHARS[column]
    t = good_tables(reviews=table == "reviews")
    t[table][column] = t[table][column].astype(object)
    t[table].loc[0, column] = "X" * (n + 1)
    err = load_error(tmp_path, t, fmt)
    line = problem_line(err, f"column '{column}': expected {what} of at most {n} characters")
    assert line.strip().startswith(f"- {table}.{fmt} row 1:"), line


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("table, column, what", TEXT_COLUMNS)
def test_text_at_its_length_loads(tmp_path, fmt, table, column, what):
    if (table, column) == ("reviews", "carc"):
        pytest.skip("a review's CARC must be a packaged code (at most 6 characters, e.g. CO-B15): the list bounds it")
    n = MAX_CHARS[column]
    value = "CO-97XYZ"[:n] if column == "carc" else ("OH" if column == "state" else "X" * n)
    h = load_history(write_dir(tmp_path / "h", _with_text(table, column, f" {value} "), fmt))  # padded: trimmed
    assert h.tables()[table][column].iloc[0] == value


def _list(item: str, k: int, as_list: bool):
    return [item] * k if as_list else ";".join([item] * k)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "parquet_lists"])
@pytest.mark.parametrize("table, column, item, most, noun", LIST_COLUMNS)
def test_list_over_its_count_is_refused_and_at_its_count_loads(tmp_path, fmt, table, column, item, most, noun):
    as_list = fmt == "parquet_lists"
    if as_list and column == "diagnosis_pointers":
        item = 1
    t = good_tables()
    t[table][column] = t[table][column].astype(object)
    if as_list:
        t[table][column] = [[] for _ in range(len(t[table]))]
        t[table].at[0, column] = _list(item, 1, True)
        t[table].at[1, column] = _list(item, 1, True)
    t[table].at[2, column] = _list(item, most + 1, as_list)
    err = load_error(tmp_path / "over", t, fmt.split("_")[0])
    line = problem_line(err, f"column '{column}': expected at most {most} {noun}")
    assert line.strip().startswith(f"- {table}.{fmt.split('_')[0]} row 3:"), line
    t[table].at[2, column] = _list(item, most, as_list)
    h = load_history(write_dir(tmp_path / "at", t, fmt.split("_")[0]))
    assert len(h.tables()[table][column].iloc[2]) == most


def test_both_check_paths_refuse_the_same_counts_and_lengths(monkeypatch):
    import features.contract.load as contract

    t = good_tables()
    claims, lines = t["claims"].astype(object), t["claim_lines"].astype(object)
    claims.loc[0, "patient_id"] = "P" * (MAX_CHARS["patient_id"] + 1)
    claims.loc[1, "diagnosis_codes"] = ["E119"] * (MAX_DIAGNOSIS_CODES + 1)
    lines.loc[2, "diagnosis_pointers"] = [1] * (MAX_DIAGNOSIS_POINTERS + 1)
    lines.loc[3, "modifiers"] = "RT;LT;25;59;XU"
    texts = []
    for fast in (contract.FAST_PATH_MAX_ROWS, 0):
        monkeypatch.setattr(contract, "FAST_PATH_MAX_ROWS", fast)
        with pytest.raises(ContractError) as exc:
            validate_frames({"claims": claims, "claim_lines": lines})
        texts.append(str(exc.value))
        got = {(p.column, tuple(p.rows)) for p in exc.value.problems}
        assert got == {
            ("patient_id", (1,)),
            ("diagnosis_codes", (2,)),
            ("diagnosis_pointers", (3,)),
            ("modifiers", (4,)),
        }, got
    assert texts[0] == texts[1]


def test_a_huge_value_is_not_echoed(tmp_path):
    """A claim id of 5,000 characters: its length, orphan lines and recoupments are reported, the value cut."""
    huge = "X" * 5000
    err = load_error(tmp_path, _with_text("claims", "claim_id", huge))
    assert f"expected a non-empty identifier of at most {MAX_CHARS['claim_id']} characters" in str(err)
    assert "X" * 100 not in str(err) and len(str(err)) < 1000


def test_duplicate_line_numbers_found_at_any_line_number():
    """Line numbers far apart (up to 999,999) and a missing claim id: duplicates are pairs equal in both."""
    lines = pd.DataFrame(
        {
            "claim_id": ["C1", "C1", "C2", "C2", None, None, "C1"],
            "line_number": ["999999", "999999", "999999", "1", "7", "7", "1"],
            "service_date": "2024-01-02",
            "procedure_code": "99213",
            "units": "1",
            "line_charge": "1",
        }
    )
    _, problems, _ = validate_table(lines, "claim_lines", "claim_lines.csv")
    dup = [p for p in problems if p.column == "line_number"]
    assert [(p.expected, p.rows) for p in dup] == [("unique line numbers within a claim", [1, 2, 5, 6])]
