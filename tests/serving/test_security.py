"""Security of the scoring service, against the real `bentoml serve` (tests/helpers/server.py):
API keys (revocable without restart), Host allow-list, JSON-only POSTs, CORS, TLS, deep JSON, unknown
paths and bounded metrics labels, the access log, and no claim value in any log. Two server starts:
one on loopback with keys, one with CORS and TLS."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import time

import pytest

from tests.helpers.claims import recent_claims
from tests.helpers.server import bentoml_server, model_env

httpx = pytest.importorskip("httpx")

FAULT_ID = "FAULT-CLM-90817"  # RECOUP_TEST_FAULT_CLAIM_ID: scoring this claim raises with its values
PHI_PATIENT = "PATPHI77310"
PHI_CHARGE = 4321.77
KNOWN = {"/score", "/score_batch", "/model", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect"}


def _claims(trained, n: int, tag: str) -> list[dict]:
    return recent_claims(trained["history"], n, tag, 25, skip=300)


@pytest.fixture
def keys_env(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "api_keys.json"
    monkeypatch.setenv("RECOUP_API_KEYS_FILE", str(path))
    return path


# --------------------------------------------------------------------------------------
# the key file (no server)
# --------------------------------------------------------------------------------------


def test_key_file_keeps_hashes_only_0600_atomic(keys_env):
    from features.errors import RecoupError
    from serving.security import KeyStore, create_key, list_keys, read_keys, revoke_key

    a = create_key("billing-app")
    b = create_key("worklist")
    assert a != b and len(a) >= 40 and a.startswith("rk_")
    text = keys_env.read_text()
    assert a not in text and b not in text  # only hashes
    assert oct(keys_env.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in keys_env.parent.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(RecoupError, match="active key named 'worklist'"):
        create_key("worklist")
    with pytest.raises(RecoupError, match="must be 1-64"):
        create_key("bad name; rm -rf")
    store = KeyStore(keys_env, every=0)
    assert store.required and store.name_of(a) == "billing-app" and store.name_of(b) == "worklist"
    assert store.name_of(a[:-1] + ("A" if a[-1] != "A" else "B")) is None
    revoke_key("worklist")
    store.refresh()
    assert store.name_of(b) is None and store.name_of(a) == "billing-app"
    assert [k["revoked"] is None for k in list_keys()] == [True, False]
    assert all("sha256" not in k for k in list_keys())
    with pytest.raises(RecoupError, match="no active key"):
        revoke_key("worklist")
    keys_env.write_text("{broken")
    with pytest.raises(RecoupError, match="not an API key file"):
        read_keys()
    store.refresh()
    assert store.required and store.name_of(a) is None  # a broken file fails closed


def test_key_file_writable_by_others_fails_closed(keys_env):
    """Before: a key file made group- or world-writable was used as is: any local user could add a key."""
    from features.errors import RecoupError
    from serving.security import KeyStore, create_key, read_keys

    a = create_key("billing-app")
    store = KeyStore(keys_env, every=0)
    assert store.name_of(a) == "billing-app"
    for mode in (0o666, 0o620, 0o602):
        keys_env.chmod(mode)
        with pytest.raises(RecoupError, match=r"writable by other users .*chmod 600"):
            read_keys()
        store.refresh()  # a chmod alone is noticed (the running service's check)
        assert store.required and store.name_of(a) is None  # fails closed
        keys_env.chmod(0o600)
        store.refresh()
        assert store.name_of(a) == "billing-app"
    keys_env.chmod(0o644)  # readable holds hashes only: accepted
    store.refresh()
    assert store.name_of(a) == "billing-app"


def test_hosts():
    from serving.security import allowed_hosts, host_of, is_loopback

    assert host_of("LocalHost:3000") == "localhost" and host_of("[::1]:3000") == "::1" and host_of("::1") == "::1"
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert not is_loopback("10.1.2.3") and not is_loopback("example.org")
    assert "10.1.2.3" in allowed_hosts("10.1.2.3", []) and "0.0.0.0" not in allowed_hosts("0.0.0.0", ["a.org"])


def test_host_header_with_a_bad_port_is_not_allowed():
    """Before: the part before the last ':' was taken whatever followed, so ``localhost:1@evil.org`` passed."""
    from serving.security import allowed_hosts, host_of

    allowed = set(allowed_hosts("127.0.0.1", ["scoring.example.org"]))
    for ok in ("localhost", "localhost:3000", "localhost:", "[::1]:3000", "[::1]", "scoring.example.org:443"):
        assert host_of(ok) in allowed, ok
    for bad in (
        "localhost:3000@evil.org",
        "localhost:abc",
        "127.0.0.1:3000, evil.org",
        "localhost:３０００",
        "[::1]:3000@evil.org",
        "[::1]x",
        "localhost:99999999",
    ):
        assert host_of(bad) not in allowed, bad


def test_any_host_without_a_key_serves_nobody(tmp_path):
    """Before: with RECOUP_ALLOWED_HOSTS='*' on loopback and no key, a web page whose name was rebound to
    127.0.0.1 was a local caller: it could record claims and read scores."""
    import asyncio

    from serving.security import Guard, GuardConfig

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def status(hosts: list[str]) -> int:
        guard = Guard(app, {"/model"}, GuardConfig("127.0.0.1", hosts, [], tmp_path / "none.json"))
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/model",
            "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"rebound.evil.example:3000")],
        }
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        asyncio.run(guard(scope, None, send))
        return sent[0]["status"]

    assert status(["localhost", "127.0.0.1", "::1"]) == 400  # the Host check
    assert status(["*"]) == 401  # any Host: no longer "local" without a key


def test_json_depth_skips_strings():
    from serving.service import MAX_JSON_DEPTH, json_depth

    assert json_depth(b'{"a": "[[[\\"]]{", "b": [[1]]}') == 3
    assert json_depth(b"[" * 2000 + b"]" * 2000) == 2000 > MAX_JSON_DEPTH
    assert json_depth(b"1") == 0 and json_depth(b'"' + b"[" * 5000 + b'"') == 0


# --------------------------------------------------------------------------------------
# server 1: loopback, two keys, fault injection
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(trained, tmp_path_factory):
    """The real service with keys 'alpha' and 'beta' in its key file; yields a dict of handles."""
    from serving.security import create_key

    tmp = tmp_path_factory.mktemp("keyed")
    path = tmp / "api_keys.json"
    old = os.environ.get("RECOUP_API_KEYS_FILE")
    os.environ["RECOUP_API_KEYS_FILE"] = str(path)
    try:
        keys = {"alpha": create_key("alpha"), "beta": create_key("beta")}
        env = model_env(trained["bundle_dir"], tmp, RECOUP_TEST_FAULT_CLAIM_ID=FAULT_ID)
        log = tmp / "server.log"
        with bentoml_server(env, log) as url:
            yield {"url": url, "keys": keys, "log": log, "path": path}
    finally:
        if old is None:
            os.environ.pop("RECOUP_API_KEYS_FILE", None)
        else:
            os.environ["RECOUP_API_KEYS_FILE"] = old


def _auth(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def _is_error(r, status: int, kind: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"claim_id", "error"} and body["error"]["type"] == kind, body
    assert set(body["error"]) == {"type", "message", "fields"}
    return body


def test_api_keys(keyed, trained):
    url, keys = keyed["url"], keyed["keys"]
    claim = _claims(trained, 1, "KEYS")[0]
    _is_error(httpx.post(f"{url}/score", json={"claim": claim, "record": False}), 401, "unauthorized")
    _is_error(httpx.get(f"{url}/model", headers=_auth("rk_" + "x" * 43)), 401, "unauthorized")
    _is_error(httpx.get(f"{url}/model", headers={"authorization": "Basic " + keys["alpha"]}), 401, "unauthorized")
    r = httpx.post(f"{url}/score", json={"claim": claim, "record": False}, headers=_auth(keys["alpha"]), timeout=30)
    assert r.status_code == 200 and r.json()["claim_id"] == "KEYS-0"
    assert httpx.get(f"{url}/model", headers={"x-api-key": keys["beta"]}).status_code == 200
    for probe in ("/readyz", "/livez"):  # open for probes
        assert httpx.get(f"{url}{probe}").status_code == 200
    for path in ("/metrics", "/docs", "/openapi.json"):  # behind the key like the API
        _is_error(httpx.get(f"{url}{path}"), 401, "unauthorized")
        assert httpx.get(f"{url}{path}", headers=_auth(keys["alpha"])).status_code == 200


def test_revoked_key_is_refused_without_restart(keyed):
    from serving.security import create_key, revoke_key

    url, keys = keyed["url"], keyed["keys"]
    assert httpx.get(f"{url}/model", headers=_auth(keys["beta"])).status_code == 200
    old = os.environ.get("RECOUP_API_KEYS_FILE")
    os.environ["RECOUP_API_KEYS_FILE"] = str(keyed["path"])
    try:
        revoke_key("beta")
        gamma = create_key("gamma")
    finally:
        os.environ["RECOUP_API_KEYS_FILE"] = old or ""
        if old is None:
            del os.environ["RECOUP_API_KEYS_FILE"]
    deadline = time.time() + 15
    while httpx.get(f"{url}/model", headers=_auth(keys["beta"])).status_code != 401:
        assert time.time() < deadline, "the revoked key still works"
        time.sleep(0.3)
    while httpx.get(f"{url}/model", headers=_auth(gamma)).status_code != 200:
        assert time.time() < deadline, "the new key is not accepted"
        time.sleep(0.3)
    assert httpx.get(f"{url}/model", headers=_auth(keys["alpha"])).status_code == 200


def test_post_must_be_json(keyed, trained):
    url, h = keyed["url"], _auth(keyed["keys"]["alpha"])
    body = json.dumps({"claim": _claims(trained, 1, "CT")[0], "record": False})
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {**h, **({"content-type": ct} if ct else {})}
        r = httpx.post(f"{url}/score", content=body.encode(), headers=headers)
        assert _is_error(r, 415, "unsupported_media_type")["error"]["fields"][0]["field"] == "content-type"
    r = httpx.post(
        f"{url}/score",
        content=body.encode(),
        headers={**h, "content-type": "application/json; charset=utf-8"},
        timeout=30,
    )
    assert r.status_code == 200


def test_host_allow_list_and_no_cors_by_default(keyed):
    url, h = keyed["url"], _auth(keyed["keys"]["alpha"])
    port = url.rsplit(":", 1)[1]
    for bad in ("evil.example", f"attacker.example:{port}", "127.0.0.1.nip.io"):
        _is_error(httpx.get(f"{url}/model", headers={**h, "host": bad}), 400, "bad_host")
    assert httpx.get(f"{url}/model", headers={**h, "host": f"localhost:{port}"}).status_code == 200
    r = httpx.get(f"{url}/model", headers={**h, "origin": "https://evil.example"})
    assert r.status_code == 200 and not any(k.startswith("access-control-") for k in r.headers)
    r = httpx.options(
        f"{url}/score", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
    )
    assert not any(k.startswith("access-control-") for k in r.headers) and r.status_code >= 400


def test_deep_json_is_400(keyed, trained):
    url, h = keyed["url"], {**_auth(keyed["keys"]["alpha"]), "content-type": "application/json"}
    for depth in (1_100, 100_000):
        body = b'{"claim": ' + b"[" * depth + b"]" * depth + b"}"
        b = _is_error(httpx.post(f"{url}/score", content=body, headers=h), 400, "invalid_json")
        assert b["error"]["fields"][0]["field"] == "body" and "nested" in b["error"]["message"]
    # NaN first: orjson refuses it and the standard library (recursive) would parse the rest
    body = b'{"x": NaN, "claim": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    _is_error(httpx.post(f"{url}/score", content=body, headers=h), 400, "invalid_json")
    claim = _claims(trained, 1, "DEEP")[0]
    claim["extra"] = json.loads("[" * 900 + "]" * 900)  # deep but within the bound: scored (extra ignored)
    r = httpx.post(f"{url}/score", json={"claim": claim, "record": False}, headers=h, timeout=30)
    assert r.status_code == 200, r.text


def _endpoint_labels(text: str) -> set[str]:
    return set(re.findall(r'endpoint="([^"]*)"', text))


def test_unknown_paths_are_json_404_and_do_not_grow_metrics(keyed):
    url, h = keyed["url"], _auth(keyed["keys"]["alpha"])
    httpx.get(f"{url}/model", headers=h)
    before = httpx.get(f"{url}/metrics", headers=h).text
    with httpx.Client(headers=h) as c:
        for i in range(300):
            r = c.get(f"{url}/no-such-path-{i}")
            assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
        for path in ("/schema.json", "/docs.json", "/score/", "/static_content/x.js", "/docs/assets/index.css"):
            assert c.get(f"{url}{path}").status_code == 404
        _is_error(c.get(f"{url}/nothing"), 404, "not_found")
        _is_error(c.get(f"{url}/score"), 405, "method_not_allowed")
    after = httpx.get(f"{url}/metrics", headers=h).text
    labels = _endpoint_labels(after)
    assert labels and labels <= KNOWN | {"/readyz", "/livez"}, labels - KNOWN
    assert not any("no-such-path" in x for x in labels)
    assert len(after) < len(before) + 20_000  # 300 new paths used to add ~8 KB each


def test_no_claim_value_in_any_log_on_a_500(keyed, trained):
    url, key = keyed["url"], keyed["keys"]["alpha"]
    claim = _claims(trained, 1, "FAULT")[0]
    claim.update(claim_id=FAULT_ID, patient_id=PHI_PATIENT, total_charge=PHI_CHARGE)
    claim["lines"][0]["line_charge"] = PHI_CHARGE
    r = httpx.post(f"{url}/score", json={"claim": claim, "record": False}, headers=_auth(key), timeout=30)
    body = _is_error(r, 500, "internal")
    assert PHI_PATIENT not in r.text
    batch = [copy.deepcopy(claim)]
    r = httpx.post(f"{url}/score_batch", json={"claims": batch, "record": False}, headers=_auth(key), timeout=30)
    assert r.status_code == 500 and body["error"]["message"].startswith("internal error (RuntimeError)")
    log = _wait_for(keyed["log"], "endpoint=/score_batch status=500 claims=1")
    for value in (FAULT_ID, PHI_PATIENT, str(PHI_CHARGE), key):
        assert value not in log, f"{value!r} reached the server log"
    assert "Exception in ASGI application" not in log
    assert "internal error RuntimeError" in log


def test_access_log_lines(keyed, trained):
    url, key = keyed["url"], keyed["keys"]["alpha"]
    claims = _claims(trained, 3, "ACCESS")
    httpx.post(f"{url}/score_batch", json={"claims": claims, "record": False}, headers=_auth(key), timeout=30)
    httpx.get(f"{url}/secret-path-{claims[0]['patient_id']}", headers=_auth(key))
    log = _wait_for(keyed["log"], "endpoint=/score_batch status=200 claims=3")
    line = next(x for x in log.splitlines() if "endpoint=/score_batch status=200 claims=3" in x)
    m = re.search(r"(\S+) key=alpha method=POST endpoint=/score_batch status=200 claims=3 ms=[0-9.]+$", line)
    assert m, line
    assert abs(dt.datetime.fromisoformat(m.group(1)) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(hours=1)
    _wait_for(keyed["log"], "method=GET endpoint=other status=404")
    log = keyed["log"].read_text(errors="replace")
    assert "key=- method=GET endpoint=/model status=401" in log  # refused calls are logged too
    assert "method=GET endpoint=/model status=400" in log  # a bad Host (test_host_allow_list...)
    assert key not in log and claims[0]["patient_id"] not in log and "ACCESS-0" not in log


def _wait_for(log_path, text: str, timeout: float = 15) -> str:
    deadline = time.time() + timeout
    while True:
        log = log_path.read_text(errors="replace")
        if text in log:
            return log
        assert time.time() < deadline, f"{text!r} not in the server log:\n{log[-2000:]}"
        time.sleep(0.2)


# --------------------------------------------------------------------------------------
# server 2: CORS for one origin, TLS with a self-signed certificate, no key (loopback)
# --------------------------------------------------------------------------------------


def _self_signed(tmp) -> tuple:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_cors_when_configured_and_tls(trained, tmp_path, monkeypatch):
    origin = "https://billing.example.org"
    monkeypatch.setenv("RECOUP_API_KEYS_FILE", str(tmp_path / "none.json"))  # no key: local calls only
    cert, key = _self_signed(tmp_path)
    env = model_env(trained["bundle_dir"], tmp_path, RECOUP_CORS_ORIGINS=origin)
    claim = _claims(trained, 1, "TLS")[0]
    with bentoml_server(env, tmp_path / "server.log", ssl=(cert, key)) as url:
        assert url.startswith("https://")
        with httpx.Client(verify=str(cert)) as c:
            pre = c.options(
                f"{url}/score",
                headers={
                    "origin": origin,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization, content-type",
                },
            )
            assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == origin
            assert "POST" in pre.headers["access-control-allow-methods"]
            assert "authorization" in pre.headers["access-control-allow-headers"].lower()
            bad = c.options(
                f"{url}/score", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
            )
            assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
            r = c.post(f"{url}/score", json={"claim": claim, "record": False}, headers={"origin": origin}, timeout=30)
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
            r = c.get(f"{url}/model", headers={"origin": "https://evil.example"})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
            # no key configured: a call relayed by a proxy is not local
            r = c.get(f"{url}/model", headers={"x-forwarded-for": "203.0.113.9"})
            assert _is_error(r, 401, "unauthorized")["error"]["message"].startswith("no API key is configured")
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(url.replace("https://", "http://") + "/readyz", timeout=5)


def test_request_heads_are_bounded(keyed):
    """uvicorn's httptools protocol read request heads of any size (a 50 MB header from a caller without
    a key grew the worker by ~150 MB): past 64 KiB the connection gets 431 and is closed, and the service
    keeps serving; a head under the bound is still answered."""
    import socket
    from urllib.parse import urlsplit

    from serving.http import MAX_HEAD_BYTES

    host, port = urlsplit(keyed["url"]).hostname, urlsplit(keyed["url"]).port

    def raw(head_filler: int) -> bytes:
        with socket.create_connection((host, port), timeout=20) as s:
            req = (
                f"GET /readyz HTTP/1.1\r\nHost: localhost:{port}\r\nX-Pad: {'a' * head_filler}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            try:
                s.sendall(req)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed by the server while we were still sending: read what it answered
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out

    assert raw(1000).startswith(b"HTTP/1.1 200")
    big = raw(4 * 1024 * 1024)
    assert big.startswith(b"HTTP/1.1 431") and b"headers_too_large" in big, big[:200]
    assert raw(MAX_HEAD_BYTES // 2).startswith(b"HTTP/1.1 200")
    # a large body sent in one write with its head is body, not head (a big batch is not a 431)
    body = b'{"claims": [' + b",".join([b'{"claim_id": "X"}'] * 60_000) + b"]}"  # ~1 MB
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(
            f"POST /score_batch HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {keyed['keys']['alpha']}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        answer = s.recv(200)
    assert answer.startswith(b"HTTP/1.1 422"), answer  # over 1,000 claims: the schema's answer
    import httpx

    assert httpx.get(f"{keyed['url']}/readyz", timeout=10).status_code == 200
