"""The compact state the service loads (HistoryState.compact): new claims scored after it get every feature
and hit the full state gives them, recording (claims, replacements, recoupments) keeps them equal, and the
retention rules for old service dates and old claims do what docs/scale.md says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import load_history
from features.engine.state import LOOKBACK_DAYS, HistoryState
from features.errors import RecoupError
from features.pipeline import compute_features

# the synthetic history spans three years: a retention of 400 days folds about two thirds of it
DAYS = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def history(small_history_dir):
    return load_history(small_history_dir)


@pytest.fixture()
def states(history, rb) -> tuple[HistoryState, HistoryState]:
    """(full state, its compact copy), both fresh for the test."""
    full = HistoryState.from_history(history, rb)
    return full, full.compact()


def _claims(history, ids) -> tuple[pd.DataFrame, pd.DataFrame]:
    c = history.claims.set_index("claim_id", drop=False).loc[list(ids)].reset_index(drop=True)
    ln = history.claim_lines[history.claim_lines["claim_id"].isin(c["claim_id"])].reset_index(drop=True)
    return c, ln


def _renamed(history, ids, tag: str, submitted, move_service: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Copies of claims ``ids``, renamed ``TAG-i``, submitted on ``submitted``; service dates kept (so
    they duplicate the originals' lines) or moved with the submission (new service dates)."""
    c, ln = _claims(history, ids)
    new = {old: f"{tag}-{i}" for i, old in enumerate(c["claim_id"])}
    shift = (submitted - c["submitted_date"]).set_axis(c["claim_id"])
    if move_service:
        ln["service_date"] = ln["service_date"] + ln["claim_id"].map(shift).to_numpy()
    c["claim_id"] = c["claim_id"].map(new).astype(c["claim_id"].dtype)
    ln["claim_id"] = ln["claim_id"].map(new).astype(ln["claim_id"].dtype)
    c["submitted_date"] = submitted
    return c, ln


def _replacements(history, ids, submitted) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New versions of claims ``ids`` (same id, frequency 7, a higher charge), submitted on ``submitted``."""
    c, ln = _claims(history, ids)
    c["frequency_code"] = "7"
    c["total_charge"] = c["total_charge"] * 1.5 + 1
    c["submitted_date"] = submitted
    return c, ln


def _concat(*parts) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.concat([p[0] for p in parts], ignore_index=True),
        pd.concat([p[1] for p in parts], ignore_index=True),
    )


def _by_submission(history) -> pd.Series:
    return history.claims.sort_values("submitted_date", kind="stable")["claim_id"]


def _new_batch(history, tag: str, submitted) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claims a service sees after the history: copies of the latest 200 claims (duplicates and same-day
    lines of recent claims), the 100 before them moved to new service dates, and replacements of 20 claims
    submitted 30 to 300 days before the end."""
    order = _by_submission(history)
    end = history.claims["submitted_date"].max()
    sub = history.claims.set_index("claim_id")["submitted_date"]
    recent = order[(sub.loc[order].to_numpy() < end - 30 * DAYS) & (sub.loc[order].to_numpy() > end - 300 * DAYS)]
    return _concat(
        _renamed(history, order.iloc[-200:], f"{tag}D", submitted, move_service=False),
        _renamed(history, order.iloc[-300:-200], f"{tag}M", submitted, move_service=True),
        _replacements(history, recent.iloc[::7].head(20), submitted),
    )


def assert_same(a, b) -> None:
    """The same feature table (every column, dtype and value, NaN where NaN) and the same hits."""
    pd.testing.assert_frame_equal(a.X, b.X, check_exact=True)
    ha = a.hits.sort_values(list(a.hits.columns)).reset_index(drop=True)
    hb = b.hits.sort_values(list(b.hits.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)


def test_new_claims_get_the_full_states_features(history, states, rb):
    full, compact = states
    end = history.claims["submitted_date"].max()
    claims, lines = _new_batch(history, "N", end + 3 * DAYS)
    a = compute_features(claims, lines, full, rb)
    b = compute_features(claims, lines, compact, rb)
    assert_same(a, b)
    # the batch exercises what the retention must keep: duplicates, same-day lines, replacements
    assert (a.X["dup_lines_matched"] > 0).sum() > 50 and (a.X["sameday_prior_lines"] > 0).sum() > 50
    assert (a.X["patient_claims_365d"] > 0).any() and (a.X["provider_claims_90d"] > 0).any()
    for i in (0, 250, len(claims) - 1):  # one claim at a time (the few-keys query paths)
        one = claims.iloc[[i]]
        ln = lines[lines["claim_id"] == one["claim_id"].iloc[0]]
        assert_same(compute_features(one, ln, full, rb), compute_features(one, ln, compact, rb))


def test_the_compact_state_is_smaller_and_says_how_it_was_made(history, states):
    full, compact = states
    end = full.latest_day()  # the latest claim or recoupment
    assert end is not None
    info = compact.compaction
    assert info["last_day"] == str(end.date()) and info["retention_days"] == 400
    assert info["exact_from"] == str((end - (400 - LOOKBACK_DAYS) * DAYS).date())
    assert not full.compaction
    for name, t in compact.tables.items():
        few_keys = len(full.tables[name].keys) < 500  # global and per-procedure sums: a third of the events
        assert len(t.times) < len(full.tables[name].times) / (2 if few_keys else 1), name
        assert len(t.keys) <= len(full.tables[name].keys), name
    assert len(compact.tables.coder.vocabs["sameday"]) < len(full.tables.coder.vocabs["sameday"])
    # versions only inside the window; every claim of these three years still attributable to recoupments
    keys = compact.all_claim_keys()
    assert len(keys) == len(full.all_claim_keys())
    cutoff = pd.Timestamp(info["cutoff_day"])
    old = history.claims.loc[history.claims["submitted_date"] < cutoff, "claim_id"].iloc[0]
    new = history.claims.loc[history.claims["submitted_date"] > cutoff + DAYS, "claim_id"].iloc[0]
    assert compact.versions([old]) == [(0, -1)] and full.versions([old])[0][1] >= 0
    assert compact.versions([new]) == full.versions([new])


def test_recording_on_the_compact_state_keeps_it_equal(history, states, rb, tmp_path):
    full, compact = states
    end = history.claims["submitted_date"].max()
    first = _new_batch(history, "R1", end + 2 * DAYS)
    for s in states:
        compute_features(*first, s, rb, record=True)
    # later: duplicates of the recorded claims, replacements of recorded and of recent history claims
    order = _by_submission(history)
    recorded = first[0]["claim_id"].iloc[::9]
    c, ln = first[0], first[1]
    again = c[c["claim_id"].isin(recorded)].copy()
    again["claim_id"] = "R2-" + again["claim_id"].astype(str)
    ln2 = ln[ln["claim_id"].isin(recorded)].copy()
    ln2["claim_id"] = "R2-" + ln2["claim_id"].astype(str)
    again["submitted_date"] = end + 9 * DAYS
    repl = c[c["claim_id"].isin(recorded)].copy()
    repl["frequency_code"], repl["submitted_date"] = "7", end + 9 * DAYS
    second = _concat(
        (again, ln2),
        (repl, ln[ln["claim_id"].isin(recorded)]),
        _replacements(history, order.iloc[-400:-380], end + 9 * DAYS),
    )
    assert_same(compute_features(*second, full, rb, record=True), compute_features(*second, compact, rb, record=True))
    # recoupments: of recent claims, of claims older than the retention window, of recorded claims
    sub = history.claims.set_index("claim_id")["submitted_date"]
    rec = history.recoupments.copy()
    rec["recouped_date"] = end + 10 * DAYS
    old = rec[sub.loc[rec["claim_id"]].to_numpy() < end - 500 * DAYS].head(10)
    new = rec[sub.loc[rec["claim_id"]].to_numpy() > end - 200 * DAYS].head(10)
    mine = pd.DataFrame(
        {
            "claim_id": list(first[0]["claim_id"].iloc[:5]),
            "recouped_date": end + 10 * DAYS,
            "recouped_amount": [10.0, 20.5, 30.25, 1.0, 7.0],
            "cause": ["coding", "eligibility", "duplicate", "coding", "medical_necessity"],
        }
    )
    rec = pd.concat([old, new, mine], ignore_index=True)
    assert len(old) and len(new)
    assert full.add_recoupments(rec) == compact.add_recoupments(rec) == len(rec)
    third = _new_batch(history, "R3", end + 12 * DAYS)
    assert_same(compute_features(*third, full, rb), compute_features(*third, compact, rb))
    # saved and loaded: still the same features (both states' own values go through Parquet)
    full.save(tmp_path / "full")
    compact.save(tmp_path / "compact")
    back_full, back_compact = HistoryState.load(tmp_path / "full"), HistoryState.load(tmp_path / "compact")
    assert back_compact.compaction == compact.compaction
    assert_same(compute_features(*third, back_full, rb), compute_features(*third, back_compact, rb))


def test_old_service_dates_and_old_claims_follow_the_retention_rules(history, states, rb):
    full, compact = states
    end = history.claims["submitted_date"].max()
    cutoff = pd.Timestamp(compact.compaction["cutoff_day"])
    order = _by_submission(history)
    sub = history.claims.set_index("claim_id")["submitted_date"]
    old_ids = order[sub.loc[order].to_numpy() < cutoff - 30 * DAYS].iloc[-40:]
    # a late duplicate of a claim whose service dates are before the cutoff: the full state finds it,
    # the compact one does not compare it (its keys were dropped)
    late = _renamed(history, old_ids, "LATE", end + 3 * DAYS, move_service=False)
    a, b = compute_features(*late, full, rb), compute_features(*late, compact, rb)
    assert (a.X["dup_lines_matched"] > 0).all()
    # kept only where the same service date and code came again since the cutoff (a resubmission)
    seen = b.X["dup_lines_matched"] > 0
    assert (~seen).sum() >= 30 and (b.X.loc[~seen, "sameday_prior_lines"] == 0).all()
    pd.testing.assert_frame_equal(a.X[seen], b.X[seen], check_exact=True)
    # its other features (entity sums, windows, procedure lines) are the full state's
    same = [c for c in a.X.columns if not c.startswith(("dup_", "sameday", "ptp_cross"))]
    pd.testing.assert_frame_equal(a.X[same], b.X[same], check_exact=True)
    # a replacement of an old claim: recorded as new (its old version stays counted); later claims of
    # its provider see one claim more than with the full state
    repl = _replacements(history, old_ids.iloc[:1], end + 3 * DAYS)
    for s in states:
        compute_features(*repl, s, rb, record=True)
    probe = _renamed(history, old_ids.iloc[:1], "PROBE", end + 4 * DAYS, move_service=True)
    pa, pb = compute_features(*probe, full, rb).X.iloc[0], compute_features(*probe, compact, rb).X.iloc[0]
    assert pb["provider_n_claims"] == pa["provider_n_claims"] + 1


def test_claims_beyond_the_recoupment_window_are_dropped(history, states, rb):
    full, _ = states
    small = full.compact(recoupment_days=600)
    end = full.latest_day()
    assert end is not None
    sub = history.claims.set_index("claim_id")["submitted_date"]
    gone = sub[sub < end - 600 * DAYS].index
    assert small.compaction["claims_dropped"] == len(gone) > 0
    assert not small.all_claim_keys().index.isin(gone).any()
    assert small.versions([gone[0]]) == [None]
    rec = history.recoupments[history.recoupments["claim_id"].isin(gone)].head(5).copy()
    rec["recouped_date"] = end + 5 * DAYS
    assert len(rec) and small.add_recoupments(rec) == 0  # skipped, as for a claim never held
    assert full.add_recoupments(rec) == len(rec)


@pytest.mark.parametrize("kw", [{"retention_days": 300}, {"recoupment_days": 399}, {"retention_days": 10**6}])
def test_retention_is_bounded(states, kw):
    with pytest.raises(RecoupError, match="days"):
        states[0].compact(**kw)


def test_an_empty_state_compacts_to_an_empty_state(rb):
    from tests.helpers.data import small_history

    h, _ = small_history(50, seed=5)
    empty = h.claims.iloc[0:0]
    state = HistoryState.from_history(
        type(h)(claims=empty, claim_lines=h.claim_lines.iloc[0:0], recoupments=None, providers=h.providers), rb
    )
    small = state.compact()
    assert small.latest_day() is None and not len(small.all_claim_keys())
    assert np.all([len(t.times) == 0 for t in small.tables.values()])
    assert not any(small.tables[n] is t for n, t in state.tables.items())  # its own tables


def test_versions_of_claims_recorded_before_a_later_cutoff_are_forgotten(history, states, rb):
    """A claim recorded online, then a year and more of recording: a compaction after that forgets its version
    (the service then takes a resend for a replacement, docs/scale.md); a recent one keeps it."""
    full, _ = states
    end = history.claims["submitted_date"].max()
    ids = _by_submission(history).iloc[-2:]
    early = _renamed(history, ids[:1], "EARLY", end + 1 * DAYS, move_service=True)
    late = _renamed(history, ids[1:], "LATE", end + 450 * DAYS, move_service=True)
    for (c, ln), h in ((early, 11), (late, 12)):
        compute_features(c, ln, full, rb, record=True, cache={"_content_hash": np.array([h], dtype=np.int64)})
    again = full.compact()
    assert again.compaction["cutoff_day"] > str((end + 1 * DAYS).date())
    assert full.versions(["EARLY-0"])[0][0] == 11 and again.versions(["EARLY-0"]) == [(0, -1)]
    assert again.versions(["LATE-0"]) == full.versions(["LATE-0"]) and full.versions(["LATE-0"])[0][0] == 12


def test_a_saved_state_copies_whole_and_is_removed_with_its_handle(states, tmp_path):
    """The cluster's training writes the bundle's state at once and keeps a handle (SavedState): saved with a
    bundle it is the same files as the state's own save; its folder goes when the handle goes."""
    import gc

    from features.engine.state import SavedState

    compact = states[1]
    saved = SavedState.of(compact, tmp_path / "held")
    assert saved.compacted() is saved and saved.n_events() == compact.n_events() > 0
    compact.save(tmp_path / "direct")
    saved.save(tmp_path / "bundle" / "state")
    direct = sorted(f.name for f in (tmp_path / "direct").iterdir())
    assert sorted(f.name for f in (tmp_path / "bundle" / "state").iterdir()) == direct
    for name in direct:
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "bundle" / "state" / name).read_bytes()
    assert (tmp_path / "bundle" / "state").stat().st_mode & 0o777 == 0o700
    loaded = saved.load()
    assert loaded.compaction == compact.compaction and loaded.n_events() == compact.n_events()
    del saved
    gc.collect()
    assert not (tmp_path / "held").exists()


def test_warm_up_builds_the_lookups_a_first_claim_would_wait_for(states, tmp_path):
    """A service warms its state up before it takes requests (at 10M claims the first claim took 12 s without):
    the claim ids' hash table (they are not sorted: the tables' sorted keys are searched without one) and the
    coverage index are built."""
    from features.pipeline import warm_up

    compact = HistoryState.load(states[1].save(tmp_path / "state"))  # as the service loads it
    assert not compact.claim_keys.index._engine.is_mapping_populated
    warm_up(compact)
    assert compact.claim_keys.index._engine.is_mapping_populated
    assert "_coverage_arrays" in compact.__dict__
