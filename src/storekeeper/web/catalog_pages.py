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
from storekeeper.db import UnitOfWork, UnitOfWorkDep
from storekeeper.errors import ValidationFailed, VersionConflict
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FORM_ERROR,
    FormInvalid,
    Refusal,
    attempt,
    build,
    form_refusal,
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


async def live_category_choices(session: AsyncSession) -> list[CategoryChoice]:
    """The choices of every live category, for a select."""
    return category_choices(await all_categories(session, include_deleted=False))


async def _tree_page(
    request: Request,
    uow: UnitOfWork,
    *,
    show_deleted: bool,
    errors: dict[str, str] | None = None,
    error_for: int | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    categories = await uow.run(all_categories, include_deleted=show_deleted)
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
    uow: UnitOfWorkDep,
    deleted: Annotated[bool, Query()] = False,
) -> Response:
    return await _tree_page(request, uow, show_deleted=deleted)


def _parent_id(raw: str) -> int | str | None:
    return raw or None


async def _answer(
    request: Request,
    uow: UnitOfWork,
    outcome: object,
    *,
    done: str,
    error_for: int | None,
    values: dict[str, Any],
    show_deleted: bool = False,
    message_field: str = FORM_ERROR,
) -> Response:
    """The answer to one change: the tree with `done` as its note, or, when the change was
    refused (the unit of work has rolled back), the tree again with the message next to the
    form that asked for it (`message_field` for a refusal that is not about the form's
    values or version)."""
    if not isinstance(outcome, Refusal):
        response = see_other(CATEGORIES_PATH + ("?deleted=true" if show_deleted else ""))
        set_flash(response, settings_of(request), done)
        return response
    errors = outcome.errors
    if outcome.error is not None and not isinstance(
        outcome.error, ValidationFailed | VersionConflict
    ):
        errors = {message_field: outcome.error.detail}
    return await _tree_page(
        request,
        uow,
        show_deleted=show_deleted,
        errors=errors,
        error_for=error_for,
        values=values,
        status_code=outcome.status,
    )


@router.post("/categories")
async def create_category(request: Request, uow: UnitOfWorkDep, form: StaffForm) -> Response:
    values = {
        "name": text(form, "name"),
        "description": text(form, "description") or None,
        "parent_id": _parent_id(text(form, "parent_id")),
    }
    outcome: Category | Refusal
    try:
        data = build(CategoryCreate, values)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(uow, catalog.create_category, data)
    done = f"Category “{values['name']}” created."
    return await _answer(request, uow, outcome, done=done, error_for=None, values=values)


@router.post("/categories/{category_id}")
async def update_category(
    request: Request, category_id: IdPath, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    values = {
        "name": text(form, "name"),
        "parent_id": _parent_id(text(form, "parent_id")),
        "version": text(form, "version"),
    }
    outcome: Category | Refusal
    try:
        data = build(CategoryUpdate, values)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(uow, catalog.update_category, category_id, data)
    return await _answer(
        request,
        uow,
        outcome,
        done=f"Category “{values['name']}” saved.",
        error_for=category_id,
        values=values,
    )


@router.post("/categories/{category_id}/delete")
async def delete_category(
    request: Request, category_id: IdPath, uow: UnitOfWorkDep, _form: StaffForm
) -> Response:
    outcome = await attempt(uow, catalog.delete_category, category_id)
    return await _answer(
        request,
        uow,
        outcome,
        done="Category deleted.",
        error_for=category_id,
        values={},
        message_field=NODE_ERROR,
    )


@router.post("/categories/{category_id}/restore")
async def restore_category(
    request: Request, category_id: IdPath, uow: UnitOfWorkDep, _form: StaffForm
) -> Response:
    outcome = await attempt(uow, catalog.restore_category, category_id)
    return await _answer(
        request,
        uow,
        outcome,
        done="Category restored.",
        error_for=category_id,
        values={},
        show_deleted=True,
        message_field=NODE_ERROR,
    )
