"""sign ins: every API sign-in and staff web session, so that ending one takes effect at once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

One table for both kinds: an API sign-in's id is its refresh-token family's id (and the
`sid` of its access tokens); a staff web session's id is in its cookie. The refresh-token
families that exist are carried over as API sign-ins (live while a token of theirs can
still be spent), so refresh tokens issued before keep working; access tokens issued before
carry no `sid` and are refused, and their clients refresh. The downgrade drops the table:
refresh tokens go on working by themselves, web sessions stop at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storekeeper.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = storekeeper.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sign_ins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("ended_reason", sa.String(length=32), nullable=True),
        sa.CheckConstraint("kind IN ('api', 'web')", name=op.f("ck_sign_ins_kind_known")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sign_ins_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_ins")),
    )
    op.create_index(op.f("ix_sign_ins_user_id"), "sign_ins", ["user_id"], unique=False)
    # Existing refresh-token families become API sign-ins: ended unless one of their tokens
    # is neither used nor revoked.
    op.execute(
        sa.text(
            """
            INSERT INTO sign_ins (id, user_id, kind, created_at, expires_at, ended_at,
                                  ended_reason)
            SELECT family_id, MIN(user_id), 'api', MIN(created_at), MAX(expires_at),
                   CASE WHEN SUM(CASE WHEN used_at IS NULL AND revoked_at IS NULL
                                      THEN 1 ELSE 0 END) > 0
                        THEN NULL ELSE MAX(created_at) END,
                   CASE WHEN SUM(CASE WHEN used_at IS NULL AND revoked_at IS NULL
                                      THEN 1 ELSE 0 END) > 0
                        THEN NULL ELSE 'migrated' END
            FROM refresh_tokens
            GROUP BY family_id
            """
        )
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_ins_user_id"), table_name="sign_ins")
    op.drop_table("sign_ins")
