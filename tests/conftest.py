"""Shared test setup: telemetry off, every store inside a temporary working folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from tests.helpers.postgres import postgres_database, postgres_url  # noqa: F401  (fixtures for every test)

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


@pytest.fixture(scope="session")
def small_history_dir(tmp_path_factory):
    """A small claims history written as CSV (plus oracle.csv when the generator made it)."""
    from features.contract import write_history
    from tests.helpers.data import small_history

    d = tmp_path_factory.mktemp("history")
    history, oracle = small_history()
    write_history(history, d)
    if oracle is not None:
        oracle.to_csv(d / "oracle.csv", index=False)
    return d


@pytest.fixture(scope="session")
def trained(recoup_home, small_history_dir):
    """A real small LightGBM model trained on the small history, logged to the SQLite MLflow store,
    registered and promoted (so it is also in the BentoML store). Returns a dict of handles."""
    from features.contract import load_history
    from features.settings import MODEL_NAME
    from training.config import load_config
    from training.registry import log_and_register
    from training.train import train_model

    cfg = load_config(overrides={})
    cfg["likelihood"]["n_estimators"] = 40
    cfg["cause"]["n_estimators"] = 20
    history = load_history(small_history_dir)
    result = train_model(history, config=cfg)
    info = log_and_register(result, cfg, data_dir=small_history_dir, promote=True)
    import bentoml

    model = bentoml.models.get(f"{MODEL_NAME}:latest")
    return {
        "result": result,
        "info": info,
        "bundle_dir": model.path,
        "history": history,
        "data_dir": small_history_dir,
        "config": cfg,
    }


@pytest.fixture(scope="session")
def rb():
    """The packaged rulebook (CMS NCCI PTP/MUE, ICD-10-CM, ...)."""
    from features.rulebook import load_rulebook

    return load_rulebook()


@pytest.fixture(scope="session")
def codes(rb) -> dict:
    """Real codes picked from the rulebook for hand-built claims (tests/helpers/handmade.py)."""
    from tests.helpers.handmade import pick_codes

    return pick_codes(rb)
