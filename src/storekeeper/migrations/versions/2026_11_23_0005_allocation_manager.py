"""allocation manager: the domain that alone may fulfil or cancel an allocation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reservations", sa.Column("managed_by", sa.String(length=16), nullable=True))
    # Allocations that orders made before this revision belong to their orders.
    op.execute(
        "UPDATE reservations SET managed_by = 'order' "
        "WHERE id IN (SELECT allocation_id FROM orders)"
    )


def downgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("managed_by")
