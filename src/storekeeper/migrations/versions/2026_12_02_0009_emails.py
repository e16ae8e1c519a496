"""emails: customer emails made from published events, and their cursor

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storekeeper.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = storekeeper.db.UTCDateTime(timezone=True)
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "emails",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("locked_until", UTC, nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'dead', 'skipped')",
            name=op.f("ck_emails_status_known"),
        ),
        sa.CheckConstraint(
            "kind IN ('order_confirmation', 'order_shipped', 'order_cancelled')",
            name=op.f("ck_emails_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_emails_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emails")),
    )
    op.create_index("uq_emails_event_kind", "emails", ["event_id", "kind"], unique=True)
    op.create_index(
        "ix_emails_due",
        "emails",
        ["next_attempt_at"],
        unique=False,
        sqlite_where=sa.text("status IN ('pending', 'failed')"),
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.create_table(
        "email_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_email_cursor_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_cursor")),
    )
    # Start after the events already published: customers are not sent mail about orders
    # placed before emails existed.
    op.execute(
        "INSERT INTO email_cursor (id, last_event_id) "
        "SELECT 1, last_event_id FROM event_publication WHERE id = 1"
    )


def downgrade() -> None:
    op.drop_table("email_cursor")
    op.drop_index("ix_emails_due", table_name="emails")
    op.drop_index("uq_emails_event_kind", table_name="emails")
    op.drop_table("emails")
