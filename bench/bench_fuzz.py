"""Fuzzing the real scoring service: schemathesis-driven requests and ~230 hand-made bad inputs.

Usage::

    python bench/bench_fuzz.py [--bundle-dir BUNDLE] [--examples 150] [--stateful 40]
        [--unknown-paths 2000] [--api-key KEY] [--out bench_fuzz.json]

It starts the real service (``bentoml serve``, one worker, as bench/bench_service.py does) on a free
127.0.0.1 port with ``RECOUP_BUNDLE_DIR`` = ``--bundle-dir`` (default: a small model trained here on the
small synthetic history, in a temporary folder), then:

1. **schemathesis** over the live ``/openapi.json``: every operation in positive and negative modes
   (``--examples`` each), then ``--stateful`` stateful sequences; counts requests, answers by status,
   5xx, hangs (no answer in 30 s) and failed checks (5xx, body not matching the declared schema);
2. **bad inputs** (:func:`bad_inputs`): deep JSON nesting, huge lists, out-of-range and non-finite
   amounts, impossible dates, wrong JSON types for every field, wrong content types, bad Host headers,
   overlong strings, unknown paths and methods, non-UTF-8 and truncated bodies, duplicate keys, limits
   + 1...; each is sent once, then ``/readyz`` is asked: requests, 5xx, hangs, unhealthy-after;
3. **metrics growth**: the size of ``/metrics`` and the service's memory before and after
   ``--unknown-paths`` GETs of distinct unknown paths.

Loopback only; every loop is bounded. ``--api-key`` (or ``RECOUP_API_KEY``) is sent as
``Authorization: Bearer KEY`` (the service is open on loopback when it has no key file).
Prints JSON (with the load average before and after).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_service import free_port, new_claims, start_service, stop  # noqa: E402

TIMEOUT_S = 30.0  # a request without an answer in this time is a hang


def api_key(arg: str | None = None) -> str | None:
    return arg or os.environ.get("RECOUP_API_KEY") or None


def auth_headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def small_bundle(dst: Path, data: Path | None = None, full: bool = False) -> Path:
    """Train a model on ``data`` (default: the small synthetic history) and save its bundle + state in ``dst``.

    ``full``: the default training configuration; else a small one (40 + 20 trees), as the tests use."""
    from training.config import load_config
    from training.train import train_model

    if data is not None:
        from features.contract import load_history

        history = load_history(data)
    else:
        from tests.helpers.data import small_history

        history = small_history()[0]
    cfg = load_config(overrides={})
    if not full:
        cfg["likelihood"]["n_estimators"] = 40
        cfg["cause"]["n_estimators"] = 20
    result = train_model(history, config=cfg)
    result.bundle.save(dst)
    result.state.save(dst / "state")
    return dst


def history_for(data: Path | None):
    if data is not None:
        from features.contract import load_history

        return load_history(data)
    from tests.helpers.data import small_history

    return small_history()[0]


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages (the benches share the cores with other work)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------------------
# schemathesis
# --------------------------------------------------------------------------------------


@dataclass
class FuzzStats:
    """What a schemathesis run sent and got back."""

    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0
    hangs: int = 0
    failures: list[str] = field(default_factory=list)  # one line per failed check (first 50 kept)
    skipped: list[str] = field(default_factory=list)  # operations/modes schemathesis could not generate for
    resent: int = 0  # requests whose body was sent before (stateful: a retry, the claim in a batch)
    seen: set = field(default_factory=set, repr=False)

    def fail(self, line: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(line[:300])


def _checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    return [not_a_server_error, response_schema_conformance]


def _hypothesis_settings(max_examples: int, **extra):
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        database=None,
        **extra,
    )


def fill_request_bodies(doc: dict) -> list[str]:
    """Give the POST operations of an OpenAPI document that declare no request body the one of
    serving.schemas (``ScoreRequest``; ``BatchRequest`` with ``claims`` as CLAIMs), so schemathesis has
    claims to vary; returns the operations filled. Operations that declare a body are left as they are."""
    from serving.schemas import MAX_CLAIMS_PER_BATCH, Claim, Options, ScoreRequest

    ref = "#/components/schemas/{model}"
    components = doc.setdefault("components", {}).setdefault("schemas", {})

    def schema_of(model) -> dict:
        s = model.model_json_schema(ref_template=ref)
        for name, sub in s.pop("$defs", {}).items():
            components.setdefault(name, sub)
        return s

    claim = schema_of(Claim)
    components.setdefault("Claim", claim)
    batch = schema_of(Options)
    batch["properties"]["claims"] = {
        "type": "array",
        "items": {"$ref": ref.format(model="Claim")},
        "maxItems": MAX_CLAIMS_PER_BATCH,
    }
    batch["required"] = ["claims"]
    batch["title"] = "BatchRequest"
    bodies = {"/score": schema_of(ScoreRequest), "/score_batch": batch}
    filled = []
    for path, body in bodies.items():
        op = doc.get("paths", {}).get(path, {}).get("post")
        if op is not None and not op.get("requestBody"):
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            filled.append(f"POST {path}")
    return filled


def add_resubmit_links(doc: dict) -> list[str]:
    """OpenAPI links for stateful runs when the document has none: a claim scored by ``/score`` is sent
    again (the same body: a client's retry), then inside a batch; a batch is sent again. Returns the
    links added."""
    paths = doc.get("paths", {})
    ops = {p: paths.get(p, {}).get("post") for p in ("/score", "/score_batch")}
    if any(op is None or not op.get("operationId") for op in ops.values()):
        return []
    if any(r.get("links") for op in ops.values() for r in op.get("responses", {}).values()):
        return []
    score, batch = ops["/score"]["operationId"], ops["/score_batch"]["operationId"]
    links = {
        "/score": {
            "Resubmit": {"operationId": score, "requestBody": "$request.body"},
            "InBatch": {"operationId": batch, "requestBody": {"claims": ["$request.body#/claim"]}},
        },
        "/score_batch": {"ResubmitBatch": {"operationId": batch, "requestBody": "$request.body"}},
    }
    added = []
    for path, ls in links.items():
        ok = ops[path].setdefault("responses", {}).setdefault("200", {"description": "OK"})
        ok["links"] = ls
        added += [f"{path} -> {name}" for name in ls]
    return added


def load_schema(
    url: str, key: str | None, modes: list | None = None, max_examples: int = 100, fill_bodies: bool = True
):
    """The live ``/openapi.json`` of the service at ``url`` as a schemathesis schema; with ``fill_bodies``,
    POST operations without a request body get serving.schemas' (:func:`fill_request_bodies`)."""
    import httpx
    import schemathesis

    headers = auth_headers(key)
    r = httpx.get(f"{url}/openapi.json", headers=headers, timeout=TIMEOUT_S)
    r.raise_for_status()
    doc = r.json()
    filled = (fill_request_bodies(doc) + add_resubmit_links(doc)) if fill_bodies else []
    schema = schemathesis.openapi.from_dict(doc)
    schema.filled = filled  # type: ignore[attr-defined]
    schema.config.update(base_url=url, headers=headers or None, request_timeout=TIMEOUT_S)
    if modes is not None:
        schema.config.generation.update(modes=modes, max_examples=max_examples)
    return schema


def _send_case(case, label: str, key: str | None, stats: FuzzStats) -> Any:
    import requests

    try:
        response = case.call(headers=auth_headers(key), timeout=TIMEOUT_S)
    except requests.Timeout:
        stats.hangs += 1
        stats.fail(f"{label}: no answer in {TIMEOUT_S:.0f} s")
        return None
    except requests.RequestException as exc:
        stats.fail(f"{label}: {type(exc).__name__}")
        return None
    stats.requests += 1
    stats.statuses[response.status_code] += 1
    body = getattr(case, "body", None)
    sent = hash((case.operation.path, json.dumps(body, sort_keys=True, default=str))) if body is not None else None
    if sent is not None:
        stats.resent += sent in stats.seen
        stats.seen.add(sent)
    if response.status_code >= 500:
        stats.server_errors += 1
    try:
        case.validate_response(response, checks=_checks())
    except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis Failure / FailureGroup
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        stats.fail(f"{label}: {response.status_code} {first}")
    return response


def fuzz_stateless(
    url: str, mode: str, max_examples: int, key: str | None = None, stats: FuzzStats | None = None
) -> FuzzStats:
    """Every operation of the live schema, ``max_examples`` cases each in ``mode`` (positive/negative)."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.control import SkipTest

    stats = stats or FuzzStats()
    gm = GenerationMode(mode)
    schema = load_schema(url, key, [gm], max_examples)
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path} [{mode}]"
        try:
            strategy = op.as_strategy(generation_mode=gm)
        except Exception as exc:  # noqa: BLE001 - nothing to generate in this mode
            stats.skipped.append(f"{label}: {type(exc).__name__}")
            continue

        @_hypothesis_settings(max_examples)
        @given(strategy)
        def run(case) -> None:
            _send_case(case, label, key, stats)

        try:
            run()
        except (Unsatisfiable, SkipTest) as exc:  # e.g. no parameters or body to make invalid
            stats.skipped.append(f"{label}: {str(exc).strip()[:150] or type(exc).__name__}")
    return stats


def fuzz_stateful(
    url: str, max_examples: int, key: str | None = None, steps: int = 8, stats: FuzzStats | None = None
) -> FuzzStats:
    """Schemathesis' state machine over the live schema (positive and negative steps)."""
    from schemathesis import GenerationMode
    from schemathesis.core.errors import NoLinksFound

    stats = stats or FuzzStats()
    schema = load_schema(url, key, list(GenerationMode), max_examples)
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def call(self, case, **kwargs):
            response = _send_case(case, f"{case.operation.method.upper()} {case.operation.path} [stateful]", key, stats)
            if response is None:
                raise AssertionError("no answer")
            return response

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            pass  # done in call (counted, not raised: the run goes on)

    try:
        Machine.run(settings=_hypothesis_settings(max_examples, stateful_step_count=steps))
    except NoLinksFound:  # nothing to chain
        stats.skipped.append("stateful: no links between operations")
    except Exception as exc:  # noqa: BLE001 - a failed step (counted above) or a driver error: a failure
        stats.fail(f"stateful: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:150]}")
    return stats


# --------------------------------------------------------------------------------------
# hand-made bad inputs
# --------------------------------------------------------------------------------------


@dataclass
class Bad:
    """One bad request: a name, method, path, body (bytes) and headers (content type JSON unless given)."""

    name: str
    method: str = "POST"
    path: str = "/score"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _j(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def _claim_body(claim: dict, batch: bool = False) -> bytes:
    return _j({"claims": [claim], "record": False} if batch else {"claim": claim, "record": False})


def _with(claim: dict, path: tuple, value: Any) -> dict:
    c = copy.deepcopy(claim)
    obj = c
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value
    return c


def _raw(claim: dict, path: tuple, literal: str) -> bytes:
    """The claim body with the value at ``path`` replaced by a raw JSON literal (NaN, Infinity, 1e999)."""
    marker = "__RAW_LITERAL__"
    return _claim_body(_with(claim, path, marker)).replace(f'"{marker}"'.encode(), literal.encode())


def bad_inputs(good: dict) -> list[Bad]:
    """~230 bad requests built around one good claim (``good``: a CLAIM dict)."""
    out: list[Bad] = []
    add = out.append
    # deep nesting, as the body and inside a field
    for depth in (1_000, 5_000, 10_000, 100_000):
        for path in ("/score", "/score_batch"):
            add(Bad(f"nested arrays {depth} {path}", path=path, body=b"[" * depth + b"]" * depth))
            add(Bad(f"nested objects {depth} {path}", path=path, body=b'{"a":' * depth + b"1" + b"}" * depth))
    for depth in (2_000, 50_000):
        body = _claim_body(_with(good, ("diagnosis_codes",), "__N__")).replace(b'"__N__"', b"[" * depth + b"]" * depth)
        add(Bad(f"nested diagnosis_codes {depth}", body=body))
    # bodies that are not a request
    for name, body in (
        ("empty", b""),
        ("null", b"null"),
        ("true", b"true"),
        ("number", b"1"),
        ("string", b'"claim"'),
        ("array", b"[]"),
        ("object", b"{}"),
        ("whitespace", b" \n\t "),
    ):
        for path in ("/score", "/score_batch"):
            add(Bad(f"body {name} {path}", path=path, body=body))
    full = _claim_body(good)
    for frac in (0.1, 0.5, 0.99):
        for path, body in (("/score", full), ("/score_batch", _claim_body(good, True))):
            add(Bad(f"truncated {int(frac * 100)}% {path}", path=path, body=body[: int(len(body) * frac)]))
    # encodings
    add(Bad("non-UTF-8 bytes", body=b'{"claim": "\xff\xfe\xfd"}'))
    add(
        Bad(
            "latin-1 body",
            body=json.dumps({"claim": _with(good, ("patient_id",), "Jos\u00e9")}, ensure_ascii=False).encode("latin-1"),
        )
    )
    add(Bad("UTF-16 body", body=full.decode().encode("utf-16")))
    add(Bad("UTF-8 BOM", body=b"\xef\xbb\xbf" + full))
    add(Bad("lone surrogate escape", body=_raw(good, ("claim_id",), '"\\ud800"')))
    add(Bad("NUL in a string", body=_claim_body(_with(good, ("claim_id",), "A\x00B"))))
    add(Bad("control characters", body=_claim_body(_with(good, ("patient_id",), "\x1b[31m\r\n"))))
    add(Bad("emoji and RTL marks", body=_claim_body(_with(good, ("patient_id",), "\u202e\U0001f600"))))
    # duplicate keys
    add(Bad("duplicate key claim", body=b'{"claim": ' + _j(good) + b', "claim": {"claim_id": "X"}}'))
    add(
        Bad(
            "duplicate key claim_id",
            body=_claim_body(good).replace(b'"claim_id":', b'"claim_id": "DUP", "claim_id":', 1),
        )
    )
    add(Bad("duplicate key record", body=b'{"record": false, "claim": ' + _j(good) + b', "record": "x"}'))
    # amounts and units: out of range, non-finite, wrong type
    literals = {
        "1e308": "1e308",
        "-1e308": "-1e308",
        "1e999": "1e999",
        "Infinity": "Infinity",
        "-Infinity": "-Infinity",
        "NaN": "NaN",
        "-1": "-1",
        "-0.0": "-0.0",
        "1e-320": "1e-320",
        "10**400": "1" + "0" * 400,
        "string 12.5": '"12.5"',
        "string 1e308": '"1e308"',
        "true": "true",
        "false": "false",
        "null": "null",
        "[]": "[]",
        "{}": "{}",
    }
    for fld in (("total_charge",), ("lines", 0, "line_charge"), ("lines", 0, "units")):
        for name, lit in literals.items():
            add(Bad(f"{'.'.join(map(str, fld))} = {name}", body=_raw(good, fld, lit)))
    # dates
    dates = [
        "0000-01-01",
        "-2024-01-01",
        "\uff12\uff10\uff12\uff14-\uff10\uff11-\uff10\uff11",
        "2024-02-30",
        "2024-13-01",
        "20240101",
        "2024-1-1",
        "9999-12-31",
        "1900-01-01",
        "2024-01-01T00:00:00",
        "",
        " 2024-01-01 ",
        "+2024-01-01",
        20240101,
        None,
        ["2024-01-01"],
    ]
    for fld in (("submitted_date",), ("lines", 0, "service_date")):
        for d in dates:
            add(Bad(f"{'.'.join(map(str, fld))} = {d!r}", body=_claim_body(_with(good, fld, d))))
    # wrong JSON types for every field
    wrong = [{"x": 1}, [1, 2], True, 12.5, -1, "", None]
    for fld in sorted(k for k in good if k != "lines"):
        for w in [w for w in wrong if type(w) is not type(good[fld])][:3]:
            add(Bad(f"{fld} = {json.dumps(w)}", body=_claim_body(_with(good, (fld,), w))))
    for fld in sorted(good["lines"][0]):
        for w in [w for w in wrong if type(w) is not type(good["lines"][0][fld])][:2]:
            add(Bad(f"lines[0].{fld} = {json.dumps(w)}", body=_claim_body(_with(good, ("lines", 0, fld), w))))
    add(Bad("lines = {}", body=_claim_body(_with(good, ("lines",), {}))))
    add(Bad("lines = [1, null]", body=_claim_body(_with(good, ("lines",), [1, None]))))
    add(Bad("claim = []", body=_j({"claim": []})))
    add(Bad("record = 'yes'", body=_j({"claim": good, "record": "yes"})))
    add(Bad("explain = 2", body=_j({"claim": good, "explain": 2})))
    # lists and sizes
    for n in (26, 1_000, 100_000, 1_000_000):
        add(Bad(f"{n} diagnosis codes", body=_claim_body(_with(good, ("diagnosis_codes",), ["E119"] * n))))
    add(
        Bad(
            "1,000,000 diagnosis codes as one string",
            body=_claim_body(_with(good, ("diagnosis_codes",), ";".join(["E119"] * 1_000_000))),
        )
    )
    add(Bad("diagnosis codes as lists", body=_claim_body(_with(good, ("diagnosis_codes",), [["E119"], ["I10"]]))))
    add(Bad("100 modifiers", body=_claim_body(_with(good, ("lines", 0, "modifiers"), ["25"] * 100))))
    add(Bad("1,000 diagnosis pointers", body=_claim_body(_with(good, ("lines", 0, "diagnosis_pointers"), [1] * 1000))))
    add(Bad("pointer 10**30", body=_claim_body(_with(good, ("lines", 0, "diagnosis_pointers"), [10**30]))))
    add(Bad("line_number 10**30", body=_claim_body(_with(good, ("lines", 0, "line_number"), 10**30))))
    line = good["lines"][0]
    for n in (0, 51, 1_000, 10_000):
        lines = [dict(line, line_number=i + 1) for i in range(n)]
        add(Bad(f"{n} lines", body=_claim_body(_with(good, ("lines",), lines))))
    add(Bad("duplicate line numbers", body=_claim_body(_with(good, ("lines",), [line, line]))))
    claims_1001 = [dict(good, claim_id=f"B-{i}") for i in range(1001)]
    add(Bad("1,001 claims", path="/score_batch", body=_j({"claims": claims_1001, "record": False})))
    add(Bad("10,000 nulls as claims", path="/score_batch", body=_j({"claims": [None] * 10_000})))
    add(Bad("claims of every JSON type", path="/score_batch", body=_j({"claims": [1, "a", None, [], True, {}]})))
    add(Bad("claims = {}", path="/score_batch", body=_j({"claims": {}})))
    add(Bad("same claim twice in a batch", path="/score_batch", body=_j({"claims": [good, good], "record": False})))
    # overlong strings
    for fld, n in (
        ("claim_id", 10_000),
        ("claim_id", 1_000_000),
        ("patient_id", 100_000),
        ("billing_npi", 10_000),
        ("payer_id", 100_000),
        ("plan_type", 10_000),
    ):
        add(Bad(f"{fld} of {n:,} characters", body=_claim_body(_with(good, (fld,), "9" * n))))
    add(
        Bad(
            "procedure_code of 10,000 characters",
            body=_claim_body(_with(good, ("lines", 0, "procedure_code"), "9" * 10_000)),
        )
    )
    add(
        Bad(
            "one diagnosis code of 100,000 characters",
            body=_claim_body(_with(good, ("diagnosis_codes",), ["E" * 100_000])),
        )
    )
    add(Bad("unknown field of 5 MB", body=_claim_body(_with(good, ("notes",), "x" * 5_000_000))))
    add(Bad("body of 17 MB", body=_j({"claim": good, "pad": "x" * 17_000_000})))
    # content types
    for ct in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "",
        "application/jsonp",
    ):
        for path in ("/score", "/score_batch"):
            body = full if path == "/score" else _claim_body(good, True)
            add(Bad(f"content-type {ct or '(none)'} {path}", path=path, body=body, headers={"content-type": ct}))
    add(
        Bad(
            "form-encoded claim",
            body=b"claim=C1&record=false",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    )
    add(Bad("XML body", body=b"<claim><claim_id>C1</claim_id></claim>", headers={"content-type": "application/xml"}))
    # Host headers
    for host in (
        "evil.example",
        "evil.example:3000",
        "127.0.0.1.evil.example",
        "localhost:1",
        "h" * 10_000,
        "[::1]:99999",
        "xn--80ak6aa92e.com",
    ):
        add(Bad(f"Host {host[:30]} POST", body=full, headers={"host": host}))
        add(Bad(f"Host {host[:30]} GET /model", method="GET", path="/model", headers={"host": host}))
    # unknown paths, methods, query strings
    for p in (
        "/x",
        "/score/",
        "/SCORE",
        "/score%00",
        "/../../etc/passwd",
        "/score_batch/1",
        "/" + "a" * 8_000,
        "/metrics/x",
        "/docs/../openapi.json",
        "/%ff%fe",
        "/score?record=%ff",
        "/model?x=" + "y" * 50_000,
    ):
        add(Bad(f"GET {p[:40]}", method="GET", path=p))
    for m, p in (
        ("GET", "/score"),
        ("PUT", "/score"),
        ("DELETE", "/score_batch"),
        ("PATCH", "/model"),
        ("OPTIONS", "/score"),
        ("HEAD", "/model"),
        ("TRACE", "/score"),
        ("POST", "/model"),
    ):
        add(Bad(f"{m} {p}", method=m, path=p, body=full if m in ("PUT", "PATCH") else None))
    for q in ("record=maybe", "explain=%00", "record=true&record=false", "record=" + "1" * 100_000):
        add(Bad(f"query {q[:30]}", path=f"/score?{q}", body=full))
    return list({b.name: b for b in reversed(out)}.values())[::-1]  # one of each name, in order


def _rss_kb(root: int) -> int:
    """Resident memory of the service: the process ``root`` and all its descendants (BentoML's workers
    run in sessions of their own), in kB."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, todo = {root}, [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in family]
        family.update(kids)
        todo += kids
    total = 0
    for pid in family:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def send_raw(port: int, bad: Bad, key: str | None, timeout: float = TIMEOUT_S) -> int:
    """One bad request exactly as built (path, Host and body untouched, on a new connection); its status."""
    import http.client

    headers = {"content-type": "application/json", **auth_headers(key), **bad.headers}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(bad.method, bad.path, skip_host="host" in headers, skip_accept_encoding=True)
        for k, v in headers.items():
            if v != "" or k == "host":
                conn.putheader(k, v)
        if bad.body is not None or bad.method in ("POST", "PUT", "PATCH"):
            conn.putheader("content-length", str(len(bad.body or b"")))
        conn.endheaders(bad.body or None)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def send_bad_inputs(url: str, inputs: list[Bad], key: str | None) -> dict:
    """Send each bad input once, then ask ``/readyz``; count 5xx, hangs, unhealthy-after and the slowest."""
    import http.client
    import socket

    import httpx

    port = int(url.rsplit(":", 1)[1])
    res: dict = {
        "requests": 0,
        "statuses": Counter(),
        "server_errors": [],
        "hangs": [],
        "unhealthy_after": [],
        "transport_errors": [],
        "scored_by_score": [],
        "slowest_s": [],
        "by_input": {},
    }
    times = []
    for bad in inputs:
        t = time.perf_counter()
        try:
            status = send_raw(port, bad, key)
            res["by_input"][bad.name] = status
            res["statuses"][status] += 1
            if status >= 500:
                res["server_errors"].append(f"{bad.name}: {status}")
            elif status == 200 and bad.method == "POST" and bad.path.split("?")[0] == "/score":
                res["scored_by_score"].append(bad.name)  # a bad claim scored (some are harmless: see docs)
        except (socket.timeout, TimeoutError):
            res["hangs"].append(bad.name)
            res["by_input"][bad.name] = "hang"
        except (OSError, http.client.HTTPException) as exc:  # e.g. the server closed the connection
            res["transport_errors"].append(f"{bad.name}: {type(exc).__name__}")
            res["by_input"][bad.name] = type(exc).__name__
        res["requests"] += 1
        times.append((time.perf_counter() - t, bad.name))
        try:
            healthy = httpx.get(f"{url}/readyz", headers=auth_headers(key), timeout=10).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if not healthy:
            res["unhealthy_after"].append(bad.name)
            time.sleep(2)
    res["slowest_s"] = [f"{n}: {s:.2f}" for s, n in sorted(times, reverse=True)[:10]]
    res["statuses"] = dict(sorted(res["statuses"].items()))
    return res


def metrics_growth(url: str, n: int, pid: int, key: str | None) -> dict:
    """``/metrics`` size and fetch time, and the service's memory, before and after ``n`` unknown paths."""
    import httpx

    def snap() -> dict:
        t = time.perf_counter()
        r = httpx.get(f"{url}/metrics", headers=auth_headers(key), timeout=120)
        return {
            "metrics_bytes": len(r.content),
            "metrics_status": r.status_code,
            "metrics_fetch_s": round(time.perf_counter() - t, 3),
            "rss_mb": round(_rss_kb(pid) / 1024, 1),
        }

    before = snap()
    statuses: Counter = Counter()
    with httpx.Client(base_url=url, headers=auth_headers(key), timeout=TIMEOUT_S) as c:
        for i in range(n):
            statuses[c.get(f"/unknown-{i}").status_code] += 1
    after = snap()
    return {"unknown_paths": n, "statuses": dict(statuses), "before": before, "after": after}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle-dir", type=Path, help="model bundle (default: a small model trained here)")
    ap.add_argument("--examples", type=int, default=150, help="schemathesis cases per operation and mode")
    ap.add_argument("--stateful", type=int, default=40, help="schemathesis stateful sequences")
    ap.add_argument("--unknown-paths", type=int, default=2000, help="distinct unknown paths for /metrics growth")
    ap.add_argument("--api-key", help="sent as 'Authorization: Bearer KEY' (default: RECOUP_API_KEY)")
    ap.add_argument("--skip-schemathesis", action="store_true")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args(argv)
    key = api_key(args.api_key)

    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    tmp = tempfile.TemporaryDirectory(prefix="bench_fuzz_")
    os.environ.setdefault("RECOUP_HOME", tmp.name)
    bundle = args.bundle_dir or small_bundle(Path(tmp.name) / "bundle")
    good = new_claims(history_for(None), 1, "FUZZ")[0]
    inputs = bad_inputs(good)
    res: dict = {"load_avg_before": load_avg(), "bundle": str(bundle), "bad_inputs": len(inputs)}
    port = free_port()
    proc, res["service_start_s"] = start_service(bundle, port)
    url = f"http://127.0.0.1:{port}"
    try:
        if not args.skip_schemathesis:
            t = time.perf_counter()
            st = FuzzStats()
            for mode in ("positive", "negative"):
                fuzz_stateless(url, mode, args.examples, key, st)
            fuzz_stateful(url, args.stateful, key, stats=st)
            d = asdict(st)
            d.pop("seen")
            d["statuses"] = dict(sorted(st.statuses.items()))
            d["seconds"] = round(time.perf_counter() - t, 1)
            res["schemathesis"] = d
            res["load_avg_after_schemathesis"] = load_avg()
        t = time.perf_counter()
        res["hand_made"] = send_bad_inputs(url, inputs, key)
        res["hand_made"]["seconds"] = round(time.perf_counter() - t, 1)
        res["load_avg_after_bad_inputs"] = load_avg()
        res["metrics"] = metrics_growth(url, args.unknown_paths, proc.pid, key)
        res["healthy_at_end"] = proc.poll() is None
    finally:
        stop(proc)
        tmp.cleanup()
    res["load_avg_after"] = load_avg()
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    return res


if __name__ == "__main__":
    main()
