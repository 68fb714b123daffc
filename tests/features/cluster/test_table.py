"""The feature table on a real 2-worker LocalCluster equals build_feature_table's: every column of X (values and
dtypes, same rows in the same order) and every hit, on a generated history spanning three years (so the chain of
folded summaries runs through many partitions further apart than the longest look-back)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.cluster.client import connect
from features.cluster.table import AHEAD, LOOKBACK_DAYS, auto_months, feature_table, make_plan
from features.contract import write_history
from features.engine.events import day_number, time_of_day_start
from features.engine.state import HistoryState, recent_keys
from features.errors import RecoupError
from features.pipeline import build_feature_table
from features.sources.synthetic.generate import GeneratorConfig, generate_history
from features.store.ingest import ingest
from features.store.read import read_store


@pytest.fixture(scope="module")
def client():
    with connect("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> str:
    """The folder where the tables' chains write their states."""
    return str(tmp_path_factory.mktemp("chain"))


def _history_store(root: Path, n_claims: int, seed: int) -> tuple[Path, Path]:
    hist, _ = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))
    folder = write_history(hist, root / "history", fmt="parquet")
    store = root / "store"
    ingest([folder], store)
    return folder, store


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder, store = _history_store(tmp_path_factory.mktemp("cluster_table"), 2500, 5)
    history = read_store(store)
    result, state = build_feature_table(history)
    return folder, store, history, result, state


def assert_same_x(single: pd.DataFrame, cluster: pd.DataFrame) -> None:
    """Every column equal: the same dtype, the same values (NaN where NaN; floats bitwise), the same rows in order."""
    assert list(cluster.columns) == list(single.columns)
    assert cluster.index.name == single.index.name == "claim_id"
    assert cluster.index.tolist() == single.index.tolist()
    for c in single.columns:
        a, b = single[c], cluster[c]
        assert a.dtype == b.dtype, c
        if a.dtype.kind == "f":
            av, bv = a.to_numpy(), b.to_numpy()
            same = (av.view(np.int64) == bv.view(np.int64)) | (np.isnan(av) & np.isnan(bv))
            assert same.all(), f"{c}: {int((~same).sum())} rows differ"
        else:
            assert a.isna().tolist() == b.isna().tolist(), c
            assert a[a.notna()].tolist() == b[b.notna()].tolist(), c


def _value(v) -> str:
    """A hit value as text: missing (None, NaN, NA) as one, numbers by their float repr (exact), text as it is."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "<missing>"
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return repr(float(v))
    return repr(str(v))


def _sorted_hits(h: pd.DataFrame) -> list[tuple]:
    """The hits as a sorted list of rows (a partition's hits come in its claims' order, the whole table's in the
    single process's: the same rows, compared value by value; the frames' dtypes follow their content)."""
    return sorted(tuple(_value(v) for v in row) for row in h.itertuples(index=False))


@pytest.fixture(scope="module")
def table(client, small, chain):
    return feature_table(client, small[1], months=3, folder=chain)


def test_every_column_and_hit_equal_the_single_process(table, small):
    _, store, history, single, _ = small
    assert table.partitions == 12  # 36 months: the chain folds the summary 11 times, 3 months << W
    X = table.X.compute()
    assert_same_x(single.X, X)
    hits = table.hits.compute()
    assert list(hits.columns) == list(single.hits.columns) and len(single.hits) > 0
    assert _sorted_hits(hits) == _sorted_hits(single.hits)
    claims = table.claims.compute()
    assert claims["claim_id"].tolist() == history.claims["claim_id"].tolist()
    # the point-in-time rules the table must keep: claims submitted on the same day (order by row position) and
    # recoupments dated on a claim's submission day; the history has both
    day = day_number(history.claims["submitted_date"])
    assert (pd.Series(day).value_counts() > 1).sum() > 50
    rec_days = set(day_number(history.recoupments["recouped_date"]).tolist())
    assert len(rec_days & set(day.tolist())) > 20
    assert (X["sameday_prior_lines"] > 0).sum() > 0 and (X["patient_claims_365d"] > 0).sum() > 0
    recs = table.recoupments.compute()
    assert sorted(recs["claim_id"].tolist()) == sorted(history.recoupments["claim_id"].astype(str).tolist())


def test_the_end_state_answers_like_the_single_process_state(table, small):
    state = small[4]
    end: HistoryState = table.state()
    assert end.next_order == state.next_order
    pd.testing.assert_frame_equal(end.claim_keys, state.claim_keys)  # every claim's keys and time, in order
    t_end = max(int(t.times.max()) for t in state.tables.values() if len(t.times)) + 1
    # a claim after the end asks service days from (day after the last event) - the widest lag; their events were
    # submitted from that day + the narrowest lag (never later than the service day here)
    h = small[2]
    lines = h.claim_lines.merge(h.claims[["claim_id", "submitted_date"]], on="claim_id")
    lag = day_number(lines["submitted_date"]) - day_number(lines["service_date"])
    span = int(lag.max()) - min(0, int(lag.min()))
    asked_from = int(time_of_day_start(np.array([(t_end >> 33) + 1 - span]))[0])
    for name, full in state.tables.items():
        small_tab = end.tables[name]
        assert len(small_tab.times) <= len(full.times)
        if name in ("patient", "provider"):  # the last W days of events stay, the rest is one event per key
            last_day = t_end >> 33
            old = (full.times >> 33) < last_day - LOOKBACK_DAYS
            assert len(small_tab.times) < len(full.times) and old.any()
        # the keys are the full state's; int line keys are coded by each state's vocabularies
        if full.keys.dtype == object:
            keys = full.keys.to_numpy()
            q = np.full(len(keys), t_end, dtype=np.int64)
            a, b = full.query(keys, q)[0], small_tab.query(keys, q)[0]
            assert np.array_equal(a, b), name
        else:
            if name in ("dup", "sameday"):  # keyed by service day: only the keys a later claim can still ask
                full = recent_keys(full, asked_from)
                assert 0 < len(full.keys) < len(state.tables[name].keys), name
            assert len(small_tab.keys) == len(full.keys), name
            a = np.sort(full.query(full.keys.to_numpy(), np.full(len(full.keys), t_end))[0], axis=0)
            b = np.sort(small_tab.query(small_tab.keys.to_numpy(), np.full(len(small_tab.keys), t_end))[0], axis=0)
            assert np.array_equal(a, b), name
    # the enumerated tables: every event of those keys when asked (what each partition's state holds), the keys
    # quiet for a year folded by default
    whole = table.state(keep_days=None)
    for name in ("dup", "sameday"):
        asked = recent_keys(state.tables[name], asked_from)
        assert len(whole.tables[name].times) == len(asked.times) >= len(end.tables[name].times)
    with pytest.raises(RecoupError, match="keep_days"):
        table.state(keep_days=-1)


def test_months_since_until_and_a_history_folder(client, chain, small):
    folder, store, history, single, _ = small
    part = feature_table(client, store, since="2024-03", until="2024-08", months=6, folder=chain)
    X = part.X.compute()
    sub = history.claims["submitted_date"].dt.strftime("%Y-%m")
    ids = history.claims["claim_id"][(sub >= "2024-03") & (sub <= "2024-08")].astype(str)
    assert_same_x(single.X.loc[ids.to_numpy()], X)
    # a history folder (not a store): read whole by one task, then the same partitions
    folder_table = feature_table(client, folder, months=12, folder=chain)
    assert_same_x(single.X, folder_table.X.compute())


def test_bad_arguments_are_one_line(client, chain, small, tmp_path):
    _, store, *_ = small
    with pytest.raises(RecoupError, match="months per partition"):
        feature_table(client, store, months=0, folder=chain)
    with pytest.raises(RecoupError, match="not a store"):
        feature_table(client, tmp_path / "missing", folder=chain)
    with pytest.raises(RecoupError, match="expected a month"):
        feature_table(client, store, since="March", folder=chain)
    with pytest.raises(RecoupError, match="no claims"):
        feature_table(client, store, since="2031-01", folder=chain)
    assert [len(g) for g in make_plan(["2024-01", "2024-02", "2024-05"], 2).groups] == [2, 1]
    # months per partition by default: as many (up to 3) as keep every partition within 300k claims
    assert auto_months([100_000] * 12) == 3
    assert auto_months([100_000] * 4 + [200_000] * 8) == 1
    assert auto_months([150_000] * 12) == 2
    assert auto_months([400_000] * 3) == 1 and auto_months([]) == 3


@pytest.mark.slow
def test_fifty_thousand_claims_equal_the_single_process(client, chain, tmp_path):
    _, store = _history_store(tmp_path, 50_000, 13)
    history = read_store(store)
    single, _ = build_feature_table(history)
    table = feature_table(client, store, months=3, folder=chain)
    assert_same_x(single.X, table.X.compute())
    assert _sorted_hits(table.hits.compute()) == _sorted_hits(single.hits)


def _answers(state: HistoryState, t_end: int) -> dict[str, np.ndarray]:
    """Every table's sums for every key after the state's last event (int line keys: sorted rows, each state codes
    them by its own vocabularies)."""
    out = {}
    for name, tab in state.tables.items():
        keys = tab.keys.to_numpy() if hasattr(tab.keys, "to_numpy") else np.asarray(tab.keys)
        got = tab.query(keys, np.full(len(keys), t_end, dtype=np.int64))[0]
        out[name] = got[np.argsort(keys, kind="stable")] if keys.dtype == object else np.sort(got, axis=0)
    return out


def test_until_a_date_is_the_history_as_known_and_the_bundle_state_compacts_like_the_single_one(
    client, chain, small, tmp_path
):
    """``until`` a date: the table and the bundle's state are truncate_history's (no claim, recoupment after it);
    compacted, the state is the single process's compact state: the same events held, the same answers."""
    from features.model.outcomes import truncate_history

    _, store, history, _, _ = small
    as_of = pd.Timestamp("2025-06-17")
    h = truncate_history(history, as_of)
    single, full = build_feature_table(h)
    table = feature_table(client, store, until=str(as_of.date()), months=3, with_state=True, folder=chain)
    assert_same_x(single.X, table.X.compute())
    assert table.n_claims == len(h.claims) and table.n_lines == len(h.claim_lines)
    recs = table.recoupments.compute()
    assert len(recs) == len(h.recoupments) and (recs["recouped_date"] <= as_of).all()
    # built compact, table by table, and written as it is built (what training saves); as the service loads it
    saved = table.save_bundle_state(tmp_path / "state")  # removed with its handle
    a, b = HistoryState.load(full.compact().save(tmp_path / "single")), saved.load()
    assert saved.n_events() == b.n_events() and saved.compaction == a.compaction
    assert a.compaction == b.compaction
    pd.testing.assert_frame_equal(a.claim_keys, b.claim_keys)
    t_end = max(int(t.times.max()) for t in full.tables.values() if len(t.times)) + 1
    for name, tab in a.tables.items():
        assert len(tab.times) == len(b.tables[name].times), name
    got, want = _answers(b, t_end), _answers(a, t_end)
    for name in want:
        assert np.array_equal(got[name], want[name], equal_nan=True), name
    with pytest.raises(RecoupError, match="without its state"):
        feature_table(client, store, until="2024-02", months=3, folder=chain).bundle_state()


def test_a_store_with_reviews_equals_the_single_process(client, chain, small, tmp_path):
    """Review refunds become recoupments when the store is read (netted against the payer's): the table reads such a
    store whole and gives the single process's features."""
    import shutil

    from features.store.reviews import record_reviews

    _, store, history, _, _ = small
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    c = history.claims[history.claims["paid_date"].notna()]
    recouped = c[c["claim_id"].isin(history.recoupments["claim_id"])]["claim_id"].astype(str).head(5).tolist()
    clean = c[~c["claim_id"].isin(history.recoupments["claim_id"])]["claim_id"].astype(str).head(40).tolist()
    rows = [(cid, "2024-05-02", "refunded", 50.0, "units", None, "u1") for cid in clean[:30]]
    rows += [(cid, "2024-06-03", "no_issue", None, None, None, "u2") for cid in clean[30:]]
    rows += [(cid, "2024-07-04", "error_found", 75.0, "units", None, "u1") for cid in recouped]
    cols = ["claim_id", "reviewed_at", "outcome", "refund_amount", "cause", "carc", "reviewer"]
    record_reviews(copy, pd.DataFrame(rows, columns=cols))
    h = read_store(copy)
    assert len(h.recoupments) > len(history.recoupments)
    single, _ = build_feature_table(h)
    assert not single.X.equals(small[3].X)  # the refunds change features (provider recoupment history)
    table = feature_table(client, copy, months=6, folder=chain)
    assert_same_x(single.X, table.X.compute())
    assert len(table.recoupments.compute()) == len(h.recoupments)


def _keep(p: int, feats: tuple, claims: pd.DataFrame, recs: pd.DataFrame | None, last: pd.Timestamp) -> tuple:
    """A sink that returns what it is given (a real sink writes it and returns a little)."""
    return p, feats[0], claims, recs, last


def test_a_sink_gets_every_partition_and_the_table_keeps_none(client, chain, small):
    """With a sink each partition's features, claim rows and recoupments go to it as they are done, with the
    history's last date (History.last_date); the table then holds no partition of its own."""
    _, store, history, single, _ = small
    table = feature_table(client, store, months=6, sink=_keep, folder=chain)
    assert table.X is None and table.claims is None and table.hits is None and table.recoupments is None
    got = table.collect()
    assert [g[0] for g in got] == list(range(6))
    assert_same_x(single.X, pd.concat([g[1] for g in got]))
    assert pd.concat([g[2] for g in got])["claim_id"].tolist() == history.claims["claim_id"].tolist()
    recs = pd.concat([g[3] for g in got if g[3] is not None])
    assert sorted(recs["claim_id"].astype(str)) == sorted(history.recoupments["claim_id"].astype(str))
    assert all(g[4] == history.last_date for g in got) and table.last_date.result() == history.last_date
    # the chain's states: the ones a retry could need are removed as the sink's results come in; the last (the end
    # state) and the one the bundle's state starts from are kept for this process
    folder = max(Path(chain).glob("chain-*"), key=lambda f: f.stat().st_mtime)
    states = sorted(f.name for f in folder.glob("*.pkl"))
    assert "state-00006.pkl" in states and len(states) <= 2, states
    assert not list(Path(chain).glob("chain-*/.*.tmp"))


@dataclass(frozen=True)
class _DieOnce:
    """A sink whose worker process dies (no clean exit) the first time it gets partition ``at``."""

    marker: str
    at: int

    def __call__(self, p: int, feats: tuple, claims: pd.DataFrame, recs, last) -> tuple:
        if p == self.at and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return p, feats[0]


def test_a_worker_lost_mid_chain_costs_a_step_not_the_chain(chain, small, tmp_path):
    """A worker dies in the middle of the table: the steps whose results it held are retried from their states on
    disk (the chain is not recomputed from the first partition) and the table still equals the single process's."""
    from distributed import get_task_stream

    _, store, _, single, _ = small
    marker = tmp_path / "died"
    # a cluster of its own: the shared one holds other tables' partitions, which a lost worker would recompute too
    with connect("local:2") as client, get_task_stream(client) as ts:
        table = feature_table(client, store, months=3, sink=_DieOnce(str(marker), 9), folder=chain)
        got = table.collect()
    assert marker.exists()  # a worker did die
    assert_same_x(single.X, pd.concat([g[1] for g in got]))
    steps = [t for t in ts.data if str(t["key"]).startswith("_step-")]
    # run again at most: the steps of the partitions whose results the dead worker held, in flight (at most AHEAD + 1)
    # or done but not yet gathered (as many again); a state held only in memory would have cost the 10 steps before
    assert table.partitions == 12 and len(steps) <= 12 + 2 * (AHEAD + 1), len(steps)
