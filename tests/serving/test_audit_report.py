"""The audit report for an audit lead (#16): a backtest or why there is none (and which window has one),
provider names and specialty labels instead of codes, the capacity curve zoomed on the capacity, and a
worklist.csv of flat columns (no JSON in cells, formula-safe)."""

from __future__ import annotations

import dataclasses
from html import escape as html_escape
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from features.contract import load_history
from features.errors import RecoupError
from serving import audit, audit_report, batch


def _text(html: str) -> str:
    """The report without its embedded images (their base64 could match anything)."""
    return re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', html)


# ------------------------------------------------------------------------------------------------- backtest
def test_matured_window_is_mature(trained):
    history = trained["history"]
    meta = batch.load_scorer(trained["bundle_dir"]).bundle.meta
    mw = audit.matured_window(history, 365, meta["split_dates"])
    # trained with immature labels as of the data's end: its held-out (test) slice is too recent to have matured
    assert mw["since"] and not mw["held_out"] and meta["split_dates"]["test"][0] > mw["until"]
    assert pd.Timestamp(mw["since"]) == pd.Timestamp(mw["until"]) - pd.Timedelta(days=audit.BACKTEST_WINDOW_DAYS)
    # a model trained earlier: the window starts at its held-out slice
    early = {"test": ["2024-03-01", "2024-04-30"]}
    got = audit.matured_window(history, 365, early)
    assert got["held_out"] and got["since"] == "2024-03-01" and got["until"] == mw["until"]
    c = history.claims
    win = c[(c["submitted_date"] >= mw["since"]) & (c["submitted_date"] <= mw["until"]) & c["paid_date"].notna()]
    mature = win["paid_date"] + pd.Timedelta(days=365) <= history.last_date
    assert len(win) and mature.mean() >= audit.PAY_LAG_QUANTILE
    later = c[c["submitted_date"] > pd.Timestamp(mw["until"]) + pd.Timedelta(days=mw["pay_lag_days"])]
    assert not (later["paid_date"] + pd.Timedelta(days=365) <= history.last_date).any()


def test_matured_window_of_a_short_history(trained):
    h = trained["history"]
    c = h.claims[h.claims["submitted_date"] > h.last_date - pd.Timedelta(days=300)]
    mw = audit.matured_window(dataclasses.replace(h, claims=c), 365)
    assert mw["since"] is None and mw["until"] is None
    why = audit.no_backtest_reason({"has_recoupments": True, "matured_window": mw})
    assert "too short" in why and str(365 + mw["pay_lag_days"]) in why
    assert "no recoupments" in audit.no_backtest_reason({"has_recoupments": False, "matured_window": mw})


def test_recent_window_explains_which_window_has_a_backtest(trained, tmp_path, capsys):
    last = trained["history"].claims["submitted_date"].max()
    since = str((last - pd.Timedelta(days=60)).date())
    s = audit.audit_cli(trained["data_dir"], tmp_path / "recent", since=since, capacity=30)
    assert s["backtest"] is None
    mw = s["matured_window"]
    flags = f"--since {mw['since']} --until {mw['until']}"
    html = (tmp_path / "recent" / "report.html").read_text(encoding="utf-8")
    assert "id='no-backtest'" in html and "id='backtest'" not in html
    assert flags in html and f"the data ends {mw['as_of']}" in html and "--matured" in html
    assert "no backtest:" in capsys.readouterr().out


def test_matured_audit_has_a_backtest(trained, tmp_path, capsys):
    s = audit.audit_cli(trained["data_dir"], tmp_path / "m", matured=True, capacity=40)
    bt, mw = s["backtest"], s["matured_window"]
    assert s["window"] == [mw["since"], mw["until"]]
    assert bt is not None and bt["n_mature"] >= 0.95 * bt["n_candidates"]
    assert bt["n_in_sample"] == bt["n_mature"]  # the model trained on all of them, and the report says so
    html = (tmp_path / "m" / "report.html").read_text(encoding="utf-8")
    assert "id='backtest'" in html and "id='no-backtest'" not in html and "id='in-sample'" in html
    assert "backtest (" in capsys.readouterr().out
    with pytest.raises(RecoupError, match="--matured picks the window"):
        audit.audit_cli(trained["data_dir"], tmp_path / "x", matured=True, since="2024-01-01")


# ------------------------------------------------------------------------------------------------- labels
def test_specialty_labels():
    labels = audit.taxonomy_labels()
    assert labels["207RG0100X"] == "Gastroenterology Physician"
    assert audit.specialty_label("207RG0100X", labels) == "Gastroenterology Physician"
    assert audit.specialty_label(None, labels) == audit.specialty_label(" ", labels) == audit.UNKNOWN_SPECIALTY
    assert "ZZZ" in audit.specialty_label("ZZZ", labels)
    got = audit.label_taxonomy_codes("claims of this specialty (207RG0100X) were recouped on 6.9%", labels)
    assert got == "claims of this specialty (Gastroenterology Physician) were recouped on 6.9%"


def test_report_names_providers_and_labels_specialties(trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained["data_dir"], data)
    prov = pd.read_csv(data / "providers.csv", dtype=str)
    prov["name"] = [f"Clinic {i}" if i % 2 == 0 else "" for i in range(len(prov))]
    prov.to_csv(data / "providers.csv", index=False)
    assert "name" in load_history(data).providers.columns  # the contract's optional column
    out = tmp_path / "out"
    audit.audit_cli(data, out, matured=True, capacity=40)
    html = _text((out / "report.html").read_text(encoding="utf-8"))
    w = pd.read_csv(out / "worklist.csv", dtype=str, keep_default_na=False)
    assert not audit.TAXONOMY_CODE.search(html), "a bare taxonomy code in the report"
    named = dict(zip(prov["npi"], prov["name"]))
    labels = audit.taxonomy_labels()
    for npi, spec_code, spec, name in w[["billing_npi", "specialty_code", "specialty", "provider_name"]].itertuples(
        index=False
    ):
        assert name == named[npi]
        assert spec == audit.specialty_label(spec_code, labels) and html_escape(spec) in html
        if name:
            assert html_escape(f"Provider {name}, NPI {npi}") in html
    assert (w["provider_name"] != "").any() and (w["provider_name"] == "").any()
    reasons = " ".join(w[[f"reason_{i}" for i in (1, 2, 3)]].to_numpy().ravel())
    assert not audit.TAXONOMY_CODE.search(reasons)


# ------------------------------------------------------------------------------------------------- capacity curve
def test_capacity_curve_zooms_on_the_capacity(trained):
    assert audit_report.curve_limit(10_000, 300) == 900
    assert audit_report.curve_limit(500, 300) == 500 and audit_report.curve_limit(500, 500) == 500
    assert audit_report.curve_limit(500, 2) == 10
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(trained["history"], scorer)
    wl = audit.build_worklist(bs, scorer, capacity=25)
    assert len(wl.ranked) > 10 * 25
    ax = audit_report.capacity_figure(wl).axes[0]
    assert ax.get_xlim() == (0.0, 75.0)
    marks = [ln for ln in ax.lines if np.allclose(ln.get_xdata(), 25)]
    assert marks, "the capacity is marked"
    visible = float(wl.ranked["expected_recoupment_dollars"].head(75).sum())
    assert visible <= ax.get_ylim()[1] <= 1.5 * max(visible, 1.0)  # the y-axis follows the zoom


# ------------------------------------------------------------------------------------------------- worklist.csv
def test_worklist_csv_is_flat_and_formula_safe(trained, tmp_path):
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(trained["history"], scorer)
    wl = audit.build_worklist(bs, scorer, capacity=30)
    wl.worklist.loc[0, "reason_2"] = '=HYPERLINK("http://evil.example")'
    wl.worklist.loc[1, "rule_hit_1"] = "+1+1"
    audit.write_worklist(wl, tmp_path / "w")
    csv = pd.read_csv(tmp_path / "w" / "worklist.csv", dtype=str, keep_default_na=False)
    pq = pd.read_parquet(tmp_path / "w" / "worklist.parquet")
    flat = [f"{k}_{i}" for k in ("reason", "rule_hit") for i in (1, 2, 3)]
    assert set(flat) <= set(csv.columns) and not set(audit.JSON_COLUMNS) & set(csv.columns)
    cells = csv.to_numpy().ravel()
    assert not any(str(v).lstrip("'").startswith(("[", "{")) for v in cells), "JSON in a cell"
    assert not any(str(v).startswith(("=", "+", "@", "\t", "\r")) for v in cells)
    assert csv.loc[0, "reason_2"] == '\'=HYPERLINK("http://evil.example")' and csv.loc[1, "rule_hit_1"] == "'+1+1"
    for i in range(2, len(pq)):  # the flat columns are the JSON's first texts, in order
        reasons = [r["text"] for r in json.loads(pq.loc[i, "reasons"])]
        hits = [r["text"] for r in json.loads(pq.loc[i, "rule_hits"])]
        assert [csv.loc[i, f"reason_{j}"] for j in (1, 2, 3)] == (reasons + ["", "", ""])[:3]
        assert [csv.loc[i, f"rule_hit_{j}"] for j in (1, 2, 3)] == (hits + ["", "", ""])[:3]
        assert int(csv.loc[i, "rule_hit_count"]) == len(hits)
    assert (pq["rule_hit_count"] > 0).any()
