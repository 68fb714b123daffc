"""Where the project keeps its working files; read from the environment when called, never at import."""

from __future__ import annotations

import os
from pathlib import Path

MODEL_NAME = "recoup-risk"  # the MLflow registered model and the BentoML store entry: training writes, serving reads


def recoup_home() -> Path:
    """The working folder (``RECOUP_HOME``, default ``./work``): MLflow store, BentoML store, reports."""
    home = Path(os.environ.get("RECOUP_HOME", "work")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in the working folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri else f"sqlite:///{recoup_home() / 'mlflow.db'}"


def artifact_root() -> str:
    return str(recoup_home() / "mlartifacts")


def bentoml_home() -> Path:
    """``BENTOML_HOME`` if set, else ``RECOUP_HOME/bentoml``; exported so BentoML uses it."""
    home = Path(os.environ.get("BENTOML_HOME") or recoup_home() / "bentoml").resolve()
    os.environ["BENTOML_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return home


def quiet_telemetry() -> None:
    """Turn off third-party usage tracking (MLflow, BentoML) for this process and its children."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
