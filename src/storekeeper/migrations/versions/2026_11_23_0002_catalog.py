"""catalog: categories, products and skus

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storekeeper.db
from storekeeper.catalog.models import SEARCH_VECTOR_SQL

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite full-text search: an external-content FTS5 table over products, kept in step by
# triggers (PostgreSQL uses a GIN expression index instead).
_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE products_fts USING fts5(name, description, "
    "content='products', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN "
    "INSERT INTO products_fts(rowid, name, description) "
    "VALUES (new.id, new.name, coalesce(new.description, '')); END",
    "CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN "
    "INSERT INTO products_fts(products_fts, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, coalesce(old.description, '')); END",
    "CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description ON products BEGIN "
    "INSERT INTO products_fts(products_fts, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, coalesce(old.description, '')); "
    "INSERT INTO products_fts(rowid, name, description) "
    "VALUES (new.id, new.name, coalesce(new.description, '')); END",
]


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column(
            "path",
            sa.String(length=2048).with_variant(
                sa.String(length=2048, collation="C"), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", storekeeper.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storekeeper.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("depth >= 0", name=op.f("ck_categories_depth_not_negative")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["categories.id"], name=op.f("fk_categories_parent_id_categories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
    )
    op.create_index("ix_categories_parent_id_id", "categories", ["parent_id", "id"], unique=False)
    op.create_index(op.f("ix_categories_path"), "categories", ["path"], unique=False)
    op.create_index(
        "uq_categories_live_sibling_name",
        "categories",
        [sa.literal_column("coalesce(parent_id, 0)"), sa.literal_column("lower(name)")],
        unique=True,
        sqlite_where=sa.text("is_deleted = 0"),
        postgresql_where=sa.text("is_deleted = false"),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", storekeeper.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storekeeper.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name=op.f("fk_products_category_id_categories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    op.create_index("ix_products_category_id_id", "products", ["category_id", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_products_search",
            "products",
            [sa.literal_column(SEARCH_VECTOR_SQL)],
            postgresql_using="gin",
        )
    else:
        for statement in _SQLITE_FTS:
            op.execute(statement)
    op.create_table(
        "skus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", storekeeper.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storekeeper.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_skus_currency_code")),
        sa.CheckConstraint(
            "price_cents >= 0 AND price_cents <= 100000000000",
            name=op.f("ck_skus_price_cents_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_skus_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skus")),
        sa.UniqueConstraint("code", name=op.f("uq_skus_code")),
    )
    op.create_index("ix_skus_product_id_id", "skus", ["product_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_skus_product_id_id", table_name="skus")
    op.drop_table("skus")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_products_search", table_name="products")
    else:
        for trigger in ("products_fts_insert", "products_fts_delete", "products_fts_update"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE products_fts")
    op.drop_index("ix_products_category_id_id", table_name="products")
    op.drop_table("products")
    op.drop_index(
        "uq_categories_live_sibling_name",
        table_name="categories",
        sqlite_where=sa.text("is_deleted = 0"),
        postgresql_where=sa.text("is_deleted = false"),
    )
    op.drop_index(op.f("ix_categories_path"), table_name="categories")
    op.drop_index("ix_categories_parent_id_id", table_name="categories")
    op.drop_table("categories")
