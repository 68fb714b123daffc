"""Audit review outcomes as label evidence (docs/training.md, "Review outcomes").

A claim an auditor reviewed in full has a known outcome before its payer's horizon ends: ``no_issue`` (or a refund
``appealed_overturned``) with no recoupment is a confirmed negative, a refund (``error_found``/``refunded``, already a
recoupment in the store's view) a confirmed positive. With ``labels.reviews: true`` such a claim's label counts as
mature from its review on: it is learned from at once (even if paid less than ``min_followup_days`` ago) with its full
weight (follow-up = the horizon, so F = 1 and no offset), and the refund's date, which is the reviewer's and not the
payer's, is kept out of the recoupment-lag estimate. The LATEST review of a claim (by ``reviewed_at``, a date or a UTC
time) decides: a finding changed to ``no_issue`` is a negative, one ``withdrawn`` is no evidence at all."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.reviews import OUTCOME_RANK
from features.contract.schema import REFUND_OUTCOMES

#: the last outcome of a claim's reviews that confirms a negative (no recoupment within the horizon expected)
NEGATIVE_OUTCOMES = ("no_issue", "appealed_overturned")
#: ... and a positive (a refund, upheld on appeal)
POSITIVE_OUTCOMES = (*REFUND_OUTCOMES, "appealed_upheld")


def final_outcomes(reviews: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.Series:
    """The latest outcome (by time, then lifecycle order) of each claim's reviews made by the end of ``as_of``'s day
    (index claim_id). A claim whose latest review is ``withdrawn`` has that outcome: neither a negative nor a
    positive."""
    if reviews is None or not len(reviews):
        return pd.Series(dtype=object)
    at = pd.to_datetime(reviews["reviewed_at"])
    r = pd.DataFrame(
        {
            "claim_id": reviews["claim_id"].astype(str).to_numpy(dtype=object),
            "at": at.to_numpy(),
            "day": at.dt.normalize().to_numpy(),
            "outcome": reviews["outcome"].astype(str).to_numpy(dtype=object),
        }
    )
    r = r[r["day"] <= np.datetime64(pd.Timestamp(as_of).normalize())]
    r["rank"] = r["outcome"].map(OUTCOME_RANK).fillna(-1)
    r = r.sort_values(["claim_id", "at", "rank"], kind="mergesort")
    return r.drop_duplicates("claim_id", keep="last").set_index("claim_id")["outcome"]


def review_evidence(
    labels: pd.DataFrame, reviews: pd.DataFrame | None, as_of: pd.Timestamp, horizon_days: int
) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """``labels`` (make_labels' frame) with reviewed paid claims whose outcome confirms their label made mature
    (``mature`` true, ``followup_days`` = the horizon); the mask of those claims (kept out of the lag estimate);
    counts of confirmed negatives and positives and of reviews contradicting the label (a ``no_issue`` claim the
    payer recouped all the same: the recoupment wins, the claim is left as it was)."""
    counts = {"review_negatives": 0, "review_positives": 0, "review_contradicted": 0}
    final = final_outcomes(reviews, as_of).reindex(labels.index)
    if final.isna().all():
        return labels, np.zeros(len(labels), dtype=bool), counts
    paid = labels["followup_days"].notna().to_numpy()
    label = labels["label"].to_numpy()
    neg = final.isin(NEGATIVE_OUTCOMES).to_numpy() & paid
    pos = final.isin(POSITIVE_OUTCOMES).to_numpy() & paid
    confirmed = (neg & (label == 0)) | (pos & (label == 1))
    counts["review_negatives"] = int((neg & (label == 0)).sum())
    counts["review_positives"] = int((pos & (label == 1)).sum())
    counts["review_contradicted"] = int((neg & (label == 1)).sum())
    out = labels.copy()
    out.loc[confirmed, "mature"] = True
    out.loc[confirmed, "followup_days"] = float(horizon_days)
    return out, confirmed, counts
