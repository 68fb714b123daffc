"""Alembic environment of the workbench: run programmatically by :func:`serving.workbench.db.upgrade`, which
passes the connection in ``config.attributes["connection"]`` (no alembic.ini, no URL in a file)."""

from __future__ import annotations

from alembic import context

from serving.workbench.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only run through serving.workbench.db.upgrade
    raise RuntimeError("run the workbench migrations with `recoup workbench migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
