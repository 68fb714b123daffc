"""MLflow tracking and registry: log a training run, register a version, champion/challenger aliases,
and export the champion into the local BentoML model store (so the service starts fast).

The figures it logs and the promotion gate's comparison are computed by :mod:`training.metrics`."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from features.model.bundle import ModelBundle
from features.settings import MODEL_NAME, artifact_root, bentoml_home, quiet_telemetry, tracking_uri
from features.engine.state import make_private
from training.metrics import oracle_metrics, oracle_scores, promotion_decision

log = logging.getLogger(__name__)
EXPERIMENT = "recoup"
BENTO_MODEL = MODEL_NAME


def open_mlflow():
    """The ``mlflow`` module, pointed at the project's tracking store (telemetry off)."""
    quiet_telemetry()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def experiment_id(mlflow) -> str:
    """The id of the ``recoup`` experiment (created, with its artifacts under RECOUP_HOME, if needed)."""
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(EXPERIMENT, artifact_location=Path(artifact_root()).as_uri())


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _log_plots(result, out: Path, oracle: pd.DataFrame | None) -> None:
    from training import report

    scored = result.scored
    report.plot_roc_pr(scored, out, None if oracle is None else oracle["true_probability"])
    report.plot_calibration(scored, out)
    report.plot_lift_dollars(scored, out)
    report.plot_cause_confusion(scored, out)
    report.plot_dollars_by_cause(scored, out)
    lik = result.bundle.likelihood
    gain = pd.Series(lik.feature_importances_, index=lik.feature_names_in_)
    report.plot_importance(gain, out)
    gain.sort_values(ascending=False).to_csv(out / "feature_importance.csv", header=["gain"])
    # SHAP summary: mean |TreeSHAP| per feature on (a sample of) the test slice
    M = result.bundle.spec.transform(result.test_X.iloc[:5000]) if hasattr(result, "test_X") else None
    if M is not None and len(M):
        contrib = result.bundle.contributions(M)[:, :-1]
        shap = pd.Series(np.abs(contrib).mean(0), index=result.bundle.spec.feature_names_)
        report.plot_importance(shap, out, "shap_summary.png", "Mean |SHAP| (log-odds), latest window")


def log_and_register(result, cfg: dict, data_dir: Path | None = None, promote: bool = False) -> dict:
    """Log the run (params, data summary, metrics, plots, bundle) and register a new model version.

    The new version gets the alias ``challenger``; it becomes ``champion`` with ``promote`` or when it
    passes the promotion gate against the current champion on the same latest window.
    """
    mlflow = open_mlflow()
    from mlflow import MlflowClient

    from training.pyfunc import RecoupPyfunc, pip_requirements

    name = MODEL_NAME
    client = MlflowClient()
    oracle = oracle_scores(data_dir, result.scored.index)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plots = tmp / "plots"
        plots.mkdir()
        with mlflow.start_run(
            experiment_id=experiment_id(mlflow), run_name=f"train-asof-{result.bundle.meta['as_of']}"
        ) as run:
            mlflow.log_params({k: v for k, v in _flatten(cfg).items() if not isinstance(v, list)})
            mlflow.log_params({f"data.{k}": v for k, v in result.data_summary.items()})
            mlflow.set_tags(
                {"rulebook_version": result.bundle.meta["rulebook_version"], "as_of": result.bundle.meta["as_of"]}
            )
            metrics = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
            mlflow.log_metrics({f"time_{k}": v for k, v in result.timings.items()})
            if oracle is not None:
                om = oracle_metrics(result.scored, oracle, cfg["capacities"])
                mlflow.log_metrics({f"oracle_{k}": float(v) for k, v in om.items() if np.isfinite(v)})
                for k in ("roc_auc", "pr_auc", "cause_top1_accuracy"):
                    if om.get(k):
                        ratio = result.metrics[k] / om[k]
                        mlflow.log_metric(f"ratio_{k}", ratio)
                        result.bundle.meta.setdefault("oracle_ratio", {})[k] = ratio
            _log_plots(result, plots, oracle)
            mlflow.log_artifacts(str(plots), "plots")
            result.scored.to_parquet(tmp / "test_predictions.parquet")
            mlflow.log_artifact(str(tmp / "test_predictions.parquet"), "evaluation")
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
            mlflow.log_artifact(str(tmp / "config.json"))
            result.bundle.meta["run_id"] = run.info.run_id
            bundle_dir = tmp / "bundle"
            result.bundle.save(bundle_dir)
            log.info("saving the history state with the model")
            result.state.save(bundle_dir / "state")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RecoupPyfunc(),
                artifacts={"bundle": str(bundle_dir)},
                pip_requirements=pip_requirements(),
                registered_model_name=name,
                metadata={
                    "as_of": result.bundle.meta["as_of"],
                    "rulebook_version": result.bundle.meta["rulebook_version"],
                },
            )
            version = str(info.registered_model_version)
        client.set_registered_model_alias(name, "challenger", version)
        for k, v in (
            ("as_of", result.bundle.meta["as_of"]),
            ("rulebook_version", result.bundle.meta["rulebook_version"]),
            ("horizon_days", str(result.bundle.meta["horizon_days"])),
        ):
            client.set_model_version_tag(name, version, k, v)
        gate = None
        champion = _alias_version(client, name, "champion")
        if not promote:
            gate = promotion_gate(result, cfg, champion, client, name)
            promote = gate["pass"]
        if promote:
            client.set_registered_model_alias(name, "champion", version)
            export_to_bentoml(bundle_dir, name, version, result.bundle.meta)
    return {
        "name": name,
        "version": version,
        "champion": promote,
        "run_id": run.info.run_id,
        "tracking_uri": tracking_uri(),
        "gate": gate,
    }


def _alias_version(client, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # no such alias yet
        return None


def download_bundle(name: str, version_or_alias: str, dst: Path) -> ModelBundle:
    """Fetch a registered version's bundle folder from MLflow."""
    mlflow = open_mlflow()
    ref = (
        f"models:/{name}@{version_or_alias}"
        if not str(version_or_alias).isdigit()
        else f"models:/{name}/{version_or_alias}"
    )
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{ref}", dst_path=str(dst))
    return ModelBundle.load(Path(local) / "artifacts" / "bundle")


def promotion_gate(result, cfg: dict, champion: str | None, client, name: str) -> dict:
    """Challenger beats the champion on PR-AUC on the same latest window, without worse calibration
    (:func:`training.metrics.promotion_decision`, on the champion's probabilities for those claims)."""
    if champion is None:
        return {"pass": True, "reason": "no champion yet"}
    with tempfile.TemporaryDirectory() as tmp:
        champ = download_bundle(name, champion, Path(tmp))
        M = champ.spec.transform(result.test_X)
        p = champ.probability(M)
    gate = promotion_decision(result.metrics, result.scored, p, cfg["capacities"], cfg["promotion"])
    return {"pass": gate.pop("pass"), "champion_version": champion, **gate}


def promote_version(name: str, version: str) -> None:
    """Make a registered version the champion and export it to the BentoML store."""
    open_mlflow()
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, "champion", version)
    with tempfile.TemporaryDirectory() as tmp:
        b = download_bundle(name, version, Path(tmp))
        export_to_bentoml(b.path, name, version, b.meta)


def export_to_bentoml(bundle_dir: Path, name: str, version: str, meta: dict) -> str:
    """Copy a bundle folder into the local BentoML model store as ``MODEL_NAME`` (``recoup-risk``)."""
    bentoml_home()
    import bentoml

    labels = {"registered_model": name, "mlflow_version": str(version), "alias": "champion"}
    md = {k: meta[k] for k in ("as_of", "horizon_days", "rulebook_version") if k in meta}
    with bentoml.models.create(BENTO_MODEL, labels=labels, metadata=md) as m:
        shutil.copytree(bundle_dir, m.path, dirs_exist_ok=True)
        (Path(m.path) / "meta.json").write_text(
            json.dumps({**meta, "model_version": str(version)}, indent=2, default=str)
        )
        make_private(Path(m.path) / "state")  # the state holds claims: readable by its user only
    log.info("exported version %s to the BentoML store as %s", version, m.tag)
    return str(m.tag)
