"""An MLflow pyfunc wrapper around the model bundle that takes the feature table as produced by
``features.pipeline`` (categoricals as plain strings), so it never trips over pandas categoricals; and what
the registered model is packaged with so that it loads outside this checkout: its code (``features`` and this
module), a signature, an input example, pinned requirements."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

import pandas as pd
from mlflow.pyfunc import PythonModel

from features.model.bundle import ModelBundle, expected_amount
from features.contract import CAUSES

#: what the registered model needs installed (pinned to the versions installed when it is logged)
REQUIREMENTS = ("mlflow", "lightgbm", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy")
#: the model as code (MLflow's "models from code": no pickle); MLflow runs it when loading, with the packaged
#: code (:func:`stage_code`) on sys.path
MODEL_CODE = (
    '"""The recoup pyfunc (MLflow models from code)."""\n\n'
    "from mlflow.models import set_model\n\n"
    "from training.pyfunc import RecoupPyfunc\n\n"
    "set_model(RecoupPyfunc())\n"
)
#: rows of the feature table kept as the registered model's input example
EXAMPLE_ROWS = 5


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


def plain_frame(X: pd.DataFrame) -> pd.DataFrame:
    """The feature table as the pyfunc takes it: pandas categoricals as plain strings (missing stays missing)."""
    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    return X.astype(dict.fromkeys(cats, str)) if cats else X


def signature_and_example(bundle: ModelBundle, X: pd.DataFrame) -> tuple:
    """(signature, input example) of the registered model from a few rows of the feature table ``X``: the
    inputs are the feature columns as the pyfunc takes them (all required; values may be missing), the outputs
    what it predicts for them."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    example = plain_frame(X.iloc[:EXAMPLE_ROWS])
    model = RecoupPyfunc()
    model.bundle = bundle
    inferred = infer_signature(example, model.predict(None, example))
    # every feature column is required (missing values in it are fine), whether the example has a gap or not
    inputs = Schema([ColSpec(c.type, c.name, required=True) for c in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs), example


def stage_code(dst: Path) -> tuple[Path, list[str]]:
    """Write into ``dst`` the model's code file (:data:`MODEL_CODE`) and clean copies of the code it needs to
    load anywhere: the ``features`` package and this module as a one-module ``training`` package. Returns
    (model code file, code paths) for ``mlflow.pyfunc.log_model(python_model=..., code_paths=...)``."""
    import features

    code = dst / "code"
    shutil.copytree(
        Path(features.__file__).parent, code / "features", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    (code / "training").mkdir()
    (code / "training" / "__init__.py").write_text("")
    shutil.copy2(Path(__file__), code / "training" / "pyfunc.py")
    model_file = dst / "recoup_model.py"
    model_file.write_text(MODEL_CODE)
    return model_file, [str(code / "features"), str(code / "training")]


def pip_requirements() -> list[str]:
    """Pinned requirements of the pyfunc (what is installed now), so MLflow need not infer them."""
    out = []
    for p in REQUIREMENTS:
        try:
            out.append(f"{p}=={metadata.version(p)}")
        except metadata.PackageNotFoundError:
            out.append(p)
    return out
