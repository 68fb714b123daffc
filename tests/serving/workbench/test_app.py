"""The workbench's pages through the real application (Starlette TestClient, real SQLite, a real audit run of a
real store): worklist filters and sorting, the claim page's evidence, review outcomes (validated, kept, handed to
the store), provider and dashboard pages, exports (formula-safe), security headers."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd
import pytest

from tests.serving.workbench.conftest import csrf_of, login


@pytest.fixture
def lead(app_client):
    login(app_client, "lena")
    return app_client


def _claims(html: str) -> list[str]:
    return re.findall(r'class="claim-link" href="/claim/([^"]+)"', html)


def test_worklist_filters_sorts_and_pages(lead, wb_audit):
    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    r = lead.get("/")
    assert r.status_code == 200 and f"{len(wl):,} claim(s)" in r.text
    assert (
        _claims(r.text)
        == wl.sort_values(["expected_recoupment_dollars", "rank"], ascending=[False, True])["claim_id"]
        .head(50)
        .tolist()
    )
    cause = wl["top_cause"].value_counts().index[-1]
    r = lead.get("/", params={"cause": cause})
    assert set(_claims(r.text)) == set(wl.loc[wl["top_cause"] == cause, "claim_id"].head(50))
    r = lead.get("/", params={"sort": "rank", "order": "desc", "page": "2"})
    assert _claims(r.text)[0] == wl.sort_values("rank", ascending=False)["claim_id"].iloc[50]
    r = lead.get("/", params={"min_dollars": "abc"})
    assert r.status_code == 400 and "a dollar amount such as 120.50" in r.text


def test_claim_page_shows_the_evidence(lead, wb_audit):
    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    hits = wl[wl["rule_hit_count"] > 0]
    row = hits.iloc[0] if len(hits) else wl.iloc[0]
    r = lead.get(f"/claim/{row['claim_id']}")
    assert r.status_code == 200
    assert row["claim_id"] in r.text and f"${row['expected_recoupment_dollars']:,.2f}" in r.text
    assert 'id="line-1"' in r.text and "Causes if recouped" in r.text
    assert "Patient:" in r.text and "Provider:" in r.text
    if len(hits):
        assert row["rule_hit_1"].split(" ")[0] in r.text
    assert lead.get("/claim/NOT-A-CLAIM").status_code == 404


def test_duplicate_hits_link_to_the_matched_claim(lead, engine, loaded):
    from serving.workbench import queries

    with engine.connect() as conn:
        from sqlalchemy import select

        from serving.workbench.db import worklist

        rows = conn.execute(select(worklist.c.claim_id, worklist.c.rule_hits).where(worklist.c.run_id == loaded)).all()
    import json

    dups = [
        (cid, h["ref"])
        for cid, hj in rows
        for h in json.loads(hj or "[]")
        if h.get("rule") == "duplicate" and h.get("ref")
    ]
    if not dups:
        pytest.skip("no duplicate hit in this audit run")
    cid, ref = dups[0]
    page = lead.get(f"/claim/{cid}").text
    present = queries.claim_ids_present(engine, loaded, [str(ref)])
    assert (f'class="dup-link" href="/claim/{ref}"' in page) == bool(present)
    assert f"claim {ref}" in page


def test_error_found_is_validated_kept_and_recorded(lead, wb_audit):
    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    cid = str(wl["claim_id"].iloc[2])
    page = lead.get(f"/claim/{cid}").text
    r = lead.post(f"/claim/{cid}/review", data={"csrf": csrf_of(page), "status": "error_found", "cause": "units"})
    assert r.status_code == 400 and "refund amount: required" in r.text
    assert lead.recorder.calls == []
    r = lead.post(
        f"/claim/{cid}/review",
        data={
            "csrf": csrf_of(page),
            "status": "error_found",
            "refund_amount": "$1,234.50",
            "cause": "units",
            "carc": "151",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=1")
    page = lead.get(r.headers["location"]).text
    assert 'id="saved"' in page and "error found" in page and "$1,234.50" in page
    rows = lead.recorder.calls[0]
    assert list(rows.columns) == ["claim_id", "reviewed_at", "outcome", "refund_amount", "cause", "carc", "reviewer"]
    assert rows.iloc[0].to_dict() | {"reviewed_at": None} == {
        "claim_id": cid,
        "reviewed_at": None,
        "outcome": "error_found",
        "refund_amount": 1234.5,
        "cause": "units",
        "carc": "151",
        "reviewer": rows.iloc[0]["reviewer"],
    }
    assert not rows.iloc[0]["reviewer"].startswith("len")  # an opaque id, not the name
    from features.contract import load_history

    rec = load_history(lead.store).recoupments
    mine = rec[rec["claim_id"].astype(str) == cid]
    assert len(mine) == 1 and float(mine["recouped_amount"].iloc[0]) == 1234.5 and mine["cause"].iloc[0] == "units"
    dash = lead.get("/dashboard").text
    assert 'id="reviews-done">1<' in dash and 'id="found">$1,234.50<' in dash and "<svg" in dash
    assert lead.get("/?status=error_found").text.count('class="claim-link"') == 1


def test_changing_an_outcome_changes_what_the_store_derives(lead, wb_audit):
    """error found $100 -> no issue -> error found $60 -> not reviewed, saved one after the other (within a second):
    each save is a store review at the change's UTC time, strictly after the previous one; the store's latest
    review decides the refund, the reset writes ``withdrawn`` and the audit counts the claim as not reviewed."""
    import datetime as dt

    from features.contract import load_history
    from serving.audit import already_reviewed

    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    cid = str(wl["claim_id"].iloc[4])

    def save(**fields) -> None:
        page = lead.get(f"/claim/{cid}").text
        version = re.search(r'name="version" value="(\d+)"', page).group(1)
        r = lead.post(
            f"/claim/{cid}/review",
            data={"csrf": csrf_of(page), "version": version, **fields},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text

    def refund(history) -> list[float]:
        rec = history.recoupments
        return rec.loc[rec["claim_id"].astype(str) == cid, "recouped_amount"].tolist()

    before = load_history(lead.store)
    assert refund(before) == []
    start = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    save(status="error_found", refund_amount="100", cause="units")
    assert refund(load_history(lead.store)) == [100.0]
    save(status="no_issue")
    h = load_history(lead.store)
    assert refund(h) == [] and len(h.recoupments) == len(before.recoupments)
    save(status="error_found", refund_amount="60", cause="units")
    assert refund(load_history(lead.store)) == [60.0]
    save(status="not_reviewed")
    h = load_history(lead.store)
    assert refund(h) == [] and len(h.recoupments) == len(before.recoupments)
    save(status="in_review", assignee="")  # no outcome before or after: nothing for the store
    calls = pd.concat(lead.recorder.calls, ignore_index=True)
    assert calls["outcome"].tolist() == ["error_found", "no_issue", "error_found", "withdrawn"]
    assert calls.loc[3, ["refund_amount", "cause", "carc"]].isna().all()
    times = calls["reviewed_at"].tolist()
    assert all(a < b for a, b in zip(times, times[1:])) and times[0] >= pd.Timestamp(start)
    assert times[0] <= pd.Timestamp(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) + pd.Timedelta(seconds=5)
    mine = h.reviews[h.reviews["claim_id"].astype(str) == cid].sort_values("reviewed_at")
    assert mine["outcome"].astype(str).tolist() == calls["outcome"].tolist()
    assert mine["reviewed_at"].tolist() == times  # the store keeps the times to the second
    assert not already_reviewed(h, pd.Series([cid]))[0]  # back on the next audit's worklist
    page = lead.get(f"/claim/{cid}").text
    assert "error found" in page and "no issue" in page  # the workbench's own history keeps every change


def test_what_a_change_writes_to_the_store_and_when():
    import datetime as dt

    from serving.workbench.queries import change_time, store_outcome

    assert store_outcome("not_reviewed", "no_issue") == "no_issue"
    assert store_outcome("error_found", "refunded") == "refunded"
    assert store_outcome("error_found", "not_reviewed") == "withdrawn"
    assert store_outcome("no_issue", "in_review") == "withdrawn"  # re-opened: the outcome no longer stands
    assert store_outcome("in_review", "not_reviewed") is None and store_outcome("not_reviewed", "in_review") is None
    t = dt.datetime(2024, 3, 2, 10, 0, 0)
    assert change_time(t, None) == t and change_time(t, t - dt.timedelta(seconds=1)) == t
    assert change_time(t, t) == t + dt.timedelta(seconds=1)
    assert change_time(t, t + dt.timedelta(seconds=5)) == t + dt.timedelta(seconds=6)  # a clock set back


def test_provider_page(lead, wb_audit):
    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    row = wl.iloc[0]
    r = lead.get(f"/provider/{row['billing_npi']}")
    assert r.status_code == 200
    assert str(row["specialty"]) in r.text and 'id="peers"' in r.text and 'id="trend"' in r.text
    assert "<svg" in r.text
    assert lead.get("/provider/0000000000").status_code == 404


def test_exports_are_flat_and_formula_safe(lead, engine, loaded):
    """A run whose text cells look like formulas: the CSV and the Excel sheet hold them as text."""
    from openpyxl import load_workbook

    from serving.workbench.load import insert_run

    evil = pd.DataFrame(
        {
            "rank": [1, 2],
            "claim_id": ['=HYPERLINK("http://x")', "C2"],
            "billing_npi": ["1234567893", "1234567893"],
            "provider_name": ["@SUM(A1)", "+cmd"],
            "specialty": ["-2+3", "\tTab"],
            "payer_id": ["P1", "P1"],
            "expected_recoupment_dollars": [50.0, -5.0],
            "reason_1": ["=1+1", "ok"],
            "top_cause": ["units", "units"],
        }
    )
    insert_run(engine, evil, "f" * 64, "/tmp/evil", None)
    r = lead.get("/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    head = rows[0]
    assert "claim_id" in head and "reasons" not in head and "details" not in head
    body = {row[head.index("rank")]: dict(zip(head, row)) for row in rows[1:]}
    assert body["1"]["claim_id"] == '\'=HYPERLINK("http://x")' and body["1"]["provider_name"] == "'@SUM(A1)"
    assert (
        body["1"]["reason_1"] == "'=1+1"
        and body["2"]["specialty"] == "'\tTab"
        and body["2"]["provider_name"] == "'+cmd"
    )
    assert body["2"]["expected_recoupment_dollars"] == "-5.0"  # numbers stay numbers
    r = lead.get("/export.xlsx", params={"sort": "rank", "order": "asc"})
    ws = load_workbook(io.BytesIO(r.content)).active
    cells = {c.value: c for row in ws.iter_rows() for c in row if isinstance(c.value, str)}
    assert '\'=HYPERLINK("http://x")' in cells and cells['\'=HYPERLINK("http://x")'].data_type == "s"
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)
    assert ws.max_row == 3
    assert lead.get("/export.pdf").status_code == 404


def test_security_headers_host_check_and_body_limit(lead):
    r = lead.get("/")
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    assert (
        "<script>" not in r.text
        and " style=" not in r.text
        and "http://" not in r.text.replace("http://www.w3.org", "")
    )
    assert lead.get("/static/workbench.css").status_code == 200
    assert lead.get("/", headers={"host": "evil.example"}).status_code == 400
    big = lead.post(
        "/logout", content=b"csrf=" + b"x" * 20_000, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert big.status_code == 413
