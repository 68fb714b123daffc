"""The workbench's web application: Starlette routes rendering Jinja2 templates (autoescaped), one local CSS and
one local JS file, behind a guard that sets the security headers (a CSP without ``unsafe-inline``), checks the
Host header, bounds request bodies and writes one access-log line per request without ids (the route's name,
not its path: claim ids are patient data)."""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from features.contract.schema import CAUSES
from features.errors import RecoupError
from serving.workbench import auth, charts, queries
from serving.workbench.db import OUTCOMES, STATUSES

log = logging.getLogger("recoup.workbench")
access_log = logging.getLogger("recoup.workbench.access")
HERE = Path(__file__).resolve().parent
MAX_BODY = 16 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
STATUS_LABELS = {
    "not_reviewed": "not reviewed",
    "in_review": "in review",
    "no_issue": "no issue",
    "error_found": "error found",
    "refunded": "refunded",
    "appealed_upheld": "appealed: upheld",
    "appealed_overturned": "appealed: overturned",
}


@dataclass
class Config:
    """What the application serves and how."""

    engine: Engine
    store: Path | None = None
    hosts: list[str] = field(default_factory=lambda: ["localhost", "127.0.0.1", "::1"])
    secure_cookies: bool | None = None  # None: Secure when the request came over HTTPS
    limits: auth.Limits = field(default_factory=auth.Limits)
    record: Callable[[Path, Any], dict] | None = None  # features.store.reviews.record_reviews


class Guard:
    """Host allow-list, body limit, security headers, access log (ASGI, around the whole app)."""

    def __init__(self, app, hosts: list[str]):
        self.app, self.hosts, self.any_host = app, set(hosts), "*" in hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from serving.security import host_of

        t0 = time.perf_counter()
        status = [0]
        headers = {k: v for k, v in scope.get("headers", ())}
        host = headers.get(b"host", b"").decode("latin-1")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                hs = list(message.get("headers", []))
                hs += HEADERS
                hs.append((b"server-timing", f"app;dur={(time.perf_counter() - t0) * 1e3:.1f}".encode()))
                if not scope["path"].startswith("/static/"):
                    hs.append((b"cache-control", b"no-store"))
                message = {**message, "headers": hs}
            await send(message)

        received = [0]

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > MAX_BODY:
                    raise _TooLarge()
            return message

        try:
            if not self.any_host and (len(host) > 256 or host_of(host) not in self.hosts):
                await _plain(send_with_headers, 400, "Host header not allowed")
            elif int(headers.get(b"content-length", b"0") or 0) > MAX_BODY:
                await _plain(send_with_headers, 413, "request body too large")
            else:
                await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if status[0] == 0:
                await _plain(send_with_headers, 413, "request body too large")
        except ValueError:
            if status[0] == 0:
                await _plain(send_with_headers, 400, "bad request")
        except Exception as exc:  # noqa: BLE001 - Starlette re-raises after its 500 page: the server would log it
            log.error("internal error %s (message not logged: it may hold claim data)", type(exc).__name__)
            if status[0] == 0:
                await _plain(send_with_headers, 500, "internal error; see the workbench log")
        finally:
            route = scope.get("route")
            name = getattr(route, "name", None) or ("static" if scope["path"].startswith("/static/") else "other")
            access_log.info(
                "method=%s route=%s status=%s ms=%.1f",
                scope.get("method", "")[:8],
                name,
                status[0] or "-",
                (time.perf_counter() - t0) * 1e3,
            )


class _TooLarge(Exception):
    pass


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _money(v: Any) -> str:
    if v is None:
        return ""
    return f"${float(v):,.2f}"


def _pct(v: Any) -> str:
    return "" if v is None else f"{100 * float(v):.1f}%"


def create_app(cfg: Config) -> Any:
    """The ASGI application (the Starlette app inside its :class:`Guard`)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=jinja2.Undefined
    )
    templates = Jinja2Templates(env=env)
    env.filters["money"] = _money
    env.filters["pct"] = _pct
    env.globals.update(status_labels=STATUS_LABELS, statuses=STATUSES, causes=CAUSES, outcomes=OUTCOMES)
    limiter = auth.LoginLimiter()
    options_cache: dict[int, dict] = {}

    def run_id() -> int | None:
        from serving.workbench.load import latest_run

        return latest_run(cfg.engine)

    def session_of(request: Request) -> auth.Session | None:
        return auth.lookup_session(cfg.engine, request.cookies.get(auth.COOKIE), cfg.limits)

    def secure(request: Request) -> bool:
        return cfg.secure_cookies if cfg.secure_cookies is not None else request.url.scheme == "https"

    def render(request: Request, name: str, ctx: dict, status: int = 200) -> HTMLResponse:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def to_login(request: Request) -> RedirectResponse:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": nxt[:512]}), status_code=303)

    def page(handler):
        """A page that needs a session: ``handler(request, session)``; a plain (not async) handler runs in the
        thread pool, as does every database or store call: one slow request never stalls the others."""

        async def wrapped(request: Request) -> Response:
            s = await run_in_threadpool(session_of, request)
            if s is None:
                return to_login(request)
            if inspect.iscoroutinefunction(handler):
                return await handler(request, s)
            return await run_in_threadpool(handler, request, s)

        wrapped.__name__ = handler.__name__
        return wrapped

    async def form_of(request: Request, s: auth.Session | None) -> dict[str, str] | None:
        """The POSTed form (plain fields only) when its CSRF token is the session's, else None."""
        form = await request.form(max_files=0, max_fields=32)
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        if s is None or not auth.csrf_ok(s.csrf_token, data.get("csrf")):
            return None
        return data

    def forbidden(request: Request, s: auth.Session | None, msg: str, status: int = 403) -> HTMLResponse:
        return render(request, "error.html", {"session": s, "message": msg}, status)

    # ------------------------------------------------------------------ login / logout
    def login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        resp = render(
            request,
            "login.html",
            {"session": None, "csrf": token, "error": error, "next": _safe_next(request.query_params.get("next"))},
            status,
        )
        resp.set_cookie(
            auth.LOGIN_COOKIE, token, max_age=1800, httponly=True, samesite="strict", secure=secure(request), path="/"
        )
        return resp

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return login_page(request)
        form = await request.form(max_files=0, max_fields=8)
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        if not auth.csrf_ok(request.cookies.get(auth.LOGIN_COOKIE), data.get("csrf")):
            return login_page(request, "The form expired; please sign in again.", 403)
        name = (data.get("name") or "").strip()[:64]
        password = data.get("password") or ""
        wait = limiter.blocked_for(name)
        if wait > 0:
            return login_page(request, f"Too many failed attempts; try again in {int(wait // 60) + 1} minute(s).", 429)
        user = await run_in_threadpool(auth.authenticate, cfg.engine, name, password[: auth.MAX_PASSWORD + 1])
        if user is None:
            limiter.failed(name)
            return login_page(request, "Wrong name or password.", 401)
        limiter.succeeded(name)
        token, _ = await run_in_threadpool(auth.start_session, cfg.engine, user, cfg.limits)
        resp = RedirectResponse(_safe_next(data.get("next")) or "/", status_code=303)
        resp.set_cookie(
            auth.COOKIE,
            token,
            max_age=int(cfg.limits.absolute.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path="/",
        )
        resp.delete_cookie(auth.LOGIN_COOKIE, path="/")
        return resp

    async def logout(request: Request) -> Response:
        s = await run_in_threadpool(session_of, request)
        if await form_of(request, s) is None:
            return forbidden(request, s, "The form expired (CSRF token missing or wrong); reload the page.")
        await run_in_threadpool(auth.end_session, cfg.engine, request.cookies.get(auth.COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(auth.COOKIE, path="/")
        return resp

    # ------------------------------------------------------------------ worklist
    def no_run(request: Request, s: auth.Session) -> HTMLResponse:
        return forbidden(request, s, "No audit run is loaded: start the workbench with --audit DIR.", 404)

    def worklist(request: Request, s: auth.Session) -> Response:
        rid = run_id()
        if rid is None:
            return no_run(request, s)
        f = queries.Filters.parse(request.query_params)
        rows, total = queries.worklist_page(cfg.engine, rid, f, s.user)
        if rid not in options_cache:
            options_cache.clear()
            options_cache[rid] = queries.filter_options(cfg.engine, rid)
        pages = max(1, -(-total // f.per_page))
        ctx = {
            "session": s,
            "f": f,
            "rows": rows,
            "total": total,
            "pages": pages,
            "options": options_cache[rid],
            "users": auth.user_list(cfg.engine) if s.user.is_lead else [],
            "query": lambda **kw: urlencode(f.params(**kw)),
        }
        resp = render(request, "worklist.html", ctx, 400 if f.errors else 200)
        return resp

    def export(request: Request, s: auth.Session) -> Response:
        from serving.workbench import export as ex

        rid = run_id()
        if rid is None:
            return no_run(request, s)
        if request.path_params["fmt"] not in ("csv", "xlsx"):
            return forbidden(request, s, "Export as .csv or .xlsx.", 404)
        f = queries.Filters.parse(request.query_params)
        if f.errors:
            return forbidden(request, s, "; ".join(f.errors), 400)
        rows = queries.export_rows(cfg.engine, rid, f, s.user)
        stamp = dt.date.today().isoformat()
        if request.path_params["fmt"] == "csv":
            return Response(
                ex.to_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": f'attachment; filename="worklist-{stamp}.csv"'},
            )
        return Response(
            ex.to_xlsx(rows),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"content-disposition": f'attachment; filename="worklist-{stamp}.xlsx"'},
        )

    # ------------------------------------------------------------------ claim
    def may_see(s: auth.Session, c: dict) -> bool:
        a = c["review"].get("assignee_id")
        return s.user.is_lead or a is None or a == s.user.id

    def claim_ctx(s: auth.Session, rid: int, c: dict) -> dict:
        links: dict[str, bool] = {}
        refs = [str(h.get("ref")) for h in c["rule_hits"] if h.get("rule") == "duplicate" and h.get("ref")]
        present = queries.claim_ids_present(cfg.engine, rid, refs)
        for r in refs:
            links[r] = r in present
        return {
            "session": s,
            "c": c,
            "d": c.get("details") or {},
            "dup_links": links,
            "prov": queries.provider_history(cfg.engine, rid, str(c.get("billing_npi") or "")),
            "users": auth.user_list(cfg.engine),
            "errors": {},
            "form": {},
        }

    def claim_page(request: Request, s: auth.Session) -> Response:
        rid = run_id()
        if rid is None:
            return no_run(request, s)
        c = queries.claim(cfg.engine, rid, request.path_params["claim_id"])
        if c is None:
            return forbidden(request, s, "That claim is not in the loaded worklist.", 404)
        if not may_see(s, c):
            return forbidden(request, s, "This claim is assigned to another reviewer.")
        ctx = claim_ctx(s, rid, c)
        ctx["saved"] = request.query_params.get("saved") == "1"
        return render(request, "claim.html", ctx)

    async def claim_review(request: Request, s: auth.Session) -> Response:
        data = await form_of(request, s)
        if data is None:
            return forbidden(request, s, "The form expired (CSRF token missing or wrong); reload the page.")
        return await run_in_threadpool(save_review, request, s, data)

    def save_review(request: Request, s: auth.Session, data: dict[str, str]) -> Response:
        rid = run_id()
        if rid is None:
            return no_run(request, s)
        claim_id = request.path_params["claim_id"]
        c = queries.claim(cfg.engine, rid, claim_id)
        if c is None:
            return forbidden(request, s, "That claim is not in the loaded worklist.", 404)
        if not may_see(s, c):
            return forbidden(request, s, "This claim is assigned to another reviewer.")
        ids = {u.id for u in auth.user_list(cfg.engine)}
        change, errors = queries.parse_change(data, s.user, ids)
        if change is None:
            ctx = claim_ctx(s, rid, c)
            ctx.update(errors=errors, form=data)
            return render(request, "claim.html", ctx, 400)

        def record(row: dict) -> dict:
            if cfg.store is None or cfg.record is None:
                return {}
            import pandas as pd

            frame = pd.DataFrame([row])
            frame["reviewed_at"] = pd.to_datetime(frame["reviewed_at"])
            return cfg.record(cfg.store, frame)

        v = (data.get("version") or "").strip()
        try:
            queries.apply_change(
                cfg.engine,
                c["claim_id"],
                change,
                s.user,
                c.get("expected_recoupment_dollars"),
                record,
                version=int(v) if v.isascii() and v.isdigit() and len(v) < 10 else None,
            )
        except RecoupError as exc:
            ctx = claim_ctx(s, rid, c)
            ctx.update(errors={"store": f"not saved: the store refused the outcome ({exc})"}, form=data)
            return render(request, "claim.html", ctx, 409)
        except queries.Conflict:
            fresh = queries.claim(cfg.engine, rid, c["claim_id"]) or c
            if not may_see(s, fresh):
                return forbidden(request, s, "Not saved: this claim was assigned to another reviewer meanwhile.", 409)
            ctx = claim_ctx(s, rid, fresh)
            msg = "not saved: someone changed this review meanwhile (see its history); check it and save again"
            ctx.update(errors={"store": msg}, form=data)
            return render(request, "claim.html", ctx, 409)
        return RedirectResponse(f"{request.url.path.rsplit('/review', 1)[0]}?saved=1", status_code=303)

    # ------------------------------------------------------------------ provider, dashboard
    def provider_page(request: Request, s: auth.Session) -> Response:
        rid = run_id()
        if rid is None:
            return no_run(request, s)
        p = queries.provider(cfg.engine, rid, request.path_params["npi"])
        if p is None:
            return forbidden(request, s, "That provider has no claim in the loaded worklist.", 404)
        months = p["details"].get("months", {}) if p["details"] else {}
        ctx = {
            "session": s,
            "p": p,
            "volume_chart": charts.bars(
                list(months),
                {
                    "claims": [float(v["claims"]) for v in months.values()],
                    "recoupments": [float(v["recoupments"]) for v in months.values()],
                },
                title="claims and recoupments on file by month",
            ).replace("$", "")
            if months
            else "",
            "risk_spark": charts.spark(
                [float(t["probability"] or 0) for t in p["trend"]], label="mean probability by month"
            ),
        }
        return render(request, "provider.html", ctx)

    def dashboard_page(request: Request, s: auth.Session) -> Response:
        d = queries.dashboard(cfg.engine, s.user)
        chart = charts.bars(
            [w["week"][5:] for w in d["weeks"]],
            {"found": [w["found"] for w in d["weeks"]], "predicted": [w["predicted"] for w in d["weeks"]]},
            title="dollars found vs predicted per week",
        )
        return render(request, "dashboard.html", {"session": s, "d": d, "chart": chart})

    async def healthz(request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    routes = [
        Route("/", page(worklist), name="worklist"),
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/export.{fmt:str}", page(export), name="export"),
        Route("/claim/{claim_id:path}/review", page(claim_review), methods=["POST"], name="claim_review"),
        Route("/claim/{claim_id:path}", page(claim_page), name="claim"),
        Route("/provider/{npi:str}", page(provider_page), name="provider"),
        Route("/dashboard", page(dashboard_page), name="dashboard"),
        Route("/readyz", healthz, name="readyz"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse("<!DOCTYPE html><title>Not found</title><p>Not found. <a href='/'>Worklist</a></p>", 404)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("internal error %s (message not logged: it may hold claim data)", type(exc).__name__)
        return HTMLResponse("<!DOCTYPE html><title>Error</title><p>Internal error; see the workbench log.</p>", 500)

    async def db_unavailable(request: Request, exc: Exception) -> Response:
        log.error("database unavailable: %s (message not logged: it may hold claim data)", type(exc).__name__)
        return HTMLResponse(
            "<!DOCTYPE html><title>Busy</title><p>The workbench database is busy or unreachable; nothing was "
            "saved. Try again in a moment.</p>",
            503,
            headers={"retry-after": "5"},
        )

    from sqlalchemy.exc import OperationalError

    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 500: server_error, OperationalError: db_unavailable},
    )
    app.state.cfg = cfg
    return Guard(app, cfg.hosts)


def _safe_next(nxt: str | None) -> str | None:
    """A local path to go to after login (never another site: ``//evil``, ``/\\evil``, schemes are refused)."""
    if not nxt or len(nxt) > 512 or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return None
    return nxt


def secure_from_env() -> bool | None:
    v = os.environ.get("RECOUP_WORKBENCH_SECURE_COOKIES", "").strip().lower()
    return True if v in ("1", "true", "yes") else None
