"""A small feature table for real LightGBM models of a few trees (tests of features.model)."""

from __future__ import annotations

import numpy as np
import pandas as pd

PARAMS = {"learning_rate": 0.2, "num_leaves": 7, "min_child_samples": 5}


def features(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A feature table with a categorical column; the label depends on both kinds of column."""
    rng = np.random.default_rng(seed)
    payer = rng.choice(["A", "B", "C"], n)
    x = rng.normal(size=n)
    y = ((x + (payer == "A") * 1.5 + rng.normal(scale=0.5, size=n)) > 1).astype(int)
    X = pd.DataFrame({"payer_id": payer, "x": x, "z": rng.normal(size=n)}, index=pd.Index(range(n), name="claim_id"))
    return X, y


def private_store(mp, home) -> None:
    """Point RECOUP_HOME and the MLflow tracking store at ``home`` for the life of the MonkeyPatch ``mp``.

    Both, because ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI, which
    :func:`features.settings.tracking_uri` prefers: RECOUP_HOME alone would leave the session's store in use
    (and a champion promoted there would change the session's champion)."""
    mp.setenv("RECOUP_HOME", str(home))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
