"""Training on a Dask cluster (training.cluster, `recoup train|evaluate --cluster`): a real 2-worker LocalCluster
trains with lightgbm.dask on the small history; the bundle is registered in a real MLflow store of this module's
own, is the single process's bundle format, scores new claims through the service's Scorer and `recoup score`,
and ranks about as well as the single-process model on the same data and latest window."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.settings import MODEL_NAME
from tests.helpers.models import private_store
from training.cluster import _early_stop, split_dates
from training.split import time_split


@pytest.fixture(scope="module")
def client(recoup_home):
    from features.cluster.client import connect

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECOUP_DASK_MEMORY_LIMIT", "2GiB")
        with connect("local:2") as c:
            yield c


@pytest.fixture(scope="module")
def cluster_model(client, trained, tmp_path_factory):
    """The session model's data and config, trained on the cluster and registered (champion) in a private store."""
    from training.cluster import train_model_cluster
    from training.registry import download_bundle, log_and_register

    home = tmp_path_factory.mktemp("cluster_home")
    with pytest.MonkeyPatch.context() as mp:
        private_store(mp, home)
        cfg = trained["config"]
        result, submitted = train_model_cluster(client, trained["data_dir"], config=cfg)
        info = log_and_register(result, cfg, data_dir=trained["data_dir"], promote=True, submitted=submitted)
        bundle_dir = home / "champion"
        with tempfile.TemporaryDirectory() as tmp:
            bundle = download_bundle(MODEL_NAME, "champion", Path(tmp))
            assert bundle.path is not None
            shutil.copytree(bundle.path, bundle_dir)
        yield {"result": result, "info": info, "bundle_dir": bundle_dir, "submitted": submitted, "home": home}


def test_the_cluster_model_is_registered_as_the_single_process_bundle(cluster_model, trained):
    info, result = cluster_model["info"], cluster_model["result"]
    assert info["champion"] and info["version"] == "1"
    files = sorted(p.name for p in Path(cluster_model["bundle_dir"]).iterdir())
    assert files == sorted(p.name for p in Path(trained["bundle_dir"]).iterdir() if p.name in files)
    assert {
        "likelihood.txt",
        "likelihood.json",
        "cause.txt",
        "calibrator.json",
        "spec.json",
        "meta.json",
        "state",
    } <= set(files)
    meta = result.bundle.meta
    assert 1 <= meta["n_trees_likelihood"] <= 40 and 1 <= meta["n_trees_cause"] <= 20
    assert meta["trained_on"].startswith("dask cluster (2 workers")
    # the distributed labels, split, levels and counts are the single process's exactly
    local = trained["result"]
    assert meta["split_dates"] == local.bundle.meta["split_dates"]
    assert result.bundle.spec.categories_ == local.bundle.spec.categories_
    assert result.bundle.spec.feature_names_ == local.bundle.spec.feature_names_
    for k in ("claims", "lines", "matured", "usable", "n_train", "n_valid", "n_test", "train_positives"):
        assert result.data_summary[k] == local.data_summary[k], k
    assert meta["payer_paid_ratio"] == pytest.approx(local.bundle.meta["payer_paid_ratio"], rel=1e-12)
    assert meta["labels"]["lag"] == local.bundle.meta["labels"]["lag"]
    assert result.bundle.numpy_ok()  # the boosters learned the spec's levels: the service's fast path applies
    # the labelled table was written to a scratch folder of the run's own, removed when training ended
    from features.cluster.client import dask_directory

    parts = dask_directory() / "parts"
    assert parts.is_dir() and list(parts.iterdir()) == []


def test_quality_is_comparable_with_the_single_process_model(cluster_model, trained):
    """Data-parallel trees differ from one process's, so not equal: on the same latest window, ROC-AUC within 0.05
    of the single-process model with the same config; PR-AUC (a few dozen positives here: it moves by several
    points between equally good models, seen 0.06 vs 0.13) no worse than the single model's by more than 0.05 and
    above the window's positive rate (better than ranking at random)."""
    cm, lm = cluster_model["result"].metrics, trained["result"].metrics
    assert list(cluster_model["result"].scored.index) == list(trained["result"].scored.index)
    assert abs(cm["roc_auc"] - lm["roc_auc"]) <= 0.05, (cm["roc_auc"], lm["roc_auc"])
    assert cm["pr_auc"] >= lm["pr_auc"] - 0.05, (cm["pr_auc"], lm["pr_auc"])
    assert cm["pr_auc"] > cm["positive_rate"], (cm["pr_auc"], cm["positive_rate"])
    assert cm["roc_auc"] > 0.6


def test_the_service_path_scores_new_claims_with_the_cluster_model(cluster_model, trained):
    from features.model.bundle import ModelBundle
    from serving.schemas import Claim, claims_to_frames
    from serving.scorer import Scorer
    from tests.helpers.claims import recent_claims

    scorer = Scorer.from_dir(cluster_model["bundle_dir"])
    claims = recent_claims(trained["history"], 40, "NEW", 20)
    conv = claims_to_frames([Claim.model_validate(c) for c in claims])
    scores = scorer.score_claims(conv.claims, conv.lines, record=False)
    p = np.array([s["recoupment_probability"] for s in scores])
    assert len(p) == 40 and ((p >= 0) & (p <= 1)).all() and p.std() > 0
    assert {s["risk_band"] for s in scores} <= {"low", "medium", "high"}
    assert all(s["causes"] for s in scores) and all(s["expected_recoupment_amount"] >= 0 for s in scores)
    assert scorer.model_version == ModelBundle.load(cluster_model["bundle_dir"]).meta.get(
        "model_version", "unregistered"
    )


def test_recoup_score_serves_the_cluster_model_unchanged(cluster_model, trained, tmp_path):
    from serving.batch import score_cli

    out = tmp_path / "scores.csv"
    score_cli(
        data=trained["data_dir"], out=out, since="2025-10-01", explain="none", bundle_dir=cluster_model["bundle_dir"]
    )
    scored = pd.read_csv(out)
    assert len(scored) > 50 and scored["recoupment_probability"].between(0, 1).all()


def test_evaluate_on_the_cluster_is_the_single_process_evaluation(client, cluster_model, trained):
    """Same bundle, same window: the cluster's per-partition scoring gives the single process's metrics."""
    from features.model.bundle import ModelBundle
    from training.cluster import evaluate_cluster
    from training.evaluate import evaluate_history

    bundle = ModelBundle.load(cluster_model["bundle_dir"])
    since = bundle.meta["split_dates"]["test"][0]
    on_cluster = evaluate_cluster(client, bundle, trained["data_dir"], since=since)
    local = evaluate_history(bundle, trained["history"], since=since, data_dir=trained["data_dir"])
    assert on_cluster["window"] == local["window"]
    pd.testing.assert_frame_equal(
        on_cluster["scored"].loc[local["scored"].index], local["scored"], rtol=1e-9, check_index_type=False
    )
    for k, v in local["metrics"].items():
        assert on_cluster["metrics"][k] == pytest.approx(v, rel=1e-9, nan_ok=True), k


def test_split_dates_are_time_splits():
    rng = np.random.default_rng(5)
    dates = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, 5000), "D")
    labels = pd.DataFrame({"submitted_date": dates, "mature": rng.random(5000) < 0.8})
    part = time_split(labels, 0.15, 0.15)
    d_valid, d_test = split_dates(labels.loc[labels["mature"], "submitted_date"].value_counts(), 0.15, 0.15)
    m = labels["mature"]
    sd = labels["submitted_date"]
    assert (part[m & (sd < d_valid)] == "train").all() and (part[m & (sd >= d_test)] == "test").all()
    assert (part[m & (sd >= d_valid) & (sd < d_test)] == "valid").all()
    assert sd[part == "valid"].min() == d_valid and sd[part == "test"].min() == d_test


def test_early_stopping_rule():
    """LightGBM's rule: the best iteration so far, stopped after `rounds` without a strict improvement."""
    curve = np.array([5.0, 4.0, 3.0, 3.0, 3.5, 2.9, 3.0, 3.1, 3.2, 2.0])
    assert _early_stop(curve, 3) == 6  # best 2.9 at iteration 6; 7, 8, 9 no better -> stop before seeing 2.0
    assert _early_stop(curve, 10) == 10
    assert _early_stop(curve, None) == 10


def test_the_model_matrix_trains_the_booster_of_the_spec_frame(trained):
    """lightgbm.dask gets numpy model matrices (training.cluster._matrix) with the spec's feature names, categorical
    positions and levels: in float64 LightGBM learns from them the very booster (model string, pandas_categorical
    included) it learns from spec.transform's frame of categoricals, which the bundle was built on."""
    import lightgbm as lgb

    from training.cluster import _categoricals, _matrix

    bundle = trained["result"].bundle
    spec, X = bundle.spec, trained["result"].test_X
    y = (np.random.default_rng(3).random(len(X)) < 0.3).astype(int)
    params = {"objective": "binary", "seed": 1, "deterministic": True, "force_col_wise": True, "verbosity": -1}
    from_frame = lgb.train(params, lgb.Dataset(spec.transform(X), label=y), 5)
    positions, levels = _categoricals(spec)
    data = lgb.Dataset(_matrix(X, spec), label=y, feature_name=list(spec.feature_names_), categorical_feature=positions)
    from_matrix = lgb.train(params, data, 5)
    from_matrix.pandas_categorical = levels
    assert positions and from_matrix.model_to_string() == from_frame.model_to_string()


def test_float32_training_rows_route_float64_values_alike(cluster_model):
    """The workers train on float32 model matrices (training.cluster.TRAIN_DTYPE); validation, scoring and the
    service predict from float64. On the latest window (claims not trained on) both models give the same
    predictions for the float64 matrix and for its float32 rounding: no value falls between a float32 value and a
    learned threshold."""
    bundle, test_X = cluster_model["result"].bundle, cluster_model["result"].test_X
    m64 = np.asarray(bundle.matrix(test_X), dtype=np.float64)
    m32 = m64.astype(np.float32).astype(np.float64)
    assert (m32 != m64)[~np.isnan(m64)].any()  # some values do change when rounded
    for est in (bundle.likelihood, bundle.cause):
        np.testing.assert_array_equal(est.predict_proba(m64), est.predict_proba(m32))
