"""warehouse: stock as of a time (ledger index by SKU and time), kept reconciliation runs,
idempotent CSV imports

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storekeeper.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = storekeeper.db.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_index(
        "ix_stock_movements_sku_id_created_at",
        "stock_movements",
        ["sku_id", "created_at"],
        postgresql_include=["location_id", "on_hand_delta", "reserved_delta", "allocated_delta"],
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=False),
        sa.Column("levels_checked", sa.BigInteger(), nullable=False),
        sa.Column("is_consistent", sa.Boolean(), nullable=False),
        sa.Column("issues", JSON, nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_index(
        "ix_reconciliation_runs_started_at_id", "reconciliation_runs", ["started_at", "id"]
    )
    op.create_table(
        "reconciliation_schedule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_run_at", UTC, nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_reconciliation_schedule_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_schedule")),
    )
    op.execute("INSERT INTO reconciliation_schedule (id, last_run_at) VALUES (1, NULL)")
    op.create_table(
        "stock_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("report", JSON, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_stock_imports_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_imports")),
        sa.UniqueConstraint(
            "created_by",
            "idempotency_key",
            name=op.f("uq_stock_imports_created_by_idempotency_key"),
        ),
    )


def downgrade() -> None:
    op.drop_table("stock_imports")
    op.drop_table("reconciliation_schedule")
    op.drop_index("ix_reconciliation_runs_started_at_id", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_stock_movements_sku_id_created_at", table_name="stock_movements")
