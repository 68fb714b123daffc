"""Recent claims of a history as new CLAIM objects for the service (tests and bench/bench_service.py)."""

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
