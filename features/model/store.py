"""The local BentoML model store, where the service finds the champion bundle (it starts fast from there).

Training's promotion (:mod:`training.export`) and the service's first start from MLflow
(:mod:`serving.model_store`) both store a bundle through :func:`store_bundle`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from features.engine.state import make_private
from features.settings import MODEL_NAME, bentoml_home, quiet_telemetry

#: the bundle's meta.json fields also kept as the BentoML model's metadata
STORE_METADATA = ("as_of", "horizon_days", "rulebook_version")

#: the module whose ``load_model`` loads a stored bundle (BentoML's model.yaml ``module``; a name, not an import)
LOADER_MODULE = "serving.model_store"


def bentoml_module():
    """``bentoml``, imported with telemetry off and its home inside the project's working folders."""
    quiet_telemetry()
    bentoml_home()
    import bentoml

    return bentoml


def store_bundle(bundle_dir: Path, version: str, meta: dict, labels: dict) -> str:
    """Copy a bundle folder into the store as ``MODEL_NAME`` (its meta.json gains ``model_version``);
    returns the store tag. The state folder (claims) stays readable by its user only."""
    bentoml = bentoml_module()
    md = {k: meta[k] for k in STORE_METADATA if k in meta}
    # module: what `bentoml.models.get(tag).load_model()` calls (serving.model_store.load_model -> a Scorer);
    # signatures: the Scorer's method, shown by `bentoml models get`
    with bentoml.models.create(
        MODEL_NAME, labels=labels, metadata=md, module=LOADER_MODULE, signatures={"score_claims": {"batchable": False}}
    ) as m:
        shutil.copytree(bundle_dir, m.path, dirs_exist_ok=True)
        stamped = {**meta, "model_version": str(version)}
        (Path(m.path) / "meta.json").write_text(json.dumps(stamped, indent=2, default=str))
        make_private(Path(m.path) / "state")
    return str(m.tag)
