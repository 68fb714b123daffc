"""Schemathesis against the real service (slow tier): stateless positive and negative cases for every
operation of the live ``/openapi.json``, then stateful sequences; no answer may be a 5xx or a hang, and
answers must match the schema wherever it declares them.

The service is started as bench/bench_service.py starts it (``bentoml serve``, one worker, a free
loopback port) with the session's small trained model; the schemathesis driver is bench/bench_fuzz.py's
(the same run gives the figures of docs/security.md). The live schema is read as is (it declares the
request and response bodies); as it has no OpenAPI links, the stateful run gets "send the same claim
again" links (a client's retry, the claim inside a batch): ``bench_fuzz.add_resubmit_links``.
``RECOUP_API_KEY``, when set, is sent as ``Authorization: Bearer`` (the service is open on loopback when
it has no key file). Bounded: ``RECOUP_FUZZ_EXAMPLES`` (default 100) cases per operation and mode and
``RECOUP_FUZZ_STATEFUL`` (default 40) stateful sequences: a few minutes in all on 2 cores.

schemathesis' own pytest loader (``schemathesis.pytest.from_fixture``) fails on pytest 9.2 (it sets
``request.node._nodeid``), hence the driver with ``hypothesis.given`` over ``APIOperation.as_strategy``.
"""

from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*httpx.*")
pytest.importorskip("schemathesis")

from bench.bench_fuzz import (  # noqa: E402
    TIMEOUT_S,
    FuzzStats,
    api_key,
    auth_headers,
    fuzz_stateful,  # noqa: E402
    fuzz_stateless,
    load_schema,
)
from tests.helpers.server import bentoml_server, model_env  # noqa: E402

EXAMPLES = int(os.environ.get("RECOUP_FUZZ_EXAMPLES", "100"))
STATEFUL = int(os.environ.get("RECOUP_FUZZ_STATEFUL", "40"))


@pytest.fixture(scope="module")
def live_url(trained, tmp_path_factory):
    """The real service (``bentoml serve``, one worker) on a free loopback port, with a journal folder of
    its own; stopped at the end (no process of it left)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with bentoml_server(model_env(trained["bundle_dir"], tmp / "journal"), tmp / "server.log") as url:
        yield url


def _assert_clean(st: FuzzStats) -> None:
    assert st.server_errors == 0 and st.hangs == 0 and not st.failures, "\n".join(st.failures)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_stateless_gets_no_5xx(live_url, mode):
    st = fuzz_stateless(live_url, mode, EXAMPLES, api_key())
    _assert_clean(st)
    assert st.requests >= 3, st  # at least one request per operation


@pytest.mark.slow
def test_schemathesis_stateful_gets_no_5xx(live_url):
    st = fuzz_stateful(live_url, STATEFUL, api_key())
    _assert_clean(st)


@pytest.mark.slow
def test_every_operation_of_the_schema_reaches_its_handler(live_url):
    """Every operation the schema lists answers, and a body that is not a claim gets a 4xx, not a 404 or
    a 5xx (so the runs above hit the real handlers)."""
    import httpx

    ops = {(op.ok().method.upper(), op.ok().path) for op in load_schema(live_url, api_key()).get_all_operations()}
    assert {("POST", "/score"), ("POST", "/score_batch"), ("GET", "/model")} <= ops, ops
    with httpx.Client(base_url=live_url, headers=auth_headers(api_key()), timeout=TIMEOUT_S) as c:
        assert c.get("/model").status_code == 200
        for path in ("/score", "/score_batch"):
            r = c.post(path, json={"nothing": 1})
            assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
        assert c.get("/readyz").status_code == 200


@pytest.mark.slow
def test_schema_declares_request_and_response_bodies(live_url):
    """Request and response bodies are declared (without them schemathesis has nothing to build claims from)."""
    import httpx

    doc = httpx.get(f"{live_url}/openapi.json", headers=auth_headers(api_key()), timeout=TIMEOUT_S).json()
    for path in ("/score", "/score_batch"):
        op = doc["paths"][path]["post"]
        assert op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"), path
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok not in ({}, None), f"{path}: no response body schema"
