"""features.model.bundle: the bundle persists estimators (and loads bundles saved before them); the
calibrator; dollars at risk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import CAUSES
from features.model.bundle import Calibrator, ModelBundle, expected_amount
from features.model.estimator import LightGBMClassifier
from features.model.spec import FeatureSpec
from tests.helpers.models import PARAMS, features


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    X, y = features(500, 2)
    spec = FeatureSpec(min_level_count=1).fit(X)
    M = spec.transform(X)
    lik = LightGBMClassifier(n_estimators=10, params=PARAMS, num_threads=1).fit(M, y)
    cause = LightGBMClassifier(n_classes=len(CAUSES), n_estimators=4, params=PARAMS, num_threads=1)
    cause.fit(M, np.arange(len(M)) % len(CAUSES))
    meta = {"num_threads": 3, "payer_paid_ratio": {"A": 0.5, "7": 0.25}, "paid_ratio_default": 0.8}
    meta["cause_amount_share"] = {c: 0.5 for c in CAUSES}
    return ModelBundle(lik, cause, Calibrator(), spec, meta)


def test_bundle_persists_estimators_and_loads_older_bundles(bundle, tmp_path):
    M = bundle.spec.transform(features(40, 5)[0])
    bundle.save(tmp_path / "b")
    back = ModelBundle.load(tmp_path / "b")
    assert back.numpy_ok()
    N = back.matrix(M.iloc[:30].astype({"payer_id": object}))
    assert isinstance(N, np.ndarray)
    np.testing.assert_array_equal(back.probability(N), bundle.probability(M.iloc[:30]))
    np.testing.assert_array_equal(back.cause_probabilities(N), bundle.cause_probabilities(M.iloc[:30]))
    np.testing.assert_array_equal(back.contributions(N), bundle.contributions(M.iloc[:30]))
    # saved before estimators: boosters only, threads from meta.json
    for name in ("likelihood", "cause"):
        (tmp_path / "b" / f"{name}.json").unlink()
    old = ModelBundle.load(tmp_path / "b")
    assert old.likelihood.num_threads == 3 and list(old.cause.classes_) == list(range(len(CAUSES)))
    np.testing.assert_array_equal(old.cause_probabilities(N), bundle.cause_probabilities(M.iloc[:30]))


def test_without_a_cause_model_causes_are_uniform(bundle):
    M = bundle.spec.transform(features(3, 6)[0])
    alone = ModelBundle(bundle.likelihood, None, bundle.calibrator, bundle.spec, bundle.meta)
    np.testing.assert_array_equal(alone.cause_probabilities(M), np.full((3, len(CAUSES)), 1 / len(CAUSES)))


def test_calibrator_maps_raw_scores():
    iso = Calibrator(kind="isotonic", x=[0.0, 0.5, 1.0], y=[0.0, 0.2, 1.0])
    np.testing.assert_allclose(iso(np.array([0.25, 0.75, 2.0])), [0.1, 0.6, 1.0])
    platt = Calibrator(kind="platt", a=1.0, b=0.0)
    np.testing.assert_allclose(platt(np.array([0.3])), [0.3])
    assert Calibrator()(np.array([0.42]))[0] == 0.42


def test_expected_amount_uses_paid_amount_else_charge_times_payer_ratio(bundle):
    claims = pd.DataFrame(
        {
            "payer_id": ["A", 7, "NEW", None],  # known, known by its text, unknown, missing: the default ratio
            "total_charge": [100.0, 100.0, 100.0, 100.0],
            "paid_amount": [np.nan, 0.0, np.nan, 40.0],
        }
    )
    p = np.full(4, 0.5)
    cp = np.zeros((4, len(CAUSES)))
    cp[:, 0] = 1.0
    # P x (cause share 0.5) x base
    np.testing.assert_allclose(expected_amount(bundle, p, cp, claims), [12.5, 6.25, 20.0, 10.0])
