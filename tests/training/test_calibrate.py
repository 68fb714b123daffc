"""training.calibrate: isotonic and Platt maps are monotone, stay within [0, 1] and fix a miscalibrated score;
``auto`` picks Platt on few validation positives and isotonic on many."""

from __future__ import annotations

import json

import numpy as np
import pytest

from features.model.bundle import Calibrator
from training.calibrate import MIN_POSITIVES_ISOTONIC, choose_kind, fit_calibrator
from training.metrics import expected_calibration_error


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores whose true probability is raw ** 2 (overconfident: raw overstates the risk)."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.01, 0.99, n)
    return raw, (rng.random(n) < raw**2).astype(int)


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_calibrator_is_monotone_and_within_unit_interval(kind):
    raw, y = overconfident()
    cal = fit_calibrator(raw, y, kind)
    assert cal.kind == kind
    grid = np.r_[-0.5, 0.0, np.linspace(0, 1, 501), 1.0, 1.5]  # also outside the fitted range
    out = cal(grid)
    assert np.all(np.diff(out) >= -1e-12)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[-1] > out[0]  # not a constant


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_calibration_reduces_the_calibration_error(kind):
    raw, y = overconfident(seed=1)
    cal = fit_calibrator(raw, y, kind)
    test_raw, test_y = overconfident(seed=2)
    before = expected_calibration_error(test_y, test_raw)
    after = expected_calibration_error(test_y, cal(test_raw))
    assert before > 0.1 and after < before / 3


def test_platt_recovers_a_known_logistic_map():
    raw = np.linspace(0.01, 0.99, 20001)
    logit = np.log(raw / (1 - raw))
    y = (np.random.default_rng(3).random(len(raw)) < 1 / (1 + np.exp(-(2.0 * logit - 1.0)))).astype(int)
    cal = fit_calibrator(raw, y, "platt")
    assert cal.a == pytest.approx(2.0, abs=0.15) and cal.b == pytest.approx(-1.0, abs=0.1)


def test_one_class_or_none_leaves_scores_as_they_are():
    raw = np.array([0.1, 0.5, 0.9])
    assert fit_calibrator(raw, np.zeros(3), "isotonic").kind == "none"
    assert fit_calibrator(raw, np.array([0, 1, 1]), "none").kind == "none"
    assert np.array_equal(Calibrator()(raw), raw)


def test_isotonic_knots_survive_a_json_round_trip():
    raw, y = overconfident(n=500, seed=4)
    cal = fit_calibrator(raw, y, "isotonic")
    again = Calibrator(**json.loads(json.dumps(cal.to_dict())))
    grid = np.linspace(0, 1, 101)
    assert np.array_equal(cal(grid), again(grid))


# ------------------------------------------------------------------------------------------------ auto
def rare(positives: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores of a rare event (~5 %) with about ``positives`` positives, overconfident like above."""
    rng = np.random.default_rng(seed)
    n = positives * 20
    raw = rng.beta(1, 12, n) * 1.6
    raw = np.clip(raw, 1e-4, 0.999)
    y = (rng.random(n) < np.clip(raw * 0.6, 0, 1)).astype(int)
    return raw, y


def test_auto_picks_platt_on_few_positives_and_isotonic_on_many():
    few_raw, few_y = rare(150)
    many_raw, many_y = rare(1500)
    assert few_y.sum() < MIN_POSITIVES_ISOTONIC <= many_y.sum()
    assert fit_calibrator(few_raw, few_y).kind == "platt"  # auto is the default
    assert fit_calibrator(many_raw, many_y, "auto").kind == "isotonic"
    assert choose_kind("auto", MIN_POSITIVES_ISOTONIC - 1) == "platt"
    assert choose_kind("auto", MIN_POSITIVES_ISOTONIC) == "isotonic"
    for kind in ("isotonic", "platt", "none"):  # an explicit kind is kept whatever the count
        assert fit_calibrator(few_raw, few_y, kind).kind == kind
    with pytest.raises(ValueError, match="calibration must be one of auto, isotonic, platt, none"):
        fit_calibrator(few_raw, few_y, "beta")


@pytest.mark.parametrize("positives", [150, 1500])
def test_auto_is_monotone_and_within_unit_interval(positives):
    raw, y = rare(positives)
    cal = fit_calibrator(raw, y, "auto")
    grid = np.r_[-0.5, 0.0, np.linspace(0, 1, 501), 1.0, 1.5]
    out = cal(grid)
    assert np.all(np.diff(out) >= -1e-12) and out.min() >= 0.0 and out.max() <= 1.0
    assert out[-1] > out[0]


def test_platt_keeps_the_ranking_where_isotonic_ties_claims():
    raw, y = rare(150)
    platt = fit_calibrator(raw, y, "auto")(raw)
    iso = fit_calibrator(raw, y, "isotonic")(raw)
    assert len(np.unique(platt)) == len(np.unique(raw))  # no ties introduced
    assert np.array_equal(np.argsort(platt, kind="stable"), np.argsort(raw, kind="stable"))
    assert len(np.unique(iso)) < len(np.unique(raw)) / 2  # what auto avoids on few positives
