"""Passwords, sessions (idle and absolute expiry), CSRF, the login rate limit and roles, through the real
application (Starlette TestClient) on a real SQLite database."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.serving.workbench.conftest import PASSWORD, csrf_of, login


def test_password_hashes_are_salted_scrypt_and_verified():
    from serving.workbench.auth import hash_password, verify_password

    a, b = hash_password("a long enough password"), hash_password("a long enough password")
    assert a != b and a.startswith("scrypt$16384$8$1$")  # a salt per hash
    assert verify_password("a long enough password", a) and not verify_password("a long enough passwore", a)
    assert not verify_password("x", "scrypt$bad") and not verify_password("x", "md5$1$2$3$4$5")


def test_add_user_validates(engine):
    from features.errors import RecoupError
    from serving.workbench.auth import add_user

    add_user(engine, "ann", "lead", PASSWORD)
    for name, role, pw, msg in (
        ("ann", "lead", PASSWORD, "exists"),
        ("bad name", "lead", PASSWORD, "letters"),
        ("bob", "admin", PASSWORD, "role"),
        ("bob", "lead", "short", "characters"),
    ):
        with pytest.raises(RecoupError, match=msg):
            add_user(engine, name, role, pw)


def test_sessions_expire_idle_and_absolute(engine):
    from serving.workbench.auth import Limits, add_user, authenticate, lookup_session, now, start_session

    add_user(engine, "ann", "reviewer", PASSWORD)
    user = authenticate(engine, "ann", PASSWORD)
    assert user is not None and authenticate(engine, "ann", "wrong password!") is None
    assert authenticate(engine, "nobody", PASSWORD) is None
    limits = Limits(idle=dt.timedelta(hours=1), absolute=dt.timedelta(hours=3))
    token, s = start_session(engine, user, limits)
    t = now()
    assert lookup_session(engine, token, limits, t + dt.timedelta(minutes=59)) is not None
    assert lookup_session(engine, token, limits, t + dt.timedelta(minutes=118)) is not None  # idle clock restarted
    assert lookup_session(engine, token, limits, t + dt.timedelta(hours=3)) is None  # absolute end, deleted
    assert lookup_session(engine, token, limits, t) is None
    token2, _ = start_session(engine, user, limits)
    assert lookup_session(engine, token2, limits, t + dt.timedelta(minutes=61)) is None  # idle
    assert lookup_session(engine, "x" * 500, limits) is None


def test_limits_from_env_are_bounded(monkeypatch):
    from features.errors import RecoupError
    from serving.workbench.auth import Limits

    monkeypatch.setenv("RECOUP_WORKBENCH_IDLE_MINUTES", "30")
    assert Limits.from_env().idle == dt.timedelta(minutes=30)
    monkeypatch.setenv("RECOUP_WORKBENCH_MAX_HOURS", "1000")
    with pytest.raises(RecoupError, match="RECOUP_WORKBENCH_MAX_HOURS"):
        Limits.from_env()


def test_login_sets_a_strict_httponly_cookie_and_pages_need_it(app_client):
    r = app_client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = login(app_client, "lena")
    assert r.status_code == 303
    cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("recoup_wb=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert app_client.get("/").status_code == 200


def test_secure_cookie_over_https(engine, loaded, users, wb_store):
    from starlette.testclient import TestClient

    from serving.workbench.app import Config, create_app

    app = create_app(Config(engine=engine, store=wb_store, hosts=["testserver"]))
    with TestClient(app, base_url="https://testserver") as c:
        r = login(c, "lena")
        cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("recoup_wb=")][0].lower()
        assert "secure" in cookie


def test_wrong_passwords_are_rate_limited_per_name(app_client):
    for _ in range(5):
        assert login(app_client, "rafa", "wrong password!").status_code == 401
    r = login(app_client, "rafa")  # the right one, too late
    assert r.status_code == 429 and "Too many failed attempts" in r.text
    assert login(app_client, "lena").status_code == 303  # another name is not blocked


def test_login_and_logout_need_their_csrf_token(app_client):
    app_client.get("/login")
    r = app_client.post("/login", data={"name": "lena", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    login(app_client, "lena")
    assert app_client.post("/logout", data={}).status_code == 403
    page = app_client.get("/").text
    assert app_client.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code == 303
    assert app_client.get("/", follow_redirects=False).status_code == 303  # the session is gone


def _first_claim(client) -> str:
    return re.search(r'class="claim-link" href="/claim/([^"]+)"', client.get("/").text).group(1)


def test_review_post_without_the_session_csrf_is_refused(app_client):
    login(app_client, "rafa")
    cid = _first_claim(app_client)
    for data in ({"status": "no_issue"}, {"status": "no_issue", "csrf": "x" * 43}):
        r = app_client.post(f"/claim/{cid}/review", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert "not reviewed" in app_client.get(f"/claim/{cid}").text
    assert app_client.recorder.calls == []


def test_roles_leads_assign_reviewers_see_their_own(app_client, users):
    login(app_client, "rafa")
    cid = _first_claim(app_client)
    page = app_client.get(f"/claim/{cid}").text
    r = app_client.post(
        f"/claim/{cid}/review", data={"csrf": csrf_of(page), "status": "in_review", "assignee": str(users["rev2"])}
    )
    assert r.status_code == 400 and "only a lead assigns" in r.text
    app_client.cookies.clear()
    login(app_client, "lena")
    page = app_client.get(f"/claim/{cid}").text
    r = app_client.post(
        f"/claim/{cid}/review",
        data={"csrf": csrf_of(page), "status": "in_review", "assignee": str(users["rev2"])},
        follow_redirects=False,
    )
    assert r.status_code == 303
    app_client.cookies.clear()
    login(app_client, "rafa")
    assert app_client.get(f"/claim/{cid}").status_code == 403  # assigned to rita
    assert f'/claim/{cid}"' not in app_client.get("/?per_page=200").text
    app_client.cookies.clear()
    login(app_client, "rita")
    assert app_client.get(f"/claim/{cid}").status_code == 200
    assert f'/claim/{cid}"' in app_client.get("/?assignee=me").text


def test_next_after_login_stays_on_this_site(app_client):
    from serving.workbench.app import _safe_next

    assert _safe_next("/claim/X?y=1") == "/claim/X?y=1"
    for bad in ("//evil.example", "https://evil.example", "/\\evil.example", "evil", None):
        assert _safe_next(bad) is None
