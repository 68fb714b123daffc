"""`recoup evaluate` on the session's trained model (never on a window the model learned from), and the
promotion gate: a better challenger passes, a worse one (or a worse-calibrated one) is refused, on the
champion's predictions of the same window.

Touches training.evaluate (``evaluate_history``), training.registry (``download_bundle``),
training.metrics (``promotion_gate``) and the CLI."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recoup.cli import app
from training.metrics import binary_metrics, evaluate_frame

runner = CliRunner()


def test_recoup_evaluate_prints_the_metrics(trained):
    res = runner.invoke(app, ["evaluate", "--data", str(trained["data_dir"])])
    assert res.exit_code == 0, res.output
    out = res.output
    assert f"(trained as of {trained['result'].bundle.meta['as_of']})" in out.splitlines()[0]
    values = {}
    for name in ("n", "roc_auc", "pr_auc", "brier", "ece"):
        m = re.search(rf"^{name}\s+([0-9.,]+)", out, re.M)
        assert m, f"no {name} row in:\n{out}"
        values[name] = float(m.group(1).replace(",", ""))
    assert values["n"] > 0 and 0.5 < values["roc_auc"] <= 1 and 0 < values["pr_auc"] <= 1
    assert 0 <= values["brier"] <= 1 and 0 <= values["ece"] <= 1
    assert "logged to MLflow run" in out


def test_evaluate_history_on_a_window_equals_the_metrics_of_its_claims(trained):
    from features.model.bundle import ModelBundle
    from training.evaluate import evaluate_history
    from training.labels import make_labels
    from training.lag import LagDistribution, exposure_of, usable_claims

    bundle = ModelBundle.load(trained["bundle_dir"])
    history = trained["history"]
    d = history.claims["submitted_date"]
    since = str((pd.Timestamp(bundle.meta["split_dates"]["valid"][1]) + pd.Timedelta(days=1)).date())  # first allowed
    until = str(d[d >= pd.Timestamp(since)].quantile(0.4).date())
    out = evaluate_history(bundle, history, since, until)
    labels = make_labels(history, history.last_date, 365)
    sd = labels["submitted_date"]
    # the model learned from partially followed claims, so it is measured on them: probability x F(follow-up)
    assert bundle.meta["labels"]["immature"]
    usable = usable_claims(labels, bundle.meta["labels"])
    win = usable & (sd >= pd.Timestamp(since)) & (sd <= pd.Timestamp(until))
    assert (win & ~labels["mature"]).any()
    m = out["metrics"]
    assert m["n"] == win.sum() and m["positives"] == labels.loc[win, "label"].sum()
    assert set(out["scored"].index) == set(labels.index[win])
    F = exposure_of(labels, LagDistribution.from_dict(bundle.meta["labels"]["lag"]))[win.to_numpy()]
    assert out["scored"]["exposure"].to_numpy() == pytest.approx(F) and (F < 1).any() and (F > 0).all()
    y, p = out["scored"]["label"].to_numpy(), out["scored"]["probability"].to_numpy() * F
    assert m["pr_auc"] == pytest.approx(binary_metrics(y, p, y, p, [0.1])["pr_auc"])
    assert since <= out["window"][0] <= out["window"][1] <= until


def test_recoup_evaluate_on_a_window_without_outcomes_is_one_line(trained):
    res = runner.invoke(app, ["evaluate", "--data", str(trained["data_dir"]), "--since", "2099-01-01"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert [ln for ln in res.output.splitlines() if ln.strip()][0].startswith("error: no claims with outcomes")


@pytest.mark.parametrize(
    "window",
    [
        ["--until", "{valid_last}"],  # from the start of the history
        ["--since", "{train_first}", "--until", "{train_last}"],  # inside the train slice
        ["--since", "{valid_last}"],  # one day of the validation slice, then the latest window
    ],
)
def test_recoup_evaluate_refuses_a_window_the_model_learned_from(trained, window):
    dates = trained["result"].bundle.meta["split_dates"]
    fill = {"train_first": dates["train"][0], "train_last": dates["train"][1], "valid_last": dates["valid"][1]}
    res = runner.invoke(app, ["evaluate", "--data", str(trained["data_dir"])] + [w.format(**fill) for w in window])
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith("error: the window [") and " holds claims the model (trained as of " in line
    assert f"its train slice is {dates['train'][0]}..{dates['train'][1]}" in line
    assert f"validation slice {dates['valid'][0]}..{dates['valid'][1]}" in line
    after = (pd.Timestamp(dates["valid"][1]) + pd.Timedelta(days=1)).date()
    assert line.endswith(f"evaluate from --since {after} on")


# ------------------------------------------------------------------------------------------------ promotion gate
def challenger(trained, probability: np.ndarray):
    """The session's training result with other predictions on the same latest window (what the gate
    compares against the champion's predictions of that window)."""
    result = trained["result"]
    scored = result.scored.copy()
    scored["probability"] = probability
    metrics = evaluate_frame(scored.assign(expected_amount=probability), trained["config"]["capacities"])
    return dataclasses.replace(result, scored=scored, metrics=metrics)


@pytest.fixture(scope="module")
def gate(trained, tmp_path_factory):
    """The gate against the session's champion, as registered in MLflow (downloaded once)."""
    from training.metrics import promotion_gate
    from training.registry import download_bundle

    info = trained["info"]
    champion = download_bundle(info["name"], info["version"], tmp_path_factory.mktemp("champion"))

    # the small history's latest window holds 9 recouped claims (partially followed): the gate's mechanics are
    # tested with a floor under that
    cfg = {**trained["config"], "promotion": {**trained["config"]["promotion"], "min_window_positives": 5}}

    def run(result) -> dict:
        return promotion_gate(result, cfg, champion, info["version"])

    return run


def test_gate_without_a_champion_passes(trained):
    from training.metrics import promotion_gate

    assert promotion_gate(trained["result"], trained["config"], None) == {"pass": True, "reason": "no champion yet"}


def test_gate_promotes_a_better_challenger(trained, gate):
    y = trained["result"].scored["label"].to_numpy().astype(float)
    g = gate(challenger(trained, y))  # every recouped claim first, calibrated: better than any model
    assert g["pass"] is True and g["challenger_pr_auc"] == 1.0 > g["champion_pr_auc"]
    assert g["champion_version"] == trained["info"]["version"]


def test_gate_refuses_a_worse_challenger(trained, gate):
    n = len(trained["result"].scored)
    rate = trained["result"].scored["label"].mean()
    g = gate(challenger(trained, np.full(n, rate)))  # no ranking at all
    assert g["pass"] is False and g["challenger_pr_auc"] < g["champion_pr_auc"]
    same = gate(trained["result"])  # the champion itself: no gain, no promotion
    assert same["pass"] is False and same["challenger_pr_auc"] == pytest.approx(same["champion_pr_auc"])


def test_gate_refuses_a_better_ranking_with_worse_calibration(trained, gate):
    scored = trained["result"].scored
    y, e = scored["label"].to_numpy(), scored["exposure"].to_numpy()
    # perfect order of probability x F(follow-up) (what the window's partial labels are compared with), far too high
    low = 0.95 * 0.99 * e[y == 1].min() / e[y == 0].max()
    g = gate(challenger(trained, np.where(y == 1, 0.99, low)))
    assert g["challenger_pr_auc"] == pytest.approx(1.0) and g["champion_pr_auc"] < 0.99
    assert g["challenger_ece"] > g["champion_ece"] + trained["config"]["promotion"]["max_ece_increase"]
    assert g["pass"] is False
