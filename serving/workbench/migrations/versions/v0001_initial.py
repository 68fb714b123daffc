"""The workbench's first schema: users, sessions, audit runs, worklist, providers, reviews, review events.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_FLAT: list[tuple[str, Any]] = [
    ("rank", sa.Integer()),
    ("billing_npi", sa.String(128)),
    ("provider_name", sa.String(128)),
    ("specialty", sa.String(128)),
    ("specialty_code", sa.String(128)),
    ("payer_id", sa.String(128)),
    ("plan_type", sa.String(128)),
    ("submitted_date", sa.Date()),
    ("paid_date", sa.Date()),
    ("paid_amount", sa.Float()),
    ("recoupment_probability", sa.Float()),
    ("risk_band", sa.String(128)),
    ("top_cause", sa.String(128)),
    ("top_cause_probability", sa.Float()),
    ("second_cause", sa.String(128)),
    ("second_cause_probability", sa.Float()),
    ("amount_at_risk", sa.Float()),
    ("expected_recoupment_dollars", sa.Float()),
    ("reason_1", sa.Text()),
    ("reason_2", sa.Text()),
    ("reason_3", sa.Text()),
    ("rule_hit_1", sa.Text()),
    ("rule_hit_2", sa.Text()),
    ("rule_hit_3", sa.Text()),
    ("rule_hit_count", sa.Integer()),
    ("model_version", sa.String(128)),
]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("store", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "worklist",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("audit_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("claim_id", sa.String(64), nullable=False),
        *[sa.Column(name, kind, nullable=True) for name, kind in _FLAT],
        sa.Column("causes", sa.Text(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("rule_hits", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.UniqueConstraint("run_id", "claim_id", name="uq_worklist_run_claim"),
    )
    for name, cols in (
        ("ix_worklist_run_dollars", ["run_id", "expected_recoupment_dollars"]),
        ("ix_worklist_run_rank", ["run_id", "rank"]),
        ("ix_worklist_run_cause", ["run_id", "top_cause", "expected_recoupment_dollars"]),
        ("ix_worklist_run_payer", ["run_id", "payer_id", "expected_recoupment_dollars"]),
        ("ix_worklist_run_npi", ["run_id", "billing_npi", "expected_recoupment_dollars"]),
        ("ix_worklist_run_specialty", ["run_id", "specialty", "expected_recoupment_dollars"]),
        ("ix_worklist_run_band", ["run_id", "risk_band", "expected_recoupment_dollars"]),
        ("ix_worklist_claim", ["claim_id"]),
    ):
        op.create_index(name, "worklist", cols)
    op.create_table(
        "providers",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("audit_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("npi", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("specialty", sa.String(128), nullable=True),
        sa.Column("specialty_code", sa.String(16), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
    )
    op.create_table(
        "reviews",
        sa.Column("claim_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("assignee_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("refund_amount", sa.Float(), nullable=True),
        sa.Column("cause", sa.String(32), nullable=True),
        sa.Column("carc", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("predicted_dollars", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
    )
    op.create_index("ix_reviews_status", "reviews", ["status"])
    op.create_index("ix_reviews_assignee", "reviews", ["assignee_id"])
    op.create_table(
        "review_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("claim_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=False),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("assignee_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("cause", sa.String(32), nullable=True),
        sa.Column("carc", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_review_events_claim", "review_events", ["claim_id", "at"])
    op.create_index("ix_review_events_at", "review_events", ["at"])


def downgrade() -> None:
    for table in ("review_events", "reviews", "providers", "worklist", "audit_runs", "sessions", "users"):
        op.drop_table(table)
