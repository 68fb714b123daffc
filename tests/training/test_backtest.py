"""`recoup backtest` (training/backtest.py): the origins and their bounds, a real small backtest (two origins,
real LightGBM models of 40 trees, the real MLflow store of the session) whose windows lie after their origins
and outside their models' train slices, and the CLI's one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import RecoupError
from recoup.cli import app
from training.backtest import (
    EXPERIMENT,
    FILES,
    MAX_ORIGINS,
    backtest_cli,
    check_origins,
    make_origins,
    parse_date,
    parse_period,
)

runner = CliRunner()
T = pd.Timestamp
# the session's small history (4,000 claims, 2023-01-01..2025-12-31): a 180-day horizon leaves enough matured
# claims to train as of mid-2024, and 3-month windows after both origins mature before the history's end
ORIGINS = ("2024-06-30", "2024-09-30")
ARGS = dict(start=ORIGINS[0], end=ORIGINS[1], step="3M", window="3M", horizon_days=180, n_estimators=40)


@pytest.mark.parametrize(
    ("text", "days_from_2024_01_31"),
    [("3M", 90), ("3m", 90), ("90D", 90), ("2W", 14), ("1Y", 366), (" 1M ", 29)],
)
def test_parse_period_reads_number_and_unit_as_a_calendar_offset(text, days_from_2024_01_31):
    assert ((T("2024-01-31") + parse_period(text, "--step")) - T("2024-01-31")).days == days_from_2024_01_31


@pytest.mark.parametrize("text", ["3X", "", "M", "3", "3.5M", "-1M", "1M2D", "0D", "11Y", "9999D", "121M"])
def test_parse_period_refuses_other_forms_and_bounds_in_one_line_naming_the_option(text):
    with pytest.raises(RecoupError, match="^--step must") as exc:
        parse_period(text, "--step")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("text", ["2024-13-01", "2024/01/01", "2024-02-30", "24-01-01", "yesterday"])
def test_parse_date_refuses_anything_but_a_calendar_date_yyyy_mm_dd(text):
    with pytest.raises(RecoupError, match="^--from must be a date YYYY-MM-DD"):
        parse_date(text, "--from")
    assert parse_date("2024-02-29", "--from") == T("2024-02-29")


def test_origins_step_from_the_first_without_drifting_off_month_ends():
    got = make_origins(T("2024-01-31"), T("2024-07-31"), parse_period("1M", "--step"))
    assert [str(o.date()) for o in got] == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
        "2024-06-30",
        "2024-07-31",
    ]
    assert make_origins(T("2024-01-01"), T("2024-03-31"), parse_period("90D", "--step")) == [
        T("2024-01-01"),
        T("2024-03-31"),
    ]
    assert make_origins(T("2024-05-01"), T("2024-05-01"), parse_period("3M", "--step")) == [T("2024-05-01")]


def test_origins_are_bounded():
    with pytest.raises(RecoupError, match="^--to 2024-01-01 is before --from 2024-06-01"):
        make_origins(T("2024-06-01"), T("2024-01-01"), parse_period("3M", "--step"))
    with pytest.raises(RecoupError, match=f"more than {MAX_ORIGINS} origins"):
        make_origins(T("2015-01-01"), T("2025-01-01"), parse_period("1W", "--step"))
    assert len(make_origins(T("2015-01-01"), T("2024-12-01"), parse_period("1M", "--step"))) == MAX_ORIGINS


def test_each_origin_needs_history_before_it_and_its_window_within_the_data():
    first, last, window = T("2023-01-01"), T("2025-12-31"), parse_period("6M", "--window")
    check_origins([T("2024-01-02"), T("2025-06-30")], window, first, last, 365)  # both fit
    with pytest.raises(RecoupError, match=r"^origin 2023-12-31 leaves 364 days of history.*after 2024-01-01"):
        check_origins([T("2024-06-30"), T("2023-12-31")], window, first, last, 365)
    with pytest.raises(RecoupError, match=r"^origin 2025-07-01: its 6M window ends 2026-01-01.*--to by 2025-06-30"):
        check_origins([T("2025-06-30"), T("2025-07-01")], window, first, last, 365)


@pytest.fixture(scope="module")
def backtest(recoup_home, small_history_dir, tmp_path_factory):
    """A real backtest of the session's small history: two origins, 40 trees, the session's MLflow store."""
    from mlflow import MlflowClient

    from training.registry import open_mlflow

    open_mlflow()
    versions_before = len(MlflowClient().search_model_versions())
    out = tmp_path_factory.mktemp("backtest") / "out"
    result = backtest_cli(data=small_history_dir, out=out, **ARGS)
    return {"result": result, "out": out, "versions_before": versions_before}


def test_backtest_writes_json_markdown_plot_and_html(backtest):
    out, result = backtest["out"], backtest["result"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(FILES)
    on_disk = json.loads((out / "backtest.json").read_text())
    assert on_disk["origins"] == json.loads(json.dumps(result["origins"]))
    assert [r["as_of"] for r in on_disk["origins"]] == list(ORIGINS)
    assert on_disk["params"] | {"step": "3M", "window": "3M", "horizon_days": 180, "origins": 2} == on_disk["params"]
    md = (out / "backtest.md").read_text()
    assert all(f"| {o} |" in md for o in ORIGINS)
    assert (out / "backtest.png").read_bytes().startswith(b"\x89PNG")
    page = (out / "backtest.html").read_text()
    assert "data:image/png;base64," in page and all(o in page for o in ORIGINS)
    assert not list(out.parent.glob(".*tmp*"))  # no temporary file or folder left behind


def test_backtest_windows_lie_after_their_origins_and_outside_their_train_slices(backtest):
    for r in backtest["result"]["origins"]:
        origin = T(r["as_of"])
        first, last = T(r["window"][0]), T(r["window"][1])
        assert origin < first <= last <= origin + pd.DateOffset(months=3)
        assert r["window_requested"] == [
            str((origin + pd.Timedelta(days=1)).date()),
            str((origin + pd.DateOffset(months=3)).date()),
        ]
        for part in ("train", "valid", "test"):  # every slice the model saw ends before its window begins
            assert T(r["split_dates"][part][1]) <= origin < first


def test_backtest_metrics_are_in_range_with_the_oracle(backtest):
    for r in backtest["result"]["origins"]:
        m, o = r["model"], r["oracle"]
        assert r["window_claims"] == m["n"] > 0 and 0 < r["window_positives"] == m["positives"] < r["window_claims"]
        assert r["train_positives"] > 0 and 0.9 <= r["window_paid_matured_share"] <= 1
        for fig in (m, o):
            assert 0 <= fig["roc_auc"] <= 1 and 0 < fig["pr_auc"] <= 1 and 0 <= fig["ece"] <= 1
            assert 0 <= fig["dollars_at_5pct"] and 0 <= fig["dollars_share_at_5pct"] <= 1
        assert o["roc_auc"] > 0.6  # the oracle knows the generator's probabilities
        for k in ("roc_auc", "pr_auc", "dollars_at_5pct"):
            assert r["ratio"][k] == pytest.approx(m[k] / o[k])
        rel = r["reliability"]
        assert len(rel["predicted"]) == len(rel["observed"]) == 10
        assert np.average(rel["observed"]) == pytest.approx(m["positive_rate"], abs=0.01)


def test_backtest_logs_one_mlflow_run_with_metrics_per_origin_and_registers_no_model(backtest):
    from mlflow import MlflowClient

    client = MlflowClient()
    result = backtest["result"]
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "backtest"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params["step"] == "3M" and run.data.params["from"] == ORIGINS[0]
    for key, pick in (("roc_auc", lambda r: r["model"]["roc_auc"]), ("ratio_pr_auc", lambda r: r["ratio"]["pr_auc"])):
        hist = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in hist] == [0, 1]
        assert [m.value for m in hist] == pytest.approx([pick(r) for r in result["origins"]])
    for key in ("pr_auc", "dollars_at_5pct", "ece", "positives", "claims", "train_positives", "oracle_roc_auc"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 2, key
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert sorted(c.data.tags["as_of"] for c in children) == list(ORIGINS)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert set(FILES) <= artifacts
    assert len(client.search_model_versions()) == backtest["versions_before"]


def test_backtest_replaces_its_own_output_and_refuses_a_foreign_folder(backtest, small_history_dir, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = runner.invoke(
        app,
        ["backtest", "--data", str(small_history_dir), "--from", "2024-06-30", "--to", "2024-06-30"]
        + ["--horizon-days", "180", "--window", "3M", "--n-estimators", "20", "--out", str(foreign)],
    )
    assert res.exit_code == 2 and "is not empty and is not an earlier output of `recoup backtest`" in res.output
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "3X"], "error: --step must be a number and a unit D, W, M or Y"),
        (["--window", "0D"], "error: --window must span 1 day to 10 years"),
        (["--from", "2024-06-31"], "error: --from must be a date YYYY-MM-DD"),
        (["--to", "2024-01-01"], "error: --to 2024-01-01 is before --from 2024-06-30"),
        (["--to", "2025-09-30", "--window", "6M"], "error: origin 2025-09-30: its 6M window ends 2026-03-30"),
        (
            ["--from", "2023-07-10", "--to", "2023-07-10", "--horizon-days", "180"],
            "error: origin 2023-07-10 (1/1): not enough",
        ),
    ],
)
def test_recoup_backtest_bad_options_are_one_line_and_exit_2(small_history_dir, tmp_path, args, message):
    base = ["backtest", "--data", str(small_history_dir), "--from", "2024-06-30", "--to", "2024-09-30"]
    res = runner.invoke(app, base + ["--out", str(tmp_path / "out")] + args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), res.output
    assert not (tmp_path / "out").exists()
