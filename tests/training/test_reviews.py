"""Review outcomes as label evidence (training/reviews.py): a review that confirms a claim's label makes it mature
from the review on; training counts and uses them only with ``labels.reviews``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.contract import validate_table
from training.labels import make_labels, truncate_history
from training.reviews import final_outcomes, review_evidence


def typed_reviews(rows: list[tuple]) -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=["claim_id", "reviewed_at", "outcome", "refund_amount", "reviewer"])
    typed, problems, _ = validate_table(raw, "reviews", "reviews")
    assert not problems
    return typed


def labels_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mature": [False, False, False, False, False, True],
            "label": [0, 1, 1, 0, 0, 0],
            "followup_days": [40.0, 40.0, 40.0, np.nan, 40.0, 365.0],
            "payer_id": ["P"] * 6,
        },
        index=pd.Index(["neg", "pos", "contra", "unpaid", "late", "old"], name="claim_id"),
    )


def test_confirmed_labels_become_mature_and_the_rest_is_left_alone():
    reviews = typed_reviews(
        [
            ("neg", "2024-03-01", "no_issue", None, "u1"),
            ("pos", "2024-03-01", "refunded", 50.0, "u1"),
            ("contra", "2024-03-01", "no_issue", None, "u1"),  # the payer recouped all the same: label stays 1
            ("unpaid", "2024-03-01", "no_issue", None, "u1"),  # never paid: no label to confirm
            ("late", "2024-06-01", "no_issue", None, "u1"),  # reviewed after the as-of date: not known yet
        ]
    )
    out, confirmed, counts = review_evidence(labels_frame(), reviews, pd.Timestamp("2024-04-01"), 365)
    assert confirmed.tolist() == [True, True, False, False, False, False]
    assert out["mature"].tolist() == [True, True, False, False, False, True]
    assert out.loc["neg", "followup_days"] == 365 and out.loc["late", "followup_days"] == 40
    assert out["label"].tolist() == labels_frame()["label"].tolist()  # evidence never changes a label
    assert counts == {"review_negatives": 1, "review_positives": 1, "review_contradicted": 1}


def test_the_last_outcome_of_a_claim_decides():
    reviews = typed_reviews(
        [
            ("a", "2024-03-01", "refunded", 10.0, "u1"),
            ("a", "2024-04-01", "appealed_overturned", None, "u2"),
            ("b", "2024-03-01", "no_issue", None, "u1"),
            ("b", "2024-03-01", "error_found", None, "u1"),  # same day: later in the lifecycle
        ]
    )
    assert final_outcomes(reviews, pd.Timestamp("2024-12-31")).to_dict() == {
        "a": "appealed_overturned",
        "b": "error_found",
    }
    assert final_outcomes(reviews, pd.Timestamp("2024-03-15")).to_dict() == {"a": "refunded", "b": "error_found"}


def test_the_latest_review_by_time_decides_and_withdrawn_is_no_evidence():
    reviews = typed_reviews(
        [
            ("neg", "2024-03-01T10:00:00Z", "error_found", 50.0, "u1"),
            ("neg", "2024-03-01T15:30:00Z", "no_issue", None, "u1"),  # changed the same day: nothing found
            ("pos", "2024-03-01T10:00:00Z", "no_issue", None, "u1"),
            ("pos", "2024-03-01T10:00:01Z", "refunded", 50.0, "u1"),
            ("contra", "2024-03-01T09:00:00Z", "no_issue", None, "u1"),
            ("contra", "2024-03-01T09:10:00Z", "withdrawn", None, "u1"),  # taken back: no evidence, no contradiction
            ("late", "2024-04-01T23:59:59Z", "no_issue", None, "u1"),  # on the as-of day: known
        ]
    )
    final = final_outcomes(reviews, pd.Timestamp("2024-04-01"))
    assert final.to_dict() == {"neg": "no_issue", "pos": "refunded", "contra": "withdrawn", "late": "no_issue"}
    out, confirmed, counts = review_evidence(labels_frame(), reviews, pd.Timestamp("2024-04-01"), 365)
    assert confirmed.tolist() == [True, True, False, False, True, False]
    assert counts == {"review_negatives": 2, "review_positives": 1, "review_contradicted": 0}
    truncated = truncate_history(
        replace(_history_of(reviews), reviews=reviews), pd.Timestamp("2024-04-01")
    ).reviews  # a review at a time of the as-of day is known on that day
    assert len(truncated) == len(reviews)


def _history_of(reviews: pd.DataFrame):
    from features.contract import History

    ids = sorted(set(reviews["claim_id"].astype(str)))
    claims = pd.DataFrame(
        {"claim_id": ids, "submitted_date": pd.Timestamp("2024-01-02"), "paid_date": pd.Timestamp("2024-01-20")}
    ).assign(paid_amount=10.0)
    lines = pd.DataFrame({"claim_id": ids})
    return History(claims=claims, claim_lines=lines, recoupments=None, reviews=reviews)


@pytest.mark.parametrize("use", [True, False])
def test_training_uses_review_evidence_only_when_configured(trained, use):
    from training.train import train_model

    history = trained["history"]
    cut = history.last_date
    labels = make_labels(truncate_history(history, cut), cut, 365)
    recent = labels[(labels["followup_days"] < 20) & (labels["label"] == 0)].index[:25].tolist()
    assert len(recent) == 25  # paid within min_followup_days of the end: not learned from without evidence
    reviews = typed_reviews([(cid, str(cut.date()), "no_issue", None, "u1") for cid in recent])
    cfg = {**trained["config"], "labels": {**trained["config"]["labels"], "reviews": use}}
    result = train_model(replace(history, reviews=reviews), config=cfg)
    s = result.data_summary
    assert s.get("review_negatives", 0) == (25 if use else 0)
    base_usable = int((labels["mature"] | (labels["followup_days"] >= 28)).sum())
    assert s["usable"] == base_usable + (25 if use else 0)
