"""HTTP routes of the catalog domain: categories, products and SKUs.

Reads are public; writes need staff or admin. `include_deleted=true` is honoured only for
staff callers (for anyone else deleted rows stay invisible).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from storekeeper.accounts.dependencies import OptionalUser, StaffUser, is_staff
from storekeeper.catalog import service
from storekeeper.catalog.models import Category
from storekeeper.catalog.schemas import (
    CatalogId,
    CategoryCreate,
    CategoryOut,
    CategoryTree,
    CategoryUpdate,
    IdPath,
)
from storekeeper.db import SessionDep
from storekeeper.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RetryableError,
    Unauthorized,
    ValidationFailed,
    VersionConflict,
    problem_responses,
)
from storekeeper.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page

router = APIRouter()

IncludeDeletedQuery = Annotated[bool, Query(description="Staff only: also show soft-deleted rows.")]
WRITE_ERRORS = (Unauthorized, Forbidden, ValidationFailed)


def _include_deleted(requested: bool, user: Any) -> bool:
    return requested and is_staff(user)


# Categories


@router.post(
    "/categories",
    status_code=status.HTTP_201_CREATED,
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, Conflict),
)
async def create_category(
    data: CategoryCreate, session: SessionDep, _staff: StaffUser
) -> CategoryOut:
    """Create a category, at the top level or under `parent_id`."""
    category = await service.create_category(session, data)
    return CategoryOut.model_validate(category)


@router.get(
    "/categories",
    tags=["categories"],
    responses=problem_responses(ValidationFailed, Unauthorized),
)
async def list_categories(
    session: SessionDep,
    user: OptionalUser,
    parent_id: Annotated[CatalogId | None, Query(description="Only children of this one.")] = None,
    include_deleted: IncludeDeletedQuery = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[CategoryOut]:
    """Categories in id order, optionally only the children of `parent_id`."""
    page = await service.list_categories(
        session,
        parent_id=parent_id,
        include_deleted=_include_deleted(include_deleted, user),
        limit=limit,
        cursor=cursor,
    )
    return Page(
        items=[CategoryOut.model_validate(row) for row in page.rows],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/categories/{category_id}",
    tags=["categories"],
    responses=problem_responses(NotFound, ValidationFailed, Unauthorized),
)
async def get_category(
    category_id: IdPath,
    session: SessionDep,
    user: OptionalUser,
    include_deleted: IncludeDeletedQuery = False,
) -> CategoryOut:
    category = await service.get_category(
        session, category_id, include_deleted=_include_deleted(include_deleted, user)
    )
    return CategoryOut.model_validate(category)


def _tree_node(category: Category, children: list[Any]) -> CategoryTree:
    node = CategoryTree.model_validate(category)
    node.children = [_tree_node(child, grandchildren) for child, grandchildren in children]
    return node


@router.get(
    "/categories/{category_id}/tree",
    tags=["categories"],
    responses=problem_responses(NotFound, ValidationFailed, Unauthorized),
)
async def category_tree(
    category_id: IdPath,
    session: SessionDep,
    user: OptionalUser,
    include_deleted: IncludeDeletedQuery = False,
) -> CategoryTree:
    """The category with all its descendants nested in `children` (siblings by name)."""
    subtree = await service.category_subtree(
        session, category_id, include_deleted=_include_deleted(include_deleted, user)
    )
    ((root, children),) = service.build_tree(subtree)
    return _tree_node(root, children)


@router.patch(
    "/categories/{category_id}",
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, Conflict, VersionConflict, RetryableError),
)
async def update_category(
    category_id: IdPath, data: CategoryUpdate, session: SessionDep, _staff: StaffUser
) -> CategoryOut:
    """Rename, re-describe or move a category. A move rewrites the paths of the whole
    subtree in the same transaction; moving under itself or a descendant is a 409."""
    category = await service.update_category(session, category_id, data)
    return CategoryOut.model_validate(category)


@router.delete(
    "/categories/{category_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, Conflict),
)
async def delete_category(
    category_id: IdPath,
    session: SessionDep,
    _staff: StaffUser,
    force: Annotated[
        bool, Query(description="Delete permanently (refused while anything refers to it).")
    ] = False,
) -> Response:
    """Soft delete (409 while live subcategories or products exist), or with `force=true`
    a permanent delete (409 while any subcategory or product, deleted or not, refers to it).
    """
    if force:
        await service.purge_category(session, category_id)
    else:
        await service.delete_category(session, category_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/categories/{category_id}/restore",
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, Conflict),
)
async def restore_category(
    category_id: IdPath, session: SessionDep, _staff: StaffUser
) -> CategoryOut:
    """Undo a soft delete (409 while the parent is deleted or a live sibling took the name)."""
    category = await service.restore_category(session, category_id)
    return CategoryOut.model_validate(category)
