"""features/store/manifest.py: the SQLite manifest (schema, WAL, one transaction per ingest, versions)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from features.errors import RecoupError
from features.store import manifest as mf
from features.store.ingest import ingest
from features.store.read import read_store
from tests.helpers.contract_tables import good_tables, write_dir


def test_an_ingest_is_recorded_in_every_table(tmp_path):
    store = tmp_path / "store"
    s = ingest([write_dir(tmp_path / "h", good_tables())], store)
    conn = sqlite3.connect(store / mf.MANIFEST)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ((sid, summary, options),) = conn.execute("SELECT id, summary, options FROM ingests").fetchall()
    assert (
        sid == s.ingest == 1
        and json.loads(summary)["claims_added"] == 3
        and json.loads(options) == {"skip_invalid": False}
    )
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 5
    units = conn.execute("SELECT key, kind, status, counts FROM units ORDER BY kind").fetchall()
    assert [u[1] for u in units] == ["claim_lines", "claims", "coverage", "providers", "recoupments"]
    assert all(u[0].startswith(f"table:{u[1]}:") and u[2] == "ingested" for u in units)
    assert json.loads(units[1][3]) == {"claims": 3}
    index = dict(conn.execute("SELECT claim_id, month FROM claim_index").fetchall())
    assert index == {"C1": "2024-01", "C2": "2024-02", "C3": "2024-03"}
    parts = conn.execute("SELECT file, rows FROM parts WHERE tbl='claims' ORDER BY file").fetchall()
    assert parts == [
        ("claims/month=2024-01/part-000001-00001.parquet", 1),
        ("claims/month=2024-02/part-000001-00002.parquet", 1),
        ("claims/month=2024-03/part-000001-00003.parquet", 1),
    ]
    assert all((store / f).is_file() for f, _ in parts)
    assert conn.execute("SELECT count(*) FROM recoupment_keys").fetchone()[0] == 4
    conn.close()


def test_a_newer_schema_is_refused_clearly(tmp_path):
    store = tmp_path / "store"
    ingest([write_dir(tmp_path / "h", good_tables())], store)
    conn = sqlite3.connect(store / mf.MANIFEST)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(mf.SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(RecoupError, match=r"store schema version 2, newer than this recoup reads \(1\)"):
        read_store(store)


def test_not_a_store_and_a_broken_manifest(tmp_path):
    with pytest.raises(RecoupError, match="not a claims store"):
        mf.connect(tmp_path)
    (tmp_path / mf.MANIFEST).write_bytes(b"not a database" * 100)
    with pytest.raises(RecoupError, match="cannot read the store manifest"):
        mf.connect(tmp_path)


def test_a_failed_commit_writes_nothing(tmp_path):
    conn = mf.connect(tmp_path, create=True)
    part = mf.Part("claims/month=2024-01/part-000001-00001.parquet", "claims", "2024-01", 1, 1)
    c = mf.Commit(1, "s", "f", {}, {}, [("a" * 64, "x", 1)], [], [part, part], {}, set())  # duplicate part: fails
    with pytest.raises(sqlite3.IntegrityError):
        mf.commit(conn, c)
    assert mf.committed(conn) == (set(), set())
    assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    conn.close()
