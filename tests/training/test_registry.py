"""Training end to end on a small history: a real LightGBM model in a real MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

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
        "cause_confusion.png",
    ):
        assert f"plots/{png}" in arts
    assert run.data.params["data.rulebook_version"] == "2024Q3"
