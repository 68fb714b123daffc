"""``recoup workbench``: migrate the database, load the latest audit run, serve the pages (uvicorn); and
``recoup workbench user add NAME --role lead|reviewer`` (password from a hidden prompt or
``RECOUP_WORKBENCH_PASSWORD``), ``recoup workbench migrate``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from features.errors import RecoupError

log = logging.getLogger("recoup.workbench")
PASSWORD_ENV = "RECOUP_WORKBENCH_PASSWORD"


def migrate_cli() -> str | None:
    """``recoup workbench migrate``: bring the database to the latest schema (``upgrade head``)."""
    from serving.workbench.db import make_engine, redacted, upgrade

    engine = make_engine()
    rev = upgrade(engine)
    print(f"workbench database {redacted(str(engine.url))} at revision {rev}")
    return rev


def user_add_cli(name: str, role: str, password: str | None = None) -> int:
    """``recoup workbench user add NAME --role ROLE``: the password from ``password``, else
    ``RECOUP_WORKBENCH_PASSWORD``, else asked twice without echo."""
    from serving.workbench.auth import add_user, check_password_rules
    from serving.workbench.db import make_engine, upgrade

    if password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    if password is None:
        if not sys.stdin.isatty():
            raise RecoupError(f"no password: set {PASSWORD_ENV} or run in a terminal to be asked")
        import getpass

        password = getpass.getpass(f"password for {name}: ")
        check_password_rules(password)
        if getpass.getpass("again: ") != password:
            raise RecoupError("the two passwords differ")
    engine = make_engine()
    upgrade(engine)
    uid = add_user(engine, name, role, password)
    print(f"user {name!r} ({role}) created")
    return uid


def build_app(data: Path, audit: Path | None, host: str = "127.0.0.1", allowed_hosts: list[str] | None = None):
    """Migrate, load the audit run (``audit`` or the latest under RECOUP_HOME) with details from ``data``,
    and return the ASGI app."""
    from features.store.reviews import record_reviews
    from serving.security import allowed_hosts as hosts_for
    from serving.workbench.app import Config, create_app, secure_from_env
    from serving.workbench.auth import Limits
    from serving.workbench.db import make_engine, upgrade
    from serving.workbench.load import load_audit, resolve_audit

    data = Path(data)
    if not data.is_dir():
        raise RecoupError(f"--data {data}: not a folder (a claims store, see docs/store.md)")
    limits = Limits.from_env()
    engine = make_engine()
    upgrade(engine)
    found = resolve_audit(audit)
    run_id, new = load_audit(engine, found, data)
    log.info("audit run %d %s (%s)", run_id, "loaded" if new else "already loaded", found.name)
    cfg = Config(
        engine=engine,
        store=data,
        hosts=hosts_for(host, allowed_hosts or []),
        secure_cookies=secure_from_env(),
        limits=limits,
        record=record_reviews,
    )
    return create_app(cfg)


def workbench_cli(
    data: Path,
    port: int = 8080,
    host: str = "127.0.0.1",
    audit: Path | None = None,
    allowed_hosts: list[str] | None = None,
) -> None:
    """``recoup workbench --data STORE``: serve the workbench with uvicorn (no access log of paths: claim ids)."""
    import uvicorn

    from serving.security import is_loopback

    if not (1 <= port <= 65535):
        raise RecoupError("--port must be from 1 to 65535")
    app = build_app(data, audit, host, allowed_hosts)
    if not is_loopback(host):
        log.warning("serving on %s: use HTTPS in front (a proxy) so passwords and cookies are not sent in clear", host)
    print(f"recoup workbench on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", server_header=False)
