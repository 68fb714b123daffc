"""STAND-IN (WB-APP) for WB-LOOP's ``features.store.reviews``: the name and signature the workbench calls when a
review outcome is saved. WB-LOOP's module (branch s17-wb-loop) replaces this file: it writes the outcomes into the
store's ``reviews`` table (idempotent, atomic). This stand-in only checks the rows and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.errors import RecoupError

#: this module is the stand-in (WB-LOOP's real one has no such name)
STAND_IN = True
REVIEW_COLUMNS = ("claim_id", "reviewed_at", "outcome", "refund_amount", "cause", "carc", "reviewer")


def record_reviews(store: Path, reviews: pd.DataFrame) -> dict:
    """Record review outcomes in ``store`` (stand-in: checks the columns, writes nothing)."""
    missing = [c for c in REVIEW_COLUMNS if c not in reviews.columns]
    if missing:
        raise RecoupError(f"reviews: missing column(s) {', '.join(missing)}")
    return {"recorded": 0, "received": int(len(reviews)), "stand_in": True}
