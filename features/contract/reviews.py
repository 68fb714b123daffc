"""Audit review outcomes in the contract view (docs/contract.md, "reviews"): a voluntary refund is a recoupment.

A claim's reviews are ordered by ``reviewed_at`` (a date, i.e. its midnight, or a UTC time to the second), then, at
the same time, by the lifecycle order of :data:`REVIEW_OUTCOMES`: the LATEST review decides. :func:`refund_recoupments`
turns the ``error_found`` / ``refunded`` reviews of a claim made after its last cancelling review (``no_issue``: the
finding was changed to nothing found; ``withdrawn``: the outcome was taken back; ``appealed_overturned``: the finding
was wrong) into ONE recoupment (dated the day of the first such review, of the latest amount, with the reviewer's
cause and CARC). :func:`apply_reviews` unions them with the other recoupments (a table's, an 835's) without counting a
claim's money twice: a recoupment of the same claim dated on or after the refund counts only for what exceeds the
refund (the refund already gave that money back); one dated before it stands, and the reviewer's refund is what was
still owed. Both are pure functions of the set of rows (never of their order).

Applied when a STORE is read (:mod:`features.store.read`), where the given recoupments are known apart from the
reviews; a history folder is a contract view already (its ``recoupments`` hold the refunds when it was written from
a store's view), so ``load_history`` of a folder keeps its ``reviews`` as evidence and does not derive them again."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.schema import CAUSES, REFUND_OUTCOMES, REVIEW_OUTCOMES, History, causes_from_carcs

RECOUPMENT_COLUMNS = ["claim_id", "recouped_date", "recouped_amount", "carc", "cause"]
#: the order of outcomes recorded at the same time (a date-only review is at its midnight): a claim's lifecycle
OUTCOME_RANK = {o: i for i, o in enumerate(REVIEW_OUTCOMES)}
#: outcomes that cancel the refunds reviewed before them (a later refund counts again)
CANCELLING_OUTCOMES = ("no_issue", "appealed_overturned", "withdrawn")
#: outcomes after which a claim counts as not reviewed (back on the audit's worklist)
UNREVIEWED_OUTCOMES = ("withdrawn",)
#: amounts are compared in cents (a remainder below one cent is no recoupment)
CENT = 0.005


def _ordered(reviews: pd.DataFrame) -> pd.DataFrame:
    """The reviews sorted by claim, time and lifecycle rank (then amount, for a total order)."""
    r = pd.DataFrame(
        {
            "claim_id": reviews["claim_id"].astype(str).to_numpy(dtype=object),
            "reviewed_at": pd.to_datetime(reviews["reviewed_at"]).to_numpy(),
            "outcome": reviews["outcome"].astype(str).to_numpy(dtype=object),
            "refund_amount": pd.to_numeric(reviews.get("refund_amount"), errors="coerce").to_numpy(dtype=float)
            if "refund_amount" in reviews
            else np.full(len(reviews), np.nan),
            "cause": reviews["cause"].astype("object").to_numpy() if "cause" in reviews else None,
            "carc": reviews["carc"].astype("object").to_numpy() if "carc" in reviews else None,
        }
    )
    r["rank"] = r["outcome"].map(OUTCOME_RANK).fillna(-1).astype(int)
    return r.sort_values(["claim_id", "reviewed_at", "rank", "refund_amount"], kind="mergesort").reset_index(drop=True)


def latest_outcomes(reviews: pd.DataFrame | None) -> pd.Series:
    """The outcome of each claim's latest review (by ``reviewed_at``, then lifecycle order; index claim_id)."""
    if reviews is None or not len(reviews):
        return pd.Series(dtype=object)
    r = _ordered(reviews)
    return r.drop_duplicates("claim_id", keep="last").set_index("claim_id")["outcome"]


def refund_recoupments(reviews: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """One recoupment per claim whose current review history holds a refund: the ``error_found``/``refunded``
    reviews with ``refund_amount`` > 0 after the claim's last cancelling review (``no_issue``, ``withdrawn``,
    ``appealed_overturned``); dated the day of the first of them, of the last one's amount, cause and CARC (the last
    given of each; the cause from the CARC when only that was given, else ``other``). Returns (recoupments, counts):
    ``refunds``, and the claims whose refunds were all cancelled, by an overturned appeal
    (``refunds_cancelled_by_appeal``) or by a later ``no_issue`` / ``withdrawn`` (``refunds_withdrawn``)."""
    counts = {"refunds": 0, "refunds_cancelled_by_appeal": 0, "refunds_withdrawn": 0}
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in RECOUPMENT_COLUMNS})
    if reviews is None or not len(reviews):
        return empty, counts
    r = _ordered(reviews)
    pos = np.arange(len(r))
    ids = r["claim_id"].to_numpy()
    cancelling = r["outcome"].isin(CANCELLING_OUTCOMES).to_numpy()
    last_cancel = pd.Series(np.where(cancelling, pos, -1)).groupby(ids).transform("max").to_numpy()
    by_appeal = (r["outcome"].to_numpy() == "appealed_overturned")[np.maximum(last_cancel, 0)] & (last_cancel >= 0)
    refund = r["outcome"].isin(REFUND_OUTCOMES).to_numpy() & (r["refund_amount"].fillna(0).to_numpy() > CENT)
    before = pd.Series(refund & (pos < last_cancel)).groupby(ids).any()
    after = pd.Series(refund & (pos > last_cancel)).groupby(ids).any()
    appeal = pd.Series(by_appeal).groupby(ids).any()
    cancelled = before & ~after
    counts["refunds_cancelled_by_appeal"] = int((cancelled & appeal).sum())
    counts["refunds_withdrawn"] = int((cancelled & ~appeal).sum())
    live = r[refund & (pos > last_cancel)]
    if not len(live):
        return empty, counts
    g = live.groupby("claim_id", sort=True)
    first = g["reviewed_at"].min().dt.normalize()  # a recoupment is dated by its day
    last = g[["refund_amount", "cause", "carc"]].last()  # the last non-missing value of each column
    cause = last["cause"].astype("object")
    cause = cause.where(cause.notna(), causes_from_carcs(last["carc"]).to_numpy()).fillna("other")
    out = pd.DataFrame(
        {
            "claim_id": first.index.to_numpy(dtype=object),
            "recouped_date": first.to_numpy(),
            "recouped_amount": np.round(last["refund_amount"].to_numpy(dtype=float), 2),
            "carc": last["carc"].to_numpy(dtype=object),
            "cause": cause.to_numpy(dtype=object),
        }
    )
    counts["refunds"] = len(out)
    return out, counts


def net_of_refunds(recoupments: pd.DataFrame, refunds: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``recoupments`` (a payer's: a table's, an 835's) with what a refund of the same claim already gave back taken
    out: the ones dated on or after the claim's refund, in date order, count only beyond the refund's amount (a
    recoupment reduced to under a cent is dropped); earlier ones stand. Returns (recoupments, counts)."""
    counts = {"recoupments_reduced_by_refunds": 0, "recoupments_dropped_as_refunded": 0}
    if not len(refunds) or recoupments is None or not len(recoupments):
        return recoupments, counts
    ids = recoupments["claim_id"].astype(str).to_numpy(dtype=object)
    refund = refunds.set_index("claim_id")
    r_date = pd.Series(refund["recouped_date"]).reindex(ids).to_numpy()
    r_amount = pd.Series(refund["recouped_amount"]).reindex(ids).to_numpy(dtype=float)
    date = pd.to_datetime(recoupments["recouped_date"]).to_numpy()
    after = ~pd.isna(r_date) & (date >= r_date.astype("datetime64[ns]"))
    if not after.any():
        return recoupments, counts
    amount = recoupments["recouped_amount"].to_numpy(dtype=float)
    idx = np.flatnonzero(after)
    sub = pd.DataFrame({"cid": ids[idx], "date": date[idx], "amount": amount[idx], "i": idx})
    sub = sub.sort_values(["cid", "date", "amount", "i"], kind="mergesort")
    before = sub.groupby("cid")["amount"].cumsum().to_numpy() - sub["amount"].to_numpy()  # consumed by earlier ones
    left = np.clip(r_amount[sub["i"].to_numpy()] - before, 0.0, None)  # refund not yet matched
    new = np.round(sub["amount"].to_numpy() - np.minimum(left, sub["amount"].to_numpy()), 2)
    amount = amount.copy()
    amount[sub["i"].to_numpy()] = new
    keep = amount > CENT
    changed = np.zeros(len(amount), dtype=bool)
    changed[sub["i"].to_numpy()] = new < sub["amount"].to_numpy() - CENT
    counts["recoupments_dropped_as_refunded"] = int((~keep).sum())
    counts["recoupments_reduced_by_refunds"] = int((changed & keep).sum())
    out = recoupments.copy()
    out["recouped_amount"] = amount
    return out[keep].reset_index(drop=True), counts


def apply_reviews(history: History) -> tuple[History, dict[str, int]]:
    """``history`` with its reviews' refunds among its recoupments (see the module's docstring); counts."""
    refunds, counts = refund_recoupments(history.reviews)
    if not len(refunds):
        return history, counts
    given = history.recoupments
    net, more = net_of_refunds(given, refunds) if given is not None else (None, {})
    counts.update(more)
    like = given if given is not None else None
    new = refunds.assign(
        recouped_date=pd.to_datetime(refunds["recouped_date"]).astype(
            like["recouped_date"].dtype if like is not None else "datetime64[ns]"
        ),
        recouped_amount=refunds["recouped_amount"].astype("float64"),
        cause=pd.Categorical(refunds["cause"], categories=list(CAUSES)),
    )
    if net is not None and len(net):
        new = new.astype({"carc": net["carc"].dtype}) if "carc" in net else new
        rec = pd.concat([net, new[net.columns]], ignore_index=True)
        rec["cause"] = pd.Categorical(rec["cause"].astype("object"), categories=list(CAUSES))
    else:
        rec = new[RECOUPMENT_COLUMNS].reset_index(drop=True)
    out = History(
        claims=history.claims,
        claim_lines=history.claim_lines,
        coverage=history.coverage,
        providers=history.providers,
        recoupments=rec,
        source=history.source,
        reviews=history.reviews,
    )
    return out, counts
