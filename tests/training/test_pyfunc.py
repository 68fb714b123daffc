"""training.pyfunc: the registered model loads through ``mlflow.pyfunc.load_model`` and predicts what the
bundle predicts, from the feature table as the pipeline makes it."""

from __future__ import annotations

import numpy as np
import pytest

from features.model.bundle import ModelBundle, expected_amount
from features.contract import CAUSES


@pytest.fixture(scope="module")
def pyfunc_model(trained):
    import mlflow

    from features.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    info = trained["info"]
    return mlflow.pyfunc.load_model(f"models:/{info['name']}/{info['version']}")


def test_pyfunc_predicts_what_the_bundle_predicts(trained, pyfunc_model):
    result = trained["result"]
    X = result.test_X.iloc[:200]
    out = pyfunc_model.predict(X)
    bundle = ModelBundle.load(trained["bundle_dir"])
    M = bundle.spec.transform(X)
    assert list(out.index) == list(X.index)
    np.testing.assert_allclose(out["recoupment_probability"].to_numpy(), bundle.probability(M), rtol=1e-12)
    cp = bundle.cause_probabilities(M)
    np.testing.assert_allclose(out[[f"p_{c}" for c in CAUSES]].to_numpy(), cp, rtol=1e-12)
    np.testing.assert_allclose(
        out["expected_recoupment_amount"].to_numpy(), expected_amount(bundle, bundle.probability(M), cp, X), rtol=1e-12
    )
    # the same as the training run's own test-slice predictions
    np.testing.assert_allclose(
        out["recoupment_probability"].to_numpy(), result.scored["probability"].loc[X.index].to_numpy(), rtol=1e-9
    )
    assert out["recoupment_probability"].between(0, 1).all()


def test_pyfunc_takes_plain_strings_and_names_a_missing_column(trained, pyfunc_model):
    X = trained["result"].test_X.iloc[:20]
    plain = X.copy()
    for c in ("payer_id", "plan_type", "specialty"):
        plain[c] = plain[c].astype(str)
    np.testing.assert_array_equal(
        pyfunc_model.predict(plain)["recoupment_probability"].to_numpy(),
        pyfunc_model.predict(X)["recoupment_probability"].to_numpy(),
    )
    with pytest.raises(Exception, match="n_lines"):
        pyfunc_model.predict(X.drop(columns=["n_lines"]))
