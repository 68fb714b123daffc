"""Invariants of the one feature code path (batch and online): parity, point in time, duplicates caught
online, state persistence, batched vs single event-table queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import History
from features.engine.events import EventTable
from features.pipeline import build_feature_table, compute_features, select_claims
from features.engine.state import HistoryState, submission_order
from tests.helpers.data import small_history


def _with_duplicates(h: History, n: int = 12, seed: int = 5) -> History:
    """Copy some claims under new ids (same day or a few days later) so that duplicate, same-day and
    cross-claim NCCI features are exercised by the batch path too."""
    rng = np.random.default_rng(seed)
    src = h.claims.sample(n, random_state=seed).reset_index(drop=True)
    new = src.copy()
    new["claim_id"] = [f"DUP{i}" for i in range(n)]
    new["submitted_date"] = new["submitted_date"] + pd.to_timedelta(rng.integers(0, 3, n), "D")
    ids = dict(zip(src["claim_id"].astype(str), new["claim_id"]))
    lines = h.claim_lines[h.claim_lines["claim_id"].astype(str).isin(ids)].copy()
    lines["claim_id"] = lines["claim_id"].astype(str).map(ids)
    claims = pd.concat([h.claims, new], ignore_index=True)
    claim_lines = pd.concat([h.claim_lines, lines], ignore_index=True)
    return History(
        claims=claims, claim_lines=claim_lines, coverage=h.coverage, providers=h.providers, recoupments=h.recoupments
    )


@pytest.fixture(scope="module")
def hist():
    h, _ = small_history(n_claims=3000)
    return _with_duplicates(h)


@pytest.fixture(scope="module")
def full(hist, rb):
    res, state = build_feature_table(hist, rb)
    return res, state


def _history_before(h: History, k: int, order: np.ndarray) -> History:
    """Claims before position k in submission order; recoupments of those dated on or before the
    submission date of the claim at position k."""
    keep = h.claims[order < k]
    ids = set(keep["claim_id"].astype(str))
    sub = h.claims["submitted_date"][order == k].iloc[0]
    rec = h.recoupments
    if rec is not None:
        rec = rec[rec["claim_id"].astype(str).isin(ids) & (rec["recouped_date"] <= sub)].reset_index(drop=True)
    lines = h.claim_lines[h.claim_lines["claim_id"].astype(str).isin(ids)].reset_index(drop=True)
    return History(
        claims=keep.reset_index(drop=True),
        claim_lines=lines,
        coverage=h.coverage,
        providers=h.providers,
        recoupments=rec,
    )


def assert_rows_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert list(a.index) == list(b.index)
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if pd.api.types.is_numeric_dtype(a[c]) and pd.api.types.is_numeric_dtype(b[c]):
            assert np.allclose(x.astype(float), y.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True), (c, x, y)
        else:
            xs = [None if pd.isna(v) else str(v) for v in x]
            ys = [None if pd.isna(v) else str(v) for v in y]
            assert xs == ys, (c, xs, ys)


def _hit_set(h: pd.DataFrame) -> list:
    def norm(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, (int, float, np.integer, np.floating)):
            return round(float(v), 9)
        return str(v)

    return sorted(tuple(norm(v) for v in r) for r in h.itertuples(index=False))


def test_online_equals_batch_row(hist, full, rb):
    res, _ = full
    order = submission_order(hist.claims)
    n = len(hist.claims)
    dup_pos = order[hist.claims["claim_id"].astype(str).str.startswith("DUP").to_numpy()]
    ks = sorted({0, 7, n // 3, n // 2, n - 1, *dup_pos[:4].tolist()})
    for k in ks:
        hk = _history_before(hist, k, order)
        st = HistoryState.from_history(hk, rb)
        x_id = str(hist.claims["claim_id"][order == k].iloc[0])
        c, l = select_claims(hist, [x_id])
        r = compute_features(c, l, st, rb)
        assert_rows_equal(res.X.loc[[x_id]], r.X)
        assert _hit_set(res.hits[res.hits["claim_id"] == x_id]) == _hit_set(r.hits)


def test_point_in_time(hist, full, rb):
    res, _ = full
    cut = hist.claims["submitted_date"].quantile(0.6)
    early = hist.claims["submitted_date"] <= cut
    ids = set(hist.claims.loc[early, "claim_id"].astype(str))
    rec = hist.recoupments
    hk = History(
        claims=hist.claims[early].reset_index(drop=True),
        claim_lines=hist.claim_lines[hist.claim_lines["claim_id"].astype(str).isin(ids)].reset_index(drop=True),
        coverage=hist.coverage,
        providers=hist.providers,
        recoupments=rec[rec["claim_id"].astype(str).isin(ids) & (rec["recouped_date"] <= cut)],
    )
    r2, _ = build_feature_table(hk, rb)
    assert_rows_equal(res.X.loc[r2.X.index], r2.X)
    sub = res.hits[res.hits["claim_id"].isin(ids)]
    assert _hit_set(sub) == _hit_set(r2.hits)


def test_duplicate_caught_online(hist, rb):
    order = submission_order(hist.claims)
    hk = _history_before(hist, len(hist.claims) // 2, order)
    st = HistoryState.from_history(hk, rb)
    c, l = select_claims(hist, [str(hist.claims["claim_id"].iloc[-20])])
    c = c.copy()
    c["submitted_date"] = hk.claims["submitted_date"].max() + pd.Timedelta(days=1)
    c["claim_id"] = "NEW1"
    c["patient_id"] = "PATIENT-NEVER-SEEN"  # nothing in the history can match its lines
    l = l.copy()
    l["claim_id"] = "NEW1"
    first = compute_features(c, l, st, rb, record=True)
    assert first.X["dup_lines_matched"].iloc[0] == 0 and first.X["dup_all_lines_matched"].iloc[0] == 0
    assert not (first.hits["rule"] == "duplicate").any()
    c2, l2 = c.copy(), l.copy()
    c2["claim_id"] = "NEW2"
    l2["claim_id"] = "NEW2"
    second = compute_features(c2, l2, st, rb, record=True)
    assert second.X["dup_all_lines_matched"].iloc[0] == 1
    dup = second.hits[second.hits["rule"] == "duplicate"]
    assert len(dup) == len(l2)
    assert set(dup["ref"]) == {"NEW1"}
    assert (dup["claim_id"] == "NEW2").all()


def test_state_save_load_round_trip(hist, rb, tmp_path):
    order = submission_order(hist.claims)
    k = int(len(hist.claims) * 0.8)
    st = HistoryState.from_history(_history_before(hist, k, order), rb)
    ids = hist.claims["claim_id"][(order >= k) & (order < k + 40)].astype(str).tolist()
    c, l = select_claims(hist, ids)
    # a few online additions so the delta is exercised
    compute_features(c.iloc[:5], l[l["claim_id"].isin(c["claim_id"].iloc[:5])], st, rb, record=True)
    a = compute_features(c.iloc[5:], l[l["claim_id"].isin(c["claim_id"].iloc[5:])], st, rb)
    st.save(tmp_path / "state")
    st2 = HistoryState.load(tmp_path / "state")
    b = compute_features(c.iloc[5:], l[l["claim_id"].isin(c["claim_id"].iloc[5:])], st2, rb)
    assert_rows_equal(a.X, b.X)
    assert _hit_set(a.hits) == _hit_set(b.hits)
    assert st2.next_order == st.next_order


@pytest.mark.parametrize("with_delta", [False, True])
def test_batched_query_equals_single(with_delta):
    rng = np.random.default_rng(0)
    n = 5000
    keys = rng.choice([f"k{i}" for i in range(300)], n).astype(object)
    times = rng.integers(0, 10_000, n).astype(np.int64)
    vals = rng.normal(size=(n, 2))
    tab = EventTable.build(["a", "b"], keys, times, vals, payload=np.arange(n).astype(str).astype(object))
    if with_delta:
        m = 200
        tab.append(
            rng.choice([f"k{i}" for i in range(320)], m).astype(object),
            rng.integers(0, 10_000, m).astype(np.int64),
            rng.normal(size=(m, 2)),
            np.array([f"d{i}" for i in range(m)], dtype=object),
        )
    q = 2000
    qk = rng.choice([f"k{i}" for i in range(330)], q).astype(object)
    qt = rng.integers(-5, 10_010, q).astype(np.int64)
    qt[:50] = times[:50]  # ties: events at exactly T are not before T
    qk[:50] = keys[:50]
    sums, latest = tab.query(qk, qt)
    pay, ptime = tab.latest_payload(qk, qt)
    for i in range(0, q, 7):
        s1, l1 = tab.query(qk[i : i + 1], qt[i : i + 1])
        assert np.allclose(s1[0], sums[i], rtol=1e-12, atol=1e-9)
        assert l1[0] == latest[i]
        p1, t1 = tab.latest_payload(qk[i : i + 1], qt[i : i + 1])
        assert p1[0] == pay[i] and t1[0] == ptime[i]
    # brute force
    for i in range(0, q, 97):
        m = (keys == qk[i]) & (times < qt[i])
        expect = vals[m].sum(axis=0)
        if with_delta:
            for t_, v_, _ in tab.delta.get(qk[i], ()):
                if t_ < qt[i]:
                    expect = expect + v_
        assert np.allclose(sums[i], expect, atol=1e-9)
