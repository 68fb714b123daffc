"""Recording claims online: retries are idempotent, replacements supersede, a claim never matches itself,
recorded claims survive a restart of the real server, and everything holding claims is private."""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from serving.schemas import Claim, claims_to_frames
from serving.scorer import RECORDED, Scorer
from tests.helpers.claims import duplicate_refs, recent_claims

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _claims(trained, n: int, tag: str, shift_days: int) -> list[dict]:
    return recent_claims(trained["history"], n, tag, shift_days, skip=500)


def _score(scorer: Scorer, claims: list[dict], record: bool = True) -> list[dict]:
    models = [Claim.model_validate(c) for c in claims]
    conv = claims_to_frames(models)
    assert not conv.errors
    return scorer.score_claims(conv.claims, conv.lines, record=record, as_sent=models)


def _without_recorded(score: dict) -> dict:
    return {k: v for k, v in score.items() if k != "recorded"}


def _size(state) -> dict:
    out = {name: len(t.times) + t.n_delta for name, t in state.tables.items()}
    return {**out, "claims": len(state.all_claim_keys()), "next_order": state.next_order}


def _self_refs(score: dict) -> list[dict]:
    """Rule hits that point to the claim itself (duplicate, same-day NCCI pair)."""
    return [h for h in score["rule_hits"] if h.get("ref") == score["claim_id"]]


@pytest.fixture()
def scorer(trained, tmp_path):
    s = Scorer.from_dir(trained["bundle_dir"], journal_dir=tmp_path)
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------- retries
def test_a_retry_scores_as_the_first_time_and_is_recorded_once(scorer, trained):
    """Before: the retry was "possible duplicate of claim RETRY-1" (itself) and recorded twice."""
    first = _claims(trained, 1, "RETRY", 20)[0]
    a = _score(scorer, [first])[0]
    size = _size(scorer.state)
    in_journal = scorer.journal.claims_in_gen
    # the same claim again, written differently (codes as numbers, list as "a;b", spaces)
    retry = copy.deepcopy(first)
    retry["place_of_service"] = int(retry["place_of_service"])
    retry["diagnosis_codes"] = ";".join(retry["diagnosis_codes"])
    retry["claim_id"] = f" {retry['claim_id']} "
    for b in (_score(scorer, [first])[0], _score(scorer, [retry])[0]):
        assert a["recorded"] == "new" and b["recorded"] == "already_recorded"
        assert _without_recorded(b) == _without_recorded(a)
        assert "RETRY-0" not in duplicate_refs(b) and not _self_refs(b)
    assert _size(scorer.state) == size and scorer.journal.claims_in_gen == in_journal
    # a what-if of the recorded claim is the same score too; of a new claim "not_recorded"
    c = _score(scorer, [first], record=False)[0]
    assert c["recorded"] == "already_recorded" and _without_recorded(c) == _without_recorded(a)
    assert _score(scorer, _claims(trained, 1, "WHATIF", 21), record=False)[0]["recorded"] == "not_recorded"
    assert set(RECORDED) == {"new", "already_recorded", "replaced", "not_recorded"}


def test_a_retried_batch_is_recorded_once(scorer, trained):
    claims = _claims(trained, 6, "RB", 22)
    first = _score(scorer, claims[:4])
    size = _size(scorer.state)
    again = _score(scorer, claims)  # four retries and two new claims in one batch
    assert [s["recorded"] for s in again] == ["already_recorded"] * 4 + ["new"] * 2
    assert [_without_recorded(s) for s in again[:4]] == [_without_recorded(s) for s in first]
    assert _size(scorer.state)["next_order"] == size["next_order"] + 2
    assert not any(_self_refs(s) for s in again)


# ---------------------------------------------------------------------------------------------- replacements
def test_a_replacement_supersedes_the_previous_version(scorer, trained):
    """The same id with other content is reported "replaced" and never matches its previous version; it is
    scored with the previous version in its provider's and patient's history (it was submitted before),
    and afterwards counts once: a probe scores as if only the new version had been recorded."""
    first, probe = _claims(trained, 2, "REPL", 23)
    probe = dict(
        copy.deepcopy(probe), patient_id=first["patient_id"], billing_npi=first["billing_npi"], claim_id="REPL-probe"
    )
    new = copy.deepcopy(first)
    new["total_charge"] = round(new["total_charge"] * 3 + 100, 2)
    new["lines"][0]["line_charge"] = round(new["lines"][0]["line_charge"] * 3 + 100, 2)
    reference = Scorer.from_dir(trained["bundle_dir"])  # only the new version, recorded once
    want = _score(reference, [new])[0]
    assert _score(scorer, [first])[0]["recorded"] == "new"
    what_if = _score(scorer, [new], record=False)[0]
    got = _score(scorer, [new])[0]
    assert got["recorded"] == "replaced" and what_if["recorded"] == "not_recorded"
    assert _without_recorded(got) == _without_recorded(what_if)
    assert "REPL-0" not in duplicate_refs(got) and not _self_refs(got)
    assert got["rule_hits"] == want["rule_hits"]  # the same findings as without a previous version
    assert _score(scorer, [new])[0]["recorded"] == "already_recorded"
    # the old version's entity events are taken back: one claim for its provider and patient, not two
    assert _score(scorer, [probe], record=False) == _score(reference, [probe], record=False)
    assert _size(scorer.state)["claims"] == _size(reference.state)["claims"]


def test_a_claim_of_the_training_history_sent_again_never_matches_itself(trained):
    """Claims of the training history have no recorded content: one sent again with its own id is taken
    as a replacement, and never reported as a duplicate of itself."""
    from serving.schemas import frames_to_claims

    h = trained["history"]
    c = h.claims.sort_values("submitted_date").iloc[[-1]]
    claim = frames_to_claims(c, h.claim_lines[h.claim_lines["claim_id"].isin(c["claim_id"])])[0]
    s = Scorer.from_dir(trained["bundle_dir"])
    got = _score(s, [claim])[0]
    assert got["recorded"] == "replaced" and not _self_refs(got)


# ---------------------------------------------------------------------------------------------- files
def _modes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}


def _private(modes: dict[str, str], root: Path) -> bool:
    return all(m == ("0o700" if (root / p).is_dir() else "0o600") for p, m in modes.items())


def test_saved_states_are_private(trained, tmp_path):
    """Before: state files were 0644 in the model store and the Bento (the journal alone was 0600)."""
    from features.model.bundle import ModelBundle
    from features.engine.state import HistoryState

    state = HistoryState.load(Path(trained["bundle_dir"]) / "state")
    out = state.save(tmp_path / "state")
    assert _private(_modes(out), out) and len(list(out.iterdir())) > 10
    state.save(out)  # replaced atomically: no temporary or old folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    b = ModelBundle.load(trained["bundle_dir"]).save(tmp_path / "bundle", state_dir=out)
    assert _private(_modes(b / "state"), b / "state")
    # the BentoML store copy made by promotion (training.registry) and the one made from MLflow
    store = Path(trained["bundle_dir"]) / "state"
    assert _private(_modes(store), store)


EXPORT = """
import json, os, stat
from pathlib import Path
from serving import model_store
ref = model_store.export_champion_from_mlflow()
root = ref.path / "state"
print(json.dumps({str(p): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}))
"""


def test_the_store_copy_made_from_mlflow_is_private(trained, tmp_path):
    from serving.serve import service_env

    env = {**service_env(), "BENTOML_HOME": str(tmp_path / "bentoml")}
    run = subprocess.run(
        [sys.executable, "-c", EXPORT], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr[-3000:]
    modes = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(modes) > 10
    assert all(m == (0o700 if Path(p).is_dir() else 0o600) for p, m in modes.items()), modes


# ---------------------------------------------------------------------------------------------- real server
@contextlib.contextmanager
def _serve(trained, journal_dir: Path, stop: int):
    """The real `bentoml serve` (one worker) on a free port; stopped with ``stop`` (SIGTERM: a graceful
    shutdown; SIGKILL: everything dies at once)."""
    from tests.helpers.server import bentoml_server, model_env

    env = model_env(trained["bundle_dir"], journal_dir)
    with bentoml_server(env, journal_dir.parent / f"serve-{stop}.log", stop=stop) as url:
        yield url


def test_recorded_claims_survive_restarts_of_the_real_server(trained, tmp_path):
    """Before: 0 of 30 duplicates were caught after a restart. Killed at once (SIGKILL: the journal is
    replayed at the next start), then stopped gracefully (SIGTERM: compacted into a snapshot)."""
    import httpx

    from serving.journal import model_key

    claims = _claims(trained, 30, "RESTART", 30)
    later = _claims(trained, 5, "LATER", 31)
    folder = tmp_path / model_key(trained["bundle_dir"])
    with _serve(trained, tmp_path, signal.SIGKILL) as url:
        r = httpx.post(f"{url}/score_batch", json={"claims": claims[:20]}, timeout=60)
        assert r.status_code == 200 and {s["recorded"] for s in r.json()} == {"new"}
        for c in claims[20:]:
            assert httpx.post(f"{url}/score", json={"claim": c}, timeout=30).json()["recorded"] == "new"
        first = httpx.post(f"{url}/score", json={"claim": claims[0], "record": False}, timeout=30).json()
    with _serve(trained, tmp_path, signal.SIGTERM) as url:
        dups = [dict(copy.deepcopy(c), claim_id=f"{c['claim_id']}-again") for c in claims]
        got = httpx.post(f"{url}/score_batch", json={"claims": dups, "record": False}, timeout=60).json()
        caught = sum(c["claim_id"] in duplicate_refs(g) for c, g in zip(claims, got))
        assert caught == 30
        retry = httpx.post(f"{url}/score", json={"claim": claims[0]}, timeout=30).json()
        assert retry["recorded"] == "already_recorded" and retry == first
        r = httpx.post(f"{url}/score_batch", json={"claims": later}, timeout=60)
        assert [s["recorded"] for s in r.json()] == ["new"] * 5
    # the graceful stop compacted all 35 claims into a snapshot; the journal starts empty
    # (a worker whose parent was killed stops gracefully too, so the first server may have compacted
    # already: the generation number is not fixed, the layout is)
    names = sorted(p.name for p in folder.iterdir())
    gen = names[-1].removeprefix("snapshot-")
    assert names == [f"journal-{gen}.bin", "lock", f"snapshot-{gen}"], names
    assert (folder / f"journal-{gen}.bin").stat().st_size == 0
    assert _private(_modes(folder), folder)
