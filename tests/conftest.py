"""Shared test setup: telemetry off, every store inside a temporary working folder."""

from __future__ import annotations

import os

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(scope="session")
def recoup_home(tmp_path_factory) -> "os.PathLike[str]":
    """One working folder per test session (MLflow SQLite store, BentoML home, state files)."""
    home = tmp_path_factory.mktemp("recoup_home")
    os.environ["RECOUP_HOME"] = str(home)
    os.environ["BENTOML_HOME"] = str(home / "bentoml")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return home
