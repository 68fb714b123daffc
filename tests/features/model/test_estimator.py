"""features.model.estimator.LightGBMClassifier: an estimator in scikit-learn's sense (parameters in __init__,
fit returns self, learned attributes end in _), probabilities, TreeSHAP contributions, save/load. Real small
LightGBM models (few trees)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.model.estimator import LightGBMClassifier, load_estimator
from features.model.spec import FeatureSpec
from tests.helpers.models import PARAMS, features

LEARNED = ("booster_", "classes_", "n_features_in_", "feature_names_in_", "categories_", "n_iter_")


@pytest.fixture(scope="module")
def data():
    X, y = features(600, 1)
    spec = FeatureSpec(min_level_count=1).fit(X)
    return spec, spec.transform(X), y


@pytest.fixture(scope="module")
def fitted(data):
    _, M, y = data
    est = LightGBMClassifier(n_estimators=15, params=PARAMS, seed=3, num_threads=1)
    return est.fit(M.iloc[:400], y[:400], eval_set=(M.iloc[400:], y[400:]))


def test_init_only_stores_parameters_and_fit_returns_self(data):
    _, M, y = data
    est = LightGBMClassifier(n_estimators=5, params=PARAMS, seed=3)
    assert est.get_params()["params"] is PARAMS and est.get_params()["n_estimators"] == 5
    assert not [a for a in LEARNED if hasattr(est, a)]
    assert est.fit(M, y) is est
    assert all(hasattr(est, a) for a in LEARNED)
    assert [k for k in vars(est) if k not in est.get_params() and not k.endswith("_")] == []
    assert est.params == PARAMS  # fit does not touch its parameters
    again = clone(est)
    assert again.get_params() == est.get_params() and not hasattr(again, "booster_")


def test_learned_attributes_describe_the_training_matrix(fitted, data):
    spec, M, _ = data
    assert list(fitted.classes_) == [0, 1]
    assert list(fitted.feature_names_in_) == spec.feature_names_ and fitted.n_features_in_ == M.shape[1]
    assert fitted.categories_ == [spec.categories_["payer_id"]]
    assert 1 <= fitted.n_iter_ <= 15
    assert fitted.feature_importances_.shape == (M.shape[1],) and fitted.feature_importances_[1] > 0


def test_predict_proba_shape_bounds_and_ranking(fitted, data):
    _, M, y = data
    P = fitted.predict_proba(M)
    assert P.shape == (len(M), 2) and ((P >= 0) & (P <= 1)).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert P[y == 1, 1].mean() > P[y == 0, 1].mean() + 0.2  # it learned something
    np.testing.assert_array_equal(fitted.predict(M), (P[:, 1] > 0.5).astype(int))


def test_level_codes_predict_as_the_frame(fitted, data):
    spec, M, _ = data
    X = pd.DataFrame({"payer_id": ["A", "B", "Z", None], "x": [0.5, -1.0, 2.0, 0.0], "z": [0.0] * 4})
    np.testing.assert_array_equal(
        fitted.predict_proba(spec.transform_arrays(*spec.frame_arrays(X))), fitted.predict_proba(spec.transform(X))
    )


def test_contributions_sum_to_the_raw_score(fitted, data):
    _, M, _ = data
    C = fitted.contributions(M.iloc[:50])
    assert C.shape == (50, M.shape[1] + 1)
    p = fitted.predict_proba(M.iloc[:50])[:, 1]
    np.testing.assert_allclose(C.sum(axis=1), np.log(p / (1 - p)), rtol=1e-9, atol=1e-9)


def test_multiclass_has_every_class_even_when_training_lacks_one(data):
    _, M, _ = data
    c = np.arange(len(M)) % 3  # classes 0..2 of 4
    est = LightGBMClassifier(n_classes=4, n_estimators=5, params=PARAMS, num_threads=1).fit(M, c)
    P = est.predict_proba(M)
    assert list(est.classes_) == [0, 1, 2, 3] and P.shape == (len(M), 4)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert P[:, 3].max() < 0.05
    assert est.contributions(M.iloc[:3]).shape == (3, 4 * (M.shape[1] + 1))


def test_save_load_round_trip_predicts_the_same(fitted, data, tmp_path):
    _, M, _ = data
    fitted.save(tmp_path, "m")
    assert json.loads((tmp_path / "m.json").read_text())["estimator"] == "LightGBMClassifier"
    back = load_estimator(tmp_path, "m")
    assert type(back) is LightGBMClassifier and back.get_params() == fitted.get_params()
    np.testing.assert_array_equal(back.predict_proba(M), fitted.predict_proba(M))
    np.testing.assert_array_equal(back.contributions(M), fitted.contributions(M))
    assert back.categories_ == fitted.categories_ and back.n_iter_ == fitted.n_iter_
    # a model saved before estimators (the booster alone): parameters from the defaults given
    (tmp_path / "m.json").unlink()
    old = load_estimator(tmp_path, "m", num_threads=4)
    assert old.num_threads == 4
    np.testing.assert_array_equal(old.predict_proba(M), fitted.predict_proba(M))
    assert load_estimator(tmp_path, "absent") is None


def test_unknown_estimator_kind_is_named(fitted, tmp_path):
    fitted.save(tmp_path, "m")
    (tmp_path / "m.json").write_text(json.dumps({"estimator": "Mystery", "params": {}}))
    with pytest.raises(ValueError, match="unknown estimator 'Mystery'"):
        load_estimator(tmp_path, "m")


def test_unfitted_use_is_a_clear_error(data, tmp_path):
    _, M, _ = data
    est = LightGBMClassifier()
    for call in (lambda: est.predict_proba(M), lambda: est.contributions(M), lambda: est.save(tmp_path, "m")):
        with pytest.raises(NotFittedError, match="LightGBMClassifier is not fitted yet"):
            call()


def test_same_data_and_seed_give_the_same_model(data):
    _, M, y = data
    a = LightGBMClassifier(n_estimators=8, params={**PARAMS, "feature_fraction": 0.7}, seed=5).fit(M, y)
    b = LightGBMClassifier(n_estimators=8, params={**PARAMS, "feature_fraction": 0.7}, seed=5).fit(M, y)
    assert a.booster_.model_to_string() == b.booster_.model_to_string()
