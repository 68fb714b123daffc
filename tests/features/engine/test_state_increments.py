"""State increments: recoupments added to a built state count once, reach the provider history features of
a new claim, and are kept by save/load (features/engine/state.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import load_history
from features.engine.state import HistoryState, recoupment_keys
from features.model.outcomes import truncate_history
from features.pipeline import compute_features


@pytest.fixture(scope="module")
def split(small_history_dir, rb):
    """(state of the history as of a cut, the full history, the cut, a provider with recoupments after it)."""
    h = load_history(small_history_dir)
    cut = h.claims["submitted_date"].max() - pd.Timedelta(days=240)
    rec = h.recoupments
    late = rec[rec["recouped_date"] > cut]
    late = late[late["claim_id"].isin(h.claims.loc[h.claims["submitted_date"] <= cut, "claim_id"])]
    npi = h.claims.set_index("claim_id").loc[late["claim_id"], "billing_npi"].value_counts().index[0]
    return {"history": h, "cut": cut, "late": late, "npi": npi}


def _state(split, rb) -> HistoryState:
    return HistoryState.from_history(truncate_history(split["history"], split["cut"]), rb)


def _new_claim(split, tag: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A claim of the provider, renamed, submitted well after everything."""
    h = split["history"]
    c = h.claims[h.claims["billing_npi"] == split["npi"]].tail(1).copy()
    lines = h.claim_lines[h.claim_lines["claim_id"].isin(c["claim_id"])].copy()
    c["claim_id"], lines["claim_id"] = tag, tag
    c["submitted_date"] = h.claims["submitted_date"].max() + pd.Timedelta(days=30)
    return c.reset_index(drop=True), lines.reset_index(drop=True)


def test_recoupments_count_once_and_raise_the_providers_history(split, rb):
    state = _state(split, rb)
    claims, lines = _new_claim(split, "NEW-1")
    before = compute_features(claims, lines, state, rb).X.iloc[0]
    late = split["late"]
    mine = late[late["claim_id"].isin(split["history"].claims.query("billing_npi == @split['npi']")["claim_id"])]
    assert len(mine)
    assert state.add_recoupments(late) == len(late.drop_duplicates(["claim_id", "recouped_date", "recouped_amount"]))
    after = compute_features(claims, lines, state, rb).X.iloc[0]
    # more recoupments of the provider's earlier claims: a higher smoothed rate, and ratio to peers
    assert after["provider_recoup_rate"] > before["provider_recoup_rate"]
    again = compute_features(claims, lines, state, rb).X.iloc[0]
    assert state.add_recoupments(late) == 0  # the same rows again: nothing
    assert state.add_recoupments(pd.concat([late, late])) == 0
    assert compute_features(claims, lines, state, rb).X.iloc[0].equals(again)


def test_recoupments_of_unknown_claims_wait_for_their_claim(split, rb):
    state = _state(split, rb)
    h = split["history"]
    future_claim = h.claims[h.claims["submitted_date"] > split["cut"]]
    rec = h.recoupments[h.recoupments["claim_id"].isin(future_claim["claim_id"])]
    if not len(rec):
        pytest.skip("no recoupment of a claim after the cut in this history")
    assert state.add_recoupments(rec) == 0 and not state.recoupment_seen
    ids = rec["claim_id"].unique()
    c = h.claims[h.claims["claim_id"].isin(ids)].reset_index(drop=True)
    ln = h.claim_lines[h.claim_lines["claim_id"].isin(ids)].reset_index(drop=True)
    compute_features(c, ln, state, rb, record=True)
    assert state.add_recoupments(rec) == len(rec) > 0


def test_recoupment_keys_are_claim_date_amount_cause(split):
    r = split["late"].head(2).copy()
    k = recoupment_keys(r)
    assert len(set(k)) == 2
    r2 = r.copy()
    r2["recouped_amount"] = r2["recouped_amount"] + 0.001  # below a cent: the same recoupment
    assert list(recoupment_keys(r2)) == list(k)
    r2["recouped_amount"] = r2["recouped_amount"] + 1
    assert not set(recoupment_keys(r2)) & set(k)


def test_increments_and_refresh_info_survive_save_and_load(split, rb, tmp_path):
    state = _state(split, rb)
    assert state.latest_day() == split["cut"].normalize()
    n = state.add_recoupments(split["late"])
    state.refresh_info = {"last": {"outcome": "ok", "added_recoupments": n}}
    latest = state.latest_day()
    assert latest is not None and latest > split["cut"]
    state.save(tmp_path / "s")
    back = HistoryState.load(tmp_path / "s")
    assert back.recoupment_seen == state.recoupment_seen and back.refresh_info == state.refresh_info
    assert back.latest_day() == latest
    assert back.add_recoupments(split["late"]) == 0
