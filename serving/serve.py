"""``recoup serve``: start the BentoML scoring service (``bentoml serve serving.service:RecoupService``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from features.errors import RecoupError
from features.settings import bentoml_home, quiet_telemetry, recoup_home

SERVICE = "serving.service:RecoupService"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def bentoml_command(port: int, host: str) -> list[str]:
    exe = Path(sys.executable).parent / "bentoml"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "bentoml"]
    return [*base, "serve", SERVICE, "--port", str(port), "--host", host, "--working-dir", str(PROJECT_ROOT)]


def service_env() -> dict[str, str]:
    """The environment of the service process: telemetry off, BENTOML_HOME in the working folder."""
    quiet_telemetry()
    bentoml_home()
    env = dict(os.environ)
    env["RECOUP_HOME"] = str(recoup_home())  # absolute: the workers run in the project folder
    # LightGBM's OpenMP threads sleep at barriers instead of spinning: requests scored at the same time
    # share the cores with them (a spinning thread waiting for a busy core costs milliseconds)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def serve_cli(port: int = 3000, host: str = "127.0.0.1", workers: int | None = None) -> int:
    """Check there is a model (exporting MLflow's champion to the BentoML store if needed), then serve.

    ``workers`` (default ``RECOUP_SERVICE_WORKERS`` or 1): worker processes; several share the claims
    they record through a journal (serving/journal.py)."""
    from serving import model_store

    env = service_env()
    if workers is not None:
        if workers < 1:
            raise RecoupError(f"--workers must be at least 1, got {workers}")
        env["RECOUP_SERVICE_WORKERS"] = str(workers)
    ref = model_store.resolve_model()  # NoModelError (a RecoupError): one line, exit code 2
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    print(f"recoup scoring service: model from {ref.source}", flush=True)
    print(f"starting on {url}  (ready when {url}/readyz answers 200; Ctrl-C to stop)", flush=True)
    print("example:\n  curl -s -X POST " + url + "/score -H 'content-type: application/json' "
          "-d @claim.json   # claim.json = {\"claim\": {...}}; see docs/service.md", flush=True)
    proc = subprocess.Popen(bentoml_command(port, host), env=env, cwd=str(PROJECT_ROOT))
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        return 0
    if rc not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise RecoupError(f"the scoring service exited with code {rc} (see the log above)")
    return rc
