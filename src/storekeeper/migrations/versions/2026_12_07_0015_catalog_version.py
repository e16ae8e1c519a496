"""catalog version: one row whose number changes with every catalog edit

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

Public catalog reads are cached in Redis under this number: every unit of work
that changes a category, product or SKU adds one to it before it commits, so a cached
page names the catalog it was read from. Stock changes do not touch it (see
`storekeeper.catalog.cache`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "catalog_versions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_catalog_versions_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_versions")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("catalog_versions")
