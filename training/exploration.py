"""Summaries of a claims history for exploration (used by notebooks/01-explore-claims.ipynb)."""

from __future__ import annotations

import pandas as pd

from features.contract import History
from training.labels import make_labels


def outcome_frame(history: History, horizon_days: int = 365) -> pd.DataFrame:
    """One row per claim with its label, cause, dollars and slicing attributes."""
    as_of = history.last_date
    labels = make_labels(history, as_of, horizon_days)
    c = history.claims.set_index(history.claims["claim_id"].astype(str))
    out = labels.drop(columns="payer_id").join(
        c[["payer_id", "plan_type", "billing_npi", "claim_type", "place_of_service"]]
    )
    if history.providers is not None:
        spec = dict(zip(history.providers["npi"].astype(str), history.providers["taxonomy_code"].astype(str)))
        out["specialty"] = out["billing_npi"].astype(str).map(spec).fillna("unknown")
    else:
        out["specialty"] = "unknown"
    return out


def rates_by(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Matured claims, recoupment rate, recouped dollars and rate per cause, per value of ``by``."""
    m = frame[frame["mature"]]
    g = m.groupby(by, observed=True)
    out = pd.DataFrame(
        {"claims": g.size(), "recoupment_rate": g["label"].mean(), "recouped_dollars": g["recouped_amount"].sum()}
    )
    causes = pd.crosstab(m[by], m["cause"].fillna("none"), normalize="index")
    return out.join(causes.drop(columns="none", errors="ignore").add_prefix("rate_")).sort_values(
        "recouped_dollars", ascending=False
    )


def cause_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Recouped claims and dollars per cause (shares of the total)."""
    pos = frame[frame["label"] == 1]
    g = pos.groupby("cause")
    out = pd.DataFrame({"claims": g.size(), "dollars": g["recouped_amount"].sum()})
    out["claims_share"] = out["claims"] / out["claims"].sum()
    out["dollars_share"] = out["dollars"] / out["dollars"].sum()
    return out.sort_values("dollars", ascending=False)


def recoupment_lags(history: History) -> pd.Series:
    """Days from payment to recoupment, for every recoupment of a paid claim."""
    r = history.recoupments
    if r is None or r.empty:
        return pd.Series([], dtype=float)
    paid = history.claims.set_index(history.claims["claim_id"].astype(str))["paid_date"]
    lag = r["recouped_date"].to_numpy() - paid.reindex(r["claim_id"].astype(str)).to_numpy()
    return pd.Series(lag / pd.Timedelta(days=1)).dropna()
