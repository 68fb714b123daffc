"""The service's OpenAPI document: request and response bodies with examples for every endpoint, and real
answers of the service (its ASGI app with the session's model, as in test_service.py) valid against it."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from serving.schemas import (
    EXAMPLE_BATCH_REQUEST,
    EXAMPLE_SCORE_REQUEST,
    MAX_CHARS,
    MAX_CLAIMS_PER_BATCH,
    MAX_DIAGNOSIS_CODES,
    MAX_DIAGNOSIS_POINTERS,
    MAX_LINES_PER_CLAIM,
    MAX_MODIFIERS,
)

ROUTES = {
    ("/score", "post"): "ScoreRequest",
    ("/score_batch", "post"): "BatchRequest",
    ("/model", "get"): None,
    ("/refresh", "post"): None,
}


@pytest.fixture(scope="module")
def doc(client):  # noqa: F811
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _validate(doc: dict, schema: dict, value) -> None:
    """``value`` against a schema of the document, its ``$ref``s resolved against the document's components."""
    root = {**schema, "components": doc["components"]}
    jsonschema.Draft202012Validator.check_schema(root)
    jsonschema.Draft202012Validator(root).validate(value)


def _response(doc: dict, path: str, method: str, status: int) -> dict:
    return doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]


def test_every_endpoint_has_bodies_and_examples(doc):
    schemas = doc["components"]["schemas"]
    for (path, method), request in ROUTES.items():
        op = doc["paths"][path][method]
        ok = _response(doc, path, method, 200)
        assert ok["schema"] and "example" in ok, path
        _validate(doc, ok["schema"], ok["example"])
        if request is None:
            assert "requestBody" not in op
            continue
        body = op["requestBody"]["content"]["application/json"]
        assert op["requestBody"]["required"] and body["schema"] == {"$ref": f"#/components/schemas/{request}"}
        _validate(doc, body["schema"], body["example"])
        assert {p["name"] for p in op["parameters"]} == {"explain", "record"}
        for status in (400, 413, 422):
            err = _response(doc, path, method, status)
            assert err["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        _validate(doc, err["schema"], err["example"])
    # the batch: claims are CLAIMs (at most 1,000), the answer a SCORE or an error entry per claim
    claims = schemas["BatchRequest"]["properties"]["claims"]
    assert claims["items"] == {"$ref": "#/components/schemas/Claim"} and claims["maxItems"] == MAX_CLAIMS_PER_BATCH
    items = _response(doc, "/score_batch", "post", 200)["schema"]["items"]["anyOf"]
    assert {i["$ref"].rsplit("/", 1)[1] for i in items} == {"Score", "ErrorBody"}
    assert _response(doc, "/model", "get", 200)["schema"] == {"$ref": "#/components/schemas/ModelInfo"}


def test_the_schema_states_every_bound(doc):
    schemas = doc["components"]["schemas"]
    claim, line = schemas["Claim"]["properties"], schemas["Line"]["properties"]
    assert claim["lines"]["maxItems"] == MAX_LINES_PER_CLAIM
    assert claim["claim_id"]["anyOf"][0]["maxLength"] == MAX_CHARS["claim_id"]
    assert claim["total_charge"]["type"] == "number" and line["units"]["type"] == "number"
    lists = {
        "diagnosis_codes": (claim, MAX_DIAGNOSIS_CODES),
        "modifiers": (line, MAX_MODIFIERS),
        "diagnosis_pointers": (line, MAX_DIAGNOSIS_POINTERS),
    }
    for name, (props, n) in lists.items():
        array, text = props[name]["anyOf"][:2]
        assert array["maxItems"] == n and text["type"] == "string" and text["maxLength"], name

    # every string of a request has a maxLength, in every form it may take
    def strings(s):
        if isinstance(s, dict):
            if s.get("type") == "string":
                yield s
            for v in s.values():
                yield from strings(v)
        elif isinstance(s, list):
            for v in s:
                yield from strings(v)

    found = list(strings([schemas["Claim"], schemas["Line"]]))
    assert len(found) >= 17 and all("maxLength" in s for s in found)
    # booleans are not numbers
    with pytest.raises(jsonschema.ValidationError):
        line0 = EXAMPLE_SCORE_REQUEST["claim"]["lines"][0]
        _validate(doc, {"$ref": "#/components/schemas/Line"}, dict(line0, units=True))


def test_docs_page_shows_the_document(client):  # noqa: F811
    r = client.get("/docs")
    assert r.status_code == 200 and "/openapi.json" in r.text


def test_real_answers_validate_against_the_schema(client, doc, good):  # noqa: F811
    """The examples of the document score on the real service, and what it answers (scores, error entries,
    errors, the model) is what the document says."""
    score = client.post("/score", json=EXAMPLE_SCORE_REQUEST)
    assert score.status_code == 200, score.text
    _validate(doc, _response(doc, "/score", "post", 200)["schema"], score.json())
    batch = client.post("/score_batch", json=EXAMPLE_BATCH_REQUEST)
    assert batch.status_code == 200, batch.text
    out = batch.json()
    assert "recoupment_probability" in out[0] and out[1]["error"]["fields"][0]["field"] == "claims[1].submitted_date"
    _validate(doc, _response(doc, "/score_batch", "post", 200)["schema"], out)
    model = client.get("/model")
    _validate(doc, _response(doc, "/model", "get", 200)["schema"], model.json())

    real = client.post("/score", json={"claim": good, "record": False}).json()
    _validate(doc, _response(doc, "/score", "post", 200)["schema"], real)
    assert real["rule_hits"] is not None
    bad_claim = dict(copy.deepcopy(good), diagnosis_codes=["E119"] * (MAX_DIAGNOSIS_CODES + 1))
    errors = [
        client.post("/score", content=b"{nope", headers={"content-type": "application/json"}),
        client.post("/score", json={"claim": bad_claim}),
        client.post("/score", json={"claim": dict(good, submitted_date="2025-02-30")}),
        client.post("/score_batch", json={"claims": "all"}),
    ]
    assert [e.status_code for e in errors] == [400, 422, 422, 422]
    for e in errors:
        _validate(doc, {"$ref": "#/components/schemas/ErrorBody"}, e.json())


def _bad(good: dict, where: tuple, value) -> dict:
    c = copy.deepcopy(good)
    obj = c
    for k in where[:-1]:
        obj = obj[k]
    obj[where[-1]] = value
    return c


def test_bounds_through_the_service(client, good):  # noqa: F811
    """One batch with a claim over each bound: each gets an error entry naming its field; the good one scores."""
    too_long = "9" * 100
    cases = [
        (("diagnosis_codes",), ["E119"] * (MAX_DIAGNOSIS_CODES + 1)),
        (("diagnosis_codes",), ";".join(["E119"] * (MAX_DIAGNOSIS_CODES + 1))),
        (("lines", 0, "modifiers"), "25;59;LT;RT;XE"),
        (("lines", 0, "diagnosis_pointers"), [1, 2, 3, 4, 1]),
        (("lines", 0, "units"), True),
        (("total_charge",), "250"),
        (("claim_id",), "C" * (MAX_CHARS["claim_id"] + 1)),
        (("patient_id",), too_long),
        (("payer_id",), too_long),
        (("billing_npi",), too_long),
        (("prior_auth_number",), too_long),
        (("lines", 0, "procedure_code"), too_long),
    ]
    claims = [dict(copy.deepcopy(good), claim_id="BOUND-OK")]
    claims += [_bad(dict(good, claim_id=f"BOUND-{i}"), where, v) for i, (where, v) in enumerate(cases)]
    r = client.post("/score_batch", json={"claims": claims, "record": False})
    assert r.status_code == 200, r.text
    out = r.json()
    assert "recoupment_probability" in out[0]
    for i, (where, _) in enumerate(cases, 1):
        path = f"claims[{i}]" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where)
        assert path in {f["field"] for f in out[i]["error"]["fields"]}, (path, out[i])
    # the repro: a million codes in one claim, and units: true
    r = client.post("/score", json={"claim": dict(good, diagnosis_codes=["E119"] * 1_000_000)})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "claim.diagnosis_codes"
    r = client.post("/score", json={"claim": _bad(good, ("lines", 0, "units"), True), "record": False})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "claim.lines[0].units"
