"""Export a model bundle into the local BentoML model store as ``MODEL_NAME``, so the service starts fast.

Promotion (:mod:`training.registry`) exports the champion here; the service finds it with
:func:`serving.model_store.from_bentoml_store`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from features.engine.state import make_private
from features.settings import MODEL_NAME, bentoml_home

log = logging.getLogger(__name__)


def export_to_bentoml(bundle_dir: Path, name: str, version: str, meta: dict) -> str:
    """Copy a bundle folder into the BentoML store as ``MODEL_NAME``, labelled with the registered model
    ``name`` and its ``version``; returns the store tag."""
    bentoml_home()
    import bentoml

    labels = {"registered_model": name, "mlflow_version": str(version), "alias": "champion"}
    md = {k: meta[k] for k in ("as_of", "horizon_days", "rulebook_version") if k in meta}
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=md) as m:
        shutil.copytree(bundle_dir, m.path, dirs_exist_ok=True)
        (Path(m.path) / "meta.json").write_text(
            json.dumps({**meta, "model_version": str(version)}, indent=2, default=str)
        )
        make_private(Path(m.path) / "state")  # the state holds claims: readable by its user only
    log.info("exported version %s to the BentoML store as %s", version, m.tag)
    return str(m.tag)
