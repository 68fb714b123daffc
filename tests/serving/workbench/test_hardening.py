"""Attacks and accidents on the real application (review findings of #17): a page that changed under a
reviewer's form, odd input (non-ASCII digits, NUL), a locked database, errors that must not reach the server's log
with claim data, and a store held by an ingest while an outcome is saved (the other pages keep answering)."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from features.contract.schema import CAUSES
from tests.serving.workbench.conftest import csrf_of, login


def _claim_ids(engine, run_id) -> list[str]:
    from serving.workbench.db import worklist

    with engine.connect() as conn:
        q = select(worklist.c.claim_id).where(worklist.c.run_id == run_id).order_by(worklist.c.rank)
        return list(conn.execute(q).scalars())


def _server_log(caplog) -> str:
    """What the server side logged (the test client, httpx, logs its URLs itself)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))


def _second(app_client, name: str) -> TestClient:
    c = TestClient(app_client.app, base_url="http://testserver")
    login(c, name)
    return c


def test_a_save_from_a_stale_page_is_refused(app_client, engine, loaded):
    """Two people on one claim: the second save, from a page shown before the first, does not replace it."""
    cid = _claim_ids(engine, loaded)[0]
    login(app_client, "lena")
    stale = app_client.get(f"/claim/{cid}").text
    other = _second(app_client, "rafa")
    page = other.get(f"/claim/{cid}").text
    form = {"csrf": csrf_of(page), "version": "0", "status": "error_found", "refund_amount": "100", "cause": CAUSES[0]}
    assert other.post(f"/claim/{cid}/review", data=form, follow_redirects=False).status_code == 303
    r = app_client.post(
        f"/claim/{cid}/review",
        data={"csrf": csrf_of(stale), "version": "0", "status": "no_issue"},
        follow_redirects=False,
    )
    assert r.status_code == 409 and "someone changed this review meanwhile" in r.text
    assert 'id="claim-status">error found<' in r.text
    assert [c["outcome"].iloc[0] for c in app_client.recorder.calls] == ["error_found"]  # nothing else recorded
    # reloaded, the form carries the new version and saves
    fresh = app_client.get(f"/claim/{cid}").text
    assert 'name="version" value="1"' in fresh
    r = app_client.post(
        f"/claim/{cid}/review",
        data={"csrf": csrf_of(fresh), "version": "1", "status": "in_review"},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_the_first_save_of_a_claim_by_two_at_once_is_one_conflict_not_an_error(engine, loaded, users):
    from serving.workbench import queries
    from serving.workbench.auth import User

    cid = _claim_ids(engine, loaded)[1]
    a, b = User(users["rev"], "rafa", "reviewer"), User(users["rev2"], "rita", "reviewer")
    inside = threading.Event()
    go = threading.Event()

    def slow_record(row):  # the first save waits inside its transaction until the second one is done
        inside.set()
        go.wait(30)

    out: dict = {}

    def first():
        try:
            queries.apply_change(engine, cid, queries.Change("no_issue"), a, 1.0, slow_record, version=0)
            out["first"] = "saved"
        except queries.Conflict:
            out["first"] = "conflict"

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(30)
    queries.apply_change(engine, cid, queries.Change("in_review", assignee_id=b.id), b, 1.0, lambda r: None, version=0)
    go.set()
    t.join(30)
    assert out["first"] == "conflict"
    with engine.connect() as conn:
        rev = queries.review(conn, cid)
        assert (rev["status"], rev["assignee_id"], rev["version"]) == ("in_review", b.id, 1)
        assert [e["to_status"] for e in queries.events(conn, cid)] == ["in_review"]


@pytest.mark.parametrize(
    "params", [{"page": "²"}, {"per_page": "１００"}, {"assignee": "²"}, {"q": "CLM\x00"}, {"provider": "a\x1fb"}]
)
def test_odd_filter_values_are_a_message_not_an_error(app_client, params):
    login(app_client, "lena")
    r = app_client.get("/", params=params)
    assert r.status_code == 400 and 'role="alert"' in r.text


def test_odd_ids_in_urls_and_login_names_are_refused_cleanly(app_client):
    r = login(app_client, "le\x00na")
    assert r.status_code == 401
    login(app_client, "lena")
    assert app_client.get("/claim/CLM%00").status_code == 404
    assert app_client.get("/claim/" + "X" * 65).status_code == 404
    assert app_client.get("/provider/1%002").status_code == 404
    page = app_client.get("/").text
    cid = app_client.get("/").text.split('class="claim-link" href="/claim/')[1].split('"')[0]
    r = app_client.post(
        f"/claim/{cid}/review",
        data={"csrf": csrf_of(page), "status": "no_issue", "note": "a\x00b"},
        follow_redirects=False,
    )
    assert r.status_code == 400 and "control characters" in r.text
    r = app_client.post(
        f"/claim/{cid}/review",
        data={"csrf": csrf_of(page), "status": "in_review", "note": "line 1\r\nline\t2"},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_a_locked_database_is_a_busy_page_and_no_claim_id_reaches_a_log(app_client, engine, loaded, tmp_path, caplog):
    cid = _claim_ids(engine, loaded)[2]
    login(app_client, "lena")
    page = app_client.get(f"/claim/{cid}").text
    c = TestClient(app_client.app, base_url="http://testserver", raise_server_exceptions=True)
    c.cookies = app_client.cookies
    other = sqlite3.connect(str(tmp_path / "wb.sqlite"), timeout=1)
    other.execute("BEGIN EXCLUSIVE")  # another process writing
    try:
        with caplog.at_level(logging.DEBUG):
            r = c.post(
                f"/claim/{cid}/review", data={"csrf": csrf_of(page), "status": "in_review"}, follow_redirects=False
            )
    finally:
        other.rollback()
        other.close()
    assert r.status_code == 503 and "busy" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert cid not in _server_log(caplog)


def test_an_unexpected_error_is_logged_by_type_only_and_never_reaches_the_server(engine, loaded, users, caplog):
    """Starlette re-raises after its 500 page, and uvicorn would log the exception with its message (a database
    error's message holds the SQL and, without hide_parameters, the claim id): the guard stops it."""
    from serving.workbench.app import Config, create_app
    from serving.workbench.db import worklist

    cfg = Config(engine=engine, hosts=["testserver"])
    with TestClient(create_app(cfg), base_url="http://testserver", raise_server_exceptions=True) as c:
        login(c, "lena")
        cid = _claim_ids(engine, loaded)[3]
        with engine.begin() as conn:  # a row the page cannot render (a broken load)
            conn.execute(worklist.update().where(worklist.c.claim_id == cid).values(causes='[{"probability": [1]}]'))
        with caplog.at_level(logging.DEBUG):
            r = c.get(f"/claim/{cid}")  # raise_server_exceptions: it would raise here if it escaped the guard
    assert r.status_code == 500
    assert cid not in _server_log(caplog) and "internal error" in _server_log(caplog)


def test_database_errors_never_show_their_parameters(engine):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as exc:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, name) VALUES (:i, :n)"), {"i": 1, "n": "PATIENT-SECRET-42"})
    assert "PATIENT-SECRET-42" not in str(exc.value)


def test_a_store_held_by_an_ingest_does_not_stall_the_other_pages(app_client, engine, loaded):
    """An outcome waits for the store's writer lock (an ingest); meanwhile every other page answers."""
    from features.store.layout import writer_lock

    cid = _claim_ids(engine, loaded)[4]
    login(app_client, "lena")
    page = app_client.get(f"/claim/{cid}").text
    other = _second(app_client, "rafa")
    result: dict = {}

    def save():
        result["r"] = app_client.post(
            f"/claim/{cid}/review", data={"csrf": csrf_of(page), "status": "no_issue"}, follow_redirects=False
        )

    with writer_lock(app_client.store):
        t = threading.Thread(target=save)
        t.start()
        for _ in range(600):  # until the save is waiting on the store
            if app_client.recorder.calls:
                break
            t.join(0.05)
        assert app_client.recorder.calls and t.is_alive()
        assert other.get("/", params={"per_page": "10"}).status_code == 200  # stalled behind the save before
        r = login(_second(app_client, "rita"), "rita")
        assert r.status_code == 303
        assert t.is_alive()  # the save still waits: the pages above did not wait for it
    t.join(90)
    assert result["r"].status_code == 303
