"""The real scoring service for tests: `bentoml serve` (or `recoup serve`) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path | None = None, timeout: float = 90) -> None:
    """Until ``url/readyz`` answers 200; fails with the end of the log if the process exits first."""
    import httpx

    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log else (proc.stderr.read().decode() if proc.stderr else "")
            pytest.fail(f"the service exited with {proc.returncode}:\n{text[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1, verify=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, f"the service did not get ready in {timeout:.0f} s"
        time.sleep(0.2)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal the process group of ``proc`` (started with start_new_session) and check none is left."""
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    if not group_gone(pgid, 10):
        os.killpg(pgid, signal.SIGKILL)
        pytest.fail("processes of the service were left after SIGTERM")


def group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def model_env(bundle_dir: str | Path, journal_dir: str | Path, workers: int = 1, **extra: str) -> dict[str, str]:
    """The service's environment (``serving.serve.service_env``) serving ``bundle_dir``, recording into
    ``journal_dir`` (recorded claims persist: a folder of the test's own), plus ``extra`` variables."""
    from serving.serve import service_env

    return {
        **service_env(),
        "RECOUP_BUNDLE_DIR": str(bundle_dir),
        "RECOUP_SERVICE_WORKERS": str(workers),
        "RECOUP_JOURNAL_DIR": str(journal_dir),
        **extra,
    }


@contextmanager
def bentoml_server(
    env: dict[str, str],
    log: Path,
    host: str = "127.0.0.1",
    ssl: tuple[Path, Path] | None = None,
    stop: int = signal.SIGTERM,
) -> Iterator[str]:
    """`bentoml serve serving.service:RecoupService` with ``env`` (its output in ``log``); yields its URL.
    Stopped with ``stop`` sent to its process group (SIGTERM: graceful; SIGKILL: everything dies at once)."""
    from serving.serve import bentoml_command

    port = free_port()
    cmd = bentoml_command(port, host, *(ssl or (None, None)))
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    url = f"{'https' if ssl else 'http'}://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log)
        yield url
    finally:
        stop_group(proc, stop)
