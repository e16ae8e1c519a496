"""Catalog pages: the category tree (create, rename, move, delete, restore).

Every change goes through `storekeeper.catalog.service` in its own unit of work, so the
tree's rules (unique sibling names, no move under a descendant, no delete while in use,
versions) are the API's rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from storekeeper.catalog import service as catalog
from storekeeper.catalog.models import Category
from storekeeper.catalog.schemas import CategoryCreate, CategoryUpdate, IdPath
from storekeeper.db import DatabaseDep
from storekeeper.errors import StorekeeperError, ValidationFailed, VersionConflict
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FORM_ERROR,
    STALE_EDIT,
    FormInvalid,
    build,
    refusal_errors,
    text,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import render, settings_of

router = APIRouter(prefix="/catalog", route_class=WebRoute)

CATEGORIES_PATH = "/admin/catalog/categories"
# Refusals of a delete or restore are shown next to the category, not in its edit form.
NODE_ERROR = "node"


async def all_categories(session: AsyncSession, *, include_deleted: bool) -> list[Category]:
    """Every category, parents before children and siblings by name (the tree's order)."""
    query = select(Category).order_by(Category.depth, func.lower(Category.name), Category.id)
    if not include_deleted:
        query = query.where(Category.is_deleted.is_(False))
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class CategoryChoice:
    id: int
    label: str
    path: str


def category_choices(categories: list[Category]) -> list[CategoryChoice]:
    """Live categories labelled with their ancestry ("Tools / Hammers"), for the parent
    and filter selects."""
    names = {category.id: category.name for category in categories}
    choices = []
    for category in categories:
        if category.is_deleted:
            continue
        ids = [int(part) for part in category.path.strip("/").split("/") if part]
        label = " / ".join(names.get(i, "?") for i in ids)
        choices.append(CategoryChoice(category.id, label, category.path))
    return sorted(choices, key=lambda choice: choice.label.lower())


async def _tree_page(
    request: Request,
    db: DatabaseDep,
    *,
    show_deleted: bool,
    errors: dict[str, str] | None = None,
    error_for: int | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    async with db.transaction(write=False) as session:
        categories = await all_categories(session, include_deleted=show_deleted)
    return render(
        request,
        "catalog/categories.html",
        {
            "section": CATEGORIES_PATH,
            "tree": catalog.build_tree(categories),
            "choices": category_choices(categories),
            "show_deleted": show_deleted,
            "errors": errors or {},
            "error_for": error_for,
            "values": values or {},
        },
        status_code=status_code,
    )


@router.get("/categories")
async def categories_page(
    request: Request,
    _user: StaffUser,
    db: DatabaseDep,
    deleted: Annotated[bool, Query()] = False,
) -> Response:
    return await _tree_page(request, db, show_deleted=deleted)


def _parent_id(raw: str) -> int | str | None:
    return raw or None


async def _change(
    request: Request,
    db: DatabaseDep,
    work: Any,
    *,
    done: str,
    error_for: int | None,
    values: dict[str, Any],
    show_deleted: bool = False,
    message_field: str = FORM_ERROR,
) -> Response:
    """Run one change in its own unit of work; on refusal show the tree again with the
    message next to the form that asked for it (the unit of work has rolled back)."""
    try:
        await db.run(work)
    except FormInvalid as invalid:
        errors, status = invalid.errors, 422
    except ValidationFailed as refused:
        errors, status = refusal_errors(refused), 422
    except VersionConflict:
        errors, status = {FORM_ERROR: STALE_EDIT}, 409
    except StorekeeperError as refused:
        errors, status = {message_field: refused.detail}, refused.status_code
    else:
        response = see_other(CATEGORIES_PATH + ("?deleted=true" if show_deleted else ""))
        set_flash(response, settings_of(request), done)
        return response
    return await _tree_page(
        request,
        db,
        show_deleted=show_deleted,
        errors=errors,
        error_for=error_for,
        values=values,
        status_code=status,
    )


@router.post("/categories")
async def create_category(request: Request, db: DatabaseDep, form: StaffForm) -> Response:
    values = {
        "name": text(form, "name"),
        "description": text(form, "description") or None,
        "parent_id": _parent_id(text(form, "parent_id")),
    }

    async def work(session: AsyncSession) -> None:
        await catalog.create_category(session, build(CategoryCreate, values))

    done = f"Category “{values['name']}” created."
    return await _change(request, db, work, done=done, error_for=None, values=values)


@router.post("/categories/{category_id}")
async def update_category(
    request: Request, category_id: IdPath, db: DatabaseDep, form: StaffForm
) -> Response:
    values = {
        "name": text(form, "name"),
        "parent_id": _parent_id(text(form, "parent_id")),
        "version": text(form, "version"),
    }

    async def work(session: AsyncSession) -> None:
        await catalog.update_category(session, category_id, build(CategoryUpdate, values))

    return await _change(
        request,
        db,
        work,
        done=f"Category “{values['name']}” saved.",
        error_for=category_id,
        values=values,
    )


@router.post("/categories/{category_id}/delete")
async def delete_category(
    request: Request, category_id: IdPath, db: DatabaseDep, _form: StaffForm
) -> Response:
    async def work(session: AsyncSession) -> None:
        await catalog.delete_category(session, category_id)

    return await _change(
        request,
        db,
        work,
        done="Category deleted.",
        error_for=category_id,
        values={},
        message_field=NODE_ERROR,
    )


@router.post("/categories/{category_id}/restore")
async def restore_category(
    request: Request, category_id: IdPath, db: DatabaseDep, _form: StaffForm
) -> Response:
    async def work(session: AsyncSession) -> None:
        await catalog.restore_category(session, category_id)

    return await _change(
        request,
        db,
        work,
        done="Category restored.",
        error_for=category_id,
        values={},
        show_deleted=True,
        message_field=NODE_ERROR,
    )
