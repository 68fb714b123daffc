"""Batch scoring and audit on a real 2-worker LocalCluster: the same numbers, the same worklist, the same reasons
as the single process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import RecoupError
from serving import audit, batch
from serving.cluster_scoring import ClusterScores, resolve_bundle

pytest.importorskip("distributed")

NUMERIC = ["recoupment_probability", "expected_recoupment_amount"] + [
    c for c in batch.SCORE_COLUMNS if c.startswith("p_")
]


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(lc)
    yield client
    client.close()
    lc.close()


@pytest.fixture(scope="module")
def window(trained):
    d = trained["history"].claims["submitted_date"]
    return pd.Timestamp(d.quantile(0.4).date()), pd.Timestamp(d.quantile(0.9).date())


@pytest.fixture(scope="module")
def single(trained, window):
    scorer = batch.load_scorer(trained["bundle_dir"])
    bs = batch.score_window(trained["history"], scorer, *window)
    return scorer, bs


@pytest.fixture(scope="module")
def distributed_scores(cluster, trained, window):
    cs = ClusterScores(cluster, trained["data_dir"], resolve_bundle(trained["bundle_dir"]), *window)
    yield cs
    cs.release()


def test_scores_identical(single, distributed_scores):
    _, bs = single
    table, rule_hits, failed = distributed_scores.collect()
    assert len(table) > 500 and failed.empty
    assert list(table.index) == list(bs.table.index)  # same rows, same order
    a, b = table[NUMERIC].to_numpy(np.float64), bs.table[NUMERIC].to_numpy(np.float64)
    assert np.abs(a - b).max() <= 1e-12
    assert (table["risk_band"].astype(str).to_numpy() == bs.table["risk_band"].astype(str).to_numpy()).all()
    assert rule_hits.reindex(bs.table.index).tolist() == bs.rule_hits.reindex(bs.table.index).tolist()
    assert (rule_hits != "[]").sum() > 0  # the comparison covers claims with hits


def test_top_by_dollars_and_reasons(single, distributed_scores):
    scorer, bs = single
    n = 40
    ids = distributed_scores.top_ids(n)
    assert ids == [str(i) for i in batch.select_explain(bs.table, f"top:{n}")]
    got = distributed_scores.reasons(ids)
    batch.add_reasons(bs, scorer, ids)
    assert set(got) == set(ids)
    assert all(got[i] == bs.reasons[i] and got[i] for i in ids)


def test_score_cli_same_file(cluster, trained, window, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_DASK_SCRATCH", str(tmp_path / "scratch"))  # a scheduler address: a shared folder
    since, until = (str(t.date()) for t in window)
    kw = dict(since=since, until=until, explain="top:25", bundle_dir=trained["bundle_dir"])
    batch.score_cli(trained["data_dir"], tmp_path / "one.parquet", **kw)
    summary = batch.score_cli(trained["data_dir"], tmp_path / "dask.parquet", cluster=cluster.scheduler.address, **kw)
    one, dask_ = batch.read_frame(tmp_path / "one.parquet"), batch.read_frame(tmp_path / "dask.parquet")
    pd.testing.assert_frame_equal(one, dask_)
    assert summary["scored"] == len(one) and (dask_["reasons"] != "").sum() == 25


def test_audit_cli_same_worklist(cluster, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOUP_DASK_SCRATCH", str(tmp_path / "scratch"))
    kw = dict(capacity=30, bundle_dir=trained["bundle_dir"], matured=True)
    a = audit.audit_cli(trained["data_dir"], tmp_path / "one", **kw)
    b = audit.audit_cli(trained["data_dir"], tmp_path / "dask", cluster=cluster.scheduler.address, **kw)
    one = pd.read_parquet(tmp_path / "one" / "worklist.parquet")
    dask_ = pd.read_parquet(tmp_path / "dask" / "worklist.parquet")
    assert len(one) == 30
    pd.testing.assert_frame_equal(one, dask_)  # same ids, order, dollars, reasons, rule hits, outcomes
    assert a["backtest"] == b["backtest"] and a["window"] == b["window"]


def test_skip_invalid_refused_on_cluster(cluster, trained, tmp_path):
    with pytest.raises(RecoupError, match="--skip-invalid is not available with --cluster"):
        batch.score_cli(trained["data_dir"], tmp_path / "x.csv", skip_invalid=True, cluster=cluster.scheduler.address)
