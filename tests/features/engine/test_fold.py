"""Folding an event table before a cutoff (:meth:`EventTable.fold_before`): every query at or after the cutoff
gives bitwise the same sums and latest payload as the full table; a table rebuilt from the folded events and
the later raw events has the full table's running sums (counts: bitwise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.engine.events import EventTable
from features.engine.state import ENUMERATED_TABLES, HistoryState

MANY = 40  # > 32 queries: the vectorized path


def _events(draw_keys, times, vals, int_keys: bool):
    keys = np.asarray(draw_keys, dtype=np.int64) if int_keys else np.array([f"k{k}" for k in draw_keys], dtype=object)
    payload = np.array([f"p{i}" for i in range(len(times))], dtype=object)
    return keys, np.asarray(times, dtype=np.int64), np.asarray(vals, dtype=np.float64), payload


def _all_queries(tab: EventTable, keys: np.ndarray, ts: np.ndarray):
    qk = np.repeat(keys, len(ts))
    qt = np.tile(ts, len(keys))
    sums, _ = tab.query(qk, qt)
    pay, tt = tab.latest_payload(qk, qt)
    small = [tab.query(qk[i : i + 1], qt[i : i + 1])[0][0] for i in range(0, len(qk), max(1, len(qk) // 7))]
    return sums, pay, tt, small


events = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 50), min_size=n, max_size=n),
        st.lists(
            st.one_of(st.integers(0, 3).map(float), st.floats(0, 1e8, allow_nan=False).map(lambda x: round(x, 2))),
            min_size=n,
            max_size=n,
        ),
        st.integers(0, 55),
        st.booleans(),
        st.sampled_from([None, 0, 20, 40]),
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_queries_at_or_after_the_cutoff_are_bitwise_the_same(ev):
    k, t, v, cutoff, int_keys, keep = ev
    keys, times, vals, payload = _events(k, t, [[x, 1.0] for x in v], int_keys)
    full = EventTable.build(["x", "n"], keys, times, vals, payload)
    folded = full.fold_before(cutoff, keep)
    assert len(folded.times) <= len(full.times)
    uniq = pd.unique(keys)
    ts = np.arange(cutoff, 53, dtype=np.int64)
    a, b = _all_queries(full, uniq, ts), _all_queries(folded, uniq, ts)
    assert a[0].tobytes() == b[0].tobytes()  # bitwise, floats included
    assert a[1].tolist() == b[1].tolist() and a[2].tolist() == b[2].tolist()
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a[3], b[3]))
    # the folded table is still a table: its own frame reads back, keys intact
    assert set(folded.to_frame()["_key"].tolist()) == set(uniq.tolist())
    if keep is not None:  # keys active since ``keep`` enumerate every event as before
        active = [key for key in uniq.tolist() if (times[keys == key] >= keep).any()]
        if active:
            ak = np.array(active, dtype=keys.dtype)
            tq = np.full(len(ak), 10**6, dtype=np.int64)
            pa = full.payloads_before(ak, tq, values=True)
            pb = folded.payloads_before(ak, tq, values=True)
            assert pa[0].tolist() == pb[0].tolist() and pa[1].tolist() == pb[1].tolist()
            assert pa[2].tobytes() == pb[2].tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_rebuilt_from_the_fold_and_later_events_has_the_same_running_sums(ev):
    k, t, v, cutoff, int_keys, _ = ev
    keys, times, _, payload = _events(k, t, [[0.0]] * len(t), int_keys)
    vals = np.column_stack([np.ones(len(t)), np.asarray(v, dtype=np.int64) % 7, np.rint(np.asarray(v) % 1e6)])
    full = EventTable.build(["n", "code", "amount"], keys, times, vals, payload)
    early = times < cutoff
    head = EventTable.build(["n", "code", "amount"], keys[early], times[early], vals[early], payload[early])
    f = head.fold_before(cutoff).to_frame()
    rebuilt = EventTable.build(
        ["n", "code", "amount"],
        np.concatenate([f["_key"].to_numpy(dtype=keys.dtype), keys[~early]]),
        np.concatenate([f["_time"].to_numpy(), times[~early]]),
        np.vstack([f[["n", "code", "amount"]].to_numpy(), vals[~early]]),
        np.concatenate([f["_payload"].to_numpy(), payload[~early]]),
    )
    uniq = pd.unique(keys)
    ts = np.arange(cutoff, 53, dtype=np.int64)
    a, b = _all_queries(full, uniq, ts), _all_queries(rebuilt, uniq, ts)
    assert a[0].tobytes() == b[0].tobytes()
    assert a[1].tolist() == b[1].tolist() and a[2].tolist() == b[2].tolist()
    assert rebuilt.prefix.dtype == full.prefix.dtype  # counts stay int32 (compacted)


def test_fold_example_keeps_the_latest_payload_and_the_running_sum():
    tab = EventTable.build(
        ["x"],
        np.array(["a", "a", "a", "b", "b"], dtype=object),
        [1, 2, 5, 3, 9],
        [[1.0], [2.0], [4.0], [8.0], [16.0]],
        np.array(["a1", "a2", "a5", "b3", "b9"], dtype=object),
    )
    f = tab.fold_before(4)
    assert f.times.tolist() == [2, 5, 3, 9]  # a: (a1, a2) -> one event at 2; b: one event before 4, unchanged
    assert f.payload.tolist() == ["a2", "a5", "b3", "b9"]
    frame = f.to_frame()
    assert frame["x"].tolist() == [3.0, 4.0, 8.0, 16.0]  # own values: the running sum, then the later ones
    assert f.query(np.array(["a"], dtype=object), [4])[0].tolist() == [[3.0]]
    # before the cutoff the folded key knows only its running sum at the latest folded event
    assert f.query(np.array(["a"], dtype=object), [2])[0].tolist() == [[0.0]]
    # a key active since keep_keys_since keeps every event
    kept = tab.fold_before(4, keep_keys_since=5)
    assert kept.times.tolist() == [1, 2, 5, 3, 9]


def test_fold_merges_the_delta_and_leaves_the_table_as_it_is():
    tab = EventTable.build(
        ["n"], np.array([1, 1], dtype=np.int64), [1, 2], [[1.0], [1.0]], np.array(["x", "y"], object)
    )
    tab.append(
        np.array([1, 2], dtype=np.int64), np.array([3, 4]), np.array([[1.0], [1.0]]), np.array(["z", "w"], object)
    )
    before = (tab.times.copy(), tab.n_delta)
    f = tab.fold_before(4)
    assert tab.n_delta == before[1] and tab.times.tolist() == before[0].tolist()
    assert f.n_delta == 0 and f.times.tolist() == [3, 4]
    q = np.array([1, 2], dtype=np.int64)
    assert f.query(q, np.array([10, 10]))[0].tolist() == tab.query(q, np.array([10, 10]))[0].tolist()
    assert f.latest_payload(q, np.array([10, 10]))[0].tolist() == ["z", "w"]
    assert f.keys.dtype == np.int64


def test_fold_of_an_empty_table():
    tab = EventTable(columns=["n"])
    assert len(tab.fold_before(100).times) == 0


@pytest.mark.parametrize("keep", [None, 0])
def test_history_state_fold_answers_like_the_full_state(keep):
    from features.pipeline import build_feature_table
    from features.sources.synthetic.generate import GeneratorConfig, generate_history

    hist, _ = generate_history(GeneratorConfig(n_claims=600, seed=3))
    res, state = build_feature_table(hist)
    cutoff_day = int(np.median(state.tables["all"].times >> 33))
    cutoff = cutoff_day << 33
    folded = state.fold_before(cutoff, keep_keys_since=keep, keep_claims_since=cutoff)
    for name, tab in state.tables.items():
        f = folded.tables[name]
        if name in ENUMERATED_TABLES and keep == 0:
            assert len(f.times) == len(tab.times)
        uniq = tab.keys.to_numpy()
        ts = np.full(len(uniq), tab.times.max() + 1 if len(tab.times) else 0, dtype=np.int64)
        assert tab.query(uniq, ts)[0].tobytes() == f.query(uniq, ts)[0].tobytes()
    assert len(folded.tables["all"].times) < len(state.tables["all"].times)
    assert (folded.claim_keys["time"] >= cutoff).all()
    assert isinstance(folded, HistoryState) and folded.next_order == state.next_order


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.integers(1, 4))
def test_extended_in_time_slices_is_bitwise_one_build(ev, slices):
    """Floats (cents, large amounts) included: extending slice by slice continues each key's Kahan-compensated
    running sum, so the prefix rows are those of one build of every event."""
    k, t, v, _, int_keys, _ = ev
    keys, times, _, payload = _events(k, t, [[0.0]] * len(t), int_keys)
    vals = np.column_stack([np.ones(len(t)), np.asarray(v, dtype=np.float64), np.asarray(v) * 0.01 + 0.1])
    full = EventTable.build(["n", "x", "y"], keys, times, vals, payload)
    tab = EventTable(columns=["n", "x", "y"])
    bounds = np.linspace(0, 51, slices + 1).astype(int)
    bounds[-1] = 51
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        m = (times >= lo) & (times < hi)
        tab = tab.extended(keys[m], times[m], vals[m], payload[m])
        if hi < 51:
            tab = tab.fold_before(int(hi) - 3)  # folding between slices keeps the running sums
    uniq = pd.unique(keys)
    ts = np.arange(48, 53, dtype=np.int64)
    a, b = _all_queries(full, uniq, ts), _all_queries(tab, uniq, ts)
    assert a[0].tobytes() == b[0].tobytes()
    assert a[1].tolist() == b[1].tolist() and a[2].tolist() == b[2].tolist()
    if not len(tab.times) or slices == 1:
        assert tab.prefix.astype(np.float64).tobytes() == full.prefix.astype(np.float64).tobytes()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.lists(st.integers(0, 8), max_size=5))
def test_select_keys_answers_the_selected_keys_as_the_table(ev, chosen):
    k, t, v, cutoff, int_keys, _ = ev
    keys, times, vals, payload = _events(k, t, [[x, 1.0] for x in v], int_keys)
    full = EventTable.build(["x", "n"], keys, times, vals, payload).fold_before(cutoff)
    pick = np.asarray(chosen, dtype=np.int64) if int_keys else np.array([f"k{c}" for c in chosen], dtype=object)
    sub = full.select_keys(pick)
    present = [c for c in pd.unique(pick).tolist() if c in set(keys.tolist())]
    assert sorted(sub.keys.tolist()) == sorted(present)
    if present:
        q = np.array(present, dtype=keys.dtype)
        ts = np.arange(0, 53, dtype=np.int64)
        a, b = _all_queries(full, q, ts), _all_queries(sub, q, ts)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tolist() == b[1].tolist()
        assert a[2].tolist() == b[2].tolist()
        tq = np.full(len(q), 10**6, dtype=np.int64)
        assert full.payloads_before(q, tq)[1].tolist() == sub.payloads_before(q, tq)[1].tolist()
