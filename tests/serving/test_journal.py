"""serving.journal: recorded claims survive restarts; workers that share a journal see each other's claims
as one worker would; compaction into snapshots loses and double-applies nothing."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from serving.journal import model_key
from serving.schemas import Claim, claims_to_frames
from serving.scorer import Scorer
from tests.helpers.claims import duplicate_refs, recent_claims

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _claims(trained, n: int, tag: str, shift_days: int) -> list[dict]:
    return recent_claims(trained["history"], n, tag, shift_days, skip=300)


def _again(c: dict, suffix: str = "again") -> dict:
    return dict(copy.deepcopy(c), claim_id=f"{c['claim_id']}-{suffix}")


def _score(scorer: Scorer, claims: list[dict], record: bool, as_sent: bool = True) -> list[dict]:
    models = [Claim.model_validate(c) for c in claims]
    conv = claims_to_frames(models)
    assert not conv.errors
    return scorer.score_claims(
        conv.claims, conv.lines, explain=True, record=record, as_sent=models if as_sent else None
    )


def _worker(trained, root: Path, **kw) -> Scorer:
    """A scorer as a service worker makes it (journal folder of the model under ``root``)."""
    s = Scorer.from_dir(trained["bundle_dir"], journal_dir=root)
    for k, v in kw.items():
        setattr(s.journal, k, v)
    return s


def _folder(trained, root: Path) -> Path:
    return root / model_key(trained["bundle_dir"])


@pytest.fixture()
def workers(trained, tmp_path):
    """Two scorers ("workers") on one journal folder, and a third alone without a journal (the
    reference: one worker that never restarts)."""
    a, b = _worker(trained, tmp_path), _worker(trained, tmp_path)
    alone = Scorer.from_dir(trained["bundle_dir"])
    yield a, b, alone
    for s in (a, b):
        if s.journal is not None:
            s.journal.close()


def _size(state) -> dict:
    """Events per table and claims: equal when two states hold the same claims."""
    out = {name: len(t.times) + t.n_delta for name, t in state.tables.items()}
    return {**out, "claims": len(state.all_claim_keys()), "next_order": state.next_order}


def test_a_duplicate_recorded_by_another_worker_is_caught(workers, trained):
    a, b, _ = workers
    first = _claims(trained, 1, "J", 30)[0]
    assert "J-0" not in duplicate_refs(_score(a, [first], record=True)[0])
    assert "J-0" in duplicate_refs(_score(b, [_again(first)], record=False)[0])  # b never saw J-0 itself
    assert b.journal.applied == 1
    # what-if scoring is not shared
    other = _claims(trained, 1, "W", 31)[0]
    _score(b, [other], record=False)
    assert "W-0" not in duplicate_refs(_score(a, [_again(other)], record=False)[0])


def test_a_retry_sent_to_another_worker_is_recorded_once(workers, trained):
    a, b, _ = workers
    first = _claims(trained, 1, "RT", 32)[0]
    got = _score(a, [first], record=True)[0]
    again = _score(b, [first], record=True)[0]  # the client retried; the other worker answered
    assert (got["recorded"], again["recorded"]) == ("new", "already_recorded")
    assert {**again, "recorded": "new"} == got and "RT-0" not in duplicate_refs(again)
    _score(a, _claims(trained, 1, "RU", 33), record=True)  # a catches up: b appended nothing
    assert a.journal.applied == 0 and a.journal.claims_in_gen == 2


def test_two_workers_score_as_one_worker(workers, trained):
    """Requests alternating between two workers give what one worker gives for the same sequence."""
    a, b, alone = workers
    claims = _claims(trained, 12, "S", 35)
    claims += [_again(c) for c in claims[:4]]
    for i, c in enumerate(claims):  # the journal gets the claims as sent, or rebuilt from the frames
        shared = _score(a if i % 2 else b, [c], record=True, as_sent=i % 3 != 0)[0]
        single = _score(alone, [c], record=True)[0]
        assert shared == single, c["claim_id"]
    # batches too, and the state sizes agree
    batch = _claims(trained, 5, "B", 36)
    assert _score(a, batch, record=True) == _score(alone, batch, record=True)
    _score(b, batch[:1], record=False)  # b catches up
    assert b.state.next_order == a.state.next_order == alone.state.next_order


def test_many_records_applied_at_once_equal_one_worker(workers, trained):
    """A worker that catches up many records at once (grouped into few calls, a replaced id in a group
    of its own) ends where one worker recording them one by one ends."""
    a, b, alone = workers
    claims = _claims(trained, 9, "M", 45)
    changed = copy.deepcopy(claims[1])
    changed["total_charge"] = changed["total_charge"] + 5
    claims.insert(5, changed)  # the same claim id again, later, with other content: a replacement
    for c in claims:
        _score(a, [c], record=True)
        _score(alone, [c], record=True)
    probe = _claims(trained, 6, "Q", 46) + [_again(c, "dup") for c in claims[:3]]
    assert _score(b, probe, record=False) == _score(alone, probe, record=False)
    assert b.journal.applied == len(claims)


def test_a_record_being_written_is_applied_once_complete(workers, trained, tmp_path):
    a, b, _ = workers
    _score(a, _claims(trained, 1, "P", 40), record=True)
    data = a.journal.path.read_bytes()
    other = tmp_path / "other"
    reader = _worker(trained, other)
    reader.journal.path.write_bytes(data[: len(data) // 2])  # as another worker would see it mid-write
    assert reader.journal.catch_up(reader.state, reader.rulebook) is reader.state
    assert reader.journal.applied == 0 and reader.journal.offset == 0
    with open(reader.journal.path, "ab") as f:
        f.write(data[len(data) // 2 :])
    reader.journal.catch_up(reader.state, reader.rulebook)
    assert reader.journal.applied == 1 and reader.journal.offset == len(data)
    reader.journal.catch_up(reader.state, reader.rulebook)
    assert reader.journal.applied == 1
    reader.journal.close()


def test_a_broken_line_is_skipped_and_later_records_still_apply(workers, trained):
    """A line left half-written by a worker that died is skipped (logged), never blocks the journal."""
    a, b, alone = workers
    with open(a.journal.path, "ab") as f:
        f.write(b'{"w": 9, "claims": [{"claim_id": "BROK')  # no newline: the writer died
    first = _claims(trained, 1, "K", 50)[0]
    _score(a, [first], record=True)  # appended on a new line after the broken one
    _score(alone, [first], record=True)
    got = _score(b, [_again(first)], record=False)[0]
    assert "K-0" in duplicate_refs(got) and got == _score(alone, [_again(first)], record=False)[0]


def test_replay_groups_by_the_validated_claim_id(trained):
    """' X1' and 'X1' are one claim id once validated: applied in separate calls, as one worker does."""
    from serving.journal import record

    s1, s2 = (Scorer.from_dir(trained["bundle_dir"]) for _ in range(2))
    c = _claims(trained, 1, "V", 55)[0]
    spaced = dict(copy.deepcopy(c), claim_id=" " + c["claim_id"])
    changed = dict(copy.deepcopy(spaced), total_charge=c["total_charge"] + 1)
    record(s1.state, [c, changed], s1.rulebook)
    for x in (c, changed):
        _score(s2, [x], record=True)
    assert _size(s1.state) == _size(s2.state)


# ---------------------------------------------------------------------------------------------- restarts
def test_a_restart_keeps_the_recorded_claims(trained, tmp_path):
    """0 of 30 duplicates were caught after a restart before: the journal is replayed at start."""
    s = _worker(trained, tmp_path)
    claims = _claims(trained, 30, "RS", 60)
    _score(s, claims[:10], record=True)
    for c in claims[10:]:
        _score(s, [c], record=True)
    s.journal.close()  # the process ends without a shutdown (no compaction)
    again = _worker(trained, tmp_path)
    assert again.journal.replayed == 30 and again.state.next_order == s.state.next_order
    got = _score(again, [_again(c) for c in claims], record=False)
    assert all(c["claim_id"] in duplicate_refs(g) for c, g in zip(claims, got))
    again.close()


def test_a_journal_of_another_model_version_is_not_applied(trained, tmp_path):
    s = _worker(trained, tmp_path)
    first = _claims(trained, 1, "MV", 61)[0]
    _score(s, [first], record=True)
    s.close()
    other = tmp_path / "bundle-v2"
    shutil.copytree(trained["bundle_dir"], other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "model_version": "v2-test"}))
    assert model_key(other) != model_key(trained["bundle_dir"])
    v2 = Scorer.from_dir(other, journal_dir=tmp_path)
    assert v2.journal.replayed == 0 and v2.journal.gen == 0
    assert "MV-0" not in duplicate_refs(_score(v2, [_again(first)], record=False)[0])
    v2.close()


KILLED = """
import os, signal, sys, json
from serving.schemas import Claim, claims_to_frames
from serving.scorer import Scorer
claims = json.loads(sys.stdin.read())
s = Scorer.from_dir(sys.argv[1], journal_dir=sys.argv[2])
for c in claims:
    m = [Claim.model_validate(c)]
    conv = claims_to_frames(m)
    s.score_claims(conv.claims, conv.lines, record=True, as_sent=m)
print("recorded", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # between the journal append and any compaction
"""


def test_a_kill_between_append_and_compaction_loses_nothing(trained, tmp_path):
    claims = _claims(trained, 4, "KILL", 62)
    run = subprocess.run(
        [sys.executable, "-c", KILLED, str(trained["bundle_dir"]), str(tmp_path)],
        input=json.dumps(claims),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert run.returncode == -signal.SIGKILL and "recorded" in run.stdout, run.stderr[-2000:]
    s = _worker(trained, tmp_path)
    assert s.journal.replayed == 4 and s.journal.gen == 0
    got = _score(s, [_again(c) for c in claims], record=False)
    assert all(c["claim_id"] in duplicate_refs(g) for c, g in zip(claims, got))
    # each was recorded once: a retry is recognized, not recorded again
    assert [g["recorded"] for g in _score(s, claims, record=True)] == ["already_recorded"] * 4
    s.close()


def test_a_crash_during_compaction_leaves_a_consistent_folder(trained, tmp_path):
    """A snapshot committed but the old generation not yet deleted, and a half-written snapshot: the next
    start uses the committed snapshot, applies nothing twice, removes the rest."""
    s = _worker(trained, tmp_path)
    claims = _claims(trained, 3, "CR", 63)
    _score(s, claims, record=True)
    folder = s.journal.dir
    old_journal = folder / "journal-0.bin"
    kept = old_journal.read_bytes()
    with s.journal.exclusive():
        s.journal.compact(s.state)
    old_journal.write_bytes(kept)  # as if the process died after the commit, before deleting
    (folder / ".snapshot-2.tmp-dead").mkdir()  # and a later compaction died while writing
    expected = _size(s.state)
    s.journal.close()
    again = _worker(trained, tmp_path)
    assert again.journal.gen == 1 and again.journal.replayed == 0
    assert _size(again.state) == expected
    assert sorted(p.name for p in folder.iterdir()) == ["journal-1.bin", "lock", "snapshot-1"]
    again.close()


# ---------------------------------------------------------------------------------------------- compaction
def test_two_workers_with_compactions_lose_nothing_and_apply_nothing_twice(trained, tmp_path):
    """Compactions every 3 claims while two workers record in turn (singles and batches, each worker
    compacting when it finds the bound reached): each worker, and a restart, ends where one worker
    that never compacted ends."""
    a = _worker(trained, tmp_path, compact_claims=3)
    b = _worker(trained, tmp_path, compact_claims=3)
    alone = Scorer.from_dir(trained["bundle_dir"])
    claims = _claims(trained, 14, "CP", 70)
    steps = [[c] for c in claims[:8]] + [claims[8:11], claims[11:13], [claims[13]]]
    steps.insert(4, [_again(claims[0], "dup")])
    for i, batch in enumerate(steps):
        w = a if i % 2 else b
        assert _score(w, batch, record=True) == _score(alone, batch, record=True), i
    assert a.journal.gen >= 3 and b.journal.gen >= 3
    probe = _claims(trained, 3, "CQ", 71) + [_again(c, "probe") for c in claims]
    want = _score(alone, probe, record=False)
    for w in (a, b):
        assert _score(w, probe, record=False) == want
        assert _size(w.state) == _size(alone.state)
    a.close()
    b.close()
    restarted = _worker(trained, tmp_path)
    assert _size(restarted.state) == _size(alone.state)
    assert _score(restarted, probe, record=False) == want
    restarted.close()


def test_a_worker_two_generations_behind_reloads_the_latest_snapshot(trained, tmp_path):
    a = _worker(trained, tmp_path, compact_claims=1)
    b = _worker(trained, tmp_path)
    alone = Scorer.from_dir(trained["bundle_dir"])
    claims = _claims(trained, 3, "GB", 72)
    for c in claims:  # three compactions while b serves nothing
        _score(a, [c], record=True)
        _score(alone, [c], record=True)
    assert a.journal.gen == 3 and not (b.journal.dir / "journal-0.bin").exists()
    probe = [_again(c) for c in claims]
    assert _score(b, probe, record=False) == _score(alone, probe, record=False)
    assert b.journal.gen == 3 and _size(b.state) == _size(alone.state)
    a.close()
    b.close()


def test_compaction_by_age_and_at_close(trained, tmp_path):
    s = _worker(trained, tmp_path, compact_seconds=0.0)
    _score(s, _claims(trained, 1, "AG", 73), record=True)  # due at once: compacted after the append
    assert s.journal.gen == 1 and s.journal.claims_in_gen == 0
    s.journal.compact_seconds = 3600.0
    _score(s, _claims(trained, 1, "AH", 74), record=True)
    assert s.journal.gen == 1 and s.journal.claims_in_gen == 1
    s.close()  # shutdown: compacted
    again = _worker(trained, tmp_path)
    assert again.journal.gen == 2 and again.journal.replayed == 0
    again.close()


def test_journal_and_snapshots_are_private(trained, tmp_path):
    s = _worker(trained, tmp_path / "service")
    _score(s, _claims(trained, 2, "PR", 75), record=True)
    with s.journal.exclusive():
        s.journal.compact(s.state)
    _score(s, _claims(trained, 1, "PS", 76), record=True)
    folder = _folder(trained, tmp_path / "service")
    paths = [folder, *folder.rglob("*")]
    assert len(paths) > 10
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    s.close()


def test_journals_of_earlier_versions_are_removed(trained, tmp_path):
    """Earlier versions kept one journal per server process in the folder itself (never replayed)."""
    dead = tmp_path / "journal-999999999-1.bin"  # no such process
    dead.write_bytes(b"{}\n")
    s = _worker(trained, tmp_path)
    assert not dead.exists()
    s.close()
