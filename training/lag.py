"""The recoupment-lag distribution F(t) = P(recouped within t days of payment | recouped within the horizon).

Training learns from claims whose horizon has not ended yet (issue 13): a claim paid ``t`` days before the as-of
date and not recouped yet is only a partial negative. Under the discrete-time survival view used here,

    P(recouped by t | x) = P(recouped within the horizon | x) * F(t)

so the model's log-odds get the offset ``log F(t)`` (a LightGBM ``init_score``) and score with the full horizon
(offset 0, F(horizon) = 1). The assumption: the lag does not depend on the claim's features once the payer is
known (lags are estimated per payer with enough recoupments, else over all payers); per cause it does (a
duplicate is caught in weeks, a documentation audit in months), which :func:`cause_weights` corrects for the
cause model.

F is estimated from every recouped claim seen by the as-of date, not only matured ones, with the reverse-time
product-limit estimator for right-truncated data (Lynden-Bell 1971; Lagakos, Barraj & De Gruttola 1988): a
recoupment with lag ``l`` on a claim followed ``T`` days is observed only because ``l <= T``, so

    F(t) = prod_{s > t} (1 - d_s / R_s),   d_s = #{lag = s},   R_s = #{lag <= s <= T}

on days, kept weekly. Beyond the longest follow-up seen, F is not identified and is taken as 1 (no recoupment assumed
that late); training warns when the history is that short.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: F is estimated per day and kept (in the bundle) every this many days, interpolated in between
STEP_DAYS = 7
#: a payer gets its own lag distribution from this many recouped claims; below, it shares the global one
MIN_PAYER_POSITIVES = 200
#: a cause's own distribution (for the cause model's weights) from this many recouped claims
MIN_CAUSE_POSITIVES = 50
#: F is floored here: a claim followed for so short a time that F is below it says almost nothing, and its
#: offset (log F) and weight (1 / F) stay bounded
F_FLOOR = 0.02


@dataclass
class LagDistribution:
    """F on a grid of days (``days[k]`` -> ``cdf[k]``), with per-key curves (payer or cause) where estimated."""

    horizon_days: int
    days: list[int]
    cdf: list[float]
    n: int  # recouped claims behind the global curve
    by: dict[str, list[float]] = field(default_factory=dict)
    by_n: dict[str, int] = field(default_factory=dict)
    identified_days: int = 0  # longest follow-up in the data (F is assumed 1 beyond it)

    def __call__(self, followup_days: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """F(followup) per claim (floored at :data:`F_FLOOR`), by key where the key has its own curve."""
        t = np.clip(np.asarray(followup_days, dtype=float), 0, self.horizon_days)
        out = np.interp(t, self.days, self.cdf)
        if keys is not None and self.by:
            k = np.asarray(keys).astype(str)
            for key, curve in self.by.items():
                m = k == key
                if m.any():
                    out[m] = np.interp(t[m], self.days, curve)
        return np.clip(out, F_FLOOR, 1.0)

    def quantile(self, q: float) -> int:
        """Days by which a share ``q`` of the recoupments within the horizon have happened (global curve)."""
        return int(self.days[int(np.searchsorted(self.cdf, q))]) if self.cdf[-1] >= q else self.horizon_days

    def to_dict(self) -> dict:
        """Kept in the bundle's meta (``labels.lag``): the curves and a summary."""
        return {
            "horizon_days": self.horizon_days,
            "step_days": STEP_DAYS,
            "n": self.n,
            "median_days": self.quantile(0.5),
            "p90_days": self.quantile(0.9),
            "identified_days": self.identified_days,
            "days": self.days,
            "cdf": [round(v, 6) for v in self.cdf],
            "by": {k: [round(v, 6) for v in c] for k, c in self.by.items()},
            "by_n": self.by_n,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LagDistribution":
        return cls(
            int(d["horizon_days"]),
            list(d["days"]),
            list(d["cdf"]),
            int(d["n"]),
            dict(d.get("by") or {}),
            dict(d.get("by_n") or {}),
            int(d.get("identified_days", 0)),
        )


def label_delay_days(label_cfg: dict, horizon_days: int) -> int:
    """Days a claim must have been paid before the as-of date to be learned from: its whole horizon, or with
    ``immature`` the minimum follow-up."""
    return int(label_cfg["min_followup_days"]) if label_cfg.get("immature") else int(horizon_days)


def usable_claims(labels: pd.DataFrame, label_cfg: dict) -> pd.Series:
    """The claims a model learns from or is measured on: matured ones, and with ``immature`` every claim paid
    at least ``min_followup_days`` before the as-of date (its label = recouped by then)."""
    if not label_cfg.get("immature"):
        return labels["mature"]
    return labels["mature"] | (labels["followup_days"] >= label_delay_days(label_cfg, 0))


def exposure_of(labels: pd.DataFrame, lag: LagDistribution | None) -> np.ndarray:
    """F(follow-up) per claim: the share of its within-horizon recoupment risk observable by the as-of date
    (1 when matured, or without a lag distribution)."""
    if lag is None:
        return np.ones(len(labels))
    e = lag(labels["followup_days"].fillna(0).to_numpy(), labels["payer_id"].to_numpy())
    return np.where(labels["mature"].to_numpy(), 1.0, e)


def product_limit(lag: np.ndarray, followup: np.ndarray, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Reverse-time product-limit F(t) = P(lag <= t), estimated on days 0..horizon and kept every
    :data:`STEP_DAYS` days (and at the horizon): (days, cdf), cdf[-1] = 1.

    ``lag`` (days from payment to the first recoupment, <= horizon) and ``followup`` (days the claim was followed,
    >= lag, capped at the horizon) of recouped claims."""
    n = horizon_days + 1
    lag_d = np.clip(np.asarray(lag, dtype=np.int64), 0, horizon_days)
    fu_d = np.clip(np.asarray(followup, dtype=np.int64), 0, horizon_days)
    d = np.bincount(lag_d, minlength=n).astype(float)
    # R_s = #{lag <= s} - #{followup < s}: the recouped claims whose lag s would have been seen
    at_risk = np.cumsum(d) - np.concatenate([[0.0], np.cumsum(np.bincount(fu_d, minlength=n))[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - d / np.maximum(at_risk, 1.0), 1.0)
    # F(t) = product of the factors of the days after t
    cdf = np.clip(np.concatenate([np.cumprod(factor[::-1])[::-1][1:], [1.0]]), 0.0, 1.0)
    days = np.unique(np.r_[np.arange(0, horizon_days + 1, STEP_DAYS), horizon_days])
    return days.astype(int), cdf[days]


def lag_frame(labels: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Recouped claims among ``labels`` (make_labels' frame, with ``followup_days``) with the lag in days from
    payment to their first recoupment within the horizon."""
    pos = labels[(labels["label"] == 1) & labels["followup_days"].notna()]
    return pd.DataFrame(
        {
            "lag": np.clip(pos["first_recouped_days"].to_numpy(dtype=float), 0, horizon_days),
            "followup": pos["followup_days"].to_numpy(dtype=float),
            "payer_id": pos["payer_id"].astype(str).to_numpy(),
            "cause": pos["cause"].astype(str).to_numpy(),
        },
        index=pos.index,
    )


def fit_lag(
    lags: pd.DataFrame, horizon_days: int, by: str | None = "payer_id", min_n: int | None = None
) -> LagDistribution:
    """F over all recouped claims, plus one curve per value of ``by`` with at least ``min_n`` of them."""
    min_n = min_n if min_n is not None else (MIN_PAYER_POSITIVES if by == "payer_id" else MIN_CAUSE_POSITIVES)
    if len(lags) == 0:
        return LagDistribution(horizon_days, [0, horizon_days], [1.0, 1.0], 0)
    days, cdf = product_limit(lags["lag"].to_numpy(), lags["followup"].to_numpy(), horizon_days)
    dist = LagDistribution(
        horizon_days, days.tolist(), cdf.tolist(), len(lags), identified_days=int(lags["followup"].max())
    )
    if by:
        for key, g in lags.groupby(by):
            if len(g) >= min_n:
                dist.by[str(key)] = product_limit(g["lag"].to_numpy(), g["followup"].to_numpy(), horizon_days)[
                    1
                ].tolist()
                dist.by_n[str(key)] = len(g)
    return dist


def cause_weights(lags: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Inverse-probability weights 1 / F_cause(followup) for the recouped claims of ``lags``: a recoupment of a
    slow cause on a recent claim is seen rarely, so each one seen stands for 1 / F of them (bounded by
    1 / :data:`F_FLOOR`). Weights average 1."""
    if len(lags) == 0:
        return np.ones(0)
    dist = fit_lag(lags, horizon_days, by="cause")
    w = 1.0 / dist(lags["followup"].to_numpy(), lags["cause"].to_numpy())
    return w / w.mean()
