"""Labels per the contract: recouped within the horizon after payment, as known on the as-of date.

Shared by training (labels) and serving (audit backtests), so both judge outcomes the same way."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import CAUSES, History


def truncate_history(history: History, as_of: pd.Timestamp) -> History:
    """What was known on ``as_of``: claims submitted by then, recoupments and reviews dated by then, payments made by
    then."""
    claims = history.claims[history.claims["submitted_date"] <= as_of].copy()
    late_pay = claims["paid_date"] > as_of
    claims.loc[late_pay, "paid_date"] = pd.NaT
    claims.loc[late_pay, "paid_amount"] = np.nan
    ids = claims["claim_id"]
    lines = history.claim_lines[history.claim_lines["claim_id"].isin(ids)]
    rec = None
    if history.recoupments is not None:
        r = history.recoupments
        rec = r[r["claim_id"].isin(ids) & (r["recouped_date"] <= as_of)].reset_index(drop=True)
    cov = history.coverage
    rev = history.reviews
    if rev is not None:
        made = pd.to_datetime(rev["reviewed_at"]).dt.normalize() <= as_of  # a review at a time: known on its day
        rev = rev[rev["claim_id"].isin(ids) & made].reset_index(drop=True)
    return History(
        claims=claims.reset_index(drop=True),
        claim_lines=lines.reset_index(drop=True),
        coverage=cov,
        providers=history.providers,
        recoupments=rec,
        source=history.source,
        reviews=rev,
    )


def make_labels(history: History, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """One row per claim (index claim_id): ``mature``, ``label``, ``cause``, ``recouped_amount``,
    ``followup_days`` (days from payment to ``as_of``, capped at the horizon; NaN when unpaid),
    ``first_recouped_days`` (days from payment to the first recoupment within the horizon; NaN when none).

    Positive: a recoupment dated within ``horizon_days`` after ``paid_date``. Immature: the horizon
    ends after ``as_of`` (the label is not known yet). Claims that were never paid cannot be recouped
    and are left out of training and evaluation (``mature`` is false for them): the model estimates
    the risk of a claim given that the payer pays it, which is what a billing team acts on. The cause
    is the cause of the first recoupment within the horizon.
    """
    c = history.claims
    horizon = pd.Timedelta(days=horizon_days)
    out = pd.DataFrame(
        {
            "mature": (c["paid_date"].notna() & (c["paid_date"] + horizon <= as_of)).to_numpy(),
            "label": 0,
            "cause": pd.Series([None] * len(c), dtype=object).to_numpy(),
            "recouped_amount": 0.0,
            "paid_amount": c["paid_amount"].fillna(0.0).to_numpy(),
            "total_charge": c["total_charge"].to_numpy(),
            "submitted_date": c["submitted_date"].to_numpy(),
            "payer_id": c["payer_id"].astype(str).to_numpy(),
            "followup_days": ((as_of - c["paid_date"]).dt.days.clip(lower=0, upper=horizon_days)).to_numpy(dtype=float),
            "first_recouped_days": np.nan,
        },
        index=pd.Index(c["claim_id"].astype(str), name="claim_id"),
    )
    r = history.recoupments
    if r is not None and len(r):
        paid = pd.Series(c["paid_date"].to_numpy(), index=out.index)
        r = r.assign(paid=paid.reindex(r["claim_id"].astype(str)).to_numpy())
        within = (
            r["paid"].notna()
            & (r["recouped_date"] >= r["paid"])
            & (r["recouped_date"] <= r["paid"] + horizon)
            & (r["recouped_date"] <= as_of)
        )
        r = r[within].sort_values(["claim_id", "recouped_date"])
        if len(r):
            first = r.drop_duplicates("claim_id")
            amount = r.groupby(r["claim_id"].astype(str))["recouped_amount"].sum()
            ids = first["claim_id"].astype(str).to_numpy()
            out.loc[ids, "label"] = 1
            out.loc[ids, "cause"] = first["cause"].astype(str).to_numpy()
            out.loc[ids, "first_recouped_days"] = (first["recouped_date"] - first["paid"]).dt.days.to_numpy(float)
            out.loc[amount.index, "recouped_amount"] = amount.to_numpy()
    out["cause_idx"] = pd.Series(out["cause"]).map({c: i for i, c in enumerate(CAUSES)}).to_numpy()
    return out


def read_oracle(data_dir: str | Path | None) -> pd.DataFrame | None:
    """The generator's ``DIR/oracle.csv`` indexed by claim_id, or None when absent or malformed."""
    if data_dir is None:
        return None
    p = Path(data_dir) / "oracle.csv"
    if not p.exists():
        return None
    o = pd.read_csv(p, dtype={"claim_id": str})
    if not {"claim_id", "true_probability"} <= set(o.columns):
        logging.getLogger(__name__).warning("oracle.csv lacks claim_id/true_probability; ignored")
        return None
    return o.drop_duplicates("claim_id").set_index("claim_id")
