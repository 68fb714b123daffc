"""`recoup serve` processes and ports: out-of-range ports, a port in use, hosts that need a key, and
no process left serving the port after SIGTERM to `recoup serve` or kill -9 of BentoML's parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers.server import free_port, wait_ready

psutil = pytest.importorskip("psutil")


def _recoup(args: list[str], env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    from serving.serve import PROJECT_ROOT

    return subprocess.run(
        [sys.executable, "-m", "recoup.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
        **kw,
    )


def _error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def test_ports_out_of_range_are_rejected():
    from features.errors import RecoupError
    from serving.serve import check_port

    for cmd in (["serve", "--port", "99999"], ["serve", "--port", "0"], ["demo", "--port", "70000"]):
        run = _recoup(cmd)
        assert run.returncode == 2 and "--port" in run.stderr and "Traceback" not in run.stderr, run.stderr
    for bad in (0, 65536, 99999, -1):
        with pytest.raises(RecoupError, match="from 1 to 65535"):
            check_port(bad)
    assert check_port(1) == 1 and check_port(65535) == 65535


def test_port_in_use_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = _error_line(_recoup(["serve", "--port", str(port)]))
    assert f"port {port} is already in use" in line


def test_other_hosts_need_a_key_and_an_allowed_host(tmp_path):
    env = {**os.environ, "RECOUP_API_KEYS_FILE": str(tmp_path / "keys.json")}
    line = _error_line(_recoup(["serve", "--host", "0.0.0.0", "--port", str(free_port())], env))
    assert "API key" in line and "recoup keys create NAME" in line
    assert _recoup(["keys", "create", "ops"], env).returncode == 0
    line = _error_line(_recoup(["serve", "--host", "0.0.0.0", "--port", str(free_port())], env))
    assert "--allowed-host" in line


def test_any_host_on_loopback_needs_a_key(tmp_path):
    """Before: `--allowed-host '*'` without a key started, open to any web page through DNS rebinding."""
    env = {**os.environ, "RECOUP_API_KEYS_FILE": str(tmp_path / "keys.json")}
    line = _error_line(_recoup(["serve", "--allowed-host", "*", "--port", str(free_port())], env))
    assert "DNS rebinding" in line and "recoup keys create NAME" in line


def test_tls_files_that_do_not_load_are_one_line(trained, tmp_path):
    """Before: a certificate and key that do not load (swapped, not PEM, encrypted) started the service,
    whose workers then failed with a traceback and were restarted forever, never ready."""
    pem = tmp_path / "cert.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    key = tmp_path / "key.pem"
    key.write_text("not a key\n")
    env = {
        **os.environ,
        "RECOUP_BUNDLE_DIR": str(trained["bundle_dir"]),
        "RECOUP_JOURNAL_DIR": str(tmp_path),
        "RECOUP_API_KEYS_FILE": str(tmp_path / "none.json"),
    }
    try:
        run = _recoup(
            ["serve", "--port", str(free_port()), "--ssl-certfile", str(pem), "--ssl-keyfile", str(key)],
            env,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the service started with TLS files that do not load")
    line = _error_line(run)
    assert "--ssl-certfile" in line and "private key" in line


def test_all_interfaces_are_not_called_localhost():
    from serving.serve import shown_address

    where, url = shown_address("0.0.0.0", 3000)
    assert where.startswith("all interfaces") and "localhost" not in where and url == "http://127.0.0.1:3000"
    assert shown_address("::", 3000)[0].startswith("all interfaces")
    assert shown_address("127.0.0.1", 8443, "https") == ("https://127.0.0.1:8443",) * 2


def _start_recoup_serve(trained, tmp_path) -> tuple[subprocess.Popen, int, list]:
    """`recoup serve` on a free port, ready; returns (process, port, its descendants)."""
    from serving.serve import PROJECT_ROOT

    port = free_port()
    env = {
        **os.environ,
        "RECOUP_BUNDLE_DIR": str(trained["bundle_dir"]),
        "RECOUP_JOURNAL_DIR": str(tmp_path),
        "RECOUP_API_KEYS_FILE": str(tmp_path / "none.json"),
        "RECOUP_SERVICE_WORKERS": "2",
    }
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recoup.cli", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_ready(proc, f"http://127.0.0.1:{port}", log)
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert len(tree) >= 3, tree  # bentoml serve + 2 workers
    return proc, port, tree


def _port_free(port: int, timeout: float = 30) -> bool:
    from features.errors import RecoupError
    from serving.serve import check_port_free

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            check_port_free("127.0.0.1", port)
            return True
        except RecoupError:
            time.sleep(0.3)
    return False


def _none_left(tree: list, timeout: float = 30) -> list:
    _, alive = psutil.wait_procs(tree, timeout=timeout)
    for p in alive:
        p.kill()
    return alive


def test_sigterm_to_recoup_serve_leaves_no_process(trained, tmp_path):
    proc, port, tree = _start_recoup_serve(trained, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert _none_left(tree) == []
        assert _port_free(port)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_kill_9_of_bentoml_parent_stops_its_workers(trained, tmp_path):
    proc, port, tree = _start_recoup_serve(trained, tmp_path)
    try:
        arbiter = next(p for p in tree if p.ppid() == proc.pid)
        workers = [p for p in tree if p.pid != arbiter.pid]
        arbiter.kill()  # SIGKILL: it cannot stop its workers itself
        assert _none_left(workers) == [], "workers kept running after their parent was killed"
        assert _port_free(port)
        assert proc.wait(timeout=40) == 2  # `recoup serve` reports the service's end
        log = (tmp_path / "serve.log").read_text(errors="replace")
        assert "exited with code -9" in log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_kill_9_of_recoup_serve_stops_the_service(trained, tmp_path):
    proc, port, tree = _start_recoup_serve(trained, tmp_path)
    try:
        proc.kill()  # SIGKILL: it cannot forward anything; BentoML's parent sees it gone
        proc.wait(timeout=10)
        assert _none_left(tree) == [], "BentoML kept serving after recoup serve was killed"
        assert _port_free(port)
    finally:
        for p in tree:
            if p.is_running():
                p.kill()


@pytest.mark.parametrize(
    "name,value",
    [
        ("RECOUP_SERVICE_WORKERS", "abc"),
        ("RECOUP_SERVICE_THREADS", "0"),
        ("RECOUP_MAX_BODY_BYTES", "1e12"),
        ("RECOUP_JOURNAL_COMPACT_SECONDS", "-5"),
    ],
)
def test_bad_numeric_settings_are_one_line(name, value, tmp_path):
    """RECOUP_SERVICE_WORKERS=abc gave a 62-line traceback from every worker: one line naming it."""
    env = {**os.environ, "RECOUP_HOME": str(tmp_path), name: value}
    line = _error_line(_recoup(["serve", "--port", "3999"], env=env, timeout=60))
    assert name in line and value in line, line
