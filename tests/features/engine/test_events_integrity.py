"""Integrity of the event tables: a key's sums are its own, whatever other keys hold.

The tables keep running sums restarted at each key, so a huge, infinite or NaN value of key A never
enters key B's sums (before: one running sum across all keys, so ``1e20`` in A turned B's 50 into 0).
Checked for every reader of the sums (``query`` in both paths and with ``columns=``, the delta and
``merge``, ``window``, ``payloads_before(values=True)``, ``to_frame``/``from_frame``) and, as property
tests, for random histories with values from 0 to the contract's maximum amount.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract import MAX_AMOUNT
from features.engine.events import EventTable

MANY = 40  # > 32 queries: the vectorized path


def _both_paths(tab: EventTable, key, t: int, columns=None) -> tuple[np.ndarray, np.ndarray]:
    """(sums of the small path, sums of the vectorized path) of one (key, T)."""
    small = tab.query(np.array([key], dtype=object), np.array([t]), columns)[0][0]
    many = tab.query(np.array([key] * MANY, dtype=object), np.full(MANY, t), columns)[0]
    assert (many == many[0]).all() or np.isnan(many).all()
    return small, many[0]


def test_issue_repro_huge_value_of_another_key():
    tab = EventTable.build(["c"], ["A", "A", "B"], [1, 2, 3], [[1e20], [1e20], [50]])
    assert tab.query(["B"], [10])[0].tolist() == [[50.0]]
    for sums in _both_paths(tab, "B", 10):
        assert sums.tolist() == [50.0]
    assert tab.query(["A"], [10])[0].tolist() == [[2e20]]


@pytest.mark.parametrize("poison", [np.inf, -np.inf, np.nan, 1e308, -1e308])
def test_non_finite_values_stay_in_their_key(poison):
    keys = ["A", "B", "A", "B", "C"]
    vals = [[poison, 1.0], [50.0, 2.0], [3.0, 1.0], [0.25, 2.0], [7.0, 1.0]]
    tab = EventTable.build(["x", "n"], keys, [1, 2, 3, 4, 5], vals)
    for key, want in (("B", [50.25, 4.0]), ("C", [7.0, 1.0])):
        for sums in _both_paths(tab, key, 100):
            assert sums.tolist() == want
        for sums in _both_paths(tab, key, 100, columns=[1]):
            assert sums.tolist() == want[1:]
    assert tab.window(np.array(["B"], dtype=object), np.array([100]), np.array([3]))[0].tolist() == [0.25, 2.0]
    # the poisoned key's own count column is intact too
    assert tab.query(["A"], [100], columns=[1])[0].tolist() == [[2.0]]


def test_delta_merge_window_values_and_frames_keep_keys_apart(tmp_path):
    tab = EventTable.build(
        ["x", "n"],
        np.array(["B", "B"], dtype=object),
        [10, 20],
        [[50.0, 1.0], [0.1, 1.0]],
        payload=np.array(["b1", "b2"], dtype=object),
    )
    tab.append(
        np.array(["A", "A", "B"], dtype=object),
        np.array([5, 15, 30]),
        np.array([[1e20, 1.0], [np.inf, 1.0], [0.2, 1.0]]),
        np.array(["a1", "a2", "b3"], dtype=object),
    )
    want = [50.0 + 0.1 + 0.2, 3.0]
    for sums in _both_paths(tab, "B", 100):  # main + delta (dictionary and delta table)
        assert np.allclose(sums, want, rtol=0, atol=1e-12)
    before = [s.copy() for s in _both_paths(tab, "B", 100)]
    tab.merge()
    assert tab.n_delta == 0
    for a, b in zip(before, _both_paths(tab, "B", 100)):
        assert np.allclose(a, b, rtol=0, atol=1e-12)
    # own values of each event (no neighbour key's running sum subtracted)
    qi, pay, vals = tab.payloads_before(np.array(["B"], dtype=object), np.array([100]), values=True)
    assert pay.tolist() == ["b1", "b2", "b3"]
    assert np.allclose(vals, [[50.0, 1.0], [0.1, 1.0], [0.2, 1.0]], rtol=0, atol=1e-12)
    w = tab.window(np.array(["B"] * MANY, dtype=object), np.full(MANY, 25), np.full(MANY, 15))
    assert np.allclose(w, [[0.1, 1.0]] * MANY, rtol=0, atol=1e-12)
    # saved and loaded (the frame holds each event's own values: the format of saved states)
    frame = tab.to_frame()
    assert frame[frame["_key"] == "B"]["x"].tolist() == pytest.approx([50.0, 0.1, 0.2], abs=1e-12)
    assert frame[frame["_key"] == "A"]["x"].tolist()[0] == 1e20
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    back = EventTable.from_frame(pd.read_parquet(tmp_path / "t.parquet"))
    for a, b in zip(_both_paths(tab, "B", 100), _both_paths(back, "B", 100)):
        assert np.allclose(a, b, rtol=0, atol=1e-12)


def test_state_frames_of_the_previous_format_load():
    """Saved states hold each event's own values per row (unchanged): a frame as the previous code wrote
    it loads into the same sums."""
    frame = pd.DataFrame(
        {
            "_key": ["A", "A", "B"],
            "_time": np.array([1, 2, 3], dtype=np.int64),
            "c": [1e20, 1e20, 50.0],
            "_payload": ["p", "q", "r"],
        }
    )
    tab = EventTable.from_frame(frame)
    assert tab.query(["B", "A"], [10, 10])[0].tolist() == [[50.0], [2e20]]
    assert tab.to_frame().equals(frame)


def test_counts_are_still_int32_and_smaller_per_key():
    """Integer sums below 2**31 are stored as int32; per key they are smaller, so more tables qualify
    (a global running sum of code ids over millions of lines did not fit)."""
    n = 300_000
    keys = np.arange(n, dtype=np.int64) % 1000
    vals = np.full((n, 1), 20_000.0)  # a global sum of 6e9 > 2**31; per key 6e6
    tab = EventTable.build(["code"], keys, np.arange(n, dtype=np.int64), vals)
    assert tab.prefix.dtype == np.int32
    assert tab.query(np.array([5], dtype=np.int64), np.array([n]))[0].tolist() == [[300 * 20_000.0]]


# ------------------------------------------------------------------------------------------ properties

amounts = st.one_of(
    st.integers(0, int(MAX_AMOUNT) * 100).map(lambda c: c / 100),  # cents from 0 to the maximum
    st.sampled_from([0.0, 0.01, 0.1, 0.3, float(MAX_AMOUNT), MAX_AMOUNT - 0.01]),
)
times = st.integers(0, 50)
events = st.lists(st.tuples(times, amounts, st.integers(0, 3)), min_size=0, max_size=25)
others = st.lists(
    st.tuples(st.sampled_from(["A", "C", "Z", "AA"]), times, amounts, st.integers(0, 3)), min_size=1, max_size=40
)


def _table(b_events, other_events, delta_others: bool) -> EventTable:
    rows = [("B", t, x, k) for t, x, k in b_events]
    # other keys' rows first: their events come before B's in the sorted arrays
    main = ([] if delta_others else [(k, t, x, c) for k, t, x, c in other_events]) + rows
    keys = np.array([r[0] for r in main], dtype=object)
    tab = EventTable.build(
        ["x", "n"],
        keys,
        np.array([r[1] for r in main], dtype=np.int64),
        np.array([[r[2], r[3]] for r in main], dtype=np.float64).reshape(len(main), 2),
    )
    if delta_others:
        tab.append(
            np.array([r[0] for r in other_events], dtype=object),
            np.array([r[1] for r in other_events], dtype=np.int64),
            np.array([[r[2], r[3]] for r in other_events], dtype=np.float64),
        )
    return tab


def _answers(tab: EventTable) -> list:
    qs = list(range(0, 53, 4))
    out = []
    for t in qs:
        small, many = _both_paths(tab, "B", t)
        out.append((small.tolist(), many.tolist(), _both_paths(tab, "B", t, columns=[0])[0].tolist()))
    k = np.array(["B"] * len(qs), dtype=object)
    out.append(tab.window(k, np.array(qs), np.array(qs) - 9).tolist())
    out.append(tab.payloads_before(k, np.array(qs), values=True)[2].tolist())
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b_events=events, other_events=others, delta_others=st.booleans())
def test_a_keys_sums_do_not_depend_on_other_keys(b_events, other_events, delta_others):
    """Bit for bit: key B's sums, windows and own values with any other keys' rows (main or delta,
    values up to the maximum amount) are those of B alone, before and after a merge."""
    alone = _table(b_events, [], False)
    mixed = _table(b_events, other_events, delta_others)
    assert _answers(mixed) == _answers(alone)
    mixed.merge()
    assert _answers(mixed) == _answers(alone)


# ------------------------------------------------------------------------------------------ pipeline

#: history features read from the provider's own sums only (no peer or overall prior)
NPI = "1000000013"  # provider B: not the first (its events come after others' in the tables)
PROVIDER_ONLY = ["provider_n_claims", "provider_claims_90d", "provider_growth_90d", "charge_vs_provider_avg"]


@pytest.fixture(scope="module")
def base():
    from features.rulebook import load_rulebook
    from tests.helpers.data import fabricated_history

    h = fabricated_history(400, seed=4)
    # provider B bills a few dollars per claim: an error in its sums from other providers' charges
    # (up to the maximum amount) would show in charge_vs_provider_avg even after rounding
    mine = (h.claims["billing_npi"].astype(str) == NPI).to_numpy()
    h.claims.loc[mine, "total_charge"] = np.round(np.linspace(1.01, 9.99, int(mine.sum())), 2)
    return h, load_rulebook()


def _provider_rows(h, rb, npi: str) -> pd.DataFrame:
    from features.pipeline import build_feature_table

    res, _ = build_feature_table(h, rb)
    ids = h.claims["claim_id"].astype(str).to_numpy()
    x = res.X[PROVIDER_ONLY].copy()
    x.index = ids
    mine = h.claims["billing_npi"].astype(str).to_numpy() == npi
    return x.loc[ids[mine]].sort_index()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_providers_features_do_not_depend_on_other_providers(base, data):
    """The pipeline's provider history features of one provider are identical whatever claims of other
    providers (charges up to the maximum amount) the history holds."""
    h, rb = base
    npi = NPI
    c = h.claims
    mine = (c["billing_npi"].astype(str) == npi).to_numpy()
    reference = _provider_rows(_subset(h, c[mine].reset_index(drop=True)), rb, npi)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(c), max_size=len(c)))) | mine
    claims = c[keep].reset_index(drop=True).copy()
    others = (claims["billing_npi"].astype(str) != npi).to_numpy()
    claims.loc[others, "total_charge"] = data.draw(
        st.lists(amounts, min_size=int(others.sum()), max_size=int(others.sum()))
    )
    got = _provider_rows(_subset(h, claims), rb, npi)
    pd.testing.assert_frame_equal(got, reference, check_exact=True)


def _subset(h, claims: pd.DataFrame):
    """The history of these claims (their lines and recoupments)."""
    from features.contract import History

    ids = claims["claim_id"]
    return History(
        claims=claims,
        coverage=h.coverage,
        providers=h.providers,
        claim_lines=h.claim_lines[h.claim_lines["claim_id"].isin(ids)].reset_index(drop=True),
        recoupments=h.recoupments[h.recoupments["claim_id"].isin(ids)].reset_index(drop=True),
    )


def test_segment_cumsum_public_fallback_is_the_same():
    """pandas' internal kernel and the public groupby (the fallback on another pandas) give the same
    sums, each segment's own running sums."""
    from features.engine.events import _grouped_cumsum, _kernel_cumsum, segment_cumsum

    rng = np.random.default_rng(1)
    counts = rng.integers(0, 7, 300)
    vals = np.round(rng.random((int(counts.sum()), 3)) * MAX_AMOUNT, 2)
    vals[5, 1] = np.nan
    vals[40, 2] = np.inf
    labels = np.repeat(np.arange(len(counts), dtype=np.intp), counts)
    fast = np.empty_like(vals)
    _kernel_cumsum(fast, vals, labels, len(counts))
    assert np.array_equal(fast, _grouped_cumsum(vals, labels), equal_nan=True)
    assert np.array_equal(fast, segment_cumsum(vals, counts, np.empty_like(vals)), equal_nan=True)
    start = 0
    for c in counts[:50]:
        seg = vals[start : start + c]
        if np.isfinite(seg).all():
            assert np.allclose(fast[start : start + c], np.cumsum(seg, axis=0), rtol=1e-15, atol=0)
        start += c


def test_delta_running_sums_equal_the_delta_table_in_and_out_of_order():
    """A key that collects many delta events (a table's global key gets every recorded claim) is
    answered from its running sums: the same numbers and latest payload as the vectorized delta table,
    with events added in time order and out of it."""
    rng = np.random.default_rng(5)
    t = EventTable.build(
        ["a", "b"],
        np.array(["G", "H"], dtype=object),
        np.array([1, 2]),
        np.array([[1.0, 2.0], [3.0, 4.0]]),
        payload=np.array(["p0", "p1"], dtype=object),
    )
    times = np.concatenate([np.arange(10, 1010), rng.integers(5, 1000, 200)])  # in order, then not
    vals = rng.uniform(0, 1e6, (len(times), 2))
    for i in range(len(times)):
        t.append(
            np.array(["G"], dtype=object), times[i : i + 1], vals[i : i + 1], payload=np.array([f"e{i}"], dtype=object)
        )
        if i in (999, len(times) - 1):
            q = np.array([0, 7, 10, 11, 500, 999, 1009, 1010, 5000])
            keys = np.array(["G"] * len(q), dtype=object)
            small, _ = t.query(keys, q)  # <= 32 queries: the running sums
            big, _ = t.query(np.tile(keys, 5), np.tile(q, 5))  # > 32: the delta table
            np.testing.assert_array_equal(small, big[: len(q)])
            for with_values in (False, True):  # every event before T, with and without own values
                small_ev = t.payloads_before(keys, q, values=with_values)
                big_ev = t.payloads_before(np.tile(keys, 5), np.tile(q, 5), values=with_values)
                first = big_ev[0] < len(q)
                np.testing.assert_array_equal(small_ev[0], big_ev[0][first])
                assert list(small_ev[1]) == list(big_ev[1][first])
                if with_values:
                    np.testing.assert_array_equal(small_ev[2], big_ev[2][first])
            pay_small, tt_small = t.latest_payload(keys, q)
            pay_big, tt_big = t.latest_payload(np.tile(keys, 5), np.tile(q, 5))
            np.testing.assert_array_equal(tt_small, tt_big[: len(q)])
            assert list(pay_small) == list(pay_big[: len(q)])
            before = times[: i + 1]
            expect = vals[: i + 1][before < 500].sum(axis=0) + [1.0, 2.0]
            np.testing.assert_allclose(small[4], expect, rtol=1e-12)
