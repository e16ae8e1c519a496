"""Catalog rules: the category tree, products and SKUs, soft delete and optimistic versions.

Concurrency: every check that guards a write runs after the rows it depends on are locked
(`FOR UPDATE` / `FOR SHARE` on PostgreSQL; SQLite serializes writers with BEGIN IMMEDIATE).
Creating something under a category or product takes a share lock on that parent, and
deleting or moving the parent takes an exclusive one, so a delete never misses a child that
is being created and a move never leaves a new child behind with a stale path. Uniqueness
(live sibling names, SKU codes) is enforced by the database; a violation becomes a 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, and_, exists, func, literal, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.catalog.schemas import CategoryCreate, CategoryUpdate
from storekeeper.db import is_retryable
from storekeeper.errors import (
    Conflict,
    NotFound,
    RetryableError,
    ValidationFailed,
    VersionConflict,
)
from storekeeper.pagination import decode_cursor, page_of

ROOT_PATH = "/"


@dataclass
class Page:
    """One page of rows and the cursor of the next page (None on the last)."""

    rows: list[Any]
    next_cursor: str | None


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
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after[0], int):
            raise ValidationFailed.field(["query", "cursor"], "malformed cursor")
        stmt = stmt.where(id_column > after[0])
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
