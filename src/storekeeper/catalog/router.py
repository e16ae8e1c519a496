"""HTTP routes of the catalog domain: categories, products and SKUs.

Reads are public; writes need staff or admin. `include_deleted=true` is honoured only for
staff callers (for anyone else deleted rows stay invisible; the service decides). Each
route runs one service function as one unit of work and shapes its result.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response, status

from storekeeper.accounts.dependencies import OptionalUser, SettingsDep, StaffUser
from storekeeper.catalog import service
from storekeeper.catalog.cache import CachedRead
from storekeeper.catalog.dependencies import CatalogCacheDep, StockFiguresDep
from storekeeper.catalog.models import Category
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
from storekeeper.db import UnitOfWorkDep
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


# Categories


@router.post(
    "/categories",
    status_code=status.HTTP_201_CREATED,
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, Conflict),
)
async def create_category(
    data: CategoryCreate, uow: UnitOfWorkDep, _staff: StaffUser
) -> CategoryOut:
    """Create a category, at the top level or under `parent_id`."""
    category = await uow.run(service.create_category, data)
    return CategoryOut.model_validate(category)


@router.get(
    "/categories",
    tags=["categories"],
    responses=problem_responses(ValidationFailed),
)
async def list_categories(
    uow: UnitOfWorkDep,
    user: OptionalUser,
    parent_id: Annotated[CatalogId | None, Query(description="Only children of this one.")] = None,
    include_deleted: IncludeDeletedQuery = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[CategoryOut]:
    """Categories in id order, optionally only the children of `parent_id`."""
    page = await uow.run(
        service.list_categories_for,
        user,
        parent_id=parent_id,
        include_deleted=include_deleted,
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
    responses=problem_responses(NotFound, ValidationFailed),
)
async def get_category(
    category_id: IdPath,
    uow: UnitOfWorkDep,
    user: OptionalUser,
    include_deleted: IncludeDeletedQuery = False,
) -> CategoryOut:
    """One category. Public; soft-deleted ones only for staff with `include_deleted=true`."""
    category = await uow.run(
        service.get_category_for, user, category_id, include_deleted=include_deleted
    )
    return CategoryOut.model_validate(category)


def _tree_node(category: Category, children: list[Any]) -> CategoryTree:
    node = CategoryTree.model_validate(category)
    node.children = [_tree_node(child, grandchildren) for child, grandchildren in children]
    return node


@router.get(
    "/categories/{category_id}/tree",
    tags=["categories"],
    responses=problem_responses(NotFound, ValidationFailed),
)
async def category_tree(
    category_id: IdPath,
    uow: UnitOfWorkDep,
    user: OptionalUser,
    include_deleted: IncludeDeletedQuery = False,
) -> CategoryTree:
    """The category with all its descendants nested in `children` (siblings by name)."""
    root, children = await uow.run(
        service.category_tree_for, user, category_id, include_deleted=include_deleted
    )
    return _tree_node(root, children)


@router.patch(
    "/categories/{category_id}",
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, Conflict, VersionConflict, RetryableError),
)
async def update_category(
    category_id: IdPath, data: CategoryUpdate, uow: UnitOfWorkDep, _staff: StaffUser
) -> CategoryOut:
    """Rename, re-describe or move a category. A move rewrites the paths of the whole
    subtree in the same transaction; moving under itself or a descendant is a 409."""
    category = await uow.run(service.update_category, category_id, data)
    return CategoryOut.model_validate(category)


@router.delete(
    "/categories/{category_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, Conflict),
)
async def delete_category(
    category_id: IdPath,
    uow: UnitOfWorkDep,
    _staff: StaffUser,
    force: Annotated[
        bool, Query(description="Delete permanently (refused while anything refers to it).")
    ] = False,
) -> Response:
    """Soft delete (409 while live subcategories or products exist), or with `force=true`
    a permanent delete (409 while any subcategory or product, deleted or not, refers to it).
    """
    await uow.run(service.remove_category, category_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/categories/{category_id}/restore",
    tags=["categories"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, Conflict),
)
async def restore_category(
    category_id: IdPath, uow: UnitOfWorkDep, _staff: StaffUser
) -> CategoryOut:
    """Undo a soft delete (409 while the parent is deleted or a live sibling took the name)."""
    category = await uow.run(service.restore_category, category_id)
    return CategoryOut.model_validate(category)


# Products


def _sku_out(view: service.SkuView, default_threshold: int) -> SkuOut:
    """The SKU as the API shows it; `default_threshold` is the low-stock threshold of a SKU
    without its own (STOREKEEPER_LOW_STOCK_THRESHOLD)."""
    sku = view.sku
    return SkuOut(
        id=sku.id,
        code=sku.code,
        product_id=sku.product_id,
        price_cents=sku.price_cents,
        currency=sku.currency,
        attributes=sku.attributes,
        available=view.available,
        low_stock_threshold=(
            sku.low_stock_threshold if sku.low_stock_threshold is not None else default_threshold
        ),
        max_per_customer=sku.max_per_customer,
        version=sku.version,
        is_deleted=sku.is_deleted,
        created_at=sku.created_at,
        updated_at=sku.updated_at,
    )


def _product_out(view: service.ProductView, default_threshold: int) -> ProductOut:
    product = view.product
    return ProductOut(
        id=product.id,
        name=product.name,
        description=product.description,
        category_id=product.category_id,
        attributes=product.attributes,
        skus=[_sku_out(sku, default_threshold) for sku in view.skus],
        version=product.version,
        is_deleted=product.is_deleted,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    tags=["products"],
    responses=problem_responses(*WRITE_ERRORS, Conflict),
)
async def create_product(
    data: ProductCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    stock: StockFiguresDep,
    staff: StaffUser,
) -> ProductOut:
    """Create a product together with its SKUs (all or nothing). A SKU code already in
    use, by a deleted SKU too, is a 409. A SKU's `on_hand` is received (at its `location`,
    default the highest-priority one) in the same transaction."""
    view = await uow.run(
        service.create_product_with_stock,
        data,
        settings.default_currency,
        stock=stock,
        actor_id=staff.id,
    )
    return _product_out(view, settings.low_stock_threshold)


@router.get(
    "/products",
    tags=["products"],
    response_model=Page[ProductOut],
    responses={
        **problem_responses(ValidationFailed),
        304: {"description": "The caller's copy (`If-None-Match`) is current."},
    },
)
async def list_products(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    user: OptionalUser,
    stock: StockFiguresDep,
    cache: CatalogCacheDep,
    request: Request,
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
) -> Response:
    """Products in id order with their live SKUs, filtered; every filter narrows.

    Without `include_deleted`, the answer is public and cacheable: a strong `ETag` and
    `Cache-Control: public, max-age=…` (availability in it is at most
    STOREKEEPER_CATALOG_CACHE_MAX_AGE_SECONDS old; catalog edits are seen at once), and
    `304` for an `If-None-Match` naming the current tag."""
    if q is not None:
        q = _storable_query(q, "q")
    filters = service.ProductFilters(
        category_id=category_id,
        q=q,
        min_price_cents=min_price_cents,
        max_price_cents=max_price_cents,
        in_stock=in_stock,
    )
    threshold = settings.low_stock_threshold
    if not include_deleted:

        def render(rows: service.ProductRows) -> bytes:
            return _rows_json(rows, threshold)

        read = await uow.run(
            service.list_products_cached,
            user,
            filters,
            limit=limit,
            cursor=cursor,
            stock=stock,
            cache=cache,
            name=_cache_name(request),
            if_none_match=request.headers.get("if-none-match"),
            render=render,
        )
        return _cached_response(read)
    page = await uow.run(
        service.list_products_for,
        user,
        filters,
        include_deleted=include_deleted,
        limit=limit,
        cursor=cursor,
        stock=stock,
    )
    return Response(_page_json(page, threshold), media_type=JSON)


JSON = "application/json"


def _page_json(page: service.Page, threshold: int) -> bytes:
    """The page rendered once (the ProductOut models are built from our own rows; FastAPI
    would validate them again against the response model before serialising)."""
    items = [_product_out(view, threshold) for view in page.rows]
    return Page[ProductOut](items=items, next_cursor=page.next_cursor).model_dump_json().encode()


def _sku_json(sku: Any, threshold: int) -> dict[str, Any]:
    return {
        "id": sku.id,
        "code": sku.code,
        "product_id": sku.product_id,
        "price_cents": sku.price_cents,
        "currency": sku.currency,
        "attributes": sku.attributes,
        # A sum: NUMERIC on PostgreSQL, read as a Decimal.
        "available": int(sku.available),
        "low_stock_threshold": (
            sku.low_stock_threshold if sku.low_stock_threshold is not None else threshold
        ),
        "max_per_customer": sku.max_per_customer,
        "version": sku.version,
        "is_deleted": sku.is_deleted,
        "created_at": sku.created_at,
        "updated_at": sku.updated_at,
    }


def _rows_json(rows: service.ProductRows, threshold: int) -> bytes:
    """A page of `ProductOut`s straight from the rows, in its fields' order and with its
    datetimes as Pydantic writes them (`Z` for UTC): the rows are ours, already valid, so
    nothing is validated again (tests/catalog/test_caching.py compares both renderings)."""
    items = [
        {
            "id": product.id,
            "name": product.name,
            "description": product.description,
            "category_id": product.category_id,
            "attributes": product.attributes,
            "skus": [_sku_json(sku, threshold) for sku in rows.skus[product.id]],
            "version": product.version,
            "is_deleted": product.is_deleted,
            "created_at": product.created_at,
            "updated_at": product.updated_at,
        }
        for product in rows.products
    ]
    return orjson.dumps({"items": items, "next_cursor": rows.next_cursor}, option=orjson.OPT_UTC_Z)


def _cache_name(request: Request) -> str:
    """What names a cached page: its path and its query, parameters in a stable order."""
    query = "&".join(sorted(request.url.query.split("&"))) if request.url.query else ""
    return f"{request.url.path}?{query}"


def _cached_response(read: CachedRead) -> Response:
    headers = {"ETag": read.etag, "Cache-Control": read.fresh.cache_control}
    if read.body is None:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(read.body, media_type=JSON, headers=headers)


def _storable_query(value: str, name: str) -> str:
    try:
        return storable_text(value)
    except ValueError as exc:
        raise ValidationFailed.field(["query", name], str(exc)) from None


@router.get(
    "/products/{product_id}",
    tags=["products"],
    response_model=ProductOut,
    responses={
        **problem_responses(NotFound, ValidationFailed),
        304: {"description": "The caller's copy (`If-None-Match`) is current."},
    },
)
async def get_product(
    product_id: IdPath,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    user: OptionalUser,
    stock: StockFiguresDep,
    cache: CatalogCacheDep,
    request: Request,
    include_deleted: IncludeDeletedQuery = False,
) -> Response:
    """One product with its live SKUs and their current `available`. Public and cacheable
    like the product list (`ETag`, `Cache-Control`, `304`); soft-deleted ones only for staff
    with `include_deleted=true` (never cached)."""
    threshold = settings.low_stock_threshold

    def render(view: service.ProductView) -> bytes:
        return _product_out(view, threshold).model_dump_json().encode()

    if not include_deleted:
        read = await uow.run(
            service.get_product_cached,
            user,
            product_id,
            stock=stock,
            cache=cache,
            name=_cache_name(request),
            if_none_match=request.headers.get("if-none-match"),
            render=render,
        )
        return _cached_response(read)
    view = await uow.run(
        service.get_product_for, user, product_id, include_deleted=include_deleted, stock=stock
    )
    return Response(render(view), media_type=JSON)


@router.patch(
    "/products/{product_id}",
    tags=["products"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, VersionConflict),
)
async def update_product(
    product_id: IdPath,
    data: ProductUpdate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    stock: StockFiguresDep,
    _staff: StaffUser,
) -> ProductOut:
    """Change name, description, category or attributes (SKUs have their own routes)."""
    view = await uow.run(service.update_product_with_stock, product_id, data, stock=stock)
    return _product_out(view, settings.low_stock_threshold)


@router.delete(
    "/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["products"],
    responses=problem_responses(*WRITE_ERRORS, NotFound),
)
async def delete_product(product_id: IdPath, uow: UnitOfWorkDep, _staff: StaffUser) -> Response:
    """Soft delete the product and its SKUs."""
    await uow.run(service.delete_product, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# SKUs


@router.post(
    "/skus",
    status_code=status.HTTP_201_CREATED,
    tags=["skus"],
    responses=problem_responses(*WRITE_ERRORS, Conflict),
)
async def create_sku(
    data: SkuCreate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    stock: StockFiguresDep,
    staff: StaffUser,
) -> SkuOut:
    """Add a SKU to a live product. The code is stored upper-case; one already in use, by a
    deleted SKU too, is a 409. `on_hand` is its first stock, received (at `location`,
    default the highest-priority one) in the same transaction."""
    view = await uow.run(
        service.create_sku_with_stock,
        data,
        settings.default_currency,
        stock=stock,
        actor_id=staff.id,
    )
    return _sku_out(view, settings.low_stock_threshold)


@router.get(
    "/skus",
    tags=["skus"],
    responses=problem_responses(ValidationFailed),
)
async def list_skus(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    user: OptionalUser,
    stock: StockFiguresDep,
    product_id: Annotated[CatalogId | None, Query(description="Only this product's SKUs.")] = None,
    include_deleted: IncludeDeletedQuery = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[SkuOut]:
    """SKUs in id order, each with its current `available`."""
    page = await uow.run(
        service.list_skus_for,
        user,
        product_id=product_id,
        include_deleted=include_deleted,
        limit=limit,
        cursor=cursor,
        stock=stock,
    )
    return Page(
        items=[_sku_out(view, settings.low_stock_threshold) for view in page.rows],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/skus/{code}",
    tags=["skus"],
    responses=problem_responses(NotFound, ValidationFailed),
)
async def get_sku(
    code: SkuCodePath,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    user: OptionalUser,
    stock: StockFiguresDep,
    include_deleted: IncludeDeletedQuery = False,
) -> SkuOut:
    """One SKU by its code (any case) with its current `available`. Public; soft-deleted
    ones only for staff with `include_deleted=true`."""
    view = await uow.run(
        service.get_sku_for, user, code, include_deleted=include_deleted, stock=stock
    )
    return _sku_out(view, settings.low_stock_threshold)


@router.patch(
    "/skus/{code}",
    tags=["skus"],
    responses=problem_responses(*WRITE_ERRORS, NotFound, VersionConflict),
)
async def update_sku(
    code: SkuCodePath,
    data: SkuUpdate,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    stock: StockFiguresDep,
    _staff: StaffUser,
) -> SkuOut:
    """Change price or attributes. Orders keep the price they were placed at."""
    view = await uow.run(service.update_sku_with_stock, code, data, stock=stock)
    return _sku_out(view, settings.low_stock_threshold)


@router.delete(
    "/skus/{code}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["skus"],
    responses=problem_responses(*WRITE_ERRORS, NotFound),
)
async def delete_sku(code: SkuCodePath, uow: UnitOfWorkDep, _staff: StaffUser) -> Response:
    """Soft delete: no new holds, cart items or orders; existing ones proceed."""
    await uow.run(service.delete_sku, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
