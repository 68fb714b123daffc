"""Round trip: X12 import -> contract validation -> `recoup train` on imported claims combined with
generated claims."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract import load_history, validate_frames, write_history, to_contract_frame
from features.sources.synthetic.generate import GeneratorConfig, generate_history
from features.sources.x12.importer import import_x12
from training.config import load_config
from training.train import train_model

X12_DIR = Path(__file__).resolve().parents[1] / "data" / "x12"


def _raw(df: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if df is None else to_contract_frame(df).astype(object)


def test_imported_x12_trains_together_with_generated_claims(tmp_path):
    files = sorted(
        p for p in X12_DIR.rglob("*") if p.is_file() and p.suffix.lower() in (".edi", ".txt", ".x12", ".dat")
    )
    assert files, "no X12 samples copied into tests/data/x12"
    imported = import_x12(files).history
    assert len(imported.claims) > 10 and len(imported.claim_lines) > 10
    generated, _ = generate_history(GeneratorConfig(n_claims=6000, seed=5))
    tables = {}
    for name in ("claims", "claim_lines", "coverage", "providers", "recoupments"):
        parts = [_raw(getattr(h, name)) for h in (generated, imported) if getattr(h, name) is not None]
        df = pd.concat(parts, ignore_index=True) if parts else None
        if name == "providers" and df is not None:
            df = df.drop_duplicates("npi")
        tables[name] = df
    combined = validate_frames(tables)  # the contract holds on the combined history
    write_history(combined, tmp_path / "hist")
    history = load_history(tmp_path / "hist", require_recoupments=True)
    assert set(imported.claims["claim_id"].astype(str)) <= set(history.claims["claim_id"].astype(str))
    cfg = load_config()
    cfg["likelihood"]["n_estimators"] = 20
    cfg["cause"]["n_estimators"] = 10
    result = train_model(history, config=cfg)
    assert 0.0 <= result.metrics["roc_auc"] <= 1.0
    assert result.bundle.spec.feature_names_
