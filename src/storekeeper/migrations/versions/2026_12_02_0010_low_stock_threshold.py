"""low_stock_threshold: a SKU's own threshold for `stock.low` (NULL: the setting's default)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One statement both databases accept (SQLite adds a column with a CHECK only this
    # way, short of rebuilding the table).
    op.execute(
        "ALTER TABLE skus ADD COLUMN low_stock_threshold INTEGER "
        "CONSTRAINT ck_skus_low_stock_threshold_in_range "
        "CHECK (low_stock_threshold >= 0 AND low_stock_threshold <= 1000000000)"
    )


def downgrade() -> None:
    op.drop_column("skus", "low_stock_threshold")
