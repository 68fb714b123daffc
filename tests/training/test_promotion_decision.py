"""The promotion gate's comparison (training.metrics.promotion_decision) on hand-built scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.metrics import binary_metrics, promotion_decision

CAPS = [0.1]
RULES = {"min_pr_auc_gain": 0.0, "max_ece_increase": 0.005}
Y = np.array([0] * 80 + [1] * 20)
GOOD = np.r_[np.linspace(0.01, 0.3, 80), np.linspace(0.2, 0.6, 20)]  # ranks the positives mostly on top
POOR = np.r_[np.linspace(0.01, 0.5, 80), np.linspace(0.05, 0.4, 20)]


def scored(p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"label": Y, "probability": p, "recouped_amount": Y * 100.0})


def metrics(p: np.ndarray) -> dict:
    return binary_metrics(Y, p, Y * 100.0, p, CAPS)


def test_better_challenger_passes_and_reports_both_figures():
    gate = promotion_decision(metrics(GOOD), scored(GOOD), POOR, CAPS, RULES)
    assert gate["pass"] is True
    assert gate["challenger_pr_auc"] > gate["champion_pr_auc"]
    assert set(gate) == {"pass", "champion_pr_auc", "challenger_pr_auc", "champion_ece", "challenger_ece"}


def test_worse_or_equal_challenger_fails():
    assert promotion_decision(metrics(POOR), scored(POOR), GOOD, CAPS, RULES)["pass"] is False
    assert promotion_decision(metrics(GOOD), scored(GOOD), GOOD, CAPS, RULES)["pass"] is False  # no gain


def test_better_ranking_with_worse_calibration_fails():
    shifted = np.clip(GOOD + 0.3, 0, 1)  # same order as GOOD (same PR-AUC), far worse calibrated
    gate = promotion_decision(metrics(shifted), scored(shifted), POOR, CAPS, RULES)
    assert gate["challenger_pr_auc"] > gate["champion_pr_auc"]
    assert gate["challenger_ece"] - gate["champion_ece"] > RULES["max_ece_increase"]
    assert gate["pass"] is False
