"""The workbench's database: one SQLAlchemy 2 engine (SQLite by default, PostgreSQL by URL), its tables, and the
Alembic migrations run programmatically (``upgrade head``) before the application uses it.

URL: ``RECOUP_DATABASE_URL``, else ``sqlite:///$RECOUP_HOME/workbench.sqlite``. The tables are declared here (the
application's view of them); ``migrations/versions`` creates them (a test checks both agree)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

from features.errors import RecoupError

#: roles a user may have: a lead assigns and sees everyone's work; a reviewer their own and the unassigned
ROLES = ("reviewer", "lead")
#: review statuses of the workbench (the last five are outcomes, written to the store's ``reviews`` table)
STATUSES = (
    "not_reviewed",
    "in_review",
    "no_issue",
    "error_found",
    "refunded",
    "appealed_upheld",
    "appealed_overturned",
)
OUTCOMES = STATUSES[2:]
ENV_URL = "RECOUP_DATABASE_URL"

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

audit_runs = Table(
    "audit_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("store", Text, nullable=True),
    Column("model_version", String(64), nullable=True),
    Column("rows", Integer, nullable=False),
    Column("loaded_at", DateTime, nullable=False),
)

#: filterable/sortable flat columns of the worklist (besides the ids): name -> kind
WORKLIST_FLAT = {
    "rank": "int",
    "billing_npi": "str",
    "provider_name": "str",
    "specialty": "str",
    "specialty_code": "str",
    "payer_id": "str",
    "plan_type": "str",
    "submitted_date": "date",
    "paid_date": "date",
    "paid_amount": "float",
    "recoupment_probability": "float",
    "risk_band": "str",
    "top_cause": "str",
    "top_cause_probability": "float",
    "second_cause": "str",
    "second_cause_probability": "float",
    "amount_at_risk": "float",
    "expected_recoupment_dollars": "float",
    "reason_1": "text",
    "reason_2": "text",
    "reason_3": "text",
    "rule_hit_1": "text",
    "rule_hit_2": "text",
    "rule_hit_3": "text",
    "rule_hit_count": "int",
    "model_version": "str",
}
_TYPES: dict[str, Any] = {"int": Integer, "str": String(128), "date": Date, "float": Float, "text": Text}

worklist = Table(
    "worklist",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("audit_runs.id", ondelete="CASCADE"), nullable=False),
    Column("claim_id", String(64), nullable=False),
    *[Column(name, _TYPES[kind], nullable=True) for name, kind in WORKLIST_FLAT.items()],
    Column("causes", Text, nullable=True),  # JSON [{"cause", "probability"}]
    Column("reasons", Text, nullable=True),  # JSON [{"code", "text", "contribution"}]
    Column("rule_hits", Text, nullable=True),  # JSON [{"rule", "text", ...}]
    Column("details", Text, nullable=True),  # JSON: the claim, lines, remittances, recoupments, histories
    UniqueConstraint("run_id", "claim_id", name="uq_worklist_run_claim"),
    Index("ix_worklist_run_dollars", "run_id", "expected_recoupment_dollars"),
    Index("ix_worklist_run_rank", "run_id", "rank"),
    Index("ix_worklist_run_cause", "run_id", "top_cause", "expected_recoupment_dollars"),
    Index("ix_worklist_run_payer", "run_id", "payer_id", "expected_recoupment_dollars"),
    Index("ix_worklist_run_npi", "run_id", "billing_npi", "expected_recoupment_dollars"),
    Index("ix_worklist_run_specialty", "run_id", "specialty", "expected_recoupment_dollars"),
    Index("ix_worklist_run_band", "run_id", "risk_band", "expected_recoupment_dollars"),
    Index("ix_worklist_claim", "claim_id"),
)

providers = Table(
    "providers",
    metadata,
    Column("run_id", Integer, ForeignKey("audit_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("npi", String(16), primary_key=True),
    Column("name", String(128), nullable=True),
    Column("specialty", String(128), nullable=True),
    Column("specialty_code", String(16), nullable=True),
    Column("details", Text, nullable=True),  # JSON: monthly volume/recoupments, causes
)

reviews = Table(
    "reviews",
    metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("status", String(24), nullable=False),
    Column("assignee_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("refund_amount", Float, nullable=True),
    Column("cause", String(32), nullable=True),
    Column("carc", String(16), nullable=True),
    Column("note", Text, nullable=True),
    Column("predicted_dollars", Float, nullable=True),  # the worklist's expected dollars when the outcome was set
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", Integer, ForeignKey("users.id"), nullable=False),
    # +1 at every change: a save from a page showing an older version is refused (two people on one claim)
    Column("version", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_reviews_status", "status"),
    Index("ix_reviews_assignee", "assignee_id"),
)

review_events = Table(
    "review_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("claim_id", String(64), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("from_status", String(24), nullable=False),
    Column("to_status", String(24), nullable=False),
    Column("assignee_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("amount", Float, nullable=True),
    Column("cause", String(32), nullable=True),
    Column("carc", String(16), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_review_events_claim", "claim_id", "at"),
    Index("ix_review_events_at", "at"),
)


def database_url(url: str | None = None) -> str:
    """``url``, else ``RECOUP_DATABASE_URL``, else SQLite in ``RECOUP_HOME`` (``workbench.sqlite``)."""
    if url:
        return url
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env
    from features.settings import recoup_home

    return f"sqlite:///{recoup_home() / 'workbench.sqlite'}"


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL: say nothing of it
        return "<database URL>"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (pages while a review is saved)
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (:func:`database_url`); a SQLite file's folder is created. A bad URL or a driver
    missing is one RecoupError line."""
    url = database_url(url)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
    except ArgumentError:
        raise RecoupError(f"{ENV_URL}: not a database URL (e.g. postgresql+psycopg://user@host/db)") from None
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")  # the driver the project installs (psycopg 3)
    kw: dict = {}
    if u.drivername.startswith("sqlite"):
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        kw["connect_args"] = {"check_same_thread": False}
    elif not u.drivername.startswith("postgresql"):
        raise RecoupError(f"{redacted(url)}: only SQLite and PostgreSQL databases are supported")
    try:
        # hide_parameters: a database error's message never holds the values (claim ids are patient data)
        engine = create_engine(u, pool_pre_ping=True, hide_parameters=True, **kw)
    except (NoSuchModuleError, ImportError) as exc:
        raise RecoupError(f"{redacted(url)}: no database driver ({exc})") from None
    if u.drivername.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Run the Alembic migrations up to ``revision`` on ``engine``; returns the revision the database is at.
    An unreachable database is one RecoupError line."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import OperationalError

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0][:200] if exc.orig else type(exc).__name__
        raise RecoupError(f"{redacted(str(engine.url))}: cannot open the database ({reason})") from None
