"""The workbench's data layer on SQLite and on a real PostgreSQL server: migrations, loading an audit run
(idempotent), worklist filters and sorting, review changes with their audit trail, the dashboard's figures."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import func, select

from features.errors import RecoupError

try:  # WB-LOOP's session fixture (branch s17-wb-loop): a real PostgreSQL server started by the tests
    from tests.helpers.postgres import postgres_database, postgres_url  # noqa: F401

    HAVE_POSTGRES = True
except ImportError:
    HAVE_POSTGRES = False


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """An engine at the latest schema, on SQLite (a file) or PostgreSQL (a fresh database)."""
    from serving.workbench.db import make_engine, upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wb.sqlite'}"
    else:
        if not HAVE_POSTGRES:
            pytest.skip("tests/helpers/postgres.py (postgres_url, WB-LOOP's branch s17-wb-loop) is not merged yet")
        url = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()  # a PostgreSQL database is dropped by its fixture


@pytest.fixture
def run(db, wb_audit, wb_store):
    from serving.workbench.load import load_audit

    run_id, new = load_audit(db, wb_audit, wb_store)
    assert new
    return run_id


@pytest.fixture
def people(db):
    from serving.workbench.auth import User, add_user

    return {
        name: User(add_user(db, name, role, "a long enough password"), name, role)
        for name, role in (("lena", "lead"), ("rafa", "reviewer"), ("rita", "reviewer"))
    }


def test_migrations_create_the_declared_schema_and_are_idempotent(db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from serving.workbench.db import metadata, upgrade

    assert upgrade(db) == "0002"  # again: nothing to do
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_load_is_idempotent_per_audit_run_and_keeps_the_details(db, run, wb_audit, wb_store):
    from serving.workbench.db import audit_runs, providers, worklist
    from serving.workbench.load import latest_run, load_audit

    again, new = load_audit(db, wb_audit, wb_store)
    assert (again, new) == (run, False) and latest_run(db) == run
    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(worklist)).scalar() == len(wl)
        assert conn.execute(select(func.count()).select_from(audit_runs)).scalar() == 1
        n_prov = conn.execute(select(func.count()).select_from(providers)).scalar()
    assert n_prov == wl["billing_npi"].nunique()
    from serving.workbench import queries

    first = wl.iloc[0]
    c = queries.claim(db, run, str(first["claim_id"]))
    assert c is not None and c["rank"] == 1
    assert abs(c["expected_recoupment_dollars"] - first["expected_recoupment_dollars"]) < 1e-9
    lines = c["details"]["lines"]
    assert lines and all(ln["claim_id"] == first["claim_id"] for ln in lines)
    assert c["details"]["claim"]["patient_id"]  # from the store, not the worklist
    assert c["details"]["patient_history"]["claims"] >= 1


def test_worklist_filters_sort_and_pages_agree_with_the_parquet(db, run, wb_audit, people):
    from serving.workbench import queries

    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    lead = people["lena"]
    cause = wl["top_cause"].value_counts().index[0]
    f = queries.Filters.parse({"cause": cause, "per_page": "10"})
    rows, total = queries.worklist_page(db, run, f, lead)
    assert total == int((wl["top_cause"] == cause).sum()) and len(rows) == min(10, total)
    assert all(r["top_cause"] == cause for r in rows)
    dollars = [r["expected_recoupment_dollars"] for r in rows]
    assert dollars == sorted(dollars, reverse=True)
    lo, hi = wl["expected_recoupment_dollars"].quantile([0.25, 0.75])
    f = queries.Filters.parse(
        {"min_dollars": f"{lo:.2f}", "max_dollars": f"{hi:.2f}", "sort": "probability", "order": "asc"}
    )
    rows, total = queries.worklist_page(db, run, f, lead)
    want = wl[(wl["expected_recoupment_dollars"] >= round(lo, 2)) & (wl["expected_recoupment_dollars"] <= round(hi, 2))]
    assert total == len(want)
    probs = [r["recoupment_probability"] for r in rows]
    assert probs == sorted(probs)
    payer = str(wl["payer_id"].iloc[3])
    band = str(wl["risk_band"].iloc[3])
    f = queries.Filters.parse({"payer": payer, "band": band, "page": "2", "per_page": "10"})
    rows, total = queries.worklist_page(db, run, f, lead)
    want = wl[(wl["payer_id"] == payer) & (wl["risk_band"] == band)]
    assert total == len(want)
    assert [r["claim_id"] for r in rows] == want.sort_values(
        ["expected_recoupment_dollars", "rank"], ascending=[False, True]
    )["claim_id"].iloc[10:20].tolist()
    cid = str(wl["claim_id"].iloc[5])
    rows, total = queries.worklist_page(db, run, queries.Filters.parse({"q": cid}), lead)
    assert cid in [r["claim_id"] for r in rows] and all(r["claim_id"].startswith(cid) for r in rows)
    spec = str(wl["specialty"].dropna().iloc[0])
    _, total = queries.worklist_page(db, run, queries.Filters.parse({"specialty": spec}), lead)
    assert total == int((wl["specialty"] == spec).sum())


def test_bad_filters_are_dropped_with_a_message():
    from serving.workbench.queries import Filters

    f = Filters.parse({"cause": "nope", "min_dollars": "12x", "sort": "password", "page": "0", "q": "x" * 100})
    assert f.cause is None and f.min_dollars is None and f.sort == "dollars" and f.page == 1 and f.q is None
    assert len(f.errors) == 5 and any("dollar amount" in e for e in f.errors)


def test_review_changes_keep_an_audit_trail_and_reviewers_see_theirs(db, run, wb_audit, people):
    from serving.workbench import queries
    from serving.workbench.db import review_events

    wl = pd.read_parquet(wb_audit / "worklist.parquet")
    a, b = str(wl["claim_id"].iloc[0]), str(wl["claim_id"].iloc[1])
    lena, rafa, rita = people["lena"], people["rafa"], people["rita"]
    recorded: list[dict] = []
    ids = {u.id for u in people.values()}
    ch, err = queries.parse_change({"status": "in_review", "assignee": str(rafa.id)}, lena, ids)
    assert err == {} and ch is not None
    queries.apply_change(db, a, ch, lena, 10.0, recorded.append)
    assert recorded == []  # not an outcome: nothing for the store
    # rita (a reviewer) no longer sees claim a; rafa does; the lead sees everything
    mine = queries.Filters.parse({"assignee": "me"})
    assert [r["claim_id"] for r in queries.worklist_page(db, run, mine, rafa)[0]] == [a]
    all_rita = queries.worklist_page(db, run, queries.Filters.parse({"per_page": "200"}), rita)[1]
    all_lead = queries.worklist_page(db, run, queries.Filters.parse({}), lena)[1]
    assert all_rita == all_lead - 1
    ch, err = queries.parse_change(
        {"status": "error_found", "refund_amount": "125.50", "cause": "units", "carc": "co-151"}, rafa, ids
    )
    assert err == {} and ch is not None
    queries.apply_change(db, a, ch, rafa, 10.0, recorded.append)
    assert recorded[0]["outcome"] == "error_found" and recorded[0]["refund_amount"] == 125.5
    assert recorded[0]["carc"] == "CO-151" and recorded[0]["reviewer"] == f"wb-{rafa.id}"
    ch, _ = queries.parse_change({"status": "no_issue"}, lena, ids)

    def refuse(row: dict) -> None:
        raise RecoupError("store is busy")

    with pytest.raises(RecoupError):
        queries.apply_change(db, b, ch, lena, 5.0, refuse)
    with db.connect() as conn:
        evs = conn.execute(select(review_events).order_by(review_events.c.id)).all()
    assert [(e.from_status, e.to_status) for e in evs] == [("not_reviewed", "in_review"), ("in_review", "error_found")]
    assert evs[1].user_id == rafa.id and evs[1].amount == 125.5
    with db.connect() as conn:
        assert queries.review(conn, b)["status"] == "not_reviewed"  # the refused change left nothing
    d = queries.dashboard(db, lena)
    assert d["total"]["reviews"] == 1 and d["total"]["hits"] == 1 and d["total"]["found"] == 125.5
    assert d["total"]["predicted"] == 10.0 and d["reviewers"][0]["reviewer"] == "rafa"
    assert d["weeks"][0]["week"] <= dt.date.today().isoformat()
    assert queries.dashboard(db, rita)["total"]["reviews"] == 0  # a reviewer sees their own
    ch, _ = queries.parse_change({"status": "in_review"}, rita, ids)
    queries.apply_change(db, b, ch, rita, 5.0, recorded.append)
    assert queries.dashboard(db, rita)["in_review"] == 1 and queries.dashboard(db, rafa)["in_review"] == 0
    assert queries.dashboard(db, lena)["in_review"] == 1


@pytest.mark.parametrize(
    "form, field",
    [
        ({"status": "error_found", "cause": "units"}, "refund_amount"),
        ({"status": "error_found", "refund_amount": "-3", "cause": "units"}, "refund_amount"),
        ({"status": "refunded", "refund_amount": "1e12", "cause": "units"}, "refund_amount"),
        ({"status": "error_found", "refund_amount": "10", "cause": "vibes"}, "cause"),
        ({"status": "no_issue", "carc": "=1+1"}, "carc"),
        ({"status": "no_issue", "carc": "CO-999"}, "carc"),
        ({"status": "in_review", "assignee": "999"}, "assignee"),
        ({"status": "done"}, "status"),
        ({"status": "no_issue", "note": "x" * 2001}, "note"),
    ],
)
def test_review_form_validation(form, field):
    from serving.workbench.auth import User
    from serving.workbench.queries import parse_change

    ch, errs = parse_change(form, User(1, "lena", "lead"), {1, 2})
    assert ch is None and field in errs and errs[field]


def test_bad_database_url_is_one_line(tmp_path):
    from serving.workbench.db import make_engine, upgrade

    with pytest.raises(RecoupError, match="only SQLite and PostgreSQL"):
        make_engine("mysql://u:secret@h/db")
    with pytest.raises(RecoupError, match="cannot open the database") as ei:
        upgrade(make_engine("postgresql://u:secret@127.0.0.1:1/db"))
    assert "secret" not in str(ei.value)


def test_sqlite_and_postgresql_filter_and_sort_alike(db, run, people):
    """Provider-name search ignores case and missing values sort last, on both (SQLite's LIKE ignored case and
    PostgreSQL's did not; NULLs came first ascending on SQLite, first descending on PostgreSQL); a NUL in a filter
    is a message (PostgreSQL refuses NUL in text)."""
    from sqlalchemy import update

    from serving.workbench import queries
    from serving.workbench.db import worklist

    lead = people["lena"]
    with db.begin() as conn:
        ids = list(
            conn.execute(
                select(worklist.c.claim_id).where(worklist.c.run_id == run).order_by(worklist.c.rank).limit(3)
            ).scalars()
        )
        conn.execute(update(worklist).where(worklist.c.claim_id == ids[0]).values(provider_name="Smith Family Clinic"))
        conn.execute(update(worklist).where(worklist.c.claim_id.in_(ids[1:])).values(specialty=None, paid_amount=None))
    rows, n = queries.worklist_page(db, run, queries.Filters.parse({"provider": "smith fam"}), lead)
    assert n == 1 and rows[0]["claim_id"] == ids[0]
    rows, n = queries.worklist_page(db, run, queries.Filters.parse({"provider": "SMITH F"}), lead)
    assert n == 1
    for sort in ("specialty", "paid"):
        for order in ("asc", "desc"):
            f = queries.Filters.parse({"sort": sort, "order": order, "per_page": "200"})
            rows, n = queries.worklist_page(db, run, f, lead)
            col = "specialty" if sort == "specialty" else "paid_amount"
            assert rows[0][col] is not None, (sort, order)
            last = queries.worklist_page(
                db, run, queries.Filters.parse({**f.params(), "page": str(-(-n // 200))}), lead
            )
            assert [r["claim_id"] for r in last[0][-2:]] == sorted(ids[1:], key=ids.index), (sort, order)
    f = queries.Filters.parse({"q": "CLM\x00", "payer": "\x00"})
    assert len(f.errors) == 2 and f.q is None and f.payer is None
    assert queries.claim(db, run, "CLM\x00") is None and queries.provider(db, run, "1\x00") is None


def test_a_database_at_the_first_schema_upgrades_with_its_reviews(db, people):
    """0001 -> 0002 (reviews.version) keeps the reviews there, at version 0; on both databases."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from serving.workbench import queries
    from serving.workbench.db import migrations_dir, upgrade

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    t = dt.datetime(2026, 1, 5, 9, 0)
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO reviews (claim_id, status, updated_at, updated_by) VALUES ('C1', 'no_issue', :t, :u)"),
            {"t": t, "u": people["rafa"].id},
        )
    assert upgrade(db) == "0002"
    with db.connect() as conn:
        assert queries.review(conn, "C1")["version"] == 0
    ch = queries.Change("in_review")
    queries.apply_change(db, "C1", ch, people["lena"], None, lambda r: None, version=0)
    with pytest.raises(queries.Conflict):
        queries.apply_change(db, "C1", ch, people["rita"], None, lambda r: None, version=0)
