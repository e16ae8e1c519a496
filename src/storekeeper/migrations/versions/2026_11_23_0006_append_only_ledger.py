"""append-only ledger: the database refuses to update or delete stock movements

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

Every stock figure is explained by the ledger, so the ledger itself must not change after
the fact: the service only ever inserts movements, and these triggers make any UPDATE or
DELETE (by the service, a script or a hand in psql) fail instead of silently rewriting
history. TRUNCATE stays possible for whoever owns the database.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "stock_movements is append-only"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION stock_movements_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'restrict_violation'; "
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER stock_movements_append_only "
            "BEFORE UPDATE OR DELETE ON stock_movements "
            "FOR EACH STATEMENT EXECUTE FUNCTION stock_movements_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER stock_movements_no_{event.lower()} "
                f"BEFORE {event} ON stock_movements "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER stock_movements_append_only ON stock_movements")
        op.execute("DROP FUNCTION stock_movements_append_only()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER stock_movements_no_{event}")
