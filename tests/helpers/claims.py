"""CLAIM objects for the service: a hand-written one, and recent claims of a history made new (tests and bench/)."""

from __future__ import annotations

import pandas as pd

from features.contract import History


def recent_claims(history: History, n: int, tag: str, shift_days: int = 30, skip: int = 0) -> list[dict]:
    """``n`` recent claims of ``history`` (before its last ``skip``) as CLAIM dicts, renamed ``TAG-i`` and
    submitted ``shift_days`` after the history's end (new claims; service dates keep their distance)."""
    from serving.schemas import frames_to_claims

    ordered = history.claims.sort_values("submitted_date", kind="stable")
    claims = ordered.iloc[len(ordered) - n - skip : len(ordered) - skip]
    lines = history.claim_lines[history.claim_lines["claim_id"].isin(claims["claim_id"])]
    out = frames_to_claims(claims, lines)
    end = pd.Timestamp(history.claims["submitted_date"].max()) + pd.Timedelta(days=shift_days)
    for i, c in enumerate(out):
        c["claim_id"] = f"{tag}-{i}"
        sub = pd.Timestamp(c["submitted_date"])
        c["submitted_date"] = str(end.date())
        for ln in c["lines"]:
            ln["service_date"] = str((pd.Timestamp(ln["service_date"]) - sub + end).date())
    return out


def duplicate_refs(score: dict) -> set:
    """The claims a SCORE's duplicate rule hits point to."""
    return {h.get("ref") for h in score["rule_hits"] if h["rule"] == "duplicate"}


def service_claim(n_lines: int = 1, plan_type: str = "medicare") -> dict:
    """One valid CLAIM as a billing system sends it: ``n_lines`` identical E/M lines (modifier 25 on the
    first), two diagnoses; ``plan_type`` as sent (the contract lower-cases it)."""
    return {
        "claim_id": "C-1",
        "patient_id": "P-1",
        "billing_npi": "1234567890",
        "payer_id": "MCR",
        "plan_type": plan_type,
        "claim_type": "professional",
        "place_of_service": "11",
        "frequency_code": "1",
        "submitted_date": "2025-03-04",
        "total_charge": 250.0,
        "diagnosis_codes": ["E119", "I10"],
        "has_attachment": False,
        "lines": [
            {
                "line_number": i,
                "service_date": "2025-03-01",
                "procedure_code": "99214",
                "modifiers": ["25"] if i == 1 else None,
                "units": 1,
                "line_charge": 50.0,
                "diagnosis_pointers": [1, 2],
            }
            for i in range(1, n_lines + 1)
        ],
    }
