"""purchase limits: `skus.max_per_customer`, the `customer_purchases` counters, and hold
client tokens scoped per creator

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

`reservations.client_token` was unique across all callers; it becomes unique per
(created_by, client_token), with one more partial unique index keeping reservations
without a creator (made by the system) idempotent among themselves. The downgrade
restores the global uniqueness and fails if two callers have used the same token since.

SQLite cannot drop a table's UNIQUE constraint: `reservations` is rebuilt by hand (foreign
keys stay on inside the migration's transaction, so batch mode's copy-and-rename would
leave `orders`' references counted as broken). Its rows and its lines (which the drop
cascades to) are kept aside in temporary tables, the table is made again under its own
name, the rows go back (which resolves the deferred foreign key checks of `orders`), then
the lines and the indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storekeeper.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = storekeeper.db.UTCDateTime(timezone=True)
NO_CREATOR = "created_by IS NULL"
HELD = "status = 'held'"


def _create_reservation_indexes(*, per_creator: bool) -> None:
    op.create_index(
        "ix_reservations_held_expires_at",
        "reservations",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text(HELD),
        postgresql_where=sa.text(HELD),
    )
    op.create_index(
        "ix_reservations_status_created_at", "reservations", ["status", "created_at"], unique=False
    )
    if per_creator:
        op.create_index(
            "uq_reservations_client_token_no_creator",
            "reservations",
            ["client_token"],
            unique=True,
            sqlite_where=sa.text(NO_CREATOR),
            postgresql_where=sa.text(NO_CREATOR),
        )


def _scope_tokens(*, per_creator: bool) -> None:
    """Make client tokens unique per creator (`per_creator`) or across all callers."""
    global_token = ("uq_reservations_client_token", ["client_token"])
    per_creator_token = ("uq_reservations_created_by_client_token", ["created_by", "client_token"])
    (old, _), (new, new_columns) = (
        (global_token, per_creator_token) if per_creator else (per_creator_token, global_token)
    )
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f(old), "reservations", type_="unique")
        op.create_unique_constraint(op.f(new), "reservations", new_columns)
        if per_creator:
            op.create_index(
                "uq_reservations_client_token_no_creator",
                "reservations",
                ["client_token"],
                unique=True,
                postgresql_where=sa.text(NO_CREATOR),
            )
        else:
            op.drop_index("uq_reservations_client_token_no_creator", table_name="reservations")
        return
    _rebuild_on_sqlite(new, new_columns, per_creator=per_creator)


COLUMNS = (
    "id, client_token, request_fingerprint, status, expires_at, reference, created_by, "
    "created_at, updated_at, managed_by"
)


def _rebuild_on_sqlite(unique: str, unique_columns: list[str], *, per_creator: bool) -> None:
    """Rebuild `reservations` with its client tokens unique over `unique_columns`.

    The old table is dropped and the new one created under the same name before the rows
    go back in: putting a parent row back is what resolves the deferred violation its
    drop left on `orders` (a table renamed into place would leave it counted)."""
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TEMPORARY TABLE kept_reservations AS SELECT {COLUMNS} FROM reservations")
    op.execute("CREATE TEMPORARY TABLE kept_reservation_lines AS SELECT * FROM reservation_lines")
    op.execute("DROP TABLE reservations")  # its lines go with it (ON DELETE CASCADE)
    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_token", sa.String(length=128), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("managed_by", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "status IN ('held', 'allocated', 'released', 'expired', 'fulfilled', 'cancelled')",
            name=op.f("ck_reservations_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_reservations_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint(*unique_columns, name=op.f(unique)),
    )
    op.execute(f"INSERT INTO reservations ({COLUMNS}) SELECT {COLUMNS} FROM kept_reservations")
    op.execute("INSERT INTO reservation_lines SELECT * FROM kept_reservation_lines")
    op.execute("DROP TABLE kept_reservations")
    op.execute("DROP TABLE kept_reservation_lines")
    _create_reservation_indexes(per_creator=per_creator)


def upgrade() -> None:
    # One statement both databases accept (SQLite adds a column with a CHECK only this
    # way, short of rebuilding the table).
    op.execute(
        "ALTER TABLE skus ADD COLUMN max_per_customer INTEGER "
        "CONSTRAINT ck_skus_max_per_customer_in_range "
        "CHECK (max_per_customer >= 1 AND max_per_customer <= 1000000)"
    )
    op.create_table(
        "customer_purchases",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("units >= 0", name=op.f("ck_customer_purchases_units_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_customer_purchases_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name=op.f("fk_customer_purchases_sku_id_skus")
        ),
        sa.PrimaryKeyConstraint("user_id", "sku_id", name=op.f("pk_customer_purchases")),
    )
    _scope_tokens(per_creator=True)


def downgrade() -> None:
    _scope_tokens(per_creator=False)
    op.drop_table("customer_purchases")
    op.drop_column("skus", "max_per_customer")
