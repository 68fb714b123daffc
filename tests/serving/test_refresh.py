"""The state keeps learning (serving/refresh.py): new claims and recoupments of a history folder reach the
scorer's state once, point in time, atomically; over HTTP behind the API key; shown in GET /model."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time

import httpx
import pandas as pd
import pytest

from features.contract import load_history
from features.errors import RecoupError
from serving.refresh import LOCK_FILE, HistoryFolder, Increments, in_window, parse_interval, refresh, status
from serving.scorer import Scorer
from tests.helpers.server import bentoml_server, model_env

AS_OF_DAYS_BEFORE_END = 120


@pytest.fixture(scope="module")
def early(small_history_dir, tmp_path_factory):
    """A real small model trained as of 120 days before the history's end (its bundle and state saved)."""
    from training.config import load_config
    from training.train import train_model

    history = load_history(small_history_dir)
    cfg = load_config(overrides={})
    cfg["likelihood"]["n_estimators"] = 30
    cfg["cause"]["n_estimators"] = 10
    end = history.claims["submitted_date"].max()
    as_of = end - pd.Timedelta(days=AS_OF_DAYS_BEFORE_END)
    result = train_model(history, as_of=str(as_of.date()), config=cfg)
    bundle = tmp_path_factory.mktemp("early") / "bundle"
    result.bundle.save(bundle)
    result.state.save(bundle / "state")
    return {"bundle": bundle, "history": history, "as_of": as_of, "dir": small_history_dir}


def _scorer(early, journal) -> Scorer:
    return Scorer.from_dir(early["bundle"], journal_dir=journal)


def _expected(early, upto: pd.Timestamp | None = None) -> tuple[int, int]:
    """(claims, recoupments) of the history dated after the model's as-of date (up to ``upto``)."""
    h = early["history"]
    upto = upto if upto is not None else pd.Timestamp.max
    inc = in_window(h.claims, h.claim_lines, h.recoupments, early["as_of"], upto)
    known = set(h.claims.loc[h.claims["submitted_date"] <= upto, "claim_id"])
    return len(inc.claims), int(inc.recoupments["claim_id"].isin(known).sum())


def test_refresh_adds_new_events_once_and_is_kept(early, tmp_path):
    s = _scorer(early, tmp_path)
    before = status(s, None, None)
    assert before["as_of"] == str(early["as_of"].date()) and before["last_refresh"] is None
    info = refresh(s, HistoryFolder(early["dir"]))
    n_claims, n_rec = _expected(early)
    assert info["outcome"] == "ok" and (info["added_claims"], info["added_recoupments"]) == (n_claims, n_rec)
    assert n_claims > 100 and n_rec > 0
    end = max(early["history"].claims["submitted_date"].max(), early["history"].recoupments["recouped_date"].max())
    assert status(s, None, None)["as_of"] == str(end.date())
    again = refresh(s, HistoryFolder(early["dir"]))  # the same data: nothing
    assert (again["outcome"], again["added_claims"], again["added_recoupments"]) == ("ok", 0, 0)
    s.close()
    restarted = _scorer(early, tmp_path)  # kept: the journal's snapshot holds the refreshed state
    st = status(restarted, None, None)
    assert st["as_of"] == str(end.date()) and st["last_successful_refresh"]["added_claims"] == 0
    assert refresh(restarted, HistoryFolder(early["dir"]))["added_claims"] == 0
    restarted.close()


def test_refresh_is_point_in_time(early, tmp_path):
    """Only events up to ``now``; the later ones come with a later refresh, once."""
    s = _scorer(early, tmp_path)
    mid = early["as_of"] + pd.Timedelta(days=60)
    first = refresh(s, HistoryFolder(early["dir"]), now=mid)
    assert (first["added_claims"], first["added_recoupments"]) == _expected(early, mid)
    rest = refresh(s, HistoryFolder(early["dir"]))
    total = _expected(early)
    assert first["added_claims"] + rest["added_claims"] == total[0]
    assert first["added_recoupments"] + rest["added_recoupments"] == total[1]
    s.close()


def test_claims_recorded_online_are_not_added_again(early, tmp_path):
    from serving.schemas import frames_to_claims

    s = _scorer(early, tmp_path)
    h = early["history"]
    late = h.claims[h.claims["submitted_date"] > early["as_of"]].head(5)
    sent = frames_to_claims(late, h.claim_lines[h.claim_lines["claim_id"].isin(late["claim_id"])])
    from serving.schemas import Claim, claims_to_frames

    conv = claims_to_frames([Claim.model_validate(c) for c in sent])
    assert [r["recorded"] for r in s.score_claims(conv.claims, conv.lines, explain=False, as_sent=sent)] == ["new"] * 5
    info = refresh(s, HistoryFolder(early["dir"]))
    assert info["added_claims"] == _expected(early)[0] - 5
    # the refreshed claims are known with their content: sent again they are retries
    again = s.score_claims(conv.claims, conv.lines, explain=False, as_sent=sent)
    assert {r["recorded"] for r in again} == {"already_recorded"}
    s.close()


def _fingerprint(s: Scorer) -> tuple:
    st = s.state
    assert st is not None
    return (st.latest_day(), st.tables["all"].n_delta, len(st.all_claim_keys()), len(st.recoupment_seen))


def test_a_bad_file_leaves_the_state_as_before_and_is_reported(early, tmp_path, caplog):
    bad = tmp_path / "bad"
    shutil.copytree(early["dir"], bad)
    claims = pd.read_csv(bad / "claims.csv", dtype=str)
    patient = claims.loc[len(claims) - 1, "patient_id"]
    claims.loc[len(claims) - 1, "submitted_date"] = "2025-02-30"
    claims.to_csv(bad / "claims.csv", index=False)
    s = _scorer(early, tmp_path / "journal")
    fp = _fingerprint(s)
    with caplog.at_level(logging.INFO):
        info = refresh(s, HistoryFolder(bad))
    assert info["outcome"] == "failed" and info["error"].startswith("ContractError: 1 contract problem")
    assert _fingerprint(s) == fp
    st = status(s, HistoryFolder(bad), 900)
    assert st["last_refresh"]["outcome"] == "failed" and st["last_successful_refresh"] is None and st["overdue"]
    assert patient not in caplog.text and "2025-02-30" not in caplog.text
    s.close()


class _FixedSource:
    """A source (the plug-in interface) that always gives the same increments."""

    def __init__(self, inc: Increments):
        self.inc = inc

    def describe(self) -> str:
        return "test source"

    def read(self, after, upto) -> Increments:
        return self.inc


def test_a_refresh_failing_half_way_is_undone(early, tmp_path):
    """The claims are applied, then the recoupments fail (an amount that is not a number): the claims are
    taken back (the state reloaded from the journal)."""
    h = early["history"]
    inc = in_window(h.claims, h.claim_lines, h.recoupments, early["as_of"], pd.Timestamp.max)
    one = inc.claims.head(3)
    lines = inc.lines[inc.lines["claim_id"].isin(one["claim_id"])]
    rec = inc.recoupments.head(1).astype({"recouped_amount": object})
    rec.loc[rec.index[0], "recouped_amount"] = "not a number"
    s = _scorer(early, tmp_path)
    fp = _fingerprint(s)
    assert s.journal is not None
    reloads = []
    reload = s.journal.reload
    s.journal.reload = lambda rb: reloads.append(1) or reload(rb)  # type: ignore[method-assign]
    info = refresh(s, _FixedSource(Increments(one, lines, rec)))
    assert info["outcome"] == "failed" and reloads == [1]  # the claims were in: undone by reloading
    assert s.state is not None and s.state.versions(one["claim_id"].astype(str).tolist()) == [None] * 3
    assert _fingerprint(s) == fp
    assert refresh(s, HistoryFolder(early["dir"]))["added_claims"] == _expected(early)[0]  # and then works
    s.close()


def test_refresh_every_is_bounded():
    assert parse_interval("15m") == 900 and parse_interval("1d") == 86_400 and parse_interval("60") == 60
    for bad in ("30s", "2d", "15 minutes", "-5m", ""):
        with pytest.raises(RecoupError, match="--refresh-every must be a duration from 1m to 1d"):
            parse_interval(bad)


def test_serve_checks_the_refresh_options(tmp_path):
    from serving.serve import _refresh_env

    env: dict[str, str] = {}
    with pytest.raises(RecoupError, match="--refresh-every needs --refresh-from"):
        _refresh_env(env, None, "15m")
    with pytest.raises(RecoupError, match="--refresh-from .* not a directory"):
        _refresh_env(env, tmp_path / "nope", None)
    assert "every 900 s" in str(_refresh_env(env, tmp_path, None))
    assert env["RECOUP_REFRESH_EVERY"] == "900" and env["RECOUP_REFRESH_FROM"] == str(tmp_path.resolve())


def test_refresh_over_http_on_schedule_and_call(early, tmp_path):
    """The real service: the scheduled refresh at start fills the state (GET /model shows it); POST /refresh
    needs a key, and a refresh key when RECOUP_REFRESH_KEYS names them; a second refresh adds nothing."""
    from serving.security import create_key

    keys_path = tmp_path / "api_keys.json"
    old = os.environ.get("RECOUP_API_KEYS_FILE")
    os.environ["RECOUP_API_KEYS_FILE"] = str(keys_path)
    try:
        admin, user = create_key("admin"), create_key("user")
    finally:
        os.environ.pop("RECOUP_API_KEYS_FILE")
        if old is not None:
            os.environ["RECOUP_API_KEYS_FILE"] = old
    env = model_env(
        early["bundle"],
        tmp_path / "journal",
        RECOUP_API_KEYS_FILE=str(keys_path),
        RECOUP_REFRESH_FROM=str(early["dir"]),
        RECOUP_REFRESH_EVERY="3600",
        RECOUP_REFRESH_KEYS="admin",
        RECOUP_REFRESH_MIN_GAP="3600",
    )
    with bentoml_server(env, tmp_path / "server.log") as url:
        auth = {"authorization": f"Bearer {admin}"}
        deadline = time.time() + 60
        while True:
            st = httpx.get(f"{url}/model", headers=auth, timeout=30).json()["state"]
            if st["last_refresh"] is not None:
                break
            assert time.time() < deadline, "the scheduled refresh did not run"
            time.sleep(0.3)
        assert st["last_refresh"]["outcome"] == "ok"
        assert st["last_refresh"]["added_claims"] == _expected(early)[0]
        assert st["refresh_every_seconds"] == 3600 and str(early["dir"]) in st["refresh_source"]
        assert st["as_of"] > st["model_as_of"] == str(early["as_of"].date()) and not st["overdue"]
        assert 0 <= st["seconds_since_refresh"] < 120
        assert httpx.post(f"{url}/refresh", json={}).status_code == 401
        r = httpx.post(f"{url}/refresh", json={}, headers={"authorization": f"Bearer {user}"})
        assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
        (folder,) = (tmp_path / "journal").glob("model-*")
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a refresh running (this stands for another worker's)
            r = httpx.post(f"{url}/refresh", json={}, headers=auth, timeout=60)
        finally:
            os.close(fd)
        assert r.status_code == 409 and r.json()["error"] == {
            "type": "refresh_running",
            "message": "a refresh is already running",
            "fields": [],
        }
        assert httpx.get(f"{url}/model", headers=auth, timeout=30).json()["state"]["last_refresh"] == st["last_refresh"]
        r = httpx.post(f"{url}/refresh", json={}, headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["refresh"]["added_claims"], body["refresh"]["added_recoupments"]) == (0, 0)
        assert body["state"]["last_refresh"] == body["refresh"]
        r = httpx.post(f"{url}/refresh", json={}, headers=auth, timeout=60)  # within RECOUP_REFRESH_MIN_GAP
        assert r.status_code == 429 and r.json()["error"]["type"] == "too_many_refreshes"
        assert 3500 < int(r.headers["retry-after"]) <= 3600


def test_other_workers_apply_the_refresh_from_the_journal(early, tmp_path):
    """Two workers on one journal folder: what one refreshes, the other applies when it next catches up."""
    a, b = _scorer(early, tmp_path), _scorer(early, tmp_path)
    info = refresh(a, HistoryFolder(early["dir"]))
    assert info["added_recoupments"] > 0
    assert b.state is not None and b.journal is not None
    b.state = b.journal.catch_up(b.state, b.rulebook)
    assert a.state is not None and b.state.latest_day() == a.state.latest_day()
    assert (
        b.state.recoupment_seen == a.state.recoupment_seen and len(b.state.recoupment_seen) == info["added_recoupments"]
    )
    assert b.state.refresh_info["last_ok"] == info
    again = refresh(b, HistoryFolder(early["dir"]))
    assert (again["added_claims"], again["added_recoupments"]) == (0, 0)
    a.close()
    b.close()


def _long_claim_folder(early, tmp_path) -> tuple:
    """A copy of the history whose first claim after the model's as-of date has 60 lines (the data contract
    takes it; the service's CLAIM schema allows MAX_LINES_PER_CLAIM)."""
    from serving.schemas import MAX_LINES_PER_CLAIM

    d = tmp_path / "long"
    shutil.copytree(early["dir"], d)
    h = early["history"]
    cid = str(h.claims.loc[h.claims["submitted_date"] > early["as_of"], "claim_id"].iloc[0])
    lines = pd.read_csv(d / "claim_lines.csv", dtype=str, keep_default_na=False)
    one = lines[lines["claim_id"] == cid].head(1)
    many = pd.concat([one] * 60, ignore_index=True).assign(line_number=[str(i) for i in range(1, 61)])
    pd.concat([lines[lines["claim_id"] != cid], many], ignore_index=True).to_csv(d / "claim_lines.csv", index=False)
    assert 60 > MAX_LINES_PER_CLAIM
    assert (load_history(d).claim_lines["claim_id"] == cid).sum() == 60  # the contract accepts it
    return d, cid


def test_a_claim_the_schema_refuses_is_skipped_not_the_refresh(early, tmp_path, caplog):
    """One 60-line claim: the others and the recoupments of known claims are added, it is counted by reason
    kind (no claim data in the outcome or the log); the next refresh adds nothing and does not fail."""
    folder, cid = _long_claim_folder(early, tmp_path)
    h = early["history"]
    s = _scorer(early, tmp_path / "journal")
    with caplog.at_level(logging.INFO):
        info = refresh(s, HistoryFolder(folder))
    n_claims, n_rec = _expected(early)
    inc = in_window(h.claims, h.claim_lines, h.recoupments, early["as_of"], pd.Timestamp.max)
    its_rec = int((inc.recoupments["claim_id"] == cid).sum())
    assert info["outcome"] == "ok", info
    assert (info["added_claims"], info["added_recoupments"]) == (n_claims - 1, n_rec - its_rec)
    assert (info["skipped_claims"], info["skipped_reasons"]) == (1, {"lines: too_long": 1})
    assert s.state is not None and s.state.versions([cid]) == [None]
    assert "1 claims skipped (lines: too_long x1)" in caplog.text and cid not in caplog.text and cid not in str(info)
    assert status(s, None, None)["last_refresh"]["skipped_reasons"] == {"lines: too_long": 1}
    again = refresh(s, HistoryFolder(folder))
    assert (again["outcome"], again["added_claims"], again["added_recoupments"], again["skipped_claims"]) == (
        "ok",
        0,
        0,
        1,
    )
    s.close()


class _CountingSource(HistoryFolder):
    """A history folder that counts its reads (the work a refresh does)."""

    reads = 0

    def read(self, after, upto) -> Increments:
        self.reads += 1
        return super().read(after, upto)


def test_a_refresh_while_one_runs_does_nothing(early, tmp_path):
    """Single flight: while this worker's refresh runs (its lock held) or another worker's (the journal
    folder's refresh lock held through another descriptor), a refresh reads nothing and says busy."""
    from serving.refresh import BUSY

    s = _scorer(early, tmp_path)
    src = _CountingSource(early["dir"])
    fp = _fingerprint(s)
    with s.refresh_lock:
        info = refresh(s, src)
    assert (info["outcome"], info["error"], src.reads) == ("busy", BUSY, 0)
    assert s.journal is not None
    fd = os.open(s.journal.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker's refresh
        assert refresh(s, src)["outcome"] == "busy" and src.reads == 0
    finally:
        os.close(fd)
    assert _fingerprint(s) == fp and status(s, None, None)["last_refresh"] is None  # no work, nothing kept
    assert refresh(s, src)["added_claims"] == _expected(early)[0] and src.reads == 1  # free again
    s.close()


def test_a_failed_journal_write_leaves_the_state_as_before(early, tmp_path):
    """The claims and recoupments are applied, then the journal append fails (disk full): the state is
    reloaded (as before), the outcome says failed, and a refresh once the disk is back adds everything."""
    s = _scorer(early, tmp_path)
    assert s.journal is not None and s.state is not None
    fp = _fingerprint(s)
    ids = early["history"].claims.loc[early["history"].claims["submitted_date"] > early["as_of"], "claim_id"]
    append = s.journal.append

    def disk_full(sent, recoupments=None, refresh=None):  # fault injection: only the refresh's own record
        if refresh is not None and refresh.get("outcome") == "ok":
            raise OSError(28, "No space left on device")
        return append(sent, recoupments=recoupments, refresh=refresh)

    s.journal.append = disk_full  # type: ignore[method-assign]
    info = refresh(s, HistoryFolder(early["dir"]))
    assert info["outcome"] == "failed" and info["error"].startswith("OSError") and "NOT undone" not in info["error"]
    assert _fingerprint(s) == fp and set(s.state.versions(ids.astype(str).tolist())) == {None}
    assert status(s, None, None)["last_refresh"]["outcome"] == "failed"
    assert status(s, None, None)["last_successful_refresh"] is None
    s.journal.append = append  # type: ignore[method-assign]
    assert refresh(s, HistoryFolder(early["dir"]))["added_claims"] == _expected(early)[0]
    s.close()


class _RaisingOnce(HistoryFolder):
    """A source whose first ``describe`` raises (a plug-in's bug: outside what refresh() reports); the
    second stops the refresher given (after that refresh)."""

    def __init__(self, directory, stop):
        super().__init__(directory)
        self.calls, self.stop = 0, stop

    def describe(self) -> str:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug of the source")
        self.stop()
        return super().describe()


def test_the_refresher_survives_an_exception(early, tmp_path, caplog):
    from serving.refresh import Refresher

    s = _scorer(early, tmp_path)
    r = Refresher(s, HistoryFolder(early["dir"]), 3600)
    r.source = _RaisingOnce(early["dir"], r.stop)
    r.every = 0  # the next round at once (run here, in this thread: deterministic)
    with caplog.at_level(logging.INFO):
        r._run()
    assert "scheduled state refresh raised RuntimeError" in caplog.text and "a bug of the source" not in caplog.text
    last = status(s, None, None)["last_refresh"]
    assert last["outcome"] == "ok" and last["added_claims"] == _expected(early)[0]  # the schedule went on
    s.close()
