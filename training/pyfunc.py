"""An MLflow pyfunc wrapper around the model bundle that takes the feature table as produced by
``features.pipeline`` (categoricals as plain strings), so it never trips over pandas categoricals."""

from __future__ import annotations

from importlib import metadata

import pandas as pd
from mlflow.pyfunc import PythonModel

from features.model.bundle import ModelBundle, expected_amount
from features.contract import CAUSES


class RecoupPyfunc(PythonModel):
    """predict(feature table) -> probability, expected amount and cause probabilities per claim."""

    def load_context(self, context) -> None:
        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        M = self.bundle.matrix(model_input)
        p = self.bundle.probability(M)
        cp = self.bundle.cause_probabilities(M)
        out = pd.DataFrame({"recoupment_probability": p}, index=model_input.index)
        for j, c in enumerate(CAUSES):
            out[f"p_{c}"] = cp[:, j]
        if {"total_charge", "payer_id"} <= set(model_input.columns):
            out["expected_recoupment_amount"] = expected_amount(self.bundle, p, cp, model_input)
        return out


def pip_requirements() -> list[str]:
    """Pinned requirements of the pyfunc (what is installed now), so MLflow need not infer them."""
    pkgs = ["lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "mlflow"]
    out = []
    for p in pkgs:
        try:
            out.append(f"{p}=={metadata.version(p)}")
        except metadata.PackageNotFoundError:
            out.append(p)
    return out
