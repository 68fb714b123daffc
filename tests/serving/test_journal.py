"""serving.journal: workers that share what they record see each other's claims, as one worker would."""

from __future__ import annotations

import copy
import os

import pytest

from serving.journal import RecordJournal, server_journal_path
from serving.schemas import Claim, claims_to_frames
from serving.scorer import Scorer
from tests.helpers.claims import duplicate_refs, recent_claims


def _claims(trained, n: int, tag: str, shift_days: int) -> list[dict]:
    return recent_claims(trained["history"], n, tag, shift_days, skip=300)


def _score(scorer: Scorer, claims: list[dict], record: bool, as_sent: bool = True) -> list[dict]:
    models = [Claim.model_validate(c) for c in claims]
    conv = claims_to_frames(models)
    assert not conv.errors
    return scorer.score_claims(conv.claims, conv.lines, explain=True, record=record,
                               as_sent=models if as_sent else None)


@pytest.fixture()
def workers(trained, tmp_path):
    """Two scorers ("workers") on one journal, and a third alone (one worker, the reference)."""
    path = tmp_path / "journal.bin"
    a, b, alone = (Scorer.from_dir(trained["bundle_dir"]) for _ in range(3))
    a.journal, b.journal = RecordJournal(path, writer=1), RecordJournal(path, writer=2)
    yield a, b, alone
    a.journal.close()
    b.journal.close()


def test_a_duplicate_recorded_by_another_worker_is_caught(workers, trained):
    a, b, _ = workers
    first = _claims(trained, 1, "J", 30)[0]
    again = dict(copy.deepcopy(first), claim_id="J-again")
    assert "J-0" not in duplicate_refs(_score(a, [first], record=True)[0])
    assert "J-0" in duplicate_refs(_score(b, [again], record=False)[0])  # b never saw J-0 itself
    assert b.journal.applied == 1
    # what-if scoring is not shared
    other = _claims(trained, 1, "W", 31)[0]
    _score(b, [other], record=False)
    assert "W-0" not in duplicate_refs(_score(a, [dict(copy.deepcopy(other), claim_id="W-again")], record=False)[0])


def test_two_workers_score_as_one_worker(workers, trained):
    """Requests alternating between two workers give what one worker gives for the same sequence."""
    a, b, alone = workers
    claims = _claims(trained, 12, "S", 35)
    claims += [dict(copy.deepcopy(c), claim_id=f"{c['claim_id']}-again") for c in claims[:4]]
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
    """A worker that catches up many records at once (grouped into few calls, a resubmitted id in a
    group of its own) ends where one worker recording them one by one ends."""
    a, b, alone = workers
    claims = _claims(trained, 9, "M", 45)
    claims.insert(5, dict(copy.deepcopy(claims[1])))  # the same claim id again, later
    for c in claims:
        _score(a, [c], record=True)
        _score(alone, [c], record=True)
    probe = _claims(trained, 6, "Q", 46)
    probe += [dict(copy.deepcopy(c), claim_id=f"{c['claim_id']}-dup") for c in claims[:3]]
    assert _score(b, probe, record=False) == _score(alone, probe, record=False)
    assert b.journal.applied == len(claims)


def test_a_record_being_written_is_applied_once_complete(workers, trained, tmp_path):
    a, b, _ = workers
    first = _claims(trained, 1, "P", 40)[0]
    _score(a, [first], record=True)
    data = (tmp_path / "journal.bin").read_bytes()
    part = tmp_path / "partial.bin"
    part.write_bytes(data[: len(data) // 2])  # as another worker would see it mid-write
    reader = RecordJournal(part, writer=3)
    assert reader.catch_up(b.state, b.rulebook) == 0 and reader.offset == 0
    with open(part, "ab") as f:
        f.write(data[len(data) // 2:])
    assert reader.catch_up(b.state, b.rulebook) == 1 and reader.offset == len(data)
    assert reader.catch_up(b.state, b.rulebook) == 0
    reader.close()


def test_a_broken_line_is_skipped_and_later_records_still_apply(workers, trained, tmp_path):
    """A line left half-written by a worker that died is skipped (logged), never blocks the journal."""
    a, b, alone = workers
    with open(tmp_path / "journal.bin", "ab") as f:
        f.write(b'{"w": 9, "claims": [{"claim_id": "BROK')  # no newline: the writer died
    first = _claims(trained, 1, "K", 50)[0]
    _score(a, [first], record=True)  # appended on a new line after the broken one
    _score(alone, [first], record=True)
    again = dict(copy.deepcopy(first), claim_id="K-again")
    got = _score(b, [again], record=False)[0]
    assert "K-0" in duplicate_refs(got) and got == _score(alone, [again], record=False)[0]


def test_replay_groups_by_the_validated_claim_id(trained):
    """' X1' and 'X1' are one claim id once validated: applied in separate calls, both recorded."""
    from serving.journal import record

    s1, s2 = (Scorer.from_dir(trained["bundle_dir"]) for _ in range(2))
    c = _claims(trained, 1, "V", 55)[0]
    spaced = dict(copy.deepcopy(c), claim_id=" " + c["claim_id"])
    record(s1.state, [c, spaced], s1.rulebook)
    for x in (c, spaced):
        _score(s2, [x], record=True)
    assert s1.state.next_order == s2.state.next_order


def test_journals_of_servers_that_are_gone_are_removed(tmp_path):
    dead = tmp_path / "journal-999999999-1.bin"  # no such process
    dead.write_bytes(b"{}\n")
    reused = tmp_path / f"journal-{os.getpid()}-1.bin"  # a live pid, but another start time
    reused.write_bytes(b"{}\n")
    mine = server_journal_path(tmp_path)
    assert not dead.exists() and not reused.exists()
    assert mine.name.startswith(f"journal-{os.getppid()}-")
