"""Training end to end on a small history: a real LightGBM model in a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from features.model.bundle import ModelBundle
from features.contract import CAUSES


def test_registered_champion_holds_everything_scoring_needs(trained):
    import mlflow
    from mlflow import MlflowClient

    from features.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    assert tracking_uri().startswith("sqlite:///")
    client = MlflowClient()
    name = trained["info"]["name"]
    champ = client.get_model_version_by_alias(name, "champion")
    assert str(champ.version) == trained["info"]["version"]
    b = ModelBundle.load(trained["bundle_dir"])
    assert b.meta["rulebook_version"] == "2024Q3"
    assert b.meta["as_of"] and b.meta["horizon_days"] == 365
    assert b.cause is not None and list(b.cause.classes_) == list(range(len(CAUSES)))
    assert b.spec.categories_["plan_type"]
    assert (Path(trained["bundle_dir"]) / "state" / "state.json").exists()
    cal = b.meta["calibration"]  # auto on a small history: too few validation positives for isotonic
    assert cal["requested"] == "auto" and cal["valid_positives"] < cal["min_positives_isotonic"]
    assert b.calibrator.kind == cal["kind"] == "platt"


def test_run_logs_metrics_and_plots(trained):
    import mlflow

    from features.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    run = mlflow.get_run(trained["info"]["run_id"])
    for k in ("test_roc_auc", "test_pr_auc", "test_brier", "test_ece", "test_cause_top1_accuracy"):
        assert k in run.data.metrics
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    for png in (
        "roc_curve.png",
        "pr_curve.png",
        "calibration.png",
        "lift_dollars.png",
        "feature_importance.png",
        "shap_summary.png",
        "shap_beeswarm.png",
        "cause_confusion.png",
    ):
        assert f"plots/{png}" in arts
    assert run.data.params["data.rulebook_version"] == "2024Q3"


def _client():
    import mlflow

    from features.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow, mlflow.MlflowClient()


def test_registered_model_has_a_signature_an_input_example_and_its_code(trained):
    from mlflow.models import Model

    from training.pyfunc import EXAMPLE_ROWS

    mlflow, _ = _client()
    info = trained["info"]
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{info['name']}/{info['version']}"))
    model = Model.load(local)
    X = trained["result"].test_X
    inputs = model.signature.inputs
    assert inputs.input_names() == list(X.columns) and all(c.required for c in inputs.inputs)
    types = {c.name: c.type.name for c in inputs.inputs}
    assert types["payer_id"] == types["specialty"] == "string" and types["total_charge"] == "double"
    assert model.signature.outputs.input_names()[0] == "recoupment_probability"
    assert "expected_recoupment_amount" in model.signature.outputs.input_names()
    example = model.load_input_example(str(local))
    assert len(example) == EXAMPLE_ROWS and list(example.columns) == list(X.columns)
    # packaged with its code, loaded from code (no pickled object), with pinned requirements
    assert (local / "code" / "features" / "model" / "bundle.py").exists()
    assert (local / "code" / "training" / "pyfunc.py").exists()
    assert not list((local / "code").rglob("__pycache__"))
    assert model.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    reqs = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("lightgbm==") for r in reqs) and any(r.startswith("mlflow==") for r in reqs)
    assert not (local / "uv.lock").exists()  # the project's lock file is not the model's requirements


def test_run_records_its_data_description_curves_and_the_experiment_kind(trained):
    mlflow, client = _client()
    result, info = trained["result"], trained["info"]
    run = mlflow.get_run(info["run_id"])
    summary, meta = result.data_summary, result.bundle.meta
    # the training data as an MLflow dataset: source, digest, rows, as-of
    (inp,) = run.inputs.dataset_inputs
    ds = inp.dataset
    assert ds.digest == summary["digest"][:36] and len(summary["digest"]) == 64
    assert str(Path(trained["data_dir"]).resolve()) in ds.source
    profile = json.loads(ds.profile)
    assert profile["num_rows"] == summary["claims"] == len(trained["history"].claims)
    assert profile["as_of"] == meta["as_of"]
    tags = {t.key: t.value for t in inp.tags}
    assert tags["mlflow.data.context"] == "training" and tags["as_of"] == meta["as_of"]
    assert tags["num_rows"] == str(summary["claims"])
    assert json.loads(ds.schema)["mlflow_colspec"][0]["name"] == result.test_X.columns[0]
    # a description: what, as of when, on what
    note = run.data.tags["mlflow.note.content"]
    assert f"as of **{meta['as_of']}**" in note and f"{summary['claims']:,} claims" in note
    assert str(trained["data_dir"]) in note and summary["digest"] in note
    assert run.data.tags["mlflow.runName"] == f"train-asof-{meta['as_of']}"
    # per boosting iteration curves on the validation slice: one value per tree trained, steps 1..n; early
    # stopping kept the trees up to the curve's best (lowest) log loss
    curve = result.bundle.likelihood.evals_result_["valid"]["binary_logloss"]
    for metric in ("binary_logloss", "average_precision"):
        history = client.get_metric_history(info["run_id"], f"valid_likelihood_{metric}")
        assert sorted(m.step for m in history) == list(range(1, len(curve) + 1))
    history = sorted(client.get_metric_history(info["run_id"], "valid_likelihood_binary_logloss"), key=lambda m: m.step)
    assert [m.value for m in history] == curve
    assert int(np.argmin(curve)) + 1 == meta["n_trees_likelihood"] <= len(curve)
    cause = client.get_metric_history(info["run_id"], "valid_cause_multi_logloss")
    assert len(cause) == len(result.bundle.cause.evals_result_["valid"]["multi_logloss"]) >= meta["n_trees_cause"]
    # MLflow 3's UI opens the experiment in its classic ML view
    assert mlflow.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_experiment_made_without_a_kind_gets_one(recoup_home):
    from training.registry import EXPERIMENT_KIND, experiment_id

    mlflow, client = _client()
    exp = client.create_experiment("recoup-kindless-test")
    assert EXPERIMENT_KIND[0] not in client.get_experiment(exp).tags
    assert experiment_id(mlflow, "recoup-kindless-test") == exp
    assert client.get_experiment(exp).tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]


@pytest.mark.slow
def test_recoup_train_is_one_run_from_features_to_registration(small_history_dir, tmp_path):
    """`recoup train`: the run opens before the features are built and closes after the model is registered, so
    its duration covers the training's own measured time; the experiment holds that one run."""
    from typer.testing import CliRunner

    from recoup.cli import app
    from tests.helpers.models import private_store

    with pytest.MonkeyPatch.context() as mp:
        private_store(mp, tmp_path / "home")
        mp.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
        res = CliRunner().invoke(app, ["train", "--data", str(small_history_dir), "--n-estimators", "30"])
        assert res.exit_code == 0, res.output
        mlflow, _ = _client()
        (run,) = mlflow.search_runs(experiment_names=["recoup"], output_format="list")
        assert run.info.status == "FINISHED" and run.info.run_id in res.output
        assert run.info.end_time - run.info.start_time >= 1000 * run.data.metrics["time_total_s"]
        assert run.data.tags["mlflow.runName"].startswith("train-asof-")
        assert "mlflow.note.content" in run.data.tags and run.inputs.dataset_inputs
