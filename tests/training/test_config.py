"""training.config: the ``labels`` section is checked field by field, with a one-line error naming the field;
`recoup train` refuses such a config (and a tree count out of bounds) before loading any data."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from features.errors import RecoupError
from recoup.cli import app
from training.config import load_config


def test_the_defaults_learn_from_immature_labels_per_payer():
    assert load_config()["labels"] == {"immature": True, "min_followup_days": 28, "lag_by": "payer", "reviews": True}


@pytest.mark.parametrize(
    "labels, field",
    [
        ({"immature": "false"}, r"labels\.immature .* must be true or false \(got 'false'\)"),
        ({"min_followup_days": -5}, r"labels\.min_followup_days .* in \[1, 3650\] \(got -5\)"),
        ({"min_followup_days": 2.5}, r"labels\.min_followup_days"),
        ({"lag_by": "payers"}, r"labels\.lag_by .* one of payer, none \(got 'payers'\)"),
        ({"reviews": "yes"}, r"labels\.reviews .* must be true or false \(got 'yes'\)"),
    ],
)
def test_a_bad_labels_field_is_named(labels, field):
    with pytest.raises(RecoupError, match=field):
        load_config(overrides={"labels": labels})


def test_recoup_train_refuses_a_bad_config_or_tree_count_in_one_line(tmp_path):
    bad = tmp_path / "train.yaml"
    bad.write_text("labels:\n  lag_by: payers\n")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "nowhere"), "--config", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith("error: labels.lag_by in ") and str(bad) in line
    res = runner.invoke(app, ["train", "--data", str(tmp_path), "--n-estimators", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "--n-estimators" in res.output
