"""The BentoML scoring service: validate, call the plain :class:`serving.scorer.Scorer`, return.

Endpoints (docs/contract.md, "The scoring service"):

- ``POST /score``        ``{"claim": CLAIM}``       -> SCORE, or 4xx ``{"claim_id", "error"}``
- ``POST /score_batch``  ``{"claims": [CLAIM...]}`` -> ``[SCORE | {"claim_id", "error"}, ...]`` in order
- ``GET  /model``        name, version, as-of date, horizon, rulebook version, metrics, the state's staleness
- ``POST /refresh``      new claims and recoupments from the refresh source into the state (serving/refresh.py)
- ``GET  /readyz``, ``GET /livez`` (BentoML's own probes; ready once the model and state are loaded)

Additive options, in the body or as query parameters: ``explain`` (default true: reasons) and
``record`` (default true: the scored claims join the service's history, so a resubmitted duplicate is
caught; false for what-if scoring).

The HTTP layer is a small FastAPI app mounted on the BentoML service (``@bentoml.asgi_app``) rather
than ``@bentoml.api`` methods: that gives the contract's exact paths (including ``GET /model``), our own
error bodies naming each bad field, 4xx for every client mistake (bad JSON, wrong shape, contract
violations, too many lines or claims, body too large) and per-claim error entries in a batch. BentoML
still owns the process: model loading at start, ``/readyz`` + ``/livez``, metrics, workers, ``bentoml
build``. See docs/service.md.

Scoring runs in a thread pool of ``RECOUP_SERVICE_THREADS`` threads (default 4) per worker; one worker
by default (``RECOUP_SERVICE_WORKERS``): several share the claims they record through a journal
(serving/journal.py).
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any

import anyio
import bentoml
import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response

from features.settings import MODEL_NAME, env_number
from serving import http as _http
from serving import model_store, pages
from serving.security import Guard, note_claims
from serving.schemas import (
    LIMITS,
    BatchRequest,
    Claim,
    ScoreRequest,
    claims_to_frames,
    error_entry,
    openapi_with_bodies,
    pydantic_fields,
    raw_claim_id,
    route_docs,
)

_http.install()  # bounded request heads in the workers' uvicorn (serving/http.py)
log = logging.getLogger("recoup.service")
THREADS = int(env_number("RECOUP_SERVICE_THREADS"))
WORKERS = int(env_number("RECOUP_SERVICE_WORKERS"))
MAX_BODY = int(env_number("RECOUP_MAX_BODY_BYTES"))
MAX_JSON_DEPTH = 1024  # orjson's fixed limit; the standard-library fallback is held to the same
# fault injection for tests only (docs/service.md): a claim with this claim_id raises inside scoring
FAULT_CLAIM_ID = os.environ.get("RECOUP_TEST_FAULT_CLAIM_ID") or None


# --------------------------------------------------------------------------------------
# JSON in and out
# --------------------------------------------------------------------------------------


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()[:10] if type(o).__name__ in ("date", "Timestamp") else o.isoformat()
    return str(o)


def _clean(o: Any) -> Any:  # NaN/inf are not JSON
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


def json_response(content: Any, status: int = 200) -> Response:
    """JSON with orjson (NaN/inf -> null, numpy values as numbers), the standard library if it refuses."""
    try:
        body = orjson.dumps(content, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # e.g. a non-str dict key
        try:
            body = json.dumps(content, default=_default, separators=(",", ":"), allow_nan=False).encode()
        except ValueError:
            body = json.dumps(_clean(content), default=_default, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def error_response(
    status: int, kind: str, message: str, fields: list[dict] | None = None, claim_id: str | None = None
) -> Response:
    return json_response(
        {"claim_id": claim_id, "error": {"type": kind, "message": message, "fields": fields or []}}, status
    )


class ClientError(Exception):
    def __init__(
        self, status: int, kind: str, message: str, fields: list[dict] | None = None, claim_id: str | None = None
    ):
        super().__init__(message)
        self.status, self.kind, self.message, self.fields, self.claim_id = status, kind, message, fields, claim_id


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing bodies over the size limit (413) and bad JSON (400)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ClientError(
            413,
            "body_too_large",
            f"request body over {MAX_BODY} bytes",
            [{"field": "body", "message": f"at most {MAX_BODY} bytes"}],
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ClientError(
                413,
                "body_too_large",
                f"request body over {MAX_BODY} bytes",
                [{"field": "body", "message": f"at most {MAX_BODY} bytes"}],
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson's own limit is MAX_JSON_DEPTH
            raise _too_deep() from None
        # else the standard library decides (it also takes NaN, Infinity and very large integers)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise _too_deep()
    try:
        return json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
        raise ClientError(400, "invalid_json", msg, [{"field": "body", "message": msg}]) from None


def _too_deep() -> ClientError:
    msg = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
    return ClientError(400, "invalid_json", msg, [{"field": "body", "message": msg}])


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: 35 ms for a 16 MB string
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (strings skipped), without parsing it
    (C-speed passes: ~0.7 ms per 35 KB, ~0.2 s per 4 MB). Used before the standard library's recursive
    parser only, i.e. for the rare bodies orjson refuses."""
    a = np.frombuffer(_JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET), np.uint8)
    if not len(a):
        return 0
    return int(np.cumsum(np.where((a == ord("[")) | (a == ord("{")), 1, -1)).max())


def _flag(query: dict, name: str, body_value: bool) -> bool:
    v = query.get(name)
    if v is None:
        return body_value
    v = v.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ClientError(
        422,
        "invalid_request",
        f"query parameter {name} must be true or false",
        [{"field": name, "message": "expected true or false", "value": v[:20]}],
    )


# --------------------------------------------------------------------------------------
# the app
# --------------------------------------------------------------------------------------

app = FastAPI(  # /docs is ours (serving/pages.py): Swagger UI from the service itself, not a CDN
    title="recoup scoring service", version="1", docs_url=None, openapi_url="/openapi.json", redoc_url=None
)
# the request bodies too (the handlers read the raw request); replacing app.openapi is FastAPI's documented way
app.openapi = openapi_with_bodies(app)  # type: ignore[method-assign]


@app.exception_handler(ClientError)
async def _client_error(_: Request, exc: ClientError) -> Response:
    return error_response(exc.status, exc.kind, exc.message, exc.fields, exc.claim_id)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    fields = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()
    ]
    return error_response(422, "invalid_request", "invalid request", fields)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail))


def _internal_error(exc: Exception) -> Response:
    # no claim data in logs: the exception class and where it happened (code lines), not its message
    tb = "".join(traceback.format_tb(exc.__traceback__)[-8:])
    log.error("internal error %s (message not logged: it may hold claim data)\n%s", type(exc).__name__, tb)
    return error_response(500, "internal", f"internal error ({type(exc).__name__}); see the service log")


class _CatchAll:
    """An exception of a handler becomes the 500 JSON answer here and goes no further: Starlette's
    ServerErrorMiddleware would re-raise it, with its message, to BentoML's tracing and uvicorn's log
    ("Exception in ASGI application"). serving.security.Guard is the second net."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting)
        except Exception as exc:  # noqa: BLE001
            response = _internal_error(exc)
            if not started:
                await response(scope, receive, send)


app.add_middleware(_CatchAll)


# --------------------------------------------------------------------------------------
# pages for people (serving/pages.py): every asset from the service, none from the internet
# --------------------------------------------------------------------------------------


@app.get("/docs", include_in_schema=False)
async def docs_page() -> Response:
    return HTMLResponse(pages.docs_html(app.openapi_url or "/openapi.json"))


def _asset_route(name: str) -> None:
    async def serve_asset() -> Response:
        body = await anyio.to_thread.run_sync(pages.asset, name)
        return Response(body, media_type=pages.ASSETS[name], headers={"cache-control": "public, max-age=3600"})

    app.add_api_route(pages.ASSET_PREFIX + name, serve_asset, methods=["GET"], include_in_schema=False)


for _name in pages.ASSETS:  # one exact path each: serving.security.Guard serves known paths only
    _asset_route(_name)


@app.get("/contract", include_in_schema=False)
async def contract_page() -> Response:
    path = pages.contract_path()
    if path is None:
        return error_response(404, "not_found", "docs/contract.md is not part of this installation")
    return HTMLResponse(pages.contract_html(path.read_text(encoding="utf-8")))


def _claim_count(body: Any) -> int | None:
    """Claims in a request body, for the access log (a count, never a value)."""
    if not isinstance(body, dict):
        return None
    if "claims" in body:
        return len(body["claims"]) if isinstance(body["claims"], list) else None
    return 1 if "claim" in body else None


def _faulty(fn):
    """Test-only (``RECOUP_TEST_FAULT_CLAIM_ID``): raise, with the claim's values in the message, when
    the claim with that id is scored, so tests can check that no log shows them."""

    def run(body: Any, query: dict) -> tuple[int, Any]:
        many = body.get("claims") if isinstance(body, dict) else None
        claims = ([body.get("claim")] if isinstance(body, dict) else []) + (many if isinstance(many, list) else [])
        for c in claims:
            if isinstance(c, dict) and c.get("claim_id") == FAULT_CLAIM_ID:
                raise RuntimeError(
                    f"injected fault scoring claim {c.get('claim_id')} of patient "
                    f"{c.get('patient_id')} charge {c.get('total_charge')}"
                )
        return fn(body, query)

    return run


def journal_dir() -> Path:
    """Where the workers' shared journal lives: ``RECOUP_JOURNAL_DIR``, else ``$RECOUP_HOME/service``."""
    from features.settings import recoup_home

    d = os.environ.get("RECOUP_JOURNAL_DIR")
    return Path(d) if d else recoup_home() / "service"


_MODEL_TAG = model_store.bento_model_tag()

if os.environ.get("RECOUP_SERVE_PID") == str(os.getppid()):  # `bentoml serve` started by `recoup serve`
    from serving.serve import watch_parent

    watch_parent()  # `recoup serve` killed (kill -9): BentoML stops its workers and exits


@bentoml.asgi_app(app, path="/")
@bentoml.service(
    name="recoup",
    workers=WORKERS,  # one by default; several share what they record through a journal (docs/service.md)
    threads=THREADS,
    traffic={"timeout": 120, "max_concurrency": 256},
    logging={"access": {"enabled": False}},
)
class RecoupService:
    """Recoupment risk of claims, with the champion model and the history it was trained on."""

    if _MODEL_TAG is not None:  # declared so that `bentoml build` packs the model into the Bento
        model_ref = bentoml.models.BentoModel(_MODEL_TAG)

    def __init__(self) -> None:
        from serving.scorer import Scorer
        from serving.serve import watch_parent

        from bentoml._internal.context import server_context

        if server_context.worker_index is not None:  # a `bentoml serve` worker (not a test's TestClient)
            watch_parent()  # its BentoML parent killed (kill -9): stop instead of holding the port

        t0 = time.perf_counter()
        ref = model_store.resolve_model()
        self.loaded_from = ref
        # the latest snapshot of this model's recorded claims, its journal replayed (serving/journal.py)
        self.scorer = Scorer.from_dir(ref.path, journal_dir=journal_dir())
        self.scorer.warm_up()
        # the model, the state and the rulebook's maps live as long as the process: keep them out of
        # the garbage collector's full passes (measured: ~100 ms each, 1.65 -> 0.2 ms per 100-claim request)
        gc.collect()
        gc.freeze()
        self.limiter = anyio.CapacityLimiter(THREADS)
        from serving.refresh import CallGap, Refresher, source_from_env

        # the state keeps learning (recoup serve --refresh-from/--refresh-every): one worker refreshes on
        # the schedule, the others apply its journal records
        self.refresh_source, self.refresh_every = source_from_env()
        self.refresher: Refresher | None = None
        self._refresh_gap = CallGap(int(env_number("RECOUP_REFRESH_MIN_GAP")))
        if self.refresh_source is not None and self.refresh_every and server_context.worker_index in (None, 1):
            self.refresher = Refresher(self.scorer, self.refresh_source, self.refresh_every)
            self.refresher.start()
        if WORKERS > 1:  # split the cores between the workers' LightGBM threads
            self.scorer.bundle.meta["num_threads"] = max(1, (os.cpu_count() or 1) // WORKERS)
        meta = self.scorer.bundle.meta
        self.model_info = {
            "name": MODEL_NAME,
            "version": self.scorer.model_version,
            "as_of": meta.get("as_of"),
            "horizon_days": meta.get("horizon_days"),
            "rulebook_version": meta.get("rulebook_version"),
            "metrics": meta.get("metrics", {}),
            "risk_bands": meta.get("risk_bands", {"medium": 0.05, "high": 0.2}),
            "source": ref.source,
            "limits": {**LIMITS, "body_bytes": MAX_BODY},
            "workers": WORKERS,
        }
        log.info(
            "recoup service ready: model %s v%s (as of %s) from %s in %.1fs",
            MODEL_NAME,
            self.scorer.model_version,
            meta.get("as_of"),
            ref.source,
            time.perf_counter() - t0,
        )

    def __is_ready__(self) -> bool:
        return getattr(self, "scorer", None) is not None

    @bentoml.on_shutdown
    def compact_journal(self) -> None:
        """At shutdown: the journal's claims into a snapshot (the next start replays nothing)."""
        refresher = getattr(self, "refresher", None)
        if refresher is not None:
            refresher.stop()
        scorer = getattr(self, "scorer", None)
        if scorer is not None:
            scorer.close()

    # ---------------------------------------------------------------- plain Python (also used by tests)
    def score_one(self, body: Any, query: dict | None = None) -> tuple[int, Any]:
        query = query or {}
        if not isinstance(body, dict):
            raise ClientError(
                422,
                "invalid_request",
                'the body must be a JSON object {"claim": CLAIM}',
                [{"field": "body", "message": "expected an object with a 'claim' field"}],
            )
        try:
            req = ScoreRequest.model_validate(body)
        except ValidationError as exc:
            fields = pydantic_fields(exc, "")
            cid = raw_claim_id(body.get("claim"))
            return 422, error_entry(cid, fields, "invalid_claim" if "claim" in body else "invalid_request")
        explain, record = _flag(query, "explain", req.explain), _flag(query, "record", req.record)
        conv = claims_to_frames([req.claim], ["claim"])
        if conv.errors:
            return 422, error_entry(req.claim.claim_id, conv.errors[0])
        return 200, self.scorer.score_claims(
            conv.claims,
            conv.lines,
            explain=explain,
            record=record,
            as_sent=[req.claim],
        )[0]

    def score_many(self, body: Any, query: dict | None = None) -> tuple[int, Any]:
        query = query or {}
        if not isinstance(body, dict):
            raise ClientError(
                422,
                "invalid_request",
                'the body must be a JSON object {"claims": [CLAIM, ...]}',
                [{"field": "body", "message": "expected an object with a 'claims' array"}],
            )
        try:
            req = BatchRequest.model_validate(body)
        except ValidationError as exc:
            return 422, error_entry(None, pydantic_fields(exc, ""), "invalid_request")
        explain, record = _flag(query, "explain", req.explain), _flag(query, "record", req.record)
        out: list[Any] = [None] * len(req.claims)
        parsed: list[Claim] = []
        where: list[int] = []
        for i, obj in enumerate(req.claims):
            try:
                parsed.append(Claim.model_validate(obj))
                where.append(i)
            except ValidationError as exc:
                out[i] = error_entry(raw_claim_id(obj), pydantic_fields(exc, f"claims[{i}]"))
        if parsed:
            conv = claims_to_frames(parsed, [f"claims[{i}]" for i in where], where)
            at = {p: k for k, p in enumerate(where)}  # request position -> parsed claim
            for i, fields in conv.errors.items():
                out[i] = error_entry(parsed[at[i]].claim_id, fields)
            if conv.ok:
                sent = [parsed[at[i]] for i in conv.ok] if record else None
                scores = self.scorer.score_claims(
                    conv.claims,
                    conv.lines,
                    explain=explain,
                    record=record,
                    as_sent=sent,
                )
                for i, s in zip(conv.ok, scores):
                    out[i] = s
        return 200, out

    async def _run(self, fn, request: Request) -> Response:
        body = await read_json(request)
        query = dict(request.query_params)
        note_claims(request.scope, _claim_count(body))
        if FAULT_CLAIM_ID is not None:
            fn = _faulty(fn)
        status, content = await anyio.to_thread.run_sync(fn, body, query, limiter=self.limiter)
        return json_response(content, status)

    # ---------------------------------------------------------------- HTTP
    @app.post("/score", summary="Score one claim", response_model=None, **route_docs("score"))
    async def score(self, request: Request) -> Response:
        """Body ``{"claim": CLAIM}`` (plus optional ``"explain"``, ``"record"``) -> SCORE."""
        return await self._run(self.score_one, request)

    @app.post(
        "/score_batch",
        summary="Score claims in order; invalid ones get an error entry",
        response_model=None,
        **route_docs("score_batch"),
    )
    async def score_batch(self, request: Request) -> Response:
        """Body ``{"claims": [CLAIM, ...]}`` -> ``[SCORE | {"claim_id", "error"}, ...]``, same order."""
        return await self._run(self.score_many, request)

    @app.get("/", include_in_schema=False)
    async def home(self) -> Response:
        """What this service is, the model it serves, and links to the docs (serving/pages.py)."""
        return HTMLResponse(pages.index_html(self.model_info))

    @app.get("/model", summary="The model being served", response_model=None, **route_docs("model"))
    async def model(self) -> Response:
        return json_response({**self.model_info, "state": await anyio.to_thread.run_sync(self._state_info)})

    def _state_info(self) -> dict:
        from serving.refresh import status

        return status(self.scorer, self.refresh_source, self.refresh_every)

    @app.post(
        "/refresh",
        summary="Add new claims and recoupments from the refresh source to the history state",
        response_model=None,
        **route_docs("refresh"),
    )
    async def refresh_state(self, request: Request) -> Response:
        """Body ``{}``. Needs an API key once keys exist (every path does); with ``RECOUP_REFRESH_KEYS``
        (key names, comma-separated) only those keys."""
        from serving.refresh import refresh

        if self.refresh_source is None:
            raise ClientError(409, "no_refresh_source", "no refresh source: start with recoup serve --refresh-from DIR")
        allowed = {k.strip() for k in os.environ.get("RECOUP_REFRESH_KEYS", "").split(",") if k.strip()}
        key = (request.scope.get("recoup") or {}).get("key")
        if allowed and key not in allowed:
            raise ClientError(403, "forbidden", "this API key may not refresh the state (RECOUP_REFRESH_KEYS)")
        wait = self._refresh_gap.wait()
        if wait:
            r = error_response(
                429, "too_many_refreshes", f"a refresh was called less than {self._refresh_gap.seconds} s ago"
            )
            r.headers["Retry-After"] = str(wait)
            return r
        info = await anyio.to_thread.run_sync(refresh, self.scorer, self.refresh_source, limiter=self.limiter)
        if info["outcome"] == "busy":
            return error_response(409, "refresh_running", info["error"])
        self._refresh_gap.ran()
        if info["outcome"] != "ok":
            return error_response(500, "refresh_failed", f"refresh failed: {info['error']}")
        return json_response({"refresh": info, "state": await anyio.to_thread.run_sync(self._state_info)})


class _GuardedService(type(RecoupService)):  # type: ignore[misc]
    """The BentoML service whose ASGI app (what every worker serves) sits inside
    :class:`serving.security.Guard`: outside BentoML's own middlewares, so its metrics only ever see
    the known paths and no exception text reaches uvicorn's log."""

    __slots__ = ()

    def to_asgi(self, *args: Any, **kwargs: Any) -> Any:
        return Guard(super().to_asgi(*args, **kwargs), route_paths(app.routes) | {"/metrics"})


def route_paths(routes: list) -> set[str]:
    """Every path of the app (routers included by BentoML's class views walked into)."""
    out: set[str] = set()
    for r in routes:
        if getattr(r, "path", None):
            out.add(r.path)
        elif getattr(r, "original_router", None) is not None:
            out |= route_paths(r.original_router.routes)
    return out


RecoupService.__class__ = _GuardedService  # type: ignore[method-assign]  # to_asgi above, on this one object
