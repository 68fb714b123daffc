"""MLflow tracking and registry: log a training run, register a version, champion/challenger aliases,
download a version's bundle, promote a version.

The figures it logs and the promotion gate are computed by :mod:`training.metrics`, the plots drawn by
:mod:`training.report`; the champion is exported to the BentoML store by :mod:`training.export`."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.errors import RecoupError
from features.model.bundle import ModelBundle
from features.settings import MODEL_NAME, artifact_root, quiet_telemetry, tracking_uri
from training.export import export_to_bentoml
from training.metrics import oracle_metrics, oracle_ratios, oracle_scores, promotion_gate

if TYPE_CHECKING:
    from training.train import TrainResult

log = logging.getLogger(__name__)
EXPERIMENT = "recoup"
#: the experiment tag that makes MLflow 3's UI open an experiment in its classic ML view (not the GenAI one)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: the run tag MLflow's UI shows as the run's description
DESCRIPTION_TAG = "mlflow.note.content"


def open_mlflow() -> ModuleType:
    """The ``mlflow`` module, pointed at the project's tracking store (telemetry off)."""
    quiet_telemetry()
    # the model declares its own pinned requirements (training.pyfunc): not the project's whole uv lock file
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def experiment_id(mlflow: ModuleType, name: str = EXPERIMENT) -> str:
    """The id of the experiment ``name`` (default ``recoup``; created, with its artifacts under RECOUP_HOME, if
    needed), of the classic ML kind (:data:`EXPERIMENT_KIND`, also set on an experiment made without it)."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        return mlflow.create_experiment(
            name, artifact_location=Path(artifact_root()).as_uri(), tags=dict([EXPERIMENT_KIND])
        )
    if EXPERIMENT_KIND[0] not in exp.tags:
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
    return exp.experiment_id


def run_name(as_of: str | None) -> str:
    """The name of a training run: ``train-asof-<date>`` (``latest`` before the default date is known)."""
    return f"train-asof-{as_of or 'latest'}"


@contextmanager
def training_run(as_of: str | None = None) -> Iterator[Any]:
    """The MLflow run of one ``recoup train``: opened before the data is loaded and closed after the model is
    registered, so its duration is the training's (:func:`log_and_register` logs into it). A failure inside
    ends it as FAILED."""
    mlflow = open_mlflow()
    with mlflow.start_run(experiment_id=experiment_id(mlflow), run_name=run_name(as_of)) as run:
        yield run


def run_description(result: TrainResult, data_dir: Path | None) -> str:
    """What a training run trained, as of when, on what (Markdown; MLflow shows it as the run's description)."""
    s, meta = result.data_summary, result.bundle.meta
    split = meta["split_dates"]
    where = f"`{data_dir}`" if data_dir is not None else "a claims history"
    return (
        f"Recoupment risk model `{meta['model_name']}`: likelihood of recoupment within {meta['horizon_days']} days "
        f"({meta['n_trees_likelihood']} LightGBM trees, {meta['calibration']['kind']} calibration) and cause given "
        f"recoupment ({meta['n_trees_cause']} trees), trained as of **{meta['as_of']}** on {where} "
        f"(digest `{s.get('digest', '?')}`): {s['claims']:,} claims submitted {s['first_submitted']} to "
        f"{s['last_submitted']}, {s['lines']:,} lines, rulebook {meta['rulebook_version']}.\n\n"
        f"Slices by submission date: train {s.get('n_train', 0):,} claims ({split['train'][0]} to "
        f"{split['train'][1]}, {s['train_positives']:,} recouped), validation {s.get('n_valid', 0):,} "
        f"({split['valid'][0]} to {split['valid'][1]}), test (latest window) {s.get('n_test', 0):,} "
        f"({split['test'][0]} to {split['test'][1]})."
    )


def log_training_data(mlflow: ModuleType, result: TrainResult, data_dir: Path, schema: Any) -> None:
    """The claims history the model was trained on as the run's ``training`` dataset: source = its folder,
    digest = its content as of the training date (``data_summary['digest']``), schema = the feature table the
    model takes, profile and tags = rows (claims), lines, as-of, date range."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    s = result.data_summary
    profile = {
        "num_rows": s["claims"],
        "num_lines": s["lines"],
        "as_of": s["as_of"],
        "first_submitted": s["first_submitted"],
        "last_submitted": s["last_submitted"],
    }

    class ClaimsHistory(MetaDataset):
        """A dataset known by its metadata, with a profile (MetaDataset has none)."""

        @property
        def profile(self) -> dict:
            return profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(profile)}

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": all are the local file source
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(data_dir).resolve()))
    name = f"{Path(data_dir).resolve().name}-asof-{s['as_of']}"
    dataset = ClaimsHistory(source=source, name=name, digest=s["digest"][:36], schema=schema)
    mlflow.log_input(dataset, context="training", tags={k: str(v) for k, v in profile.items()})


def log_curves(client: Any, run_id: str, result: TrainResult) -> int:
    """The validation slice's metrics after each boosting iteration of both models, in one batch:
    ``valid_<model>_<metric>`` at step = number of trees. Returns the number of values logged."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = [
        Metric(f"valid_{model}_{metric}", float(v), now, step)
        for model, est in (("likelihood", result.bundle.likelihood), ("cause", result.bundle.cause))
        for metric, history in (getattr(est, "evals_result_", None) or {}).get("valid", {}).items()
        for step, v in enumerate(history, start=1)
        if np.isfinite(v)
    ]
    if values:
        client.log_batch(run_id, metrics=values)
    return len(values)


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


#: the one message for the two promotion flags given together
BOTH_FLAGS = (
    "--promote and --promote-if-better are mutually exclusive: --promote makes the new version the champion "
    "unconditionally, --promote-if-better only when it passes the promotion gate; give one"
)


def log_and_register(
    result: TrainResult,
    cfg: dict,
    data_dir: Path | None = None,
    promote: bool = False,
    promote_if_better: bool = False,
    submitted: pd.Series | None = None,
) -> dict:
    """Log the run (description, training dataset, params, data summary, metrics and per-iteration curves, plots,
    bundle) and register a new model version: a pyfunc packaged with its code, a signature and an input example.
    Logs into the active run (:func:`training_run`) when there is one, else into a new run.

    The new version gets the alias ``challenger``. It becomes ``champion`` with ``promote`` (unconditionally),
    or with ``promote_if_better`` when it passes the promotion gate against the current champion on the forward
    part of the latest window (:func:`training.metrics.promotion_gate`, ``submitted``: submission dates by claim
    id). Without either flag it stays challenger; the gate is still run and reported (``gate``), as advice.
    """
    if promote and promote_if_better:
        raise RecoupError(BOTH_FLAGS)
    mlflow = open_mlflow()
    from mlflow import MlflowClient

    from training.pyfunc import pip_requirements, signature_and_example, stage_code
    from training.report import write_plots

    name = MODEL_NAME
    client = MlflowClient()
    oracle = oracle_scores(data_dir, result.scored.index)
    as_of = result.bundle.meta["as_of"]
    active = mlflow.active_run()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        plots = tmp / "plots"
        plots.mkdir()
        with (
            nullcontext(active)
            if active is not None
            else mlflow.start_run(experiment_id=experiment_id(mlflow), run_name=run_name(as_of))
        ) as run:
            mlflow.set_tags({"mlflow.runName": run_name(as_of), DESCRIPTION_TAG: run_description(result, data_dir)})
            signature, example = signature_and_example(result.bundle, result.test_X)
            if data_dir is not None:
                log_training_data(mlflow, result, data_dir, signature.inputs)
            mlflow.log_params({k: v for k, v in _flatten(cfg).items() if not isinstance(v, list)})
            mlflow.log_params({f"data.{k}": v for k, v in result.data_summary.items() if k != "warnings"})
            if result.data_summary.get("warnings"):
                mlflow.set_tag("training_warnings", " | ".join(result.data_summary["warnings"]))
            mlflow.set_tags(
                {"rulebook_version": result.bundle.meta["rulebook_version"], "as_of": result.bundle.meta["as_of"]}
            )
            metrics = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
            mlflow.log_metrics({f"time_{k}": v for k, v in result.timings.items()})
            log_curves(client, run.info.run_id, result)
            if oracle is not None:
                om = oracle_metrics(result.scored, oracle, cfg["capacities"])
                mlflow.log_metrics({f"oracle_{k}": float(v) for k, v in om.items() if np.isfinite(v)})
                for k, ratio in oracle_ratios(result.metrics, om).items():
                    mlflow.log_metric(f"ratio_{k}", ratio)
                    result.bundle.meta.setdefault("oracle_ratio", {})[k] = ratio
            write_plots(result, plots, oracle)
            mlflow.log_artifacts(str(plots), "plots")
            result.scored.to_parquet(tmp / "test_predictions.parquet")
            mlflow.log_artifact(str(tmp / "test_predictions.parquet"), "evaluation")
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
            mlflow.log_artifact(str(tmp / "config.json"))
            result.bundle.meta["run_id"] = run.info.run_id
            bundle_dir = tmp / "bundle"
            result.bundle.save(bundle_dir)
            log.info("saving the history state with the model (compact: the service asks after its last event)")
            # a state already compact (the cluster's: compacted as soon as it is built) is saved as it is
            result.state.compacted().save(bundle_dir / "state")
            model_code, code_paths = stage_code(tmp / "model_code")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(model_code),
                code_paths=code_paths,
                artifacts={"bundle": str(bundle_dir)},
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                registered_model_name=name,
                metadata={
                    "as_of": as_of,
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
        if not promote:
            champion = alias_version(client, name, "champion")
            with tempfile.TemporaryDirectory() as champ_dir:
                champ = None if champion is None else download_bundle(name, champion, Path(champ_dir))
                gate = promotion_gate(result, cfg, champ, champion, submitted)
            client.set_tag(run.info.run_id, "promotion_gate", "pass" if gate["pass"] else "fail")
            client.set_tag(
                run.info.run_id, "promotion_reasons", " | ".join(gate.get("reasons") or [gate.get("reason", "")])
            )
            promote = promote_if_better and gate["pass"]
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


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version number behind ``alias`` (None when the alias is not set)."""
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


def promote_version(name: str, version: str) -> None:
    """Make a registered version the champion and export it to the BentoML store."""
    open_mlflow()
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, "champion", version)
    with tempfile.TemporaryDirectory() as tmp:
        b = download_bundle(name, version, Path(tmp))
        assert b.path is not None  # ModelBundle.load sets it
        export_to_bentoml(b.path, name, version, b.meta)
