"""Categories (a materialized-path tree), products and SKUs.

Full-text search over products: on PostgreSQL a GIN expression index on `SEARCH_VECTOR_SQL`;
on SQLite an FTS5 table `products_fts` kept in step by triggers (created by the migration,
because a virtual table has no place in the declarative metadata).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storekeeper.db import Base, TimestampMixin

# The PostgreSQL text-search document of a product. Queries must repeat this expression
# verbatim (a literal configuration, not a bound one) for the planner to use the GIN index.
SEARCH_VECTOR_SQL = "to_tsvector('english'::regconfig, name || ' ' || coalesce(description, ''))"

# Paths hold only digits and '/', compared byte-wise (collation "C" on PostgreSQL), so a
# subtree is the index range [path, path with its last '/' replaced by '0').
PathType = String(2048).with_variant(String(2048, collation="C"), "postgresql")


class Category(TimestampMixin, Base):
    __tablename__ = "categories"
    __table_args__ = (
        # Live siblings have distinct names, case-insensitively; enforced by the database.
        Index(
            "uq_categories_live_sibling_name",
            func.coalesce(text("parent_id"), 0),
            func.lower(text("name")),
            unique=True,
            sqlite_where=text("is_deleted = 0"),
            postgresql_where=text("is_deleted = false"),
        ),
        CheckConstraint("depth >= 0", name="depth_not_negative"),
        # Children of a parent in keyset (id) order.
        Index("ix_categories_parent_id_id", "parent_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    # "/1/4/9/": the ids from the root down to this category, itself included.
    path: Mapped[str] = mapped_column(PathType, index=True)
    depth: Mapped[int] = mapped_column(default=0)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=false())


class Product(TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        # Products of a category in keyset (id) order.
        Index("ix_products_category_id_id", "category_id", "id"),
        Index("ix_products_search", text(SEARCH_VECTOR_SQL), postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=false())


class Sku(TimestampMixin, Base):
    __tablename__ = "skus"
    __table_args__ = (
        CheckConstraint(
            "price_cents >= 0 AND price_cents <= 100000000000", name="price_cents_in_range"
        ),
        CheckConstraint("length(currency) = 3", name="currency_code"),
        CheckConstraint(
            "low_stock_threshold >= 0 AND low_stock_threshold <= 1000000000",
            name="low_stock_threshold_in_range",
        ),
        CheckConstraint(
            "max_per_customer >= 1 AND max_per_customer <= 1000000",
            name="max_per_customer_in_range",
        ),
        # SKUs of a product in keyset (id) order.
        Index("ix_skus_product_id_id", "product_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Upper-cased on the way in; unique across all SKUs, deleted ones included.
    code: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Announce `stock.low` at or below this many available units; NULL follows the
    # setting's default (STOREKEEPER_LOW_STOCK_THRESHOLD), so changing it moves every SKU
    # that has no threshold of its own.
    low_stock_threshold: Mapped[int | None] = mapped_column()
    # The most units one customer may have in orders that are not cancelled; NULL: no
    # limit. The orders domain enforces it with a counter row per (customer, SKU).
    max_per_customer: Mapped[int | None] = mapped_column()
    version: Mapped[int] = mapped_column(default=1)
    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=false())


class CatalogVersion(Base):
    """The catalog's one version number: one more with every unit of work that changes a
    category, product or SKU (`storekeeper.catalog.cache`). Public reads are cached under
    it, so a catalog edit is seen by the next read whatever was cached before."""

    __tablename__ = "catalog_versions"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
