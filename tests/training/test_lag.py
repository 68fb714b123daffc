"""training.lag: the recoupment-lag distribution F from right-truncated lags (the reverse-time product-limit
estimator recovers a known F where the plain share of observed lags is too fast), per payer with a fallback,
inverse-probability weights per cause; and the claims training learns from with their exposure F(follow-up)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.lag import (
    F_FLOOR,
    MIN_PAYER_POSITIVES,
    LagDistribution,
    cause_weights,
    exposure_of,
    fit_lag,
    product_limit,
    usable_claims,
)

HORIZON = 365


def truncated_lags(n: int, median: float, seed: int = 0) -> pd.DataFrame:
    """Recoupments with log-normal lags, on claims followed uniformly 0..2 horizons:
    only those with lag <= follow-up are observed (what an as-of date sees)."""
    rng = np.random.default_rng(seed)
    lag = np.ceil(np.exp(np.log(median) + 0.8 * rng.standard_normal(n)))
    followup = np.minimum(rng.uniform(0, 2 * HORIZON, n), HORIZON).astype(int)
    seen = (lag <= followup) & (lag <= HORIZON)  # a later recoupment is outside the horizon: no label
    return pd.DataFrame({"lag": lag[seen], "followup": followup[seen]})


def true_cdf(days: np.ndarray, median: float) -> np.ndarray:
    from scipy.stats import norm

    z = (np.log(np.maximum(days, 1e-9)) - np.log(median)) / 0.8
    return np.minimum(norm.cdf(z) / norm.cdf((np.log(HORIZON) - np.log(median)) / 0.8), 1.0)


def test_product_limit_recovers_a_known_lag_distribution_from_truncated_lags():
    lags = truncated_lags(40_000, median=120)
    days, cdf = product_limit(lags["lag"].to_numpy(), lags["followup"].to_numpy(), HORIZON)
    assert cdf[-1] == 1.0 and np.all(np.diff(cdf) >= -1e-12)
    truth = true_cdf(days, 120)
    assert np.max(np.abs(cdf - truth)) < 0.02
    # the plain share of observed lags is too fast: short lags are over-represented among recent claims
    naive = np.searchsorted(np.sort(lags["lag"].to_numpy()), days, side="right") / len(lags)
    at = np.searchsorted(days, 120)
    assert naive[at] - truth[at] > 0.04 and abs(cdf[at] - truth[at]) < 0.02


def test_payers_with_enough_recoupments_get_their_own_curve_the_rest_the_global_one():
    fast, slow = truncated_lags(6000, 30, seed=1), truncated_lags(6000, 200, seed=2)
    few = truncated_lags(MIN_PAYER_POSITIVES, 200, seed=3).iloc[: MIN_PAYER_POSITIVES - 1]
    lags = pd.concat([fast.assign(payer_id="FAST"), slow.assign(payer_id="SLOW"), few.assign(payer_id="FEW")])
    dist = fit_lag(lags, HORIZON)
    assert set(dist.by) == {"FAST", "SLOW"} and dist.n == len(lags)
    t = np.array([60.0, 60.0, 60.0])
    f_fast, f_slow, f_few = dist(t, np.array(["FAST", "SLOW", "FEW"]))
    assert f_fast > 0.8 and f_slow < 0.25 and f_few == pytest.approx(dist(t[:1])[0])
    # without payers: one curve; at the horizon every recoupment within it has happened
    one = fit_lag(lags, HORIZON, by=None)
    assert one.by == {} and one(np.array([HORIZON]))[0] == 1.0
    assert one(np.array([0.0]))[0] >= F_FLOOR
    back = LagDistribution.from_dict(dist.to_dict())
    assert np.allclose(back(t, np.array(["FAST", "SLOW", "FEW"])), [f_fast, f_slow, f_few])


def test_cause_weights_make_recent_recoupments_of_slow_causes_count_more():
    fast = truncated_lags(3000, 20, seed=4).assign(cause="duplicate")
    slow = truncated_lags(3000, 200, seed=5).assign(cause="documentation")
    lags = pd.concat([fast, slow], ignore_index=True)
    w = cause_weights(lags, HORIZON)
    assert w.mean() == pytest.approx(1.0) and w.max() <= 1 / F_FLOOR * w.mean() / w.min() + 1e-9
    recent = lags["followup"] < 120
    assert w[(lags["cause"] == "documentation") & recent].mean() > 2 * w[(lags["cause"] == "duplicate") & recent].mean()
    # weighting restores the slow cause's share among the recoupments within the horizon
    from scipy.stats import norm

    within = {m: norm.cdf((np.log(HORIZON) - np.log(m)) / 0.8) for m in (20, 200)}
    share = within[200] / (within[20] + within[200])
    assert w[lags["cause"] == "documentation"].sum() / w.sum() == pytest.approx(share, abs=0.03)
    assert (lags["cause"] == "documentation").mean() < share - 0.05


def test_usable_claims_and_exposure():
    labels = pd.DataFrame(
        {
            "mature": [True, False, False, False],
            "followup_days": [365.0, 100.0, 10.0, np.nan],
            "payer_id": ["A", "A", "A", "A"],
        }
    )
    assert usable_claims(labels, {"immature": False}).tolist() == [True, False, False, False]
    assert usable_claims(labels, {"immature": True, "min_followup_days": 28}).tolist() == [True, True, False, False]
    dist = fit_lag(truncated_lags(5000, 100).assign(payer_id="A"), HORIZON)
    e = exposure_of(labels, dist)
    assert e[0] == 1.0 and 0 < e[2] < e[1] < 1
    assert exposure_of(labels, None).tolist() == [1.0] * 4
