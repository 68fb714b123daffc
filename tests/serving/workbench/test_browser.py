"""The workbench in a real headless browser (Debian's chromium driven by Playwright) against the real
`recoup workbench` command (uvicorn) on a free loopback port: log in, filter the worklist, open a claim, record
"error found" with an amount, see it on the dashboard, and find the refund as a recoupment in the store.

Every request off the workbench's host is aborted and recorded (none may happen: no CDN), and the browser's
console must stay free of errors (a Content-Security-Policy violation is one). With ``RECOUP_WORKBENCH_SHOTS=DIR``
the test saves a screenshot of each page there (docs/workbench/*.png are made so)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.server import free_port, stop_group, wait_ready
from tests.serving.workbench.conftest import PASSWORD

CHROMIUM = os.environ.get("RECOUP_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: run `make setup` as root (.ci/ensure-chromium)"
)


def _recoup(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recoup.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, **kw
    )


@pytest.fixture
def served(store_copy, wb_audit, tmp_path):
    """`recoup workbench --data STORE --audit DIR --port P` with two users; yields (url, store)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RECOUP_HOME": str(tmp_path / "home"),
        "RECOUP_DATABASE_URL": f"sqlite:///{tmp_path / 'wb.sqlite'}",
        "RECOUP_WORKBENCH_PASSWORD": PASSWORD,
    }
    for name, role in (("lena", "lead"), ("rafa", "reviewer")):
        r = _recoup(["workbench", "user", "add", name, "--role", role], env, timeout=120)
        assert r.returncode == 0, r.stderr
    r = _recoup(["workbench", "user", "add", "lena", "--role", "lead"], env, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["error: a user named 'lena' exists"]
    port = free_port()
    log = tmp_path / "workbench.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recoup.cli", "workbench", "--data", str(store_copy), "--audit", str(wb_audit)]
            + ["--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log, timeout=120)
        yield url, store_copy, log
    finally:
        stop_group(proc)


@pytest.fixture
def page(served):
    from playwright.sync_api import sync_playwright

    local = urlsplit(served[0]).netloc
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            pg = context.new_page()
            pg.outside = []  # type: ignore[attr-defined]
            pg.errors = []  # type: ignore[attr-defined]

            def route(r):
                if urlsplit(r.request.url).netloc == local:
                    r.continue_()
                else:
                    pg.outside.append(r.request.url)  # type: ignore[attr-defined]
                    r.abort()

            context.route("**/*", route)
            pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))  # type: ignore[attr-defined]
            pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            browser.close()


def _shot(page, name: str, full: bool = True) -> None:
    d = os.environ.get("RECOUP_WORKBENCH_SHOTS")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(d) / f"{name}.png"), full_page=full)


def test_review_loop_in_the_browser(page, served):
    import pandas as pd

    from features.contract import load_history

    url, store, log = served
    page.goto(url)  # -> the login page
    page.wait_for_url("**/login**")
    _shot(page, "login")
    page.fill("input[name=name]", "lena")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#worklist")
    _shot(page, "worklist", full=False)
    causes = page.locator("select[name=cause] option").all_inner_texts()
    cause = next(c for c in causes[1:] if c)
    page.select_option("select[name=cause]", cause)  # the script submits the filter on change
    page.wait_for_url(f"**cause={cause}**")
    rows = page.locator("#worklist tbody tr")
    assert rows.count() >= 1
    cells = page.locator("#worklist tbody tr td:nth-child(9)").all_inner_texts()
    assert cells and all(c.startswith(cause) for c in cells)
    first = page.locator("a.claim-link").first
    claim_id = first.inner_text()
    first.click()
    page.wait_for_selector("#review-form")
    assert page.locator("#claim-id").inner_text() == claim_id
    assert page.locator("#refund_amount").is_hidden()  # the form shows only the fields of the status
    _shot(page, "claim")
    page.select_option("#status", "error_found")
    assert page.locator("#refund_amount").is_visible()
    page.fill("#refund_amount", "250.75")
    page.click("#save")  # no cause yet: refused with a message, nothing saved
    page.wait_for_selector(".error.field")
    assert "cause" in page.locator(".error.field").first.inner_text()
    page.select_option("#cause", "bundling")
    page.fill("#carc", "CO-97")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert page.locator("#claim-status").inner_text() == "error found"
    assert "lena" in page.locator("#events").inner_text()
    page.click("#provider-link")
    page.wait_for_selector("#peers")
    _shot(page, "provider")
    page.click("#nav-dashboard")
    page.wait_for_selector("#totals")
    assert page.locator("#reviews-done").inner_text() == "1"
    assert page.locator("#found").inner_text() == "$250.75"
    assert page.locator("#hit-rate").inner_text() == "100.0%"
    _shot(page, "dashboard")
    assert page.outside == [], page.outside  # type: ignore[attr-defined]
    refused = "Failed to load resource: the server responded with a status of 400"  # the invalid form, on purpose
    assert [e for e in page.errors if not e.startswith(refused)] == [], page.errors  # type: ignore[attr-defined]
    rec = load_history(store).recoupments
    assert rec is not None
    mine = rec[rec["claim_id"].astype(str) == claim_id]
    assert len(mine) == 1
    assert float(mine["recouped_amount"].iloc[0]) == 250.75 and mine["cause"].iloc[0] == "bundling"
    assert pd.Timestamp(mine["recouped_date"].iloc[0]).date() == pd.Timestamp.now("UTC").date()
    assert claim_id not in log.read_text()  # no claim id in the server's log
