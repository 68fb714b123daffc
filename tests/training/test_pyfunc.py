"""training.pyfunc: the registered model loads through ``mlflow.pyfunc.load_model`` and predicts what the
bundle predicts, from the feature table as the pipeline makes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.model.bundle import ModelBundle, expected_amount
from features.contract import CAUSES


@pytest.fixture(scope="module")
def pyfunc_model(trained):
    import mlflow

    from features.settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    info = trained["info"]
    return mlflow.pyfunc.load_model(f"models:/{info['name']}/{info['version']}")


def test_pyfunc_predicts_what_the_bundle_predicts(trained, pyfunc_model):
    result = trained["result"]
    X = result.test_X.iloc[:200]
    out = pyfunc_model.predict(X)
    bundle = ModelBundle.load(trained["bundle_dir"])
    M = bundle.spec.transform(X)
    assert list(out.index) == list(X.index)
    np.testing.assert_allclose(out["recoupment_probability"].to_numpy(), bundle.probability(M), rtol=1e-12)
    cp = bundle.cause_probabilities(M)
    np.testing.assert_allclose(out[[f"p_{c}" for c in CAUSES]].to_numpy(), cp, rtol=1e-12)
    np.testing.assert_allclose(
        out["expected_recoupment_amount"].to_numpy(), expected_amount(bundle, bundle.probability(M), cp, X), rtol=1e-12
    )
    # the same as the training run's own test-slice predictions
    np.testing.assert_allclose(
        out["recoupment_probability"].to_numpy(), result.scored["probability"].loc[X.index].to_numpy(), rtol=1e-9
    )
    assert out["recoupment_probability"].between(0, 1).all()


def test_pyfunc_takes_plain_strings_and_names_a_missing_column(trained, pyfunc_model):
    X = trained["result"].test_X.iloc[:20]
    plain = X.copy()
    for c in ("payer_id", "plan_type", "specialty"):
        plain[c] = plain[c].astype(str)
    np.testing.assert_array_equal(
        pyfunc_model.predict(plain)["recoupment_probability"].to_numpy(),
        pyfunc_model.predict(X)["recoupment_probability"].to_numpy(),
    )
    with pytest.raises(Exception, match="n_lines"):
        pyfunc_model.predict(X.drop(columns=["n_lines"]))


#: run by the fresh environment's Python, from a folder outside the checkout: the project's packages must not be
#: importable before the model is loaded; then the registered version loads and predicts its input example
FRESH_SCRIPT = """
import importlib.util, json, sys
for pkg in ("features", "training"):
    assert importlib.util.find_spec(pkg) is None, pkg + " is importable without the model's code"
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(model.input_example)
print(json.dumps({"columns": list(out.columns), "probability": out["recoupment_probability"].tolist(),
                  "features": sys.modules["features"].__file__}))
"""


def _uv() -> str | None:
    """uv on PATH, or the project's (``.tools/bin/uv`` next to the checkout or to the environment running us)."""
    import shutil
    import sys

    root = Path(__file__).resolve().parents[2]
    for candidate in (shutil.which("uv"), root / ".tools/bin/uv", Path(sys.prefix).parent / ".tools/bin/uv"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def _fresh_env(tmp: Path, requirements: Path) -> Path:
    """A new virtual environment in ``tmp`` (the base interpreter of this one, no site packages) holding only
    the model's pinned requirements; uv from its cache when it can, else from the index, else venv + pip."""
    import subprocess
    import sys

    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    env, python = tmp / "venv", tmp / "venv" / "bin" / "python"
    uv = _uv()
    if uv is None:
        subprocess.run([str(base), "-m", "venv", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        return python
    subprocess.run([uv, "venv", "-q", "--python", str(base), str(env)], check=True)
    install = [uv, "pip", "install", "-q", "--python", str(python), "-r", str(requirements)]
    if subprocess.run([*install, "--offline"], capture_output=True).returncode != 0:
        subprocess.run(install, check=True)
    return python


@pytest.mark.slow
def test_registered_model_loads_and_predicts_in_a_fresh_environment_outside_the_checkout(
    trained, pyfunc_model, tmp_path_factory
):
    import json
    import os
    import subprocess

    import mlflow

    from features.settings import tracking_uri

    info = trained["info"]
    uri = f"models:/{info['name']}/{info['version']}"
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path_factory.mktemp("model"))))
    tmp = tmp_path_factory.mktemp("fresh")
    python = _fresh_env(tmp, local / "requirements.txt")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RECOUP_"))}
    env["MLFLOW_TRACKING_URI"] = tracking_uri()
    (tmp / "load.py").write_text(FRESH_SCRIPT)
    res = subprocess.run([str(python), "load.py", uri], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    checkout = Path(__file__).resolve().parents[2]
    assert not Path(out["features"]).resolve().is_relative_to(checkout)  # the model's own copy of the code
    assert out["columns"][0] == "recoupment_probability" and len(out["probability"]) == 5
    here = pyfunc_model.predict(pyfunc_model.input_example)["recoupment_probability"].to_numpy()
    np.testing.assert_allclose(out["probability"], here, rtol=1e-9)
