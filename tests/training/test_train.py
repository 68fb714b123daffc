"""training.train with immature labels (the default): claims whose horizon has not ended are learned from with
their follow-up as an offset, the lag distribution is kept in the bundle, and the matured-only policy is still
one config switch away."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_the_session_model_learned_from_claims_whose_horizon_has_not_ended(trained):
    result = trained["result"]
    meta, summary = result.bundle.meta, result.data_summary
    assert meta["labels"]["immature"] and meta["labels"]["min_followup_days"] == 28
    lag = meta["labels"]["lag"]
    assert lag["cdf"][-1] == 1.0 and np.all(np.diff(lag["cdf"]) >= -1e-9) and lag["n"] > 0
    assert 0 < lag["median_days"] <= lag["p90_days"] <= meta["horizon_days"]
    assert summary["usable_not_matured"] > 0 and summary["usable"] > summary["matured"]
    # the train slice reaches past the last matured claim: it holds claims paid less than a horizon ago
    matured_until = pd.Timestamp(meta["as_of"]) - pd.Timedelta(days=meta["horizon_days"])
    assert pd.Timestamp(meta["split_dates"]["valid"][1]) > matured_until
    # the latest window's metrics compare probability x F(follow-up) with the labels as known
    e = result.scored["exposure"]
    assert ((e > 0) & (e <= 1)).all() and (e < 1).any()


def test_matured_only_is_one_switch_away(trained):
    from training.train import train_model

    cfg = {**trained["config"], "labels": {**trained["config"]["labels"], "immature": False}}
    result = train_model(trained["history"], config=cfg)
    assert result.data_summary["usable_not_matured"] == 0 and result.bundle.meta["labels"]["lag"] is None
    assert "exposure" not in result.scored.columns
    matured_until = pd.Timestamp(result.bundle.meta["as_of"]) - pd.Timedelta(days=365)
    assert pd.Timestamp(result.bundle.meta["split_dates"]["test"][1]) <= matured_until
