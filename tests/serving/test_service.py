"""The BentoML scoring service: in process (Starlette TestClient on the service's ASGI app) and once for
real (`bentoml serve` on a loopback port)."""

from __future__ import annotations

import copy
import json
import subprocess
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*httpx.*")

from tests.helpers.claims import duplicate_refs  # noqa: E402
from tests.helpers.server import bentoml_server, model_env  # noqa: E402
from tests.serving.conftest import new_claims  # noqa: E402


def test_probes_and_model(client, trained):
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200
    m = client.get("/model").json()
    assert m["name"] == "recoup-risk" and m["version"] == trained["info"]["version"]
    assert m["as_of"] and m["horizon_days"] == 365 and m["rulebook_version"] == "2024Q3"
    assert "roc_auc" in m["metrics"] and m["source"].startswith("bentoml:recoup-risk:")


def test_score_one_claim(client, good):
    r = client.post("/score", json={"claim": good, "record": False})
    assert r.status_code == 200, r.text
    s = r.json()
    assert list(s) == [
        "claim_id",
        "recoupment_probability",
        "risk_band",
        "expected_recoupment_amount",
        "causes",
        "reasons",
        "rule_hits",
        "model_version",
        "recorded",
    ]
    assert s["recorded"] == "not_recorded"
    assert s["claim_id"] == good["claim_id"] and 0 <= s["recoupment_probability"] <= 1
    assert s["risk_band"] in ("low", "medium", "high")
    assert len(s["causes"]) == 8 and s["causes"][0]["probability"] >= s["causes"][-1]["probability"]
    assert len(s["reasons"]) <= 5 and all(x["text"] and x["contribution"] > 0 for x in s["reasons"])
    fast = client.post("/score?explain=false", json={"claim": good, "record": False}).json()
    assert fast["reasons"] == [] and fast["recoupment_probability"] == s["recoupment_probability"]


def _bad(good, mutate):
    c = copy.deepcopy(good)
    mutate(c)
    return {"claim": c}


BAD = [
    ("missing field", lambda c: c.pop("submitted_date"), "claim.submitted_date"),
    ("missing line field", lambda c: c["lines"][0].pop("procedure_code"), "claim.lines[0].procedure_code"),
    ("bad date", lambda c: c.update(submitted_date="2025-02-30"), "claim.submitted_date"),
    ("bad line date", lambda c: c["lines"][0].update(service_date="yesterday"), "claim.lines[0].service_date"),
    ("negative units", lambda c: c["lines"][0].update(units=-1), "claim.lines[0].units"),
    ("zero units", lambda c: c["lines"][0].update(units=0), "claim.lines[0].units"),
    ("units not a number", lambda c: c["lines"][0].update(units="two"), "claim.lines[0].units"),
    ("malformed procedure", lambda c: c["lines"][0].update(procedure_code="99-21"), "claim.lines[0].procedure_code"),
    ("malformed icd", lambda c: c.update(diagnosis_codes=["250.00"]), "claim.diagnosis_codes"),
    ("bad npi", lambda c: c.update(billing_npi="abc"), "claim.billing_npi"),
    ("bad enum", lambda c: c.update(claim_type="dental"), "claim.claim_type"),
    ("negative charge", lambda c: c.update(total_charge=-5), "claim.total_charge"),
    ("too many modifiers", lambda c: c["lines"][0].update(modifiers="25;59;LT;RT;XE"), "claim.lines[0].modifiers"),
    ("bad pointer", lambda c: c["lines"][0].update(diagnosis_pointers=[0]), "claim.lines[0].diagnosis_pointers"),
    ("no lines", lambda c: c.update(lines=[]), "claim.lines"),
    (
        "too many lines",
        lambda c: c.update(lines=[dict(c["lines"][0], line_number=i + 1) for i in range(51)]),
        "claim.lines",
    ),
    ("claim not an object", lambda c: c.clear() or c.update(x=1), "claim.claim_id"),
]


@pytest.mark.parametrize("name, mutate, field", BAD, ids=[b[0] for b in BAD])
def test_bad_claim_gets_4xx_naming_the_field(client, good, name, mutate, field):
    r = client.post("/score", json=_bad(good, mutate))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["type"] in ("invalid_claim", "invalid_request")
    assert field in {f["field"] for f in body["error"]["fields"]}, body


@pytest.mark.parametrize(
    "content, status, field",
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 422, "body"),
        (b'{"claims": []}', 422, "claim"),
        (b'{"claim": "C1"}', 422, "claim"),
        (b'{"claim": {"total_charge": NaN}}', 422, "claim.total_charge"),
        (b'{"claim": "\xff"}', 400, "body"),
    ],
)
def test_bad_body_gets_4xx(client, content, status, field):
    r = client.post("/score", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert field in {f["field"] for f in r.json()["error"]["fields"]}


def test_limits_and_routes_answer_4xx(client, good, monkeypatch):
    import serving.service as svc

    r = client.post("/score_batch", json={"claims": [good] * 1001})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "claims"
    monkeypatch.setattr(svc, "MAX_BODY", 100)
    r = client.post("/score", json={"claim": good})
    assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"
    monkeypatch.undo()
    assert client.post("/score?record=maybe", json={"claim": good}).status_code == 422
    assert client.get("/score").status_code == 405
    assert client.get("/nothing").status_code == 404
    assert client.post("/score_batch", json={"claims": "all"}).status_code == 422


def test_unknown_but_well_formed_codes_are_scored_and_flagged(client, good):
    c = copy.deepcopy(good)
    c["claim_id"] = "UNKNOWN-1"
    c["lines"] = [dict(c["lines"][0], procedure_code="Z9999", line_charge=9999.0, modifiers=[])]
    c["diagnosis_codes"] = ["Z999ZZZ"]
    r = client.post("/score", json={"claim": c, "record": False})
    assert r.status_code == 200, r.text
    hits = r.json()["rule_hits"]
    assert any(h["rule"] == "unknown_code" and h["code"] == "Z9999" for h in hits), hits
    assert any(h["rule"] == "invalid_icd" for h in hits), hits


def test_batch_with_one_bad_claim(client, trained):
    claims = new_claims(trained, 5, "BATCH", 30)
    claims[2]["lines"][0]["units"] = -3
    claims[4] = {"claim_id": "BROKEN"}
    r = client.post("/score_batch", json={"claims": claims, "record": False})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [o["claim_id"] for o in out] == [c["claim_id"] for c in claims]
    assert "error" in out[2] and out[2]["error"]["fields"][0]["field"] == "claims[2].lines[0].units"
    assert "error" in out[4] and "claims[4].submitted_date" in {f["field"] for f in out[4]["error"]["fields"]}
    for i in (0, 1, 3):
        assert "error" not in out[i] and 0 <= out[i]["recoupment_probability"] <= 1
        assert all(x["contribution"] > 0 for x in out[i]["reasons"])
    r = client.post("/score_batch", json={"claims": [claims[0], claims[0]], "record": False})
    assert all("error" in o for o in r.json())  # the same claim_id twice in one batch


def test_resubmitted_duplicate_is_caught(client, trained):
    first = new_claims(trained, 1, "DUP", 40)[0]
    second = dict(copy.deepcopy(first), claim_id="DUP-again")
    a = client.post("/score", json={"claim": first}).json()
    assert "DUP-0" not in duplicate_refs(a)
    b = client.post("/score", json={"claim": second}).json()
    assert "DUP-0" in duplicate_refs(b), b["rule_hits"]
    dup = [h for h in b["rule_hits"] if h["rule"] == "duplicate" and h.get("ref") == "DUP-0"]
    assert all("DUP-0" in h["text"] and h["code"] in h["text"] for h in dup), dup
    assert {h["code"] for h in dup} == {ln["procedure_code"] for ln in first["lines"]}


def test_what_if_scoring_is_not_recorded(client, trained):
    first = new_claims(trained, 1, "WHATIF", 50)[0]
    second = dict(copy.deepcopy(first), claim_id="WHATIF-again")
    client.post("/score?record=false", json={"claim": first})
    b = client.post("/score", json={"claim": second, "record": False}).json()
    assert "WHATIF-0" not in duplicate_refs(b)


def test_parity_with_the_scorer_in_process(client, trained):
    from _bentoml_sdk.service import get_current_service

    from features.model.bundle import ModelBundle
    from serving.schemas import Claim, claims_to_frames
    from serving.scorer import Scorer
    from serving.service import _default

    claims = new_claims(trained, 12, "PARITY", 60)
    conv = claims_to_frames([Claim.model_validate(c) for c in claims])
    service = get_current_service()  # the service instance behind `client`
    assert service is not None
    # the plain scorer with the same model and a copy of the service's current state
    direct = Scorer(ModelBundle.load(trained["bundle_dir"]), copy.deepcopy(service.scorer.state))
    expected = json.loads(json.dumps(direct.score_claims(conv.claims, conv.lines, record=False), default=_default))
    batch = client.post("/score_batch", json={"claims": claims, "record": False}).json()
    singles = [client.post("/score", json={"claim": x, "record": False}).json() for x in claims[:4]]
    assert batch == expected
    assert singles == expected[:4]


LOADING = """
import json, sys
from serving import model_store
out = {}
try:
    model_store.resolve_model(allow_mlflow=False)
except model_store.NoModelError as e:
    out["no_model"] = str(e)
ref = model_store.resolve_model()  # the empty store is filled from MLflow's champion
out.update(source=ref.source, state=(ref.path / "state").is_dir(), labels=ref.labels,
           again=model_store.resolve_model().source)
print(json.dumps(out))
"""


def test_model_loading(trained, tmp_path, monkeypatch):
    import sys

    from serving import model_store
    from serving.serve import PROJECT_ROOT, service_env

    monkeypatch.setenv("RECOUP_BUNDLE_DIR", str(trained["bundle_dir"]))
    assert model_store.resolve_model().source == "RECOUP_BUNDLE_DIR"
    monkeypatch.setenv("RECOUP_BUNDLE_DIR", str(tmp_path))
    with pytest.raises(model_store.NoModelError):
        model_store.resolve_model()
    monkeypatch.delenv("RECOUP_BUNDLE_DIR")
    # an empty BentoML store (BentoML fixes its home at import: a fresh process) + the session's MLflow
    env = {**service_env(), "BENTOML_HOME": str(tmp_path / "empty_bentoml")}
    run = subprocess.run(
        [sys.executable, "-c", LOADING], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["no_model"].startswith("no model to serve") and "\n" not in out["no_model"]
    assert out["source"].startswith("mlflow:recoup-risk@champion") and out["state"]
    assert out["labels"]["mlflow_version"] == trained["info"]["version"]
    assert out["again"].startswith("bentoml:recoup-risk:")


@pytest.mark.parametrize("workers", [1, 2])
def test_real_bentoml_serve(trained, good, workers, tmp_path):
    import httpx

    env = model_env(trained["bundle_dir"], tmp_path, workers)
    with bentoml_server(env, tmp_path / "server.log") as url:
        r = httpx.post(f"{url}/score", json={"claim": good, "record": False}, timeout=30)
        assert r.status_code == 200 and r.json()["claim_id"] == good["claim_id"]
        r = httpx.post(f"{url}/score", json={"claim": {"claim_id": "X"}}, timeout=30)
        assert r.status_code == 422
        model = httpx.get(f"{url}/model", timeout=5).json()
        assert model["source"] == "RECOUP_BUNDLE_DIR" and model["workers"] == workers
        # a recorded claim is caught as a duplicate whichever worker scores the resubmission (each
        # request on a new connection: the kernel hands connections to either worker)
        first = new_claims(trained, 1, f"REAL{workers}", 60)[0]
        assert httpx.post(f"{url}/score", json={"claim": first}, timeout=30).status_code == 200
        for i in range(8):
            again = dict(copy.deepcopy(first), claim_id=f"REAL{workers}-again-{i}")
            r = httpx.post(f"{url}/score", json={"claim": again, "record": False}, timeout=30)
            assert f"REAL{workers}-0" in duplicate_refs(r.json()), r.text
        if workers > 1:
            assert len(list(tmp_path.glob("model-*/journal-*.bin"))) == 1
