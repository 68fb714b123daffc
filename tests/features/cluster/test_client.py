"""features.cluster.client: which cluster a command runs on, and a real LocalCluster started and stopped."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from features.cluster.client import (
    ENV,
    MEMORY_ENV,
    cluster_spec,
    connect,
    memory_limit,
    parse_spec,
    trim_memory,
    worker_count,
)
from features.errors import RecoupError


def test_spec_from_option_else_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert cluster_spec(None) is None
    assert cluster_spec("local:3") == "local:3"
    monkeypatch.setenv(ENV, " tcp://10.0.0.5:8786 ")
    assert cluster_spec(None) == "tcp://10.0.0.5:8786"
    assert cluster_spec("local") == "local"  # the option wins
    assert cluster_spec("") is None  # an empty option: no cluster, whatever the environment says
    monkeypatch.setenv(ENV, "")
    assert cluster_spec(None) is None


def test_parse_spec(tmp_path):
    assert parse_spec("local").workers == 2
    assert parse_spec("local:5").workers == 5
    assert parse_spec("tcp://sched.example:8786").address == "tcp://sched.example:8786"
    assert parse_spec("sched.example:8786").address == "tcp://sched.example:8786"
    assert parse_spec("tls://10.1.2.3:8786").kind == "address"
    f = tmp_path / "scheduler.json"
    f.write_text("{}")
    assert parse_spec(str(f)).kind == "file"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("local:0", "1 to 64 workers"),
        ("local:65", "1 to 64 workers"),
        ("local:x", "expected local or local:N"),
        ("lokal", "expected local, local:N"),
        ("tcp://host:99999", "not from 1 to 65535"),
        ("/no/such/scheduler.json", "expected local, local:N"),
    ],
)
def test_bad_spec_is_one_line(spec, words):
    with pytest.raises(RecoupError) as err:
        parse_spec(spec)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_memory_limit(monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    assert 256 * 1024**2 <= memory_limit(2) <= 8 * 1024**3
    monkeypatch.setenv(MEMORY_ENV, "1GiB")
    assert memory_limit(2) == 1024**3
    for bad in ("lots", "1KB", "100TB"):
        monkeypatch.setenv(MEMORY_ENV, bad)
        with pytest.raises(RecoupError, match=MEMORY_ENV):
            memory_limit(2)


def test_no_spec_no_client():
    with connect(None) as client:
        assert client is None


def test_local_cluster_starts_computes_and_stops(recoup_home, monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "512MiB")
    with connect("local:2") as client:
        assert worker_count(client) == 2
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert {w["nthreads"] for w in info.values()} == {1}
        assert {w["memory_limit"] for w in info.values()} == {512 * 1024**2}
        assert all(str(recoup_home) in w["local_directory"] for w in info.values())
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # every worker gives freed heap memory back after its tasks (it runs without Dask's malloc setting)
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        assert all("recoup-trim-memory" in names for names in plugins.values())
        assert set(client.run(trim_memory).values()) <= {0, 1}
        # and spills results to disk from 40-50 % of its limit (room for a partition's work beside them)
        fractions = client.run(lambda dask_worker: (dask_worker.memory_manager.memory_target_fraction,))
        assert set(fractions.values()) == {(0.4,)}
        cluster = client.cluster
    assert cluster.status.name == "closed"
    assert client.status == "closed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line(monkeypatch):
    monkeypatch.setenv("RECOUP_DASK_CONNECT_TIMEOUT", "1")
    address = f"tcp://127.0.0.1:{_free_port()}"  # nobody listens there
    with pytest.raises(RecoupError) as err:
        with connect(address):
            pass
    text = str(err.value)
    assert text.startswith(f"cannot reach the Dask scheduler at {address} within 1 s") and "\n" not in text


def test_cli_bad_cluster_is_exit_2_without_traceback(tmp_path):
    """`recoup train --cluster lokal` fails with one error line before loading anything (exit 2)."""
    out = subprocess.run(
        [sys.executable, "-m", "recoup.cli", "train", "--data", str(tmp_path), "--cluster", "lokal"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "error: --cluster" in out.stderr and "Traceback" not in out.stderr


def test_without_a_cluster_nothing_of_dask_is_imported():
    """The single-process path: the training, evaluation and scoring modules and the option's resolution load
    neither dask nor distributed."""
    code = (
        "import sys, os\n"
        "os.environ.pop('RECOUP_DASK_SCHEDULER', None)\n"
        "import recoup.cli, training.train, training.evaluate, serving.batch, serving.audit\n"
        "from features.cluster.client import cluster_spec, connect\n"
        "assert recoup.cli._cluster_kw(None) == {}\n"
        "with connect(cluster_spec(None)) as c:\n"
        "    assert c is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
