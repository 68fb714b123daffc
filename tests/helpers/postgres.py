"""A real PostgreSQL server for tests: Debian's binaries (``.ci/ensure-postgresql``, run by ``make setup``),
``initdb`` + ``pg_ctl`` in a temporary folder on a free loopback port, password (SCRAM) authentication for a
test role. No mock and no skip: without the binaries the tests that use it fail with the command to run.

Fixtures (registered for every test by tests/conftest.py):

- ``postgres_url`` (session): ``postgresql+psycopg://recoup_test:...@127.0.0.1:PORT/recoup_test``, a database
  owned by the test role; the server is stopped and its folder removed at the end of the session.
- ``postgres_database`` (function): a fresh, empty database for one test (dropped after it), same server.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.server import free_port

ROLE = "recoup_test"
ADMIN = "recoup_admin"
HINT = "install Debian's postgresql (as root: `make setup`, which runs .ci/ensure-postgresql) or set RECOUP_PG_BIN"


def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server binaries (newest version), or RECOUP_PG_BIN."""
    env = os.environ.get("RECOUP_PG_BIN")
    found = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version)
    for d in reversed(found):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    raise FileNotFoundError(f"no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin: {HINT}")


def _version(path: str) -> tuple[int, ...]:
    part = Path(path).parent.name
    return tuple(int(x) for x in part.split(".") if x.isdigit()) or (0,)


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user (runuser)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throw-away PostgreSQL server; yield the SQLAlchemy URL of the test role's database."""
    import psycopg

    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="recoup-pg-"))  # short: the unix socket path must stay < 108 bytes
    try:
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres", group="postgres")
        data, log = root / "data", root / "server.log"
        admin_pw, role_pw = secrets.token_hex(16), secrets.token_hex(16)
        pwfile = root / "pw"
        pwfile.write_text(admin_pw + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, user="postgres", group="postgres")
        pwfile.chmod(0o600)
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-U", ADMIN, f"--pwfile={pwfile}", "--auth=scram-sha-256",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            "initdb",
        )  # fmt: skip
        pwfile.unlink()
        port = _start(bindir, data, root, log)
        try:
            admin = f"host=127.0.0.1 port={port} user={ADMIN} password={admin_pw} dbname=postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{role_pw}'")
                conn.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
            yield f"postgresql+psycopg://{ROLE}:{role_pw}@127.0.0.1:{port}/{ROLE}"
        finally:
            subprocess.run(
                _as_server_user([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"]),
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(bindir: Path, data: Path, sockdir: Path, log: Path, tries: int = 5) -> int:
    """``pg_ctl start`` on a free loopback port (another one if that port was taken meanwhile)."""
    error = ""
    for _ in range(tries):
        port = free_port()
        opts = f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        done = subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "60",
                             "-o", opts]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return port
        error = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr
    raise RuntimeError(f"pg_ctl start failed {tries} times: {error}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a real PostgreSQL server started for this test session (see the module's docstring)."""
    try:
        bindir = postgres_bin()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    assert bindir
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server for one test (dropped after it); its SQLAlchemy URL."""
    import psycopg

    base, _, _ = postgres_url.rpartition("/")
    name = f"t_{secrets.token_hex(6)}"
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
