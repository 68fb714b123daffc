"""training.train guards: a train slice with too few positives, or one that begins before a year of history
exists, is warned about (a logged WARNING with the figures, the data summary, the bundle meta, the MLflow run)."""

from __future__ import annotations

import logging

import pandas as pd

from training.train import MIN_HISTORY_DAYS, MIN_TRAIN_POSITIVES, train_warnings


def slice_of(start: str, days: int, positives: int, claims: int = 5000) -> pd.DataFrame:
    """A train slice's labels: ``claims`` claims submitted daily from ``start``, the first ``positives`` recouped."""
    dates = pd.Timestamp(start) + pd.to_timedelta(pd.Series(range(claims)) % days, unit="D")
    return pd.DataFrame({"submitted_date": dates, "label": [1] * positives + [0] * (claims - positives)})


def test_a_warm_slice_with_enough_positives_has_no_warning():
    assert train_warnings(pd.Timestamp("2020-01-01"), slice_of("2021-01-01", 300, MIN_TRAIN_POSITIVES)) == []


def test_too_few_positives_are_warned_with_the_figures():
    (w,) = train_warnings(pd.Timestamp("2020-01-01"), slice_of("2021-06-01", 300, MIN_TRAIN_POSITIVES - 1))
    assert f"has {MIN_TRAIN_POSITIVES - 1:,} positives (5,000 claims), fewer than {MIN_TRAIN_POSITIVES:,}" in w


def test_a_slice_beginning_in_the_first_year_of_history_is_warned_with_its_cold_claims():
    start = pd.Timestamp("2020-01-01")
    train = slice_of("2020-03-01", 400, MIN_TRAIN_POSITIVES)
    (w,) = train_warnings(start, train)
    cold = int((train["submitted_date"] < start + pd.Timedelta(days=MIN_HISTORY_DAYS)).sum())
    assert "begins 2020-03-01, 60 days after the history's first claim (2020-01-01)" in w
    assert f"{cold:,} of its 5,000 claims were submitted before a year of history existed (2020-12-31)" in w
    # exactly a year later is warm
    assert train_warnings(start, slice_of("2020-12-31", 100, MIN_TRAIN_POSITIVES)) == []


def test_the_session_model_records_its_warnings(trained):
    import mlflow

    from features.settings import tracking_uri

    result = trained["result"]  # 4,000 claims: few positives, and the train slice starts with the history
    warnings = result.bundle.meta["warnings"]
    assert len(warnings) == 2 and result.data_summary["warnings"] == warnings
    assert f"positives ({result.data_summary['n_train']:,} claims)" in warnings[0]
    assert f"the train slice begins {result.bundle.meta['split_dates']['train'][0]}" in warnings[1]
    mlflow.set_tracking_uri(tracking_uri())
    assert mlflow.get_run(trained["info"]["run_id"]).data.tags["training_warnings"] == " | ".join(warnings)


def test_training_logs_the_warnings_and_the_calibration(trained, caplog):
    from training.train import train_model

    cfg = {**trained["config"], "likelihood": {**trained["config"]["likelihood"], "n_estimators": 5}}
    cfg["cause"] = {**cfg["cause"], "n_estimators": 3}
    with caplog.at_level(logging.INFO, logger="training.train"):
        result = train_model(trained["history"], config=cfg)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == result.bundle.meta["warnings"]
    cal = result.bundle.meta["calibration"]
    line = f"calibration: {cal['kind']} (auto requested; {cal['valid_positives']} validation positives, isotonic from"
    assert any(r.getMessage().startswith(line) for r in caplog.records)
