"""The service's pages in a real headless browser, on a network without the internet: Debian's chromium
(installed by ``make setup``, .ci/ensure-chromium) driven by Playwright, against the real ``bentoml
serve``. Every request that does not go to the service is aborted and recorded; none may happen."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.server import bentoml_server, model_env

CHROMIUM = os.environ.get("RECOUP_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: run `make setup` as root (.ci/ensure-chromium)"
)


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pages")
    with bentoml_server(model_env(trained["bundle_dir"], tmp / "journal"), tmp / "server.log") as url:
        yield url


@pytest.fixture
def page(served):
    """A Chromium page where every request off the service's host is aborted (and listed in ``page.outside``)."""
    from playwright.sync_api import sync_playwright

    local = urlsplit(served).netloc
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1600})
            pg = context.new_page()
            pg.outside = []  # type: ignore[attr-defined]

            def route(r):
                if urlsplit(r.request.url).netloc == local:
                    r.continue_()
                else:
                    pg.outside.append(r.request.url)  # type: ignore[attr-defined]
                    r.abort()

            context.route("**/*", route)
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            browser.close()


def test_docs_render_the_score_operation_offline(page, served, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{served}/docs")
    op = page.locator(".opblock-post").filter(has=page.locator('[data-path="/score"]'))
    op.locator(".opblock-summary").click()  # expand POST /score
    body = op.locator(".opblock-body")
    example = body.locator(".body-param__example")
    example.wait_for()
    text = example.inner_text()
    assert '"claim_id"' in text and '"lines"' in text and '"procedure_code"' in text
    body.locator(".tablinks", has_text="Schema").first.click()  # the request's schema, not only the example
    schema = body.locator(".model-box").first
    schema.wait_for()
    assert "ScoreRequest" in schema.inner_text() and "claim_id" not in schema.inner_text()
    claim = (
        schema.locator("article[data-json-schema-level='1']")
        .filter(has=page.locator(".json-schema-2020-12__title", has_text="claim"))
        .last
    )
    claim.locator(".json-schema-2020-12-expand-deep-button").first.click()  # the claim's "Expand all"
    schema.get_by_text("line_number", exact=True).first.wait_for()
    fields = schema.inner_text()
    assert all(f in fields for f in ("claim_id", "lines", "line_number", "procedure_code")), fields[:500]
    assert body.get_by_text("Example Value").count() >= 1  # the responses' examples are there too
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    assert (tmp_path / "docs.png").stat().st_size > 10_000
    assert page.outside == [], page.outside  # type: ignore[attr-defined]
    assert errors == []


def test_home_page_names_the_service_and_model(page, served, trained):
    import httpx

    model = httpx.get(f"{served}/model").json()
    page.goto(served)
    heading = page.locator("h1").inner_text()
    assert "recoup scoring service" in heading
    table = page.locator("#model").inner_text()
    assert f"version {model['version']}" in table and str(model["as_of"]) in table
    page.get_by_role("link", name="API docs").click()
    page.locator('[data-path="/score"]').wait_for()
    page.goto(f"{served}/contract")
    page.locator("main h1").first.wait_for()  # rendered by the marked script the service serves
    assert page.outside == [], page.outside  # type: ignore[attr-defined]
