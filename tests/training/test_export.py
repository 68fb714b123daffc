"""The champion's export into the real BentoML store of the session (under the test's RECOUP_HOME)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from features.model.bundle import ModelBundle
from features.settings import MODEL_NAME


def test_export_copies_the_bundle_into_the_store_under_the_model_name(trained):
    import bentoml

    from training.export import export_to_bentoml

    info = trained["info"]
    src = Path(trained["bundle_dir"])  # the champion as promotion exported it
    meta = json.loads((src / "meta.json").read_text())
    before = {str(m.tag) for m in bentoml.models.list(MODEL_NAME)}

    tag = export_to_bentoml(src, info["name"], info["version"], meta)

    assert tag not in before and tag.startswith(f"{MODEL_NAME}:")
    assert str(bentoml.models.get(f"{MODEL_NAME}:latest").tag) == tag  # what the service picks up next
    m = bentoml.models.get(tag)
    dst = Path(m.path)
    assert dict(m.info.labels) == {
        "registered_model": info["name"],
        "mlflow_version": info["version"],
        "alias": "champion",
    }
    assert dict(m.info.metadata) == {k: meta[k] for k in ("as_of", "horizon_days", "rulebook_version")}
    assert json.loads((dst / "meta.json").read_text()) == {**meta, "model_version": info["version"]}
    # the source is itself a store entry: its model.yaml is BentoML's record of that entry, not the bundle's
    copied = {p.relative_to(src) for p in src.rglob("*") if p.is_file() and p.name not in ("meta.json", "model.yaml")}
    assert copied and all((dst / rel).read_bytes() == (src / rel).read_bytes() for rel in copied)
    state = [dst / "state", *(dst / "state").rglob("*")]
    assert all(stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600) for p in state)
    assert ModelBundle.load(dst).meta["model_version"] == info["version"]
