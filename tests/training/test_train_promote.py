"""`recoup train --promote-if-better` (training.train.train_cli, training.registry.log_and_register,
training.metrics.promotion_gate): promotion only through the gate on the forward part of the latest window, with
the decision and its reasons printed; no promotion without a flag; --promote and --promote-if-better exclusive.
A real small champion in an MLflow store of this module's own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import RecoupError
from recoup.cli import app
from tests.helpers.models import private_store
from training.config import load_config
from training.metrics import evaluate_frame

runner = CliRunner()
AS_OF = "2025-06-30"  # the champion's as-of date; challengers are trained as of the history's last date
HORIZON = 120


@pytest.fixture(scope="module")
def store(recoup_home, small_history_dir, tmp_path_factory):
    """Champion (version 1, as of AS_OF) and a challenger trained as of the last date, not yet registered."""
    from features.contract import load_history
    from training.registry import log_and_register
    from training.train import train_model

    with pytest.MonkeyPatch.context() as mp:
        private_store(mp, tmp_path_factory.mktemp("promote_home"))
        # the small history's latest window holds 8 recouped claims (partially followed): a floor under that
        cfg = load_config(overrides={"horizon_days": HORIZON, "promotion": {"min_window_positives": 5}})
        cfg["likelihood"]["n_estimators"] = 40
        cfg["cause"]["n_estimators"] = 20
        history = load_history(small_history_dir)
        champion = train_model(history, as_of=AS_OF, horizon_days=HORIZON, config=cfg)
        info = log_and_register(champion, cfg, data_dir=small_history_dir, promote=True)
        challenger = train_model(history, horizon_days=HORIZON, config=cfg)
        claims = history.claims
        submitted = pd.Series(claims["submitted_date"].to_numpy(), index=claims["claim_id"].astype(str))
        yield {
            "cfg": cfg,
            "champion": champion,
            "info": info,
            "challenger": challenger,
            "submitted": submitted,
            "data": small_history_dir,
        }


def champion_version() -> str | None:
    from mlflow import MlflowClient

    from features.settings import MODEL_NAME
    from training.registry import alias_version, open_mlflow

    open_mlflow()
    return alias_version(MlflowClient(), MODEL_NAME, "champion")


def with_probability(store, probability: np.ndarray):
    """The challenger with other predictions of its latest window (what the gate compares)."""
    result = store["challenger"]
    scored = result.scored.copy()
    scored["probability"] = probability
    m = evaluate_frame(scored.assign(expected_amount=probability), store["cfg"]["capacities"])
    return dataclasses.replace(result, scored=scored, metrics=m)


def register(store, result, **flags) -> dict:
    from training.registry import log_and_register

    return log_and_register(result, store["cfg"], data_dir=store["data"], submitted=store["submitted"], **flags)


def test_the_two_flags_are_mutually_exclusive(store, tmp_path):
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "nothing"), "--promote", "--promote-if-better"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.startswith("error: --promote and --promote-if-better are mutually exclusive")
    with pytest.raises(RecoupError, match="mutually exclusive"):
        register(store, store["challenger"], promote=True, promote_if_better=True)


def test_a_worse_challenger_is_not_promoted(store):
    before = champion_version()
    rate = store["challenger"].scored["label"].mean()
    info = register(
        store, with_probability(store, np.full(len(store["challenger"].scored), rate)), promote_if_better=True
    )
    g = info["gate"]
    assert info["champion"] is False and champion_version() == before == store["info"]["version"]
    assert g["pass"] is False and g["champion_version"] == before
    assert g["window"]["n_dropped"] == 0 and g["window"]["positives"] >= 5  # a forward window for both models
    assert g["reasons"][0].startswith(f"PR-AUC {g['challenger_pr_auc']:.4f} vs champion {g['champion_pr_auc']:.4f}")
    assert "<= 0 required" in g["reasons"][0]


def test_without_a_flag_the_gate_is_advice_only(store):
    before = champion_version()
    y = store["challenger"].scored["label"].to_numpy().astype(float)
    info = register(store, with_probability(store, y))  # perfect: passes the gate, yet not promoted
    assert info["gate"]["pass"] is True and info["champion"] is False and champion_version() == before


def test_a_better_challenger_is_promoted_through_the_gate(store):
    y = store["challenger"].scored["label"].to_numpy().astype(float)
    info = register(store, with_probability(store, y), promote_if_better=True)
    assert info["gate"]["pass"] is True and info["champion"] is True
    assert champion_version() == info["version"] != store["info"]["version"]
    assert "> 0 required" in info["gate"]["reasons"][0] and "<= 0.005 allowed" in info["gate"]["reasons"][1]


def test_the_gate_compares_only_claims_forward_for_the_champion(store, tmp_path):
    from features.settings import MODEL_NAME
    from training.metrics import promotion_gate
    from training.registry import download_bundle

    champ = download_bundle(MODEL_NAME, store["info"]["version"], tmp_path)
    window = store["challenger"].scored.index
    dates = store["submitted"].reindex(window).sort_values()
    champ.meta["split_dates"]["valid"][1] = str(dates.iloc[len(dates) // 2].date())  # half the window: "learned"
    cfg = {**store["cfg"], "promotion": {**store["cfg"]["promotion"], "min_window_positives": 1}}
    g = promotion_gate(store["challenger"], cfg, champ, "1", store["submitted"])
    assert 0 < g["window"]["n_dropped"] < len(window) and g["window"]["n"] + g["window"]["n_dropped"] == len(window)
    assert g["reasons"][-1].endswith("left out: inside the champion's train/validation slices")
    champ.meta["split_dates"]["valid"][1] = "2099-01-01"  # the whole window: no fair comparison
    g = promotion_gate(store["challenger"], cfg, champ, "1", store["submitted"])
    assert g["pass"] is False and g["window"]["n"] == 0
    assert g["reasons"][0].startswith("the forward window (claims of the latest window submitted after")
    assert "has 0 claims and 0 recouped, fewer than the 1 required" in g["reasons"][0]


def test_recoup_train_promote_if_better_prints_the_decision_and_reasons(store, tmp_path):
    before = champion_version()
    config = tmp_path / "train.yaml"
    config.write_text("promotion:\n  min_window_positives: 5\n")
    args = ["train", "--data", str(store["data"]), "--horizon-days", str(HORIZON), "--n-estimators", "40"]
    args += ["--config", str(config)]
    res = runner.invoke(app, [*args, "--promote-if-better"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    (gate,) = [ln.strip() for ln in lines if ln.strip().startswith("promotion gate vs champion version")]
    assert gate.startswith(f"promotion gate vs champion version {before}: ")
    passed = ": PASS -> promoted to champion" in gate
    assert passed or ": FAIL -> not promoted; the champion stays" in gate
    assert any(ln.strip().startswith("- PR-AUC ") for ln in lines) and any(
        ln.strip().startswith("- ECE ") for ln in lines
    )
    version = lines[0].split(" version ")[1].split()[0]
    assert (champion_version() == version) is passed and (champion_version() == before) is not passed
