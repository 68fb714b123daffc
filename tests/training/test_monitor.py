"""`recoup monitor` (training.monitor, training.monitor_report): PSI arithmetic on known distributions, drift tables
and the retrain decision on synthetic frames, and a real small model in a real MLflow store monitored on a history
(report, summary, MLflow metrics; the verdict flips when a top feature shifts)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import RecoupError
from recoup.cli import app
from tests.helpers.models import private_store
from training.config import load_config
from training.monitor import (
    OTHER,
    PSI_EPS,
    Binner,
    calibration_by_payer,
    category_counts,
    feature_drift,
    monitor_settings,
    numeric_counts,
    numeric_edges,
    psi,
    psi_from_counts,
    retrain_decision,
    score_drift,
)

runner = CliRunner()
SETTINGS = monitor_settings(load_config())
AS_OF = "2025-06-30"  # the monitored model's as-of date: half a year of the small history comes after it
HORIZON = 120  # short, so that some claims after the as-of date have matured labels by the history's end


# ------------------------------------------------------------------------------------------ PSI arithmetic
def test_psi_of_known_shares():
    assert psi_from_counts([50, 50], [25, 75]) == pytest.approx(
        (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    )
    assert psi_from_counts([10, 20, 30], [1, 2, 3]) == 0.0  # same shares, any counts
    assert psi_from_counts([1, 3], [3, 1]) == pytest.approx(psi_from_counts([3, 1], [1, 3]))  # symmetric
    assert math.isnan(psi_from_counts([0, 0], [1, 1])) and math.isnan(psi_from_counts([1, 1], [0, 0]))


def test_an_empty_bin_adds_a_bounded_term():
    got = psi_from_counts([100, 0], [50, 50])  # the reference never saw the second bin
    assert got == pytest.approx((0.5 - 1) * math.log(0.5) + (0.5 - PSI_EPS) * math.log(0.5 / PSI_EPS))
    assert np.isfinite(psi_from_counts([0, 100], [100, 0]))


def test_numeric_bins_at_reference_quantiles_with_ties_and_missing():
    x = np.r_[np.zeros(80), np.arange(1, 21), [np.nan] * 5]  # mostly zeros: repeated quantiles merge
    edges = numeric_edges(x, 10)
    assert list(edges) == sorted(set(edges)) and 0.0 in edges
    counts = numeric_counts(x, edges)
    assert counts.sum() == len(x) and counts[-1] == 5  # the last bin: missing values
    assert numeric_counts(np.array([np.inf, -5.0]), edges)[[0, -1]].tolist() == [1, 1]  # inf counts as missing


def test_numeric_psi_small_without_drift_large_with_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=20_000)
    assert psi(ref, rng.normal(size=20_000)) < 0.01
    assert psi(ref, rng.normal(0.2, 1, size=20_000)) == pytest.approx(0.04, abs=0.015)  # the textbook ~0.04 for 0.2 sd
    assert psi(ref, rng.normal(1.0, 1, size=20_000)) > 0.25


def test_categorical_unseen_levels_count_as_other_and_missing_as_its_own_level():
    ref = pd.Series(["A"] * 50 + ["B"] * 50, dtype=object)
    now = pd.Series(["A"] * 50 + ["C"] * 40 + [None] * 10, dtype=object)  # C never seen in training
    levels = ["A", "B"]
    assert category_counts(now, levels).tolist() == [50, 0, 40, 10]  # A, B, other, missing
    want = psi_from_counts([50, 50, 0, 0], [50, 0, 40, 10])
    assert psi(ref, now, categorical=True) == pytest.approx(want)
    assert psi(ref, ref, categorical=True) == 0.0
    many = pd.Series([f"L{i % 30}" for i in range(300)], dtype=object)  # 30 levels, 20 kept: 10 fold into other
    b = Binner(pd.DataFrame({"c": many}), ["c"], bins=10, max_levels=20)
    assert len(b.levels["c"]) == 20 and OTHER not in b.levels["c"]
    assert b.counts("c", many)[-2] == 100


# ------------------------------------------------------------------------------------------ synthetic frames
def frames(n: int, shift: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def one(mu: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "x": rng.normal(mu, 1, n),
                "z": rng.exponential(1, n),
                "payer_id": rng.choice(["P1", "P2", "P3"], n, p=[0.5, 0.3, 0.2]),
            }
        )

    return one(0.0), one(shift)


def decide(ref: pd.DataFrame, now: pd.DataFrame, age_days: int = 30) -> dict:
    binner = Binner(ref, ["payer_id"], SETTINGS["bins"], SETTINGS["max_levels"])
    importance = pd.Series({"x": 10.0, "z": 0.0, "payer_id": 1.0})
    feats = feature_drift(ref, now, importance, binner, top_features=2)
    score = score_drift(1 / (1 + np.exp(-ref["x"])), 1 / (1 + np.exp(-now["x"])), SETTINGS["bins"])
    cal = calibration_by_payer(
        pd.DataFrame({"payer_id": [], "probability": [], "label": [], "mature": [], "paid": []}).astype(
            {"mature": bool, "paid": bool}
        )
    )
    return {"features": feats, **retrain_decision(feats, score, cal, age_days, len(now), SETTINGS)}


def test_undrifted_frame_needs_no_retrain():
    ref, now = frames(5000, 0.0, 1)
    d = decide(ref, now)
    assert d["retrain_due"] is False and d["status"] == "ok" and d["reasons"] == []
    assert d["features"]["psi"].max() < 0.02
    assert set(d["features"].loc[d["features"]["top"], "feature"]) == {"x", "payer_id"}  # z has no gain: never top


def test_drifted_top_feature_and_score_call_for_a_retrain():
    ref, now = frames(5000, 1.0, 2)
    d = decide(ref, now)
    assert d["retrain_due"] is True and d["status"] == "retrain"
    assert any(r.startswith("feature x PSI ") and "(gain rank 1)" in r for r in d["reasons"])
    assert any(r.startswith("score PSI ") for r in d["reasons"])
    assert d["features"].iloc[0]["feature"] == "x"  # sorted by PSI


def test_drift_of_a_feature_the_model_does_not_use_is_only_a_watch_note():
    ref, now = frames(5000, 0.0, 5)
    now["z"] = now["z"] * 4  # z has no gain in the model
    d = decide(ref, now)
    assert d["retrain_due"] is False and d["status"] == "watch"
    assert d["watch"] == [
        f"1 feature(s) outside the model's top features with PSI >= 0.25, the largest z "
        f"{d['features'].set_index('feature').loc['z', 'psi']:.3f} (gain rank 3)"
    ]


def test_an_old_model_calls_for_a_retrain_even_without_drift():
    ref, now = frames(2000, 0.0, 3)
    d = decide(ref, now, age_days=SETTINGS["max_model_age_days"] + 1)
    assert d["retrain_due"] and d["reasons"] == [
        f"model as of {SETTINGS['max_model_age_days'] + 1} days before the "
        f"data's last date (> {SETTINGS['max_model_age_days']})"
    ]


def test_calibration_by_payer_flags_a_miscalibrated_payer_with_enough_labels_only():
    rng = np.random.default_rng(4)
    rows = []
    for payer, n, true_rate in (("GOOD", 2000, 0.05), ("BAD", 2000, 0.20), ("SMALL", 50, 0.40)):
        p = np.full(n, 0.05)
        rows.append(
            pd.DataFrame(
                {
                    "payer_id": payer,
                    "probability": p,
                    "label": (rng.random(n) < true_rate).astype(int),
                    "mature": True,
                    "paid": True,
                }
            )
        )
    cal = calibration_by_payer(pd.concat(rows, ignore_index=True)).set_index("payer_id")
    assert cal.loc["BAD", "ece"] > 0.1 > cal.loc["GOOD", "ece"]
    assert cal.loc["GOOD", "ece"] < 2 * cal.loc["GOOD", "ece_noise"]  # within chance
    empty = pd.DataFrame({"feature": [], "psi": [], "rank": [], "top": []})
    d = retrain_decision(empty, {"psi": 0.0}, cal.reset_index(), 0, 4050, SETTINGS)
    assert len(d["reasons"]) == 1 and d["reasons"][0].startswith("payer BAD: ECE ")  # SMALL: too few labels


def test_claims_still_followed_only_count_when_already_above_the_prediction():
    n = 1000
    base = {"payer_id": "P", "probability": np.full(n, 0.05), "mature": False, "paid": True}
    low = calibration_by_payer(pd.DataFrame({**base, "label": np.r_[np.ones(10), np.zeros(n - 10)]}))
    high = calibration_by_payer(pd.DataFrame({**base, "label": np.r_[np.ones(150), np.zeros(n - 150)]}))
    assert low.loc[0, "partial_excess_z"] < 0 < 3 < high.loc[0, "partial_excess_z"]  # 1% so far is no evidence
    empty = pd.DataFrame({"feature": [], "psi": [], "rank": [], "top": []})
    assert not retrain_decision(empty, {"psi": 0.0}, low, 0, n, SETTINGS)["retrain_due"]
    assert "already recouped" in retrain_decision(empty, {"psi": 0.0}, high, 0, n, SETTINGS)["reasons"][0]


def test_with_the_lag_distribution_claims_still_followed_are_compared_both_ways():
    n = 2000
    # followed for half of the risk (F = 0.5): 5% predicted for the horizon -> 2.5% expected by now
    base = {"payer_id": "P", "probability": np.full(n, 0.05), "mature": False, "paid": True, "exposure": 0.5}
    as_expected = calibration_by_payer(pd.DataFrame({**base, "label": np.r_[np.ones(50), np.zeros(n - 50)]}))
    low = calibration_by_payer(pd.DataFrame({**base, "label": np.r_[np.ones(5), np.zeros(n - 5)]}))
    assert as_expected.loc[0, "partial_predicted"] == pytest.approx(0.025)
    assert abs(as_expected.loc[0, "partial_excess_z"]) < 1 and low.loc[0, "partial_excess_z"] < -3
    empty = pd.DataFrame({"feature": [], "psi": [], "rank": [], "top": []})
    assert not retrain_decision(empty, {"psi": 0.0}, as_expected, 0, n, SETTINGS)["retrain_due"]
    (reason,) = retrain_decision(empty, {"psi": 0.0}, low, 0, n, SETTINGS)["reasons"]
    assert "already recouped, below the 0.025 predicted by now" in reason


def test_settings_are_bounded_with_a_message_naming_the_field():
    cfg = load_config()
    cfg["monitor"]["bins"] = 1
    with pytest.raises(RecoupError, match=r"^monitor\.bins in the training config must be an integer in \[2, 100\]"):
        monitor_settings(cfg)
    cfg = load_config()
    cfg["monitor"]["psi_score_watch"] = 0.5
    with pytest.raises(RecoupError, match="psi_score_watch"):
        monitor_settings(cfg)


# ------------------------------------------------------------------------------------------ a real model
@pytest.fixture(scope="module")
def store(recoup_home, small_history_dir, tmp_path_factory):
    """A small model trained as of AS_OF on the small history, registered and promoted in an MLflow store of its
    own (RECOUP_HOME of this module: the session's champion stays untouched)."""
    from features.contract import load_history
    from training.registry import log_and_register
    from training.train import train_model

    home = tmp_path_factory.mktemp("monitor_home")
    with pytest.MonkeyPatch.context() as mp:
        private_store(mp, home)
        cfg = load_config(overrides={"horizon_days": HORIZON})
        cfg["likelihood"]["n_estimators"] = 40
        cfg["cause"]["n_estimators"] = 20
        history = load_history(small_history_dir)
        result = train_model(history, as_of=AS_OF, horizon_days=HORIZON, config=cfg)
        info = log_and_register(result, cfg, data_dir=small_history_dir, promote=True)
        yield {"home": home, "cfg": cfg, "history": history, "result": result, "info": info, "data": small_history_dir}


def test_recoup_monitor_writes_report_summary_and_mlflow_metrics(store, tmp_path):
    import mlflow

    from features.settings import tracking_uri

    out = tmp_path / "monitor"
    res = runner.invoke(app, ["monitor", "--data", str(store["data"]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    verdict = [ln for ln in res.output.splitlines() if ln.startswith("model as of")]
    assert verdict and verdict[0].startswith(f"model as of {AS_OF}, window 2025-07-01..")
    assert sorted(p.name for p in out.iterdir()) == [
        ".recoup-output.json",
        "feature_drift.csv",
        "payer_calibration.csv",
        "payer_drift.csv",
        "report.html",
        "summary.json",
    ]
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and "<script" not in page and "http" not in page
    sm = json.loads((out / "summary.json").read_text())
    assert sm["model"]["as_of"] == AS_OF and sm["window"][0] == "2025-07-01"
    assert sm["n_now"] > 0 and sm["n_labelled_now"] > 0  # a 120-day horizon: labels matured for the first months
    assert sm["retrain_due"] == bool(sm["reasons"]) and (("RETRAIN DUE" in verdict[0]) == sm["retrain_due"])
    claims = store["history"].claims
    assert not any(cid in page for cid in claims["claim_id"].astype(str).head(200))  # no claim ids in the report
    assert not any(pid in page for pid in claims["patient_id"].astype(str).unique()[:200])
    feats = pd.read_csv(out / "feature_drift.csv")
    assert len(feats) == len(store["result"].bundle.spec.feature_names_) and feats["psi"].notna().all()

    mlflow.set_tracking_uri(tracking_uri())  # this module's store (set by the fixture)
    exp = mlflow.get_experiment_by_name("recoup-monitor")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    assert len(runs) == 1
    m = runs[0].data.metrics
    for k in ("psi_max", "psi_max_top", "psi_score", "n_now", "n_ref", "retrain_due", "model_age_days"):
        assert k in m
    assert m["psi_max"] == pytest.approx(sm["psi_max"]) and m["n_now"] == sm["n_now"]
    assert any(k.startswith("ece.") for k in m)
    assert runs[0].data.tags["status"] == sm["status"]


def test_recoup_monitor_bad_options_are_one_line_errors(store, tmp_path):
    for args, want in (
        (["--since", "2025/07/01"], "--since must be a date YYYY-MM-DD"),
        (["--since", "2025-09-01", "--until", "2025-08-01"], "is after --until"),
        (["--reference", "valid"], "--reference must be one of train, test"),
        (["--version", "99"], "no model 'recoup-risk' version 99"),
        (["--since", "2024-01-01"], "holds claims the model (trained as of"),  # inside its train slice: refused
    ):
        res = runner.invoke(app, ["monitor", "--data", str(store["data"]), "--out", str(tmp_path / "m"), *args])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.output.startswith("error: ") and want in res.output, res.output


def test_the_verdict_flips_when_a_top_feature_shifts(store):
    import dataclasses

    from training.monitor import monitor_history

    bundle = store["result"].bundle
    cfg = load_config()
    cfg["monitor"].update(
        top_features=1, psi_score_watch=10, psi_score_retrain=10, max_payer_ece=1, max_model_age_days=36500
    )
    settings = monitor_settings(cfg)
    history = store["history"]
    before = monitor_history(bundle, history, settings)
    first = before["features"].sort_values("rank").iloc[0]
    assert first["feature"] == "submission_lag_days", "the test shifts the model's first feature"
    assert before["summary"]["retrain_due"] is False, before["summary"]["reasons"]

    claims, lines = history.claims, history.claim_lines.copy()
    later = set(claims.loc[claims["submitted_date"] > pd.Timestamp(AS_OF), "claim_id"].astype(str))
    moved = lines["claim_id"].astype(str).isin(later)
    lines.loc[moved, "service_date"] = lines.loc[moved, "service_date"] - pd.Timedelta(days=90)  # billed 90 days late
    shifted = dataclasses.replace(history, claim_lines=lines)
    after = monitor_history(bundle, shifted, settings)
    assert after["summary"]["retrain_due"] is True
    assert after["summary"]["reasons"][0].startswith("feature submission_lag_days PSI ")
    assert after["features"].set_index("feature").loc["submission_lag_days", "psi"] > 1.0
