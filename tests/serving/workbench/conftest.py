"""The workbench's test data: a real claims store (the small history ingested), a real `recoup audit` of it with
the session's trained model, and a fresh SQLite database per test (PostgreSQL in test_db.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def wb_store(trained, tmp_path_factory):
    from features.store.ingest import ingest

    store = tmp_path_factory.mktemp("wb") / "store"
    ingest([trained["data_dir"]], store, workers=1)
    return store


@pytest.fixture(scope="session")
def wb_audit(trained, wb_store, tmp_path_factory):
    from serving.audit import audit_cli

    d = trained["history"].claims["submitted_date"]
    since, until = (str(pd.Timestamp(d.quantile(q)).date()) for q in (0.3, 0.9))
    out = tmp_path_factory.mktemp("wb_audit") / "audit"
    audit_cli(wb_store, out, since=since, until=until, capacity=300)
    return out


@pytest.fixture
def engine(tmp_path):
    from serving.workbench.db import make_engine, upgrade

    e = make_engine(f"sqlite:///{tmp_path / 'wb.sqlite'}")
    upgrade(e)
    yield e
    e.dispose()


@pytest.fixture
def loaded(engine, wb_audit, wb_store):
    from serving.workbench.load import load_audit

    run_id, _ = load_audit(engine, wb_audit, wb_store)
    return run_id


@pytest.fixture
def users(engine):
    from serving.workbench.auth import add_user

    return {
        "lead": add_user(engine, "lena", "lead", PASSWORD),
        "rev": add_user(engine, "rafa", "reviewer", PASSWORD),
        "rev2": add_user(engine, "rita", "reviewer", PASSWORD),
    }


class Recorder:
    """Records what the app hands to the store's record_reviews (then calls it, for real)."""

    def __init__(self):
        self.calls: list[pd.DataFrame] = []

    def __call__(self, store, rows: pd.DataFrame) -> dict:
        from features.store.reviews import record_reviews

        self.calls.append(rows)
        return record_reviews(store, rows)


@pytest.fixture
def store_copy(wb_store, tmp_path):
    """A copy of the store this test may write reviews into."""
    import shutil

    return Path(shutil.copytree(wb_store, tmp_path / "store"))


@pytest.fixture
def app_client(engine, loaded, users, store_copy):
    from starlette.testclient import TestClient

    from serving.workbench.app import Config, create_app

    rec = Recorder()
    cfg = Config(engine=engine, store=store_copy, hosts=["testserver", "localhost"], record=rec)
    with TestClient(create_app(cfg), base_url="http://testserver") as c:
        c.recorder = rec  # type: ignore[attr-defined]
        c.store = store_copy  # type: ignore[attr-defined]
        yield c


def login(client, name: str, password: str = PASSWORD):
    import re

    r = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    return client.post("/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False)


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
