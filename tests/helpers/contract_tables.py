"""A tiny valid claims history as raw text tables, written to a directory (the contract's tests)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import ContractError, load_history
from features.contract.bounds import MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS, MAX_MODIFIERS

#: (table, column, what a value over the bound gets) for every bounded text column
TEXT_COLUMNS = [
    ("claims", "claim_id", "a non-empty identifier"),
    ("claim_lines", "claim_id", "a non-empty identifier"),
    ("recoupments", "claim_id", "a non-empty identifier"),
    ("claims", "patient_id", "a non-empty identifier"),
    ("claims", "payer_id", "a non-empty identifier"),
    ("coverage", "patient_id", "a non-empty identifier"),
    ("coverage", "payer_id", "a non-empty identifier"),
    ("claims", "prior_auth_number", "text"),
    ("providers", "taxonomy_code", "text"),
    ("providers", "state", "text"),
    ("providers", "name", "text"),
    ("recoupments", "carc", "text"),
    ("reviews", "claim_id", "a non-empty identifier"),
    ("reviews", "carc", "text"),
    ("reviews", "reviewer", "a non-empty identifier"),
]


#: (table, column, item, most items, noun)
LIST_COLUMNS = [
    ("claims", "diagnosis_codes", "E119", MAX_DIAGNOSIS_CODES, "code(s)"),
    ("claim_lines", "modifiers", "25", MAX_MODIFIERS, "code(s)"),
    ("claim_lines", "diagnosis_pointers", "1", MAX_DIAGNOSIS_POINTERS, "pointer(s)"),
]


def good_tables(reviews: bool = False) -> dict[str, pd.DataFrame]:
    """A tiny valid history as raw text tables (what a CSV export holds); ``reviews``: with a reviews table."""
    claims = pd.DataFrame(
        {
            "claim_id": ["C1", "C2", "C3"],
            "patient_id": ["P1", "P2", "P1"],
            "billing_npi": ["1234567893", "1234567893", "1987654321"],
            "rendering_npi": ["1234567893", "", ""],
            "payer_id": ["MCR", "AETNA", "MCD"],
            "plan_type": ["medicare", "commercial", "medicaid"],
            "claim_type": ["professional", "professional", "institutional"],
            "place_of_service": ["11", "11", "22"],
            "frequency_code": ["1", "1", "7"],
            "submitted_date": ["2024-01-05", "2024-02-01", "2024-03-01"],
            "total_charge": ["120.50", "80", "300"],
            "diagnosis_codes": ["E119;I10", "Z0000", "M545"],
            "prior_auth_number": ["", "PA1", ""],
            "has_attachment": ["true", "", "no"],
            "paid_date": ["2024-01-20", "", ""],
            "paid_amount": ["100.25", "", ""],
        }
    )
    lines = pd.DataFrame(
        {
            "claim_id": ["C1", "C1", "C2", "C3"],
            "line_number": ["1", "2", "1", "1"],
            "service_date": ["2024-01-02", "2024-01-02", "2024-01-30", "2024-02-28"],
            "procedure_code": ["99213", "36415", "99214", "G0008"],
            "modifiers": ["25", "", "", "RT;LT"],
            "units": ["1", "2", "1", "1.5"],
            "line_charge": ["100", "20.5", "80", "300"],
            "diagnosis_pointers": ["1;2", "1", "1", ""],
            "line_paid": ["90", "10.25", "", ""],
        }
    )
    coverage = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "payer_id": ["MCR", "AETNA"],
            "plan_type": ["medicare", "commercial"],
            "coverage_start": ["2023-01-01", "2023-06-01"],
            "coverage_end": ["", "2024-12-31"],
        }
    )
    providers = pd.DataFrame(
        {
            "npi": ["1234567893", "1987654321"],
            "taxonomy_code": ["207Q00000X", ""],
            "state": ["OH", "TX"],
            "name": ["CLINIC", ""],
        }
    )
    recoupments = pd.DataFrame(
        {
            "claim_id": ["C1", "C1", "C2", "C3"],
            "recouped_date": ["2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01"],
            "recouped_amount": ["50", "10", "5.5", "1"],
            "carc": ["CO-97", "", "18", "PR-1"],
            "cause": ["", "", "", ""],
        }
    )
    out = {
        "claims": claims,
        "claim_lines": lines,
        "coverage": coverage,
        "providers": providers,
        "recoupments": recoupments,
    }
    if reviews:
        out["reviews"] = pd.DataFrame(
            {
                "claim_id": ["C1", "C2"],
                "reviewed_at": ["2024-05-01", "2024-05-02"],
                "outcome": ["error_found", "no_issue"],
                "refund_amount": ["20", ""],
                "cause": ["bundling", ""],
                "carc": ["CO-97", ""],
                "reviewer": ["u1", "u2"],
            }
        )
    return out


def write_dir(path, tables, fmt="csv"):
    path.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(path / f"{name}.csv", index=False)
        else:
            df.to_parquet(path / f"{name}.parquet", index=False)
    return path


def load_error(tmp_path, tables, fmt="csv", **kw) -> ContractError:
    d = write_dir(tmp_path / "h", tables, fmt)
    with pytest.raises(ContractError) as exc:
        load_history(d, **kw)
    return exc.value


def problem_line(err: ContractError, needle: str) -> str:
    """The first line of a contract error that holds ``needle``."""
    hits = [line for line in str(err).splitlines() if needle in line]
    assert hits, f"{needle!r} not in:\n{err}"
    return hits[0]
