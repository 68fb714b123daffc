"""The service on the compact state training saves with the model (HistoryState.compact): every SCORE is the
one the full state gives, through new claims, retries, replacements and new recoupments."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd

from features.engine.state import HistoryState
from features.model.bundle import ModelBundle
from serving.schemas import Claim, claims_to_frames
from serving.scorer import Scorer
from tests.helpers.claims import recent_claims


def _score(scorer: Scorer, claims: list[dict], record: bool = True) -> list[dict]:
    models = [Claim.model_validate(c) for c in claims]
    conv = claims_to_frames(models)
    assert not conv.errors
    return scorer.score_claims(conv.claims, conv.lines, record=record, as_sent=models)


def _same(a: list[dict], b: list[dict]) -> None:
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def test_the_bundle_holds_the_compact_state(trained):
    saved = HistoryState.load(Path(trained["bundle_dir"]) / "state")
    full = trained["result"].state
    assert saved.compaction and saved.compaction["last_day"] == str(full.latest_day().date())
    assert sum(len(t.times) for t in saved.tables.values()) < sum(len(t.times) for t in full.tables.values())


def test_the_service_scores_as_with_the_full_state(trained, rb):
    bundle = ModelBundle.load(trained["bundle_dir"])
    h = trained["history"]
    full_state = HistoryState.from_history(h, rb)
    scorers = [Scorer(bundle, full_state, rb), Scorer(bundle, full_state.compact(), rb)]

    def both(claims: list[dict], record: bool = True) -> list[dict]:
        a, b = (_score(s, claims, record) for s in scorers)
        _same(a, b)
        return a

    # new claims: recent ones made new (new service dates) and exact copies of recent ones (duplicates)
    fresh = recent_claims(h, 30, "NEW", 10, skip=0)
    dups = copy.deepcopy(recent_claims(h, 30, "DUP", 10, skip=30))
    ordered = h.claims.sort_values("submitted_date", kind="stable")
    originals = ordered.iloc[len(ordered) - 60 : len(ordered) - 30]
    lines = h.claim_lines.groupby("claim_id")["service_date"].apply(list)
    for c, (_, o) in zip(dups, originals.iterrows()):  # their service dates as the originals'
        for ln, d in zip(c["lines"], sorted(lines.loc[o["claim_id"]])):
            ln["service_date"] = str(pd.Timestamp(d).date())
    got = both(fresh + dups)
    assert {s["recorded"] for s in got} == {"new"}
    assert any(h_["rule"] == "duplicate" for s in got for h_ in s["rule_hits"])
    # retries (same content), replacements of recorded claims and of recent history claims
    assert {s["recorded"] for s in both(fresh[:5])} == {"already_recorded"}
    repl = copy.deepcopy(fresh[5:10])
    for c in repl:
        c["total_charge"] = round(c["total_charge"] * 2 + 10, 2)
        c["frequency_code"] = "7"
    from serving.schemas import frames_to_claims

    hist = ordered.iloc[len(ordered) - 200 : len(ordered) - 190]
    old = frames_to_claims(hist, h.claim_lines[h.claim_lines["claim_id"].isin(hist["claim_id"])])
    for c in old:
        c["frequency_code"] = "7"
        c["submitted_date"] = fresh[0]["submitted_date"]
    assert {s["recorded"] for s in both(repl + old)} == {"replaced"}
    # new recoupments of history claims and of recorded claims
    rec = h.recoupments.tail(20).copy()
    rec = pd.concat(
        [rec, pd.DataFrame({"claim_id": [c["claim_id"] for c in fresh[10:15]], "recouped_amount": 25.0})],
        ignore_index=True,
    )
    rec["recouped_date"] = pd.Timestamp(fresh[0]["submitted_date"]) + pd.Timedelta(days=1)
    rec["cause"] = rec["cause"].astype("string").fillna("coding")
    assert scorers[0].state.add_recoupments(rec) == scorers[1].state.add_recoupments(rec) > 20
    later = recent_claims(h, 40, "LATER", 15, skip=10)
    both(later, record=False)
    both(later)


def test_a_refresh_and_its_journal_replay_on_the_compact_state(trained, rb, tmp_path):
    """A model as of 120 days before the history's end: the refresh adds the claims and recoupments since
    (recoupments of claims older than the retention window too) to the full and the compact state alike,
    and a second worker replays it from the journal onto the compact state."""
    from features.model.outcomes import truncate_history
    from serving.refresh import HistoryFolder, refresh

    h = trained["history"]
    end = h.claims["submitted_date"].max()
    cut = end - pd.Timedelta(days=120)
    bundle = ModelBundle.load(trained["bundle_dir"])
    bundle.meta["as_of"] = str(cut.date())
    full = HistoryState.from_history(truncate_history(h, cut), rb)
    for name, state in (("full", full), ("compact", full.compact())):
        bundle.save(tmp_path / name)
        state.save(tmp_path / name / "state")
    scorers = [Scorer.from_dir(tmp_path / n, journal_dir=tmp_path / f"j-{n}") for n in ("full", "compact")]
    try:
        outcomes = [refresh(s, HistoryFolder(trained["data_dir"]), now=end + pd.Timedelta(days=1)) for s in scorers]
        assert outcomes[0]["outcome"] == outcomes[1]["outcome"] == "ok"
        for k in ("added_claims", "added_recoupments"):
            assert outcomes[0][k] == outcomes[1][k] > 0, k
        second = Scorer.from_dir(tmp_path / "compact", journal_dir=tmp_path / "j-compact")  # another worker
        probe = recent_claims(h, 40, "AFTER", 5, skip=0)
        want = _score(scorers[0], probe, record=False)
        for s in (scorers[1], second):
            _same(_score(s, probe, record=False), want)
        second.close()
    finally:
        for s in scorers:
            s.close()
