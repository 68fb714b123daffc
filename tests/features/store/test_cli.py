"""`recoup ingest` and `recoup store info` (exit codes, one line per problem, never a traceback), and a store given
to the commands that take --data."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from recoup.cli import app
from tests.helpers.contract_tables import good_tables, write_dir

runner = CliRunner()


def test_ingest_then_info(tmp_path):
    store = tmp_path / "store"
    h = write_dir(tmp_path / "h", good_tables())
    res = runner.invoke(app, ["ingest", str(h), "--into", str(store)])
    assert res.exit_code == 0, res.output
    assert "units: 5 (" in res.output and "claims: 3 added, 0 replaced, 0 voided, 0 already present" in res.output
    res = runner.invoke(app, ["ingest", str(h / "*.csv"), "--into", str(store)])
    assert res.exit_code == 0 and "0 ingested + 5 already ingested + 0 rejected" in res.output
    res = runner.invoke(app, ["store", "info", str(store)])
    assert res.exit_code == 0, res.output
    assert "3 claims" in res.output and "label maturity (horizon 365 days" in res.output
    assert re.search(r"2024-01\s.*\s1$", res.output, re.M)


def test_problems_exit_2_one_line_each(tmp_path):
    store = tmp_path / "store"
    res = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "--into", str(store)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.splitlines() == [
        "error: 1 problem(s); nothing was written:",
        f"  - {tmp_path / 'missing'}: no such file or folder",
    ]
    t = good_tables()
    t["claims"].loc[1, "total_charge"] = "-5"
    res = runner.invoke(app, ["ingest", str(write_dir(tmp_path / "bad", t)), "--into", str(store)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "claims.csv row 2: column 'total_charge': expected an amount >= 0" in res.output
    res = runner.invoke(app, ["store", "info", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "not a claims store" in res.output and len(res.output.splitlines()) == 1
    assert runner.invoke(app, ["ingest", "--help"]).exit_code == 0
    assert runner.invoke(app, ["store", "info", "--help"]).exit_code == 0


def _metrics(output: str) -> dict[str, str]:
    return dict(re.findall(r"^(n|roc_auc|pr_auc|brier|ece)\s+(\S+)", output, re.M))


def test_evaluate_takes_a_store(trained, tmp_path):
    store = tmp_path / "store"
    assert runner.invoke(app, ["ingest", str(trained["data_dir"]), "--into", str(store)]).exit_code == 0
    folder = runner.invoke(app, ["evaluate", "--data", str(trained["data_dir"])])
    stored = runner.invoke(app, ["evaluate", "--data", str(store)])
    assert folder.exit_code == 0 and stored.exit_code == 0, stored.output
    assert _metrics(stored.output) == _metrics(folder.output) and len(_metrics(folder.output)) == 5


@pytest.mark.slow
def test_train_takes_a_store(recoup_home, small_history_dir, tmp_path):
    store = tmp_path / "store"
    assert runner.invoke(app, ["ingest", str(small_history_dir), "--into", str(store)]).exit_code == 0
    res = runner.invoke(app, ["train", "--data", str(store), "--n-estimators", "5"])
    assert res.exit_code == 0, res.output
    assert "registered" in res.output.lower() or "version" in res.output.lower()
