"""ledger rows and reservation lines belong to a stock level

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

A movement and a reservation line are always about one stock level (an SKU at a location).
Their (sku_id, location_id) now reference that level instead of the SKU and the location
separately (the level references both). Besides saying more, it is cheaper under a flash
sale: the reference is checked against the level row the same statement has just updated
and locked, instead of taking a share lock on the one hot SKU row and the one location row
that every concurrent hold shares.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVEL_COLUMNS = ["sku_id", "location_id"]
APPEND_ONLY = "stock_movements is append-only"


def _swap(table: str, *, to_level: bool) -> None:
    with op.batch_alter_table(table) as batch:
        if to_level:
            batch.drop_constraint(f"fk_{table}_sku_id_skus", type_="foreignkey")
            batch.drop_constraint(f"fk_{table}_location_id_locations", type_="foreignkey")
            batch.create_foreign_key(
                f"fk_{table}_sku_id_stock_levels", "stock_levels", LEVEL_COLUMNS, LEVEL_COLUMNS
            )
        else:
            batch.drop_constraint(f"fk_{table}_sku_id_stock_levels", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_sku_id_skus", "skus", ["sku_id"], ["id"])
            batch.create_foreign_key(
                f"fk_{table}_location_id_locations", "locations", ["location_id"], ["id"]
            )


def _restore_sqlite_ledger_triggers() -> None:
    # SQLite's batch mode rebuilds the table, and its triggers go with the old one.
    if op.get_bind().dialect.name != "sqlite":
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER stock_movements_no_{event.lower()} "
            f"BEFORE {event} ON stock_movements "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )


def upgrade() -> None:
    _swap("stock_movements", to_level=True)
    _swap("reservation_lines", to_level=True)
    _restore_sqlite_ledger_triggers()


def downgrade() -> None:
    _swap("stock_movements", to_level=False)
    _swap("reservation_lines", to_level=False)
    _restore_sqlite_ledger_triggers()
