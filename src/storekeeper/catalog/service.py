"""Catalog rules: the category tree, products and SKUs, soft delete and optimistic versions.

Concurrency: every check that guards a write runs after the rows it depends on are locked
(`FOR UPDATE` / `FOR SHARE` on PostgreSQL; SQLite serializes writers with BEGIN IMMEDIATE).
Creating something under a category or product takes a share lock on that parent, and
deleting or moving the parent takes an exclusive one, so a delete never misses a child that
is being created and a move never leaves a new child behind with a stale path. Uniqueness
(live sibling names, SKU codes) is enforced by the database; a violation becomes a 409.

Reads for the public API (`*_for`) take the viewer: `include_deleted` is honoured only for
staff (for anyone else deleted rows stay invisible). Products and SKUs are returned with
their current availability (`ProductView`, `SkuView`), read in the same unit of work. The
catalog does not own stock: functions that show or filter by availability take the
`stock: StockFigures` the application wired in (`storekeeper.catalog.stock`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    String,
    and_,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import TextClause

from storekeeper.accounts.models import User
from storekeeper.accounts.policy import is_staff
from storekeeper.catalog.cache import CachedRead, CatalogCache, cached_read, touch_catalog
from storekeeper.catalog.models import SEARCH_VECTOR_SQL, Category, Product, Sku
from storekeeper.catalog.schemas import (
    CategoryCreate,
    CategoryUpdate,
    ProductCreate,
    ProductUpdate,
    SkuCreate,
    SkuFields,
    SkuUpdate,
)
from storekeeper.catalog.stock import StockFigures
from storekeeper.db import is_retryable
from storekeeper.errors import (
    Conflict,
    NotFound,
    RetryableError,
    ValidationFailed,
    VersionConflict,
)
from storekeeper.pagination import decode_id_cursor, page_of

ROOT_PATH = "/"


@dataclass
class Page:
    """One page of rows and the cursor of the next page (None on the last)."""

    rows: list[Any]
    next_cursor: str | None


def _shows_deleted(viewer: User | None, requested: bool) -> bool:
    """Whether deleted rows are shown: only when asked for, and only to staff."""
    return requested and is_staff(viewer)


def subtree_condition(path_column: Any, path: str) -> ColumnElement[bool]:
    """Rows whose path starts with `path` (the category and all its descendants), as a
    range on the path index: paths are digits and '/', and '0' sorts right after '/'."""
    return and_(path_column >= path, path_column < path[:-1] + "0")


def check_version(resource: Category | Product | Sku, expected: int | None) -> None:
    if expected is not None and expected != resource.version:
        raise VersionConflict(
            f"Expected version {expected} but it is at version {resource.version}.",
            current_version=resource.version,
        )


async def flush_or_conflict(session: AsyncSession, detail: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(detail) from exc


def _live_sibling_name_taken() -> str:
    return "A category with this name already exists under the same parent."


async def _paginate(
    session: AsyncSession, stmt: Any, id_column: Any, limit: int, cursor: str | None
) -> Page:
    after = decode_id_cursor(cursor)
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = (await session.scalars(stmt.order_by(id_column).limit(limit + 1))).all()
    items, next_cursor = page_of(rows, limit, lambda row: [row.id])
    return Page(items, next_cursor)


# Categories


async def _locked_category(
    session: AsyncSession, category_id: int, *, shared: bool = False
) -> Category | None:
    return await session.get(
        Category,
        category_id,
        with_for_update={"read": shared},
        populate_existing=True,
    )


async def _live_parent(session: AsyncSession, parent_id: int, field: str) -> Category:
    """The category a new child or product goes under, share-locked so it cannot be deleted
    or moved until this unit of work ends; 422 when there is no such live category."""
    parent = await _locked_category(session, parent_id, shared=True)
    if parent is None or parent.is_deleted:
        raise ValidationFailed.field(["body", field], f"no category with id {parent_id}")
    return parent


async def get_category(
    session: AsyncSession, category_id: int, *, include_deleted: bool = False
) -> Category:
    category = await session.get(Category, category_id)
    if category is None or (category.is_deleted and not include_deleted):
        raise NotFound(f"No category with id {category_id}.")
    return category


async def list_categories(
    session: AsyncSession,
    *,
    parent_id: int | None,
    include_deleted: bool,
    limit: int,
    cursor: str | None,
) -> Page:
    stmt = select(Category)
    if parent_id is not None:
        stmt = stmt.where(Category.parent_id == parent_id)
    if not include_deleted:
        stmt = stmt.where(Category.is_deleted.is_(False))
    return await _paginate(session, stmt, Category.id, limit, cursor)


async def category_subtree(
    session: AsyncSession, category_id: int, *, include_deleted: bool = False
) -> list[Category]:
    """The category and all its descendants in one query, parents before children and
    siblings by name."""
    root = await get_category(session, category_id, include_deleted=include_deleted)
    stmt = select(Category).where(subtree_condition(Category.path, root.path))
    if not include_deleted:
        stmt = stmt.where(Category.is_deleted.is_(False))
    stmt = stmt.order_by(Category.depth, func.lower(Category.name), Category.id)
    return list((await session.scalars(stmt)).all())


async def create_category(session: AsyncSession, data: CategoryCreate) -> Category:
    parent = None
    if data.parent_id is not None:
        parent = await _live_parent(session, data.parent_id, "parent_id")
    category = Category(
        name=data.name,
        description=data.description,
        parent_id=data.parent_id,
        # The path ends with the category's own id, known only after the insert.
        path=ROOT_PATH,
        depth=parent.depth + 1 if parent is not None else 0,
        attributes=data.attributes,
    )
    session.add(category)
    await flush_or_conflict(session, _live_sibling_name_taken())
    category.path = f"{parent.path if parent is not None else ROOT_PATH}{category.id}/"
    await session.flush()
    return category


async def update_category(
    session: AsyncSession, category_id: int, data: CategoryUpdate
) -> Category:
    sent = data.model_fields_set - {"version"}
    if "parent_id" in sent:
        category, new_parent = await _lock_for_move(session, category_id, data.parent_id)
    else:
        locked = await _locked_category(session, category_id)
        if locked is None or locked.is_deleted:
            raise NotFound(f"No category with id {category_id}.")
        category, new_parent = locked, None
    check_version(category, data.version)

    changes = {
        field: getattr(data, field)
        for field in sent - {"parent_id"}
        if getattr(data, field) != getattr(category, field)
    }
    moved = "parent_id" in sent and data.parent_id != category.parent_id
    if not changes and not moved:
        return category
    if moved:
        await _move_subtree(session, category, new_parent)
    else:
        category.version += 1
    for field, value in changes.items():
        setattr(category, field, value)
    await flush_or_conflict(session, _live_sibling_name_taken())
    return category


async def _lock_for_move(
    session: AsyncSession, category_id: int, new_parent_id: int | None
) -> tuple[Category, Category | None]:
    """Lock the category's whole subtree and its new parent in one statement, in id order.

    Any change to the ancestry of a row rewrites its path, which needs that row's lock, so
    once these locks are held the cycle check below cannot be invalidated by a concurrent
    move. Locking the subtree before the path UPDATE also waits out transactions that are
    creating children inside it, so the UPDATE (a new snapshot) sees those children too.
    """
    current = await session.get(Category, category_id)
    if current is None or current.is_deleted:
        raise NotFound(f"No category with id {category_id}.")
    old_path = current.path
    locked = or_(Category.id == category_id, subtree_condition(Category.path, old_path))
    if new_parent_id is not None:
        locked = or_(locked, Category.id == new_parent_id)
    try:
        rows = (
            await session.execute(
                select(Category.id, Category.path)
                .where(locked)
                .order_by(Category.id)
                .with_for_update()
            )
        ).all()
    except DBAPIError as exc:
        if is_retryable(exc):
            raise RetryableError() from exc
        raise
    paths = {row.id: row.path for row in rows}
    if paths.get(category_id) != old_path:
        raise RetryableError("The category was moved concurrently; reload and retry.")
    category = await session.get(Category, category_id, populate_existing=True)
    assert category is not None  # locked above
    if category.is_deleted:
        raise NotFound(f"No category with id {category_id}.")
    if new_parent_id is None:
        return category, None
    new_parent = await session.get(Category, new_parent_id, populate_existing=True)
    if new_parent is None or new_parent.is_deleted:
        raise ValidationFailed.field(["body", "parent_id"], f"no category with id {new_parent_id}")
    if new_parent.path.startswith(old_path):
        raise Conflict("A category cannot be moved under itself or one of its descendants.")
    return category, new_parent


async def _move_subtree(
    session: AsyncSession, category: Category, new_parent: Category | None
) -> None:
    """Rewrite the path and depth of the category and every descendant with one UPDATE;
    each of them changes, so each gets a new version."""
    old_path = category.path
    new_path = f"{new_parent.path if new_parent is not None else ROOT_PATH}{category.id}/"
    depth_delta = (new_parent.depth + 1 if new_parent is not None else 0) - category.depth
    await touch_catalog(session)
    await session.execute(
        update(Category)
        .where(subtree_condition(Category.path, old_path))
        .values(
            path=literal(new_path, String()).concat(func.substr(Category.path, len(old_path) + 1)),
            depth=Category.depth + depth_delta,
            version=Category.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(category)
    category.parent_id = new_parent.id if new_parent is not None else None


async def delete_category(session: AsyncSession, category_id: int) -> None:
    """Soft delete; refused while the category has live children or live products."""
    category = await _locked_category(session, category_id)
    if category is None:
        raise NotFound(f"No category with id {category_id}.")
    if category.is_deleted:
        return
    live_child = exists().where(Category.parent_id == category_id, Category.is_deleted.is_(False))
    live_product = exists().where(Product.category_id == category_id, Product.is_deleted.is_(False))
    has_child, has_product = (await session.execute(select(live_child, live_product))).one()
    if has_child or has_product:
        raise Conflict("The category still has live subcategories or products.")
    category.is_deleted = True
    category.version += 1
    await session.flush()


async def purge_category(session: AsyncSession, category_id: int) -> None:
    """Permanent delete; refused while any category or product (deleted ones included)
    refers to it."""
    category = await _locked_category(session, category_id)
    if category is None:
        raise NotFound(f"No category with id {category_id}.")
    any_child = exists().where(Category.parent_id == category_id)
    any_product = exists().where(Product.category_id == category_id)
    has_child, has_product = (await session.execute(select(any_child, any_product))).one()
    if has_child or has_product:
        raise Conflict(
            "The category is still referenced by subcategories or products, deleted ones included."
        )
    await session.delete(category)
    await flush_or_conflict(session, "The category is still referenced.")


async def restore_category(session: AsyncSession, category_id: int) -> Category:
    category = await _locked_category(session, category_id)
    if category is None:
        raise NotFound(f"No category with id {category_id}.")
    if not category.is_deleted:
        return category
    if category.parent_id is not None:
        parent = await _locked_category(session, category.parent_id, shared=True)
        if parent is None or parent.is_deleted:
            raise Conflict("The parent category is deleted; restore it first.")
    category.is_deleted = False
    category.version += 1
    await flush_or_conflict(session, _live_sibling_name_taken())
    return category


def build_tree(categories: Sequence[Category]) -> list[tuple[Category, list[Any]]]:
    """Nest categories (parents before children) as (category, children) pairs."""
    nodes: dict[int, tuple[Category, list[Any]]] = {}
    roots: list[tuple[Category, list[Any]]] = []
    for category in categories:
        node: tuple[Category, list[Any]] = (category, [])
        nodes[category.id] = node
        parent = nodes.get(category.parent_id) if category.parent_id is not None else None
        if parent is None:
            roots.append(node)
        else:
            parent[1].append(node)
    return roots


CategoryNode = tuple[Category, list[Any]]


async def list_categories_for(
    session: AsyncSession,
    viewer: User | None,
    *,
    parent_id: int | None,
    include_deleted: bool,
    limit: int,
    cursor: str | None,
) -> Page:
    """`list_categories` as `viewer` may see it (deleted rows only for staff who ask)."""
    return await list_categories(
        session,
        parent_id=parent_id,
        include_deleted=_shows_deleted(viewer, include_deleted),
        limit=limit,
        cursor=cursor,
    )


async def get_category_for(
    session: AsyncSession, viewer: User | None, category_id: int, *, include_deleted: bool
) -> Category:
    """`get_category` as `viewer` may see it (a deleted one only for staff who ask)."""
    return await get_category(
        session, category_id, include_deleted=_shows_deleted(viewer, include_deleted)
    )


async def category_tree_for(
    session: AsyncSession, viewer: User | None, category_id: int, *, include_deleted: bool
) -> CategoryNode:
    """The category with all its descendants nested as (category, children) pairs, siblings
    by name, as `viewer` may see them (deleted ones only for staff who ask)."""
    subtree = await category_subtree(
        session, category_id, include_deleted=_shows_deleted(viewer, include_deleted)
    )
    ((root, children),) = build_tree(subtree)
    return root, children


async def remove_category(session: AsyncSession, category_id: int, *, force: bool) -> None:
    """`purge_category` with `force`, else `delete_category` (a soft delete)."""
    if force:
        await purge_category(session, category_id)
    else:
        await delete_category(session, category_id)


# Products and SKUs


@dataclass
class ProductFilters:
    category_id: int | None = None
    q: str | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    in_stock: bool | None = None


@dataclass
class SkuStock:
    """Live SKUs of some products, grouped by product, with each SKU's availability."""

    by_product: dict[int, list[Sku]]
    available: dict[int, int]


@dataclass
class SkuView:
    """A SKU with its `available` (on hand minus reserved and allocated, over all
    locations)."""

    sku: Sku
    available: int


@dataclass
class ProductView:
    """A product with its live SKUs in id order, each with its availability."""

    product: Product
    skus: list[SkuView]


async def _locked_product(
    session: AsyncSession, product_id: int, *, shared: bool = False
) -> Product | None:
    return await session.get(
        Product, product_id, with_for_update={"read": shared}, populate_existing=True
    )


async def _locked_sku(session: AsyncSession, code: str) -> Sku | None:
    stmt = (
        select(Sku)
        .where(Sku.code == code.upper())
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).first()


async def _refuse_taken_codes(session: AsyncSession, codes: Sequence[str], field: str) -> None:
    if len(set(codes)) != len(codes):
        raise ValidationFailed.field(["body", field], "SKU codes in one request must differ")
    taken = (await session.scalars(select(Sku.code).where(Sku.code.in_(codes)))).all()
    if taken:
        raise Conflict(
            f"SKU code already in use (deleted SKUs keep theirs): {', '.join(sorted(taken))}.",
            codes=sorted(taken),
        )


def _search_condition(session: AsyncSession, q: str) -> ColumnElement[bool] | TextClause:
    """Full-text match on name and description: PostgreSQL text search served by the GIN
    index on `SEARCH_VECTOR_SQL`; SQLite FTS5. Both stem English words and need every word
    of the query to match; punctuation in the query is ignored, never a syntax error."""
    if session.get_bind().dialect.name == "postgresql":
        matches = f"{SEARCH_VECTOR_SQL} @@ websearch_to_tsquery('english'::regconfig, :search)"
        return text(matches).bindparams(search=q)
    words = re.findall(r"\w+", q)
    if not words:
        return false()
    match = " ".join(f'"{word}"' for word in words)
    return Product.id.in_(
        select(literal_column("rowid"))
        .select_from(text("products_fts"))
        .where(text("products_fts MATCH :search").bindparams(search=match))
    )


async def list_products(
    session: AsyncSession,
    filters: ProductFilters,
    *,
    include_deleted: bool,
    limit: int,
    cursor: str | None,
    stock: StockFigures,
) -> Page:
    """A page of products in id order, each of `filters` narrowing it; `in_stock` is
    decided by the availability `stock` gives."""
    stmt = await _product_list_statement(
        session, filters, include_deleted=include_deleted, stock=stock
    )
    return await _paginate(session, stmt, Product.id, limit, cursor)


async def _product_list_statement(
    session: AsyncSession, filters: ProductFilters, *, include_deleted: bool, stock: StockFigures
) -> Select[Any]:
    stmt = select(Product)
    if not include_deleted:
        stmt = stmt.where(Product.is_deleted.is_(False))
    if filters.category_id is not None:
        category = await session.get(Category, filters.category_id)
        if category is None or category.is_deleted:
            raise ValidationFailed.field(
                ["query", "category_id"], f"no category with id {filters.category_id}"
            )
        in_subtree = select(Category.id).where(subtree_condition(Category.path, category.path))
        stmt = stmt.where(Product.category_id.in_(in_subtree))
    if filters.q is not None:
        stmt = stmt.where(_search_condition(session, filters.q))
    sku_conditions: list[ColumnElement[bool]] = []
    if filters.min_price_cents is not None:
        sku_conditions.append(Sku.price_cents >= filters.min_price_cents)
    if filters.max_price_cents is not None:
        sku_conditions.append(Sku.price_cents <= filters.max_price_cents)
    if sku_conditions:
        stmt = stmt.where(_has_live_sku(*sku_conditions))
    if filters.in_stock is not None:
        in_stock = _has_live_sku(stock.sku_available(Sku.id) > 0)
        stmt = stmt.where(in_stock if filters.in_stock else ~in_stock)
    return stmt


# What the API shows of a product and of a SKU, read as plain rows (no ORM objects).
PRODUCT_COLUMNS = (
    Product.id,
    Product.name,
    Product.description,
    Product.category_id,
    Product.attributes,
    Product.version,
    Product.is_deleted,
    Product.created_at,
    Product.updated_at,
)
SKU_COLUMNS = (
    Sku.id,
    Sku.code,
    Sku.product_id,
    Sku.price_cents,
    Sku.currency,
    Sku.attributes,
    Sku.low_stock_threshold,
    Sku.max_per_customer,
    Sku.version,
    Sku.is_deleted,
    Sku.created_at,
    Sku.updated_at,
)


@dataclass
class ProductRows:
    """A page of products as rows (`PRODUCT_COLUMNS`), each product's live SKUs as rows
    (`SKU_COLUMNS` and `available`) in id order, and the cursor of the next page."""

    products: list[Row[Any]]
    skus: dict[int, list[Row[Any]]]
    next_cursor: str | None


async def list_product_rows(
    session: AsyncSession,
    filters: ProductFilters,
    *,
    limit: int,
    cursor: str | None,
    stock: StockFigures,
) -> ProductRows:
    """The public product list (no deleted rows) as rows, for rendering straight into the
    response: two statements whatever the page size (the products; their live SKUs with
    each one's availability)."""
    stmt = await _product_list_statement(session, filters, include_deleted=False, stock=stock)
    after = decode_id_cursor(cursor)
    if after is not None:
        stmt = stmt.where(Product.id > after)
    rows = (
        await session.execute(
            stmt.with_only_columns(*PRODUCT_COLUMNS).order_by(Product.id).limit(limit + 1)
        )
    ).all()
    products, next_cursor = page_of(rows, limit, lambda row: [row.id])
    skus: dict[int, list[Row[Any]]] = {product.id: [] for product in products}
    if products:
        sku_rows = await session.execute(
            select(*SKU_COLUMNS, stock.sku_available(Sku.id).label("available"))
            .where(Sku.product_id.in_(list(skus)), Sku.is_deleted.is_(False))
            .order_by(Sku.product_id, Sku.id)
        )
        for sku in sku_rows:
            skus[sku.product_id].append(sku)
    return ProductRows(list(products), skus, next_cursor)


def _has_live_sku(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(Sku.product_id == Product.id, Sku.is_deleted.is_(False), *conditions)


async def get_product(
    session: AsyncSession, product_id: int, *, include_deleted: bool = False
) -> Product:
    product = await session.get(Product, product_id)
    if product is None or (product.is_deleted and not include_deleted):
        raise NotFound(f"No product with id {product_id}.")
    return product


async def live_skus_with_stock(
    session: AsyncSession, product_ids: Sequence[int], *, stock: StockFigures
) -> SkuStock:
    """The live SKUs of these products and their availability (from `stock`): two
    statements whatever the number of products."""
    by_product: dict[int, list[Sku]] = {product_id: [] for product_id in product_ids}
    if not product_ids:
        return SkuStock(by_product, {})
    skus = (
        await session.scalars(
            select(Sku)
            .where(Sku.product_id.in_(product_ids), Sku.is_deleted.is_(False))
            .order_by(Sku.product_id, Sku.id)
        )
    ).all()
    for sku in skus:
        by_product[sku.product_id].append(sku)
    return SkuStock(by_product, await stock.available_by_sku(session, [sku.id for sku in skus]))


async def create_product(
    session: AsyncSession,
    data: ProductCreate,
    default_currency: str,
    *,
    stock: StockFigures | None = None,
    actor_id: int | None = None,
) -> Product:
    """The product and its SKUs, all or nothing; with `stock`, each SKU's first stock
    (`on_hand`, `location`) too."""
    await _live_parent(session, data.category_id, "category_id")
    codes = [sku.code for sku in data.skus]
    if codes:
        await _refuse_taken_codes(session, codes, "skus")
    product = Product(
        name=data.name,
        description=data.description,
        category_id=data.category_id,
        attributes=data.attributes,
    )
    session.add(product)
    await session.flush()
    created = [
        Sku(
            product_id=product.id,
            code=sku.code,
            price_cents=sku.price_cents,
            currency=sku.currency or default_currency,
            attributes=sku.attributes,
            low_stock_threshold=sku.low_stock_threshold,
            max_per_customer=sku.max_per_customer,
        )
        for sku in data.skus
    ]
    session.add_all(created)
    await flush_or_conflict(session, "A SKU code is already in use.")
    if stock is not None:
        for index, (fields, sku) in enumerate(zip(data.skus, created, strict=True)):
            await _first_stock(session, sku, fields, stock, actor_id, ["body", "skus", index])
    return product


async def _first_stock(
    session: AsyncSession,
    sku: Sku,
    fields: SkuFields,
    stock: StockFigures,
    actor_id: int | None,
    loc: list[str | int],
) -> None:
    """The new SKU's `on_hand` and `location`, received through the inventory."""
    if fields.on_hand is None and fields.location is None:
        return
    await stock.receive_first_stock(
        session,
        sku.id,
        fields.on_hand or 0,
        fields.location,
        actor_id=actor_id,
        loc=[*loc, "location"],
    )


def _changes(resource: Product | Sku, data: ProductUpdate | SkuUpdate) -> dict[str, Any]:
    """The fields `data` sets to a value other than the resource's (its version aside)."""
    return {
        field: getattr(data, field)
        for field in data.model_fields_set - {"version"}
        if getattr(data, field) != getattr(resource, field)
    }


async def _apply(session: AsyncSession, resource: Product | Sku, changes: dict[str, Any]) -> None:
    """Write `changes` with a new version; no change keeps the version."""
    if not changes:
        return
    for field, value in changes.items():
        setattr(resource, field, value)
    resource.version += 1
    await session.flush()


async def update_product(session: AsyncSession, product_id: int, data: ProductUpdate) -> Product:
    product = await _locked_product(session, product_id)
    if product is None or product.is_deleted:
        raise NotFound(f"No product with id {product_id}.")
    check_version(product, data.version)
    changes = _changes(product, data)
    if "category_id" in changes:
        await _live_parent(session, changes["category_id"], "category_id")
    await _apply(session, product, changes)
    return product


async def delete_product(session: AsyncSession, product_id: int) -> None:
    """Soft delete the product and, with it, its live SKUs (no new holds, cart items or
    orders for them; existing ones proceed)."""
    product = await _locked_product(session, product_id)
    if product is None:
        raise NotFound(f"No product with id {product_id}.")
    if product.is_deleted:
        return
    product.is_deleted = True
    product.version += 1
    await session.flush()
    await touch_catalog(session)
    await session.execute(
        update(Sku)
        .where(Sku.product_id == product_id, Sku.is_deleted.is_(False))
        .values(is_deleted=True, version=Sku.version + 1)
        .execution_options(synchronize_session=False)
    )


async def list_skus(
    session: AsyncSession,
    *,
    product_id: int | None,
    include_deleted: bool,
    limit: int,
    cursor: str | None,
) -> Page:
    stmt = select(Sku)
    if product_id is not None:
        stmt = stmt.where(Sku.product_id == product_id)
    if not include_deleted:
        stmt = stmt.where(Sku.is_deleted.is_(False))
    return await _paginate(session, stmt, Sku.id, limit, cursor)


async def get_sku(session: AsyncSession, code: str, *, include_deleted: bool = False) -> Sku:
    sku = (await session.scalars(select(Sku).where(Sku.code == code.upper()))).first()
    if sku is None or (sku.is_deleted and not include_deleted):
        raise NotFound(f"No SKU with code {code.upper()}.")
    return sku


async def create_sku(
    session: AsyncSession,
    data: SkuCreate,
    default_currency: str,
    *,
    stock: StockFigures | None = None,
    actor_id: int | None = None,
) -> Sku:
    """A SKU of a live product; with `stock`, its first stock (`on_hand`, `location`) in
    the same transaction."""
    product = await _locked_product(session, data.product_id, shared=True)
    if product is None or product.is_deleted:
        raise ValidationFailed.field(
            ["body", "product_id"], f"no product with id {data.product_id}"
        )
    await _refuse_taken_codes(session, [data.code], "code")
    sku = Sku(
        product_id=data.product_id,
        code=data.code,
        price_cents=data.price_cents,
        currency=data.currency or default_currency,
        attributes=data.attributes,
        low_stock_threshold=data.low_stock_threshold,
        max_per_customer=data.max_per_customer,
    )
    session.add(sku)
    await flush_or_conflict(session, f"SKU code {data.code} is already in use.")
    if stock is not None:
        await _first_stock(session, sku, data, stock, actor_id, ["body"])
    return sku


async def update_sku(session: AsyncSession, code: str, data: SkuUpdate) -> Sku:
    sku = await _locked_sku(session, code)
    if sku is None or sku.is_deleted:
        raise NotFound(f"No SKU with code {code.upper()}.")
    check_version(sku, data.version)
    await _apply(session, sku, _changes(sku, data))
    return sku


async def delete_sku(session: AsyncSession, code: str) -> None:
    """Soft delete: no new holds, cart items or orders; existing ones proceed."""
    sku = await _locked_sku(session, code)
    if sku is None:
        raise NotFound(f"No SKU with code {code.upper()}.")
    if sku.is_deleted:
        return
    sku.is_deleted = True
    sku.version += 1
    await session.flush()


# Products and SKUs with their stock, for the API


async def _product_views(
    session: AsyncSession, products: Sequence[Product], *, stock: StockFigures
) -> list[ProductView]:
    """The products with their live SKUs and stock: two statements whatever their number."""
    found = await live_skus_with_stock(session, [product.id for product in products], stock=stock)
    return [
        ProductView(
            product,
            [
                SkuView(sku, found.available.get(sku.id, 0))
                for sku in found.by_product.get(product.id, [])
            ],
        )
        for product in products
    ]


async def _sku_views(
    session: AsyncSession, skus: Sequence[Sku], *, stock: StockFigures
) -> list[SkuView]:
    """The SKUs with their availability, in one statement whatever their number."""
    available = await stock.available_by_sku(session, [sku.id for sku in skus])
    return [SkuView(sku, available[sku.id]) for sku in skus]


async def create_product_with_stock(
    session: AsyncSession,
    data: ProductCreate,
    default_currency: str,
    *,
    stock: StockFigures,
    actor_id: int | None = None,
) -> ProductView:
    """`create_product` with the SKUs' first stock, returned with its SKUs and their
    stock."""
    product = await create_product(session, data, default_currency, stock=stock, actor_id=actor_id)
    [view] = await _product_views(session, [product], stock=stock)
    return view


async def create_sku_with_stock(
    session: AsyncSession,
    data: SkuCreate,
    default_currency: str,
    *,
    stock: StockFigures,
    actor_id: int | None = None,
) -> SkuView:
    """`create_sku` with its first stock, returned with its availability."""
    sku = await create_sku(session, data, default_currency, stock=stock, actor_id=actor_id)
    [view] = await _sku_views(session, [sku], stock=stock)
    return view


async def list_products_for(
    session: AsyncSession,
    viewer: User | None,
    filters: ProductFilters,
    *,
    include_deleted: bool,
    limit: int,
    cursor: str | None,
    stock: StockFigures,
) -> Page:
    """`list_products` as `viewer` may see it (deleted rows only for staff who ask); the
    page's rows are `ProductView`s."""
    page = await list_products(
        session,
        filters,
        include_deleted=_shows_deleted(viewer, include_deleted),
        limit=limit,
        cursor=cursor,
        stock=stock,
    )
    return Page(await _product_views(session, page.rows, stock=stock), page.next_cursor)


async def list_products_cached(
    session: AsyncSession,
    viewer: User | None,
    filters: ProductFilters,
    *,
    limit: int,
    cursor: str | None,
    stock: StockFigures,
    cache: CatalogCache,
    name: str,
    if_none_match: str | None,
    render: Callable[[ProductRows], bytes],
) -> CachedRead:
    """The public product list (no deleted rows) through the catalog cache: "not
    modified" for a caller holding the current tag, else the page `render`ed, from the
    cache when it holds page `name` of this version and window."""

    async def compute() -> bytes:
        return render(
            await list_product_rows(session, filters, limit=limit, cursor=cursor, stock=stock)
        )

    return await cached_read(session, cache, name, if_none_match, compute)


async def get_product_cached(
    session: AsyncSession,
    viewer: User | None,
    product_id: int,
    *,
    stock: StockFigures,
    cache: CatalogCache,
    name: str,
    if_none_match: str | None,
    render: Callable[[ProductView], bytes],
) -> CachedRead:
    """A public product (404 when deleted) through the catalog cache, like
    `list_products_cached`."""

    async def compute() -> bytes:
        view = await get_product_for(
            session, viewer, product_id, include_deleted=False, stock=stock
        )
        return render(view)

    return await cached_read(session, cache, name, if_none_match, compute)


async def get_product_for(
    session: AsyncSession,
    viewer: User | None,
    product_id: int,
    *,
    include_deleted: bool,
    stock: StockFigures,
) -> ProductView:
    """`get_product` as `viewer` may see it (a deleted one only for staff who ask), with its
    live SKUs and their stock."""
    product = await get_product(
        session, product_id, include_deleted=_shows_deleted(viewer, include_deleted)
    )
    [view] = await _product_views(session, [product], stock=stock)
    return view


async def update_product_with_stock(
    session: AsyncSession, product_id: int, data: ProductUpdate, *, stock: StockFigures
) -> ProductView:
    """`update_product`, returned with its live SKUs and their stock."""
    product = await update_product(session, product_id, data)
    [view] = await _product_views(session, [product], stock=stock)
    return view


async def list_skus_for(
    session: AsyncSession,
    viewer: User | None,
    *,
    product_id: int | None,
    include_deleted: bool,
    limit: int,
    cursor: str | None,
    stock: StockFigures,
) -> Page:
    """`list_skus` as `viewer` may see it (deleted rows only for staff who ask); the page's
    rows are `SkuView`s."""
    page = await list_skus(
        session,
        product_id=product_id,
        include_deleted=_shows_deleted(viewer, include_deleted),
        limit=limit,
        cursor=cursor,
    )
    return Page(await _sku_views(session, page.rows, stock=stock), page.next_cursor)


async def get_sku_for(
    session: AsyncSession,
    viewer: User | None,
    code: str,
    *,
    include_deleted: bool,
    stock: StockFigures,
) -> SkuView:
    """`get_sku` as `viewer` may see it (a deleted one only for staff who ask), with its
    availability."""
    sku = await get_sku(session, code, include_deleted=_shows_deleted(viewer, include_deleted))
    [view] = await _sku_views(session, [sku], stock=stock)
    return view


async def update_sku_with_stock(
    session: AsyncSession, code: str, data: SkuUpdate, *, stock: StockFigures
) -> SkuView:
    """`update_sku`, returned with its availability."""
    sku = await update_sku(session, code, data)
    [view] = await _sku_views(session, [sku], stock=stock)
    return view
