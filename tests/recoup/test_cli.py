"""The `recoup` command: help, clear one-line errors (never a stack trace), and the demo end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoup.cli import app

runner = CliRunner()
COMMANDS = ("generate", "import-x12", "train", "evaluate", "score", "audit", "serve", "demo")


def test_help_lists_the_contract_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for c in COMMANDS:
        assert c in res.output
    for c in COMMANDS:
        assert runner.invoke(app, [c, "--help"]).exit_code == 0


def test_bad_input_is_one_line_reason_and_nonzero_exit(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "error:" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "claims.csv").write_text("claim_id,patient_id\nC1,P1\n")
    (bad / "claim_lines.csv").write_text("claim_id,line_number\nC1,1\n")
    res = runner.invoke(app, ["train", "--data", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "claims.csv" in res.output and "billing_npi" in res.output
    res = runner.invoke(app, ["score", "--data", str(bad), "--out", str(tmp_path / "s.csv")])
    # no model in this home (or, when BentoML's store was already bound by an earlier test, the contract
    # problems): either way a clear reason and exit 2
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "recoup train" in res.output or "claims.csv" in res.output


def test_generate_writes_a_valid_history(tmp_path):
    from features.contract import load_history

    out = tmp_path / "h"
    res = runner.invoke(app, ["generate", "--out", str(out), "--claims", "500", "--seed", "3"])
    assert res.exit_code == 0, res.output
    h = load_history(out)
    assert 450 <= len(h.claims) <= 550
    assert (out / "oracle.csv").exists()


def test_demo_end_to_end_without_serving(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home" / "bentoml"))
    res = runner.invoke(app, ["demo", "--claims", "4000", "--seed", "5", "--no-serve"])
    assert res.exit_code == 0, res.output
    demo = tmp_path / "home" / "demo"
    assert (demo / "audit" / "report.html").exists() and (demo / "audit" / "worklist.csv").exists()
    example = json.loads((demo / "example_claim.json").read_text())
    assert example["claim"]["lines"]
    assert "curl" in res.output
