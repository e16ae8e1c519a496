"""HTTP routes of the catalog domain: categories, products and SKUs.

Reads are public; writes need staff or admin. `include_deleted=true` is honoured only for
staff callers (for anyone else deleted rows stay invisible).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from storekeeper.accounts.dependencies import OptionalUser, SettingsDep, StaffUser, is_staff
from storekeeper.catalog import service
from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.catalog.schemas import (
    CatalogId,
    CategoryCreate,
    CategoryOut,
    CategoryTree,
    CategoryUpdate,
    IdPath,
    PriceCents,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    SkuCodePath,
    SkuCreate,
    SkuOut,
    SkuUpdate,
    storable_text,
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
from storekeeper.inventory.queries import available_by_sku
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


# Products


def _sku_out(sku: Sku, available: int) -> SkuOut:
    return SkuOut(
        id=sku.id,
        code=sku.code,
        product_id=sku.product_id,
        price_cents=sku.price_cents,
        currency=sku.currency,
        attributes=sku.attributes,
        available=available,
        version=sku.version,
        is_deleted=sku.is_deleted,
        created_at=sku.created_at,
        updated_at=sku.updated_at,
    )


def _product_out(product: Product, stock: service.SkuStock) -> ProductOut:
    return ProductOut(
        id=product.id,
        name=product.name,
        description=product.description,
        category_id=product.category_id,
        attributes=product.attributes,
        skus=[
            _sku_out(sku, stock.available.get(sku.id, 0))
            for sku in stock.by_product.get(product.id, [])
        ],
        version=product.version,
        is_deleted=product.is_deleted,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


async def _product_response(session: SessionDep, product: Product) -> ProductOut:
    stock = await service.live_skus_with_stock(session, [product.id])
    return _product_out(product, stock)


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    tags=["products"],
    responses=problem_responses(*WRITE_ERRORS, Conflict),
)
async def create_product(
    data: ProductCreate, session: SessionDep, settings: SettingsDep, _staff: StaffUser
) -> ProductOut:
    """Create a product together with its SKUs (all or nothing). A SKU code already in
    use, by a deleted SKU too, is a 409."""
    product = await service.create_product(session, data, settings.default_currency)
    return await _product_response(session, product)


@router.get(
    "/products",
    tags=["products"],
    responses=problem_responses(ValidationFailed, Unauthorized),
)
async def list_products(
    session: SessionDep,
    user: OptionalUser,
    category_id: Annotated[
        CatalogId | None, Query(description="This category and all its descendants.")
    ] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Words to find in name/description."),
    ] = None,
    min_price_cents: Annotated[
        PriceCents | None, Query(description="Has a live SKU at least this price.")
    ] = None,
    max_price_cents: Annotated[
        PriceCents | None, Query(description="Has a live SKU at most this price.")
    ] = None,
    in_stock: Annotated[
        bool | None, Query(description="true: a live SKU is available; false: none is.")
    ] = None,
    include_deleted: IncludeDeletedQuery = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ProductOut]:
    """Products in id order with their live SKUs, filtered; every filter narrows."""
    if q is not None:
        q = _storable_query(q, "q")
    filters = service.ProductFilters(
        category_id=category_id,
        q=q,
        min_price_cents=min_price_cents,
        max_price_cents=max_price_cents,
        in_stock=in_stock,
    )
    page = await service.list_products(
        session,
        filters,
        include_deleted=_include_deleted(include_deleted, user),
        limit=limit,
        cursor=cursor,
    )
    stock = await service.live_skus_with_stock(session, [product.id for product in page.rows])
    return Page(
        items=[_product_out(product, stock) for product in page.rows],
        next_cursor=page.next_cursor,
    )


def _storable_query(value: str, name: str) -> str:
    try:
        return storable_text(value)
    except ValueError as exc:
        raise ValidationFailed.field(["query", name], str(exc)) from None


@router.get(
    "/products/{product_id}",
    tags=["products"],
    responses=problem_responses(NotFound, ValidationFailed, Unauthorized),
)
async def get_product(
    product_id: IdPath,
    session: SessionDep,
    user: OptionalUser,
    include_deleted: IncludeDeletedQuery = False,
) -> ProductOut:
    product = await service.get_product(
        session, product_id, include_deleted=_include_deleted(include_deleted, user)
    )
    return await _product_response(session, product)


@router.patch(
    "/products/{product_id}",
    tags=["products"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, VersionConflict),
)
async def update_product(
    product_id: IdPath, data: ProductUpdate, session: SessionDep, _staff: StaffUser
) -> ProductOut:
    """Change name, description, category or attributes (SKUs have their own routes)."""
    product = await service.update_product(session, product_id, data)
    return await _product_response(session, product)


@router.delete(
    "/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["products"],
    responses=problem_responses(*WRITE_ERRORS, NotFound),
)
async def delete_product(product_id: IdPath, session: SessionDep, _staff: StaffUser) -> Response:
    """Soft delete the product and its SKUs."""
    await service.delete_product(session, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# SKUs


async def _sku_response(session: SessionDep, sku: Sku) -> SkuOut:
    available = await available_by_sku(session, [sku.id])
    return _sku_out(sku, available[sku.id])


@router.post(
    "/skus",
    status_code=status.HTTP_201_CREATED,
    tags=["skus"],
    responses=problem_responses(*WRITE_ERRORS, Conflict),
)
async def create_sku(
    data: SkuCreate, session: SessionDep, settings: SettingsDep, _staff: StaffUser
) -> SkuOut:
    """Add a SKU to a live product. The code is stored upper-case; one already in use, by a
    deleted SKU too, is a 409."""
    sku = await service.create_sku(session, data, settings.default_currency)
    return _sku_out(sku, 0)


@router.get(
    "/skus",
    tags=["skus"],
    responses=problem_responses(ValidationFailed, Unauthorized),
)
async def list_skus(
    session: SessionDep,
    user: OptionalUser,
    product_id: Annotated[CatalogId | None, Query(description="Only this product's SKUs.")] = None,
    include_deleted: IncludeDeletedQuery = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[SkuOut]:
    """SKUs in id order, each with its current `available`."""
    page = await service.list_skus(
        session,
        product_id=product_id,
        include_deleted=_include_deleted(include_deleted, user),
        limit=limit,
        cursor=cursor,
    )
    available = await available_by_sku(session, [sku.id for sku in page.rows])
    return Page(
        items=[_sku_out(sku, available[sku.id]) for sku in page.rows],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/skus/{code}",
    tags=["skus"],
    responses=problem_responses(NotFound, ValidationFailed, Unauthorized),
)
async def get_sku(
    code: SkuCodePath,
    session: SessionDep,
    user: OptionalUser,
    include_deleted: IncludeDeletedQuery = False,
) -> SkuOut:
    sku = await service.get_sku(
        session, code, include_deleted=_include_deleted(include_deleted, user)
    )
    return await _sku_response(session, sku)


@router.patch(
    "/skus/{code}",
    tags=["skus"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, VersionConflict),
)
async def update_sku(
    code: SkuCodePath, data: SkuUpdate, session: SessionDep, _staff: StaffUser
) -> SkuOut:
    """Change price or attributes. Orders keep the price they were placed at."""
    sku = await service.update_sku(session, code, data)
    return await _sku_response(session, sku)


@router.delete(
    "/skus/{code}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["skus"],
    responses=problem_responses(*WRITE_ERRORS, NotFound),
)
async def delete_sku(code: SkuCodePath, session: SessionDep, _staff: StaffUser) -> Response:
    """Soft delete: no new holds, cart items or orders; existing ones proceed."""
    await service.delete_sku(session, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
