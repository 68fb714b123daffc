"""Labels and the time split follow the contract: horizon after payment, immature excluded, no leakage."""

from __future__ import annotations

import pandas as pd

from features.contract import validate_frames
from training.labels import make_labels, truncate_history
from training.split import time_split


def _history():
    claims = pd.DataFrame(
        {
            "claim_id": ["A", "B", "C", "D", "E"],
            "patient_id": "P1",
            "billing_npi": "1234567890",
            "payer_id": "MCR",
            "plan_type": "medicare",
            "claim_type": "professional",
            "place_of_service": "11",
            "frequency_code": "1",
            "submitted_date": ["2023-01-01", "2023-01-02", "2023-01-03", "2024-06-01", "2023-02-01"],
            "total_charge": "100",
            "diagnosis_codes": "I10",
            "paid_date": ["2023-01-20", "2023-01-20", "2023-01-20", "2024-06-20", ""],
            "paid_amount": ["80", "80", "80", "80", ""],
        }
    )
    lines = pd.DataFrame(
        {
            "claim_id": list("ABCDE"),
            "line_number": "1",
            "service_date": "2022-12-30",
            "procedure_code": "99213",
            "units": "1",
            "line_charge": "100",
        }
    )
    rec = pd.DataFrame(
        {
            "claim_id": ["A", "B", "D"],
            "recouped_date": ["2023-06-01", "2024-03-01", "2024-09-01"],
            "recouped_amount": ["80", "80", "40"],
            "carc": ["CO-16", "CO-18", "CO-97"],
        }
    )
    return validate_frames({"claims": claims, "claim_lines": lines, "recoupments": rec})


def test_positive_only_within_horizon_and_immature_excluded():
    h = _history()
    lab = make_labels(h, pd.Timestamp("2024-12-31"), 365)
    assert lab.loc["A", "label"] == 1 and lab.loc["A", "cause"] == "documentation"
    assert lab.loc["B", "label"] == 0  # recouped 406 days after payment: outside the horizon
    assert lab.loc["C", "label"] == 0 and lab.loc["C", "mature"]
    assert not lab.loc["D", "mature"]  # paid 2024-06-20: horizon ends after the as-of date
    assert not lab.loc["E", "mature"]  # never paid: cannot be recouped, not in training
    assert lab.loc["A", "recouped_amount"] == 80


def test_truncation_hides_the_future():
    h = _history()
    t = truncate_history(h, pd.Timestamp("2023-12-31"))
    assert set(t.claims["claim_id"]) == {"A", "B", "C", "E"}
    assert set(t.recoupments["claim_id"]) == {"A"}
    lab = make_labels(t, pd.Timestamp("2023-12-31"), 365)
    assert lab["mature"].sum() == 0  # nothing has a full horizon yet on 2023-12-31


def test_time_split_is_ordered_by_submission_date():
    idx = pd.Index([f"c{i}" for i in range(100)])
    lab = pd.DataFrame({"mature": True, "submitted_date": pd.date_range("2023-01-01", periods=100)}, index=idx)
    part = time_split(lab, 0.15, 0.15)
    d = lab["submitted_date"]
    assert d[part == "train"].max() < d[part == "valid"].min()
    assert d[part == "valid"].max() < d[part == "test"].min()
    assert (part == "test").sum() == 15 and (part == "valid").sum() == 15
