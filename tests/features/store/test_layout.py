"""features/store/layout.py: the writer lock and the staging protocol, with real processes: a `recoup ingest`
killed with SIGKILL before or after its manifest commit leaves a store that reads back as before (or with the
whole committed ingest) and accepts the next ingest; two ingests into one store never interleave."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from features.store.ingest import PAUSE_ENV, ingest
from features.store.layout import MANIFEST, staged_files
from features.store.read import read_store
from tests.features.store.conftest import assert_same_history
from tests.helpers.contract_tables import good_tables, write_dir

ROOT = Path(__file__).resolve().parents[3]


def _start(paths: list[Path], store: Path, pause: str = "", wait: float | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "recoup.cli", "ingest", *map(str, paths), "--into", str(store)]
    if wait is not None:
        cmd += ["--wait", str(wait)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), PAUSE_ENV: pause}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(
                f"the ingest ended early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
            )
        assert time.monotonic() < deadline, "the ingest never reached the point of the test"
        time.sleep(0.05)


def _ingests(store: Path) -> int:
    conn = sqlite3.connect(f"file:{store / MANIFEST}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM ingests").fetchone()[0]
    finally:
        conn.close()


def _days(tmp_path: Path) -> tuple[Path, Path]:
    """Day 1: the tiny history; day 2: three more claims (other ids, a later month) with their lines."""
    t = good_tables()
    day1 = write_dir(tmp_path / "day1", t)
    claims = t["claims"].assign(claim_id=["N1", "N2", "N3"], submitted_date="2024-05-02", paid_date="", paid_amount="")
    lines = t["claim_lines"].assign(claim_id=["N1", "N1", "N2", "N3"], service_date="2024-05-01")
    day2 = write_dir(tmp_path / "day2", {"claims": claims, "claim_lines": lines})
    return day1, day2


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_kill_before_the_commit_leaves_the_store_as_before(tmp_path):
    day1, day2 = _days(tmp_path)
    store = tmp_path / "store"
    ingest([day1], store)
    before = read_store(store)
    proc = _start([day2], store, pause="staged:120")
    _until(lambda: any(staged_files(store)), proc)
    _kill(proc)
    assert any(staged_files(store))  # left behind, listed nowhere
    assert _ingests(store) == 1
    assert_same_history(read_store(store), before)
    s = ingest([day2], store, wait=5)  # recovery deletes the orphans, then the ingest runs whole
    assert s.claims_added == 3 and not any(staged_files(store))
    assert set(read_store(store).claims["claim_id"]) == {"C1", "C2", "C3", "N1", "N2", "N3"}


def test_kill_after_the_commit_keeps_the_whole_ingest(tmp_path):
    day1, day2 = _days(tmp_path)
    store = tmp_path / "store"
    ingest([day1], store)
    proc = _start([day2], store, pause="committed:120")
    _until(lambda: _ingests(store) == 2, proc)
    _kill(proc)
    assert any(staged_files(store))  # committed, not yet renamed: readers read the staged names
    committed = read_store(store)
    assert set(committed.claims["claim_id"]) == {"C1", "C2", "C3", "N1", "N2", "N3"}
    s = ingest([day2], store, wait=5)  # recovery renames them; the units are already ingested
    assert s.units_already == 2 and s.claims_added == 0 and not any(staged_files(store))
    assert_same_history(read_store(store), committed)


@pytest.mark.slow
def test_two_ingests_never_interleave(tmp_path):
    day1, day2 = _days(tmp_path)
    t = good_tables()
    day3 = write_dir(
        tmp_path / "day3",
        {
            "claims": t["claims"].assign(claim_id=["M1", "M2", "M3"]),
            "claim_lines": t["claim_lines"].assign(claim_id=["M1", "M1", "M2", "M3"]),
        },
    )
    store = tmp_path / "store"
    ingest([day1], store)
    first = _start([day2], store, pause="staged:8")
    _until(lambda: any(staged_files(store)), first)
    refused = _start([day3], store, wait=0.5)
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "Traceback" not in err
    assert f"another ingest is writing to {store} (pid {first.pid})" in err
    waiting = _start([day3], store, wait=120)
    assert first.wait(timeout=120) == 0
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    conn = sqlite3.connect(store / MANIFEST)
    rows = conn.execute("SELECT id, started, finished FROM ingests ORDER BY id").fetchall()
    units = conn.execute("SELECT ingest, count(*) FROM units GROUP BY ingest ORDER BY ingest").fetchall()
    conn.close()
    assert [r[0] for r in rows] == [1, 2, 3] and units == [(1, 5), (2, 2), (3, 2)]
    assert rows[2][1][:19] >= rows[1][2][:19]  # the third started after the second finished (seconds)
    claims = read_store(store).claims
    assert len(claims) == 9 and claims["claim_id"].is_unique
    parts = pd.Series([p.name.split("-")[1] for p in store.rglob("part-*.parquet")])
    assert set(parts) == {"000001", "000002", "000003"}
