"""Where the service finds its model bundle (serving never imports ``training``).

In order:

1. ``RECOUP_BUNDLE_DIR``: a bundle folder (the models, spec.json, meta.json, state/) used as is;
2. the BentoML model store: ``MODEL_NAME:latest`` (promotion, :mod:`training.export`, puts the champion there);
3. MLflow, when it is importable and has a ``champion`` of ``MODEL_NAME``: its ``bundle`` artifacts are
   downloaded and copied into the BentoML store (so the next start is fast), then used.

Nothing found -> :class:`NoModelError` with a one-line message saying what to do.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from features.errors import RecoupError
from features.model.layout import bundle_problem
from features.model.store import bentoml_module, store_bundle
from features.settings import MODEL_NAME, bentoml_home, quiet_telemetry, tracking_uri

log = logging.getLogger(__name__)
BUNDLE_ENV = "RECOUP_BUNDLE_DIR"


class NoModelError(RecoupError):
    """There is no model to serve."""


@dataclass
class ModelRef:
    path: Path
    source: str  # "RECOUP_BUNDLE_DIR", "bentoml:<MODEL_NAME>:<version>", "mlflow:<MODEL_NAME>@champion -> ..."
    labels: dict = field(default_factory=dict)


def _from_env() -> ModelRef | None:
    d = os.environ.get(BUNDLE_ENV)
    if not d:
        return None
    p = Path(d)
    problem = bundle_problem(p)
    if problem:
        raise NoModelError(f"{BUNDLE_ENV}={d} is not a recoup model bundle ({problem})")
    return ModelRef(p, BUNDLE_ENV)


def from_bentoml_store() -> ModelRef | None:
    bentoml = bentoml_module()
    try:
        m = bentoml.models.get(f"{MODEL_NAME}:latest")
    except bentoml.exceptions.NotFound:
        return None
    return ModelRef(Path(m.path), f"bentoml:{m.tag}", dict(m.info.labels))


def export_champion_from_mlflow() -> ModelRef | None:
    """Copy MLflow's champion bundle into the BentoML store; None if MLflow or a champion is missing."""
    quiet_telemetry()
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        return None
    mlflow.set_tracking_uri(tracking_uri())
    try:
        mv = MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    except Exception:  # no registered model, no alias, empty store
        return None
    version = str(mv.version)
    bentoml = bentoml_module()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAME}/{version}", dst_path=tmp))
        bundle = local / "artifacts" / "bundle"
        problem = bundle_problem(bundle)
        if problem:
            raise NoModelError(f"MLflow champion {MODEL_NAME} v{version} has no bundle artifact ({problem})")
        meta = json.loads((bundle / "meta.json").read_text())
        labels = {"registered_model": MODEL_NAME, "mlflow_version": version, "alias": "champion"}
        tag = store_bundle(bundle, version, meta, labels)
    log.info("exported MLflow champion v%s to the BentoML store as %s", version, tag)
    return ModelRef(Path(bentoml.models.get(tag).path), f"mlflow:{MODEL_NAME}@champion -> bentoml:{tag}", labels)


def resolve_model(allow_mlflow: bool = True) -> ModelRef:
    """The bundle to serve (see the module docstring); raises :class:`NoModelError` if there is none."""
    ref = _from_env() or from_bentoml_store()
    if ref is None and allow_mlflow:
        ref = export_champion_from_mlflow()
    if ref is None:
        raise NoModelError(
            f"no model to serve: the BentoML store ({bentoml_home()}) has no '{MODEL_NAME}' and MLflow "
            f"({tracking_uri()}) has no champion; run `recoup train --data DIR --promote` first "
            f"(or set {BUNDLE_ENV})"
        )
    return ref


def bento_model_tag() -> str | None:
    """The concrete store tag the service declares (so `bentoml build` packs the model), if any.

    None when ``RECOUP_BUNDLE_DIR`` is set or the store is empty: then nothing is declared and
    ``bentoml serve`` does not require the store.
    """
    if os.environ.get(BUNDLE_ENV):
        return None
    try:
        ref = from_bentoml_store()
    except Exception:  # pragma: no cover - unreadable store: load (and fail clearly) at start instead
        return None
    return None if ref is None else ref.source.removeprefix("bentoml:")


def load_model(bento_model: object) -> object:
    """A :class:`serving.scorer.Scorer` of a model in the BentoML store (``bentoml.models.get(tag).load_model()``:
    the store's ``model.yaml`` names this module), without a journal: claims it records stay in memory."""
    from serving.scorer import Scorer

    return Scorer.from_dir(Path(str(getattr(bento_model, "path"))))
