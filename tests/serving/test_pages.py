"""The service's pages (serving/pages.py) through its ASGI app in process: the home page says what the
service is, /docs and /contract refer to no other host, and every asset they load is served."""

from __future__ import annotations

import re

from serving import pages

REF = re.compile(r'(?:src|href)\s*=\s*"([^"]*)"|url\s*:\s*[\'"]([^\'"]*)[\'"]')


def _refs(page: str) -> list[str]:
    return [a or b for a, b in REF.findall(page)]


def _local_only(page: str) -> list[str]:
    refs = _refs(page)
    assert refs
    assert not re.search(r"https?://|//[a-z0-9]", page, re.I), "a page refers to another host"
    assert all(r.startswith("/") for r in refs), refs
    return refs


def test_home_names_the_service_and_its_model(client):
    model = client.get("/model").json()
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert pages.TITLE in page
    assert f"{model['name']} version {model['version']}" in page and str(model["as_of"]) in page
    assert "BentoML" not in page and "recoup:dev" not in page
    refs = _local_only(page)
    for link in ("/docs", "/model", "/openapi.json", "/contract"):
        assert link in refs
        assert client.get(link).status_code == 200, link


def test_docs_load_swagger_ui_from_the_service(client):
    r = client.get("/docs")
    assert r.status_code == 200
    refs = _local_only(r.text)
    assets = [x for x in refs if x.startswith(pages.ASSET_PREFIX)]
    assert len(assets) == 3 and "/openapi.json" in refs  # script, style sheet, icon; the document
    assert '"validatorUrl": null' in r.text  # Swagger UI would otherwise ask validator.swagger.io
    for url in assets:
        a = client.get(url)
        name = url.removeprefix(pages.ASSET_PREFIX)
        assert a.status_code == 200 and a.headers["content-type"] == pages.ASSETS[name], url
        assert a.content == pages.asset(name) and len(a.content) > 500
    assert b"SwaggerUIBundle" in client.get(pages.ASSET_PREFIX + "swagger-ui-bundle.js").content


def test_contract_page_holds_the_contract(client):
    r = client.get("/contract")
    assert r.status_code == 200
    text = pages.contract_path().read_text(encoding="utf-8")  # type: ignore[union-attr]
    first_heading = next(line for line in text.splitlines() if line.startswith("#"))
    assert first_heading.lstrip("# ").strip() in r.text
    assert client.get(pages.ASSET_PREFIX + "marked.min.js").status_code == 200
    _local_only(r.text)


def test_pages_are_not_in_the_api_document_and_other_assets_are_not_served(client):
    paths = set(client.get("/openapi.json").json()["paths"])
    assert paths == {"/score", "/score_batch", "/model", "/refresh"}
    for path in (pages.ASSET_PREFIX + "index.css", pages.ASSET_PREFIX + "../__init__.py", "/static_content/x.js"):
        assert client.get(path).status_code == 404, path


def test_only_known_assets_are_read():
    try:
        pages.asset("swagger-initializer.js")
    except KeyError:
        return
    raise AssertionError("an asset outside ASSETS was served")
