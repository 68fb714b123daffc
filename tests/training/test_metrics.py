"""training.metrics on toy sets with known answers: calibration error, capacity, discrimination, causes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import CAUSES
from training.metrics import (
    binary_metrics,
    capacity_metrics,
    cause_metrics,
    confusion,
    expected_calibration_error,
    sliced,
)


def calibrated_toy(levels=(0.1, 0.3, 0.5, 0.7, 0.9), per_level: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Each predicted level p on ``per_level`` claims of which exactly p * per_level are positives."""
    p = np.repeat(levels, per_level)
    y = np.concatenate(
        [np.r_[np.ones(int(round(v * per_level))), np.zeros(per_level - int(round(v * per_level)))] for v in levels]
    )
    return y, p


def test_ece_of_a_perfectly_calibrated_set_is_zero():
    y, p = calibrated_toy()
    assert expected_calibration_error(y, p, bins=5) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("shift", [0.05, 0.1])
def test_ece_of_a_shifted_set_is_the_shift(shift):
    y, p = calibrated_toy()
    assert expected_calibration_error(y, p + shift, bins=5) == pytest.approx(shift)
    assert expected_calibration_error(y, p - shift, bins=5) == pytest.approx(shift)


def test_ece_of_nothing_is_nan():
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_capacity_metrics_review_the_top_share():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    dollars = np.array([100.0, 0, 50, 0, 0, 0, 0, 0, 0, 10])
    rank = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05])
    m = capacity_metrics(y, rank, dollars, rank, [0.2, 0.3])
    assert m["precision_at_20pct"] == 0.5 and m["recall_at_20pct"] == pytest.approx(1 / 3)
    assert m["dollars_at_20pct"] == 100 and m["dollars_share_at_20pct"] == pytest.approx(100 / 160)
    assert m["precision_at_30pct"] == pytest.approx(2 / 3) and m["dollars_at_30pct"] == 150
    assert capacity_metrics(y, rank, dollars, rank, [0.01])["precision_at_1pct"] == 1.0  # at least one claim


def test_binary_metrics_separating_and_random_scores():
    y = np.array([0, 0, 0, 1, 1])
    perfect = binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]), np.ones(5), np.ones(5), [0.4])
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0 and perfect["positive_rate"] == 0.4
    assert perfect["n"] == 5 and perfect["positives"] == 2
    reversed_ = binary_metrics(y, np.array([0.9, 0.8, 0.7, 0.2, 0.1]), np.ones(5), np.ones(5), [0.4])
    assert reversed_["roc_auc"] == 0.0 and reversed_["pr_auc"] < perfect["pr_auc"]
    assert reversed_["brier"] > perfect["brier"]
    one_class = binary_metrics(np.zeros(4, dtype=int), np.full(4, 0.2), np.ones(4), np.ones(4), [0.5])
    assert np.isnan(one_class["roc_auc"]) and np.isnan(one_class["pr_auc"])
    assert one_class["brier"] == pytest.approx(0.04) and one_class["mean_predicted"] == pytest.approx(0.2)


def test_cause_metrics_on_recouped_claims_only():
    k = {c: i for i, c in enumerate(CAUSES)}
    a, b = CAUSES[0], CAUSES[1]
    true = np.array([a, a, b, None], dtype=object)
    proba = np.zeros((4, len(CAUSES)))
    proba[[0, 1, 2, 3], [k[a], k[b], k[b], k[a]]] = 1.0
    m = cause_metrics(true, proba)
    assert m["cause_n"] == 3 and m["cause_top1_accuracy"] == pytest.approx(2 / 3)
    assert m[f"cause_precision_{a}"] == 1.0 and m[f"cause_recall_{a}"] == 0.5
    assert m[f"cause_precision_{b}"] == 0.5 and m[f"cause_recall_{b}"] == 1.0
    assert np.isnan(cause_metrics(np.array([None], dtype=object), proba[:1])["cause_top1_accuracy"])
    cm = confusion(true, proba)
    assert cm.loc[a, a] == 1 and cm.loc[a, b] == 1 and cm.loc[b, b] == 1 and cm.to_numpy().sum() == 3


def test_sliced_skips_small_slices():
    frame = pd.DataFrame(
        {
            "payer_id": ["A"] * 60 + ["B"] * 10,
            "label": ([0, 1] * 30) + [0] * 10,
            "probability": ([0.2, 0.8] * 30) + [0.1] * 10,
        }
    )
    out = sliced(frame, "payer_id", min_n=50)
    assert list(out["payer_id"]) == ["A"] and out["n"].iloc[0] == 60
    assert out["roc_auc"].iloc[0] == 1.0 and out["positive_rate"].iloc[0] == 0.5


def test_oracle_ratios_only_where_the_oracle_figure_is_finite_and_positive():
    from training.metrics import oracle_ratios

    got = oracle_ratios(
        {"roc_auc": 0.8, "pr_auc": 0.3, "cause_top1_accuracy": 0.5},
        {"roc_auc": 0.9, "pr_auc": float("nan"), "cause_top1_accuracy": 0.0},
    )
    assert got == {"roc_auc": 0.8 / 0.9}
    assert oracle_ratios({"pr_auc": 0.3}, {"roc_auc": 0.9, "pr_auc": 0.6}) == {"pr_auc": 0.5}
