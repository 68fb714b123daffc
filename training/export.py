"""Export a model bundle into the local BentoML model store as ``MODEL_NAME``, so the service starts fast.

Promotion (:mod:`training.registry`) exports the champion here; the service finds it with
:func:`serving.model_store.from_bentoml_store`."""

from __future__ import annotations

import logging
from pathlib import Path

from features.model.store import store_bundle

log = logging.getLogger(__name__)


def export_to_bentoml(bundle_dir: Path, name: str, version: str, meta: dict) -> str:
    """Copy a bundle folder into the BentoML store as ``MODEL_NAME``, labelled with the registered model
    ``name`` and its ``version``; returns the store tag."""
    labels = {"registered_model": name, "mlflow_version": str(version), "alias": "champion"}
    tag = store_bundle(bundle_dir, str(version), meta, labels)
    log.info("exported version %s to the BentoML store as %s", version, tag)
    return tag
