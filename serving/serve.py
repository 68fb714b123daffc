"""``recoup serve``: start the BentoML scoring service (``bentoml serve serving.service:RecoupService``).

Processes: ``bentoml serve`` (the arbiter) runs in its own session (process group); SIGINT, SIGTERM
and SIGHUP to ``recoup serve`` are forwarded to the whole group, and whatever is left of the group
when the arbiter has gone is killed. The arbiter and its workers watch their parent
(:func:`watch_parent`): if it dies (even ``kill -9``) they stop, so no worker keeps the port.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from features.errors import RecoupError
from features.settings import check_env_numbers, bentoml_home, quiet_telemetry, recoup_home

SERVICE = "serving.service:RecoupService"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PORT_MIN, PORT_MAX = 1, 65535
STOP_GRACE_S = 15  # after SIGTERM, how long the service may take before it is killed


def check_port(port: int, option: str = "--port") -> int:
    """A TCP port number (1-65535), or RecoupError naming the option."""
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise RecoupError(f"{option} must be a port number from {PORT_MIN} to {PORT_MAX}, got {port}")
    return port


def check_port_free(host: str, port: int) -> None:
    """One line if ``host:port`` cannot be listened on (in use, or not an address of this machine)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RecoupError(
                    f"port {port} is already in use on {host} (another recoup serve?); stop it or choose another --port"
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise RecoupError(
                    f"port {port} on {host}: permission denied (ports below 1024 need "
                    f"privileges); choose another --port"
                ) from None
            raise RecoupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        except socket.gaierror as exc:
            raise RecoupError(f"--host {host}: not an address of this machine ({exc.strerror})") from None


def check_tls_files(certfile: Path, keyfile: Path) -> None:
    """One line unless ``certfile`` and ``keyfile`` load as a PEM certificate and its unencrypted private
    key (else every worker would fail at start with a traceback, restarted forever, never ready)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(certfile, keyfile, password=lambda: b"")  # an encrypted key: refused, no prompt
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise RecoupError(
            f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile}: not a PEM certificate and its "
            f"unencrypted private key ({reason})"
        ) from None


def bentoml_command(
    port: int, host: str, ssl_certfile: Path | None = None, ssl_keyfile: Path | None = None
) -> list[str]:
    exe = Path(sys.executable).parent / "bentoml"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "bentoml"]
    cmd = [*base, "serve", SERVICE, "--port", str(port), "--host", host, "--working-dir", str(PROJECT_ROOT)]
    if ssl_certfile is not None:
        cmd += ["--ssl-certfile", str(ssl_certfile), "--ssl-keyfile", str(ssl_keyfile)]
    return cmd


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


def watch_parent(every: float = 1.0) -> None:
    """Stop this process (SIGTERM, then exit after ``STOP_GRACE_S``) when its parent dies.

    A thread compares ``os.getppid()`` once per ``every`` seconds: a process whose parent died is
    re-parented. Used by the BentoML arbiter started by ``recoup serve`` and by every worker."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="recoup-parent-watch", daemon=True).start()


def shown_address(host: str, port: int, scheme: str = "http") -> tuple[str, str]:
    """(where it listens, in words; a URL to call it from this machine)."""
    from serving.security import is_all_interfaces

    if is_all_interfaces(host):
        return f"all interfaces ({host or '0.0.0.0'}), port {port}", f"{scheme}://127.0.0.1:{port}"
    name = f"[{host}]" if ":" in host else host
    return f"{scheme}://{name}:{port}", f"{scheme}://{name}:{port}"


def _security_env(env: dict[str, str], host: str, allowed_hosts: list[str] | None) -> str:
    """Check the host/key/Host-header set-up (RecoupError if unsafe); returns the key-status line."""
    from serving.security import active_keys, is_all_interfaces, is_loopback, keys_file, read_keys, split_hosts

    path = keys_file()
    keys = active_keys(read_keys(path))  # a broken key file: one line, and no start
    hosts = split_hosts(env.get("RECOUP_ALLOWED_HOSTS")) + [h.strip().lower() for h in allowed_hosts or []]
    if not is_loopback(host):
        if not keys:
            raise RecoupError(
                f"--host {host} serves other machines, which needs an API key and there is none "
                f"in {path}; create one with: recoup keys create NAME"
            )
        if is_all_interfaces(host) and not hosts:
            raise RecoupError(
                f"--host {host} needs --allowed-host NAME (the host name clients call, e.g. "
                f"scoring.example.org; repeatable) or RECOUP_ALLOWED_HOSTS, or '*' for any"
            )
    if "*" in hosts and not keys:
        raise RecoupError(
            f"--allowed-host '*' lets any web page reach the service through DNS rebinding, "
            f"which needs an API key and there is none in {path}; create one with: "
            f"recoup keys create NAME"
        )
    env["RECOUP_SERVICE_HOST"] = host
    env["RECOUP_ALLOWED_HOSTS"] = ",".join(hosts)
    env["RECOUP_API_KEYS_FILE"] = str(path)
    if keys:
        return f"API keys required ({len(keys)} active in {path})"
    return "no API key configured: only calls from this machine are accepted (recoup keys create NAME)"


def _refresh_env(env: dict[str, str], refresh_from: Path | None, refresh_every: str | None) -> str | None:
    """Check ``--refresh-from``/``--refresh-every`` and pass them to the service; returns the line to print."""
    from serving.refresh import EVERY_ENV, SOURCE_ENV, parse_interval

    if refresh_from is None:
        if refresh_every is not None:
            raise RecoupError("--refresh-every needs --refresh-from DIR (the claims history folder to refresh from)")
        return None
    folder = Path(refresh_from).resolve()
    if not folder.is_dir():
        raise RecoupError(f"--refresh-from {refresh_from}: not a directory (a claims history folder)")
    seconds = parse_interval(refresh_every if refresh_every is not None else "15m")
    env[SOURCE_ENV], env[EVERY_ENV] = str(folder), str(seconds)
    return f"state refresh from {folder} every {seconds} s (and on POST /refresh)"


def serve_cli(
    port: int = 3000,
    host: str = "127.0.0.1",
    workers: int | None = None,
    allowed_hosts: list[str] | None = None,
    ssl_certfile: Path | None = None,
    ssl_keyfile: Path | None = None,
    refresh_from: Path | None = None,
    refresh_every: str | None = None,
) -> int:
    """Check there is a model (exporting MLflow's champion to the BentoML store if needed), then serve.

    ``workers`` (default ``RECOUP_SERVICE_WORKERS`` or 1): worker processes; several share the claims
    they record through a journal (serving/journal.py). Security (docs/service.md): a host other than
    loopback needs an API key (and with 0.0.0.0 an allowed Host name); TLS with both cert and key.
    ``refresh_from``/``refresh_every``: the state keeps learning from a history folder (serving/refresh.py)."""
    from serving import model_store

    check_port(port)
    check_env_numbers()  # RECOUP_SERVICE_WORKERS=abc: one line here, not a traceback in every worker
    env = service_env()
    if workers is not None:
        if workers < 1:
            raise RecoupError(f"--workers must be at least 1, got {workers}")
        env["RECOUP_SERVICE_WORKERS"] = str(workers)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise RecoupError("TLS needs both --ssl-certfile and --ssl-keyfile")
    for opt, f in (("--ssl-certfile", ssl_certfile), ("--ssl-keyfile", ssl_keyfile)):
        if f is not None and not Path(f).is_file():
            raise RecoupError(f"{opt} {f}: no such file")
    if ssl_certfile is not None and ssl_keyfile is not None:
        check_tls_files(Path(ssl_certfile), Path(ssl_keyfile))
    refresh_line = _refresh_env(env, refresh_from, refresh_every)
    key_status = _security_env(env, host, allowed_hosts)
    check_port_free(host, port)
    ref = model_store.resolve_model()  # NoModelError (a RecoupError): one line, exit code 2
    where, url = shown_address(host, port, "https" if ssl_certfile else "http")
    print(f"recoup scoring service: model from {ref.source}", flush=True)
    print(f"starting on {where}  (ready when {url}/readyz answers 200; Ctrl-C to stop)", flush=True)
    print(key_status, flush=True)
    if refresh_line:
        print(refresh_line, flush=True)
    auth = " -H 'authorization: Bearer KEY'" if "required" in key_status else ""
    print(
        "example:\n  curl -s -X POST "
        + url
        + "/score -H 'content-type: application/json'"
        + auth
        + ' -d @claim.json   # claim.json = {"claim": {...}}; see docs/service.md',
        flush=True,
    )
    env["RECOUP_SERVE_PID"] = str(os.getpid())
    return run_group(bentoml_command(port, host, ssl_certfile, ssl_keyfile), env)


def run_group(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` in its own session; forward SIGINT/SIGTERM/SIGHUP to its process group; when it
    exits, stop what is left of the group (SIGTERM, then SIGKILL after ``STOP_GRACE_S``)."""
    proc = subprocess.Popen(cmd, env=env, cwd=str(PROJECT_ROOT), start_new_session=True)
    pgid = proc.pid
    got: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        got.append(signum)
        _signal_group(pgid, signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            rc = proc.wait()
        except BaseException:
            _signal_group(pgid, signal.SIGTERM)
            raise
        finally:
            _stop_group(proc, pgid)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        return 0
    if rc not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise RecoupError(f"the scoring service exited with code {rc} (see the log above)")
    return rc


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(proc: subprocess.Popen, pgid: int) -> None:
    """Wait for the arbiter, then make sure no process of its group is left."""
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        if proc.poll() is not None:  # the arbiter has gone, some of its group has not
            _signal_group(pgid, signal.SIGTERM)
        time.sleep(0.2)
    _signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
