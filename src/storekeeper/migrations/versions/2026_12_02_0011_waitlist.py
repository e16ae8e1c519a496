"""waitlist: customers waiting for a SKU, and back-in-stock emails (one per recipient)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

A `stock.back_in_stock` event makes one email per waiting customer, so an email is unique
per (event, kind, recipient) instead of per (event, kind), and `back_in_stock` becomes a
known kind. SQLite cannot alter a CHECK constraint: the `emails` table is rebuilt (batch
mode), its indexes dropped before and made again after, so that nothing depends on what
reflection makes of a partial index. The downgrade deletes the back-in-stock emails (the
old CHECK and unique index would refuse them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storekeeper.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = storekeeper.db.UTCDateTime(timezone=True)

OLD_KINDS = "kind IN ('order_confirmation', 'order_shipped', 'order_cancelled')"
NEW_KINDS = "kind IN ('order_confirmation', 'order_shipped', 'order_cancelled', 'back_in_stock')"
DUE = "status IN ('pending', 'failed')"


def _set_kinds(kinds: str) -> None:
    """Replace the CHECK on `emails.kind` (SQLite: by rebuilding the table)."""
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_emails_due", table_name="emails")
        with op.batch_alter_table(
            "emails", recreate="always", reflect_kwargs={"resolve_fks": False}
        ) as batch:
            batch.drop_constraint(op.f("ck_emails_kind_known"), type_="check")
            batch.create_check_constraint(op.f("ck_emails_kind_known"), sa.text(kinds))
        op.create_index(
            "ix_emails_due",
            "emails",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text(DUE),
        )
    else:
        op.drop_constraint(op.f("ck_emails_kind_known"), "emails", type_="check")
        op.create_check_constraint(op.f("ck_emails_kind_known"), "emails", sa.text(kinds))


def upgrade() -> None:
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("notified_at", UTC, nullable=True),
        sa.CheckConstraint(
            "status IN ('waiting', 'notified')", name=op.f("ck_waitlist_entries_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["skus.id"],
            name=op.f("fk_waitlist_entries_sku_id_skus"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_waitlist_entries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
        sa.UniqueConstraint("sku_id", "user_id", name=op.f("uq_waitlist_entries_sku_id_user_id")),
    )
    op.create_index(
        "ix_waitlist_entries_waiting",
        "waitlist_entries",
        ["sku_id", "id"],
        unique=False,
        sqlite_where=sa.text("status = 'waiting'"),
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.create_index(
        "ix_waitlist_entries_user_id_id", "waitlist_entries", ["user_id", "id"], unique=False
    )

    op.drop_index("uq_emails_event_kind", table_name="emails")
    op.create_index(
        "uq_emails_event_kind_to_address",
        "emails",
        ["event_id", "kind", "to_address"],
        unique=True,
    )
    _set_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM emails WHERE kind = 'back_in_stock'")
    _set_kinds(OLD_KINDS)
    op.drop_index("uq_emails_event_kind_to_address", table_name="emails")
    op.create_index("uq_emails_event_kind", "emails", ["event_id", "kind"], unique=True)

    op.drop_index("ix_waitlist_entries_user_id_id", table_name="waitlist_entries")
    op.drop_index("ix_waitlist_entries_waiting", table_name="waitlist_entries")
    op.drop_table("waitlist_entries")
