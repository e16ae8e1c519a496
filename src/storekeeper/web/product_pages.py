"""Catalog pages for products and SKUs: the product list (search, category filter, cursor
paging), a product's page with its SKUs, and the forms that create, edit and delete them.

Every change goes through `storekeeper.catalog.service` with the API's own input models,
so the rules are the API's: limits, unique SKU codes, live categories, and the version
check that refuses an edit made on a page someone else has changed since it was opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from storekeeper.accounts.models import User
from storekeeper.catalog import service as catalog
from storekeeper.catalog.dependencies import StockFiguresDep
from storekeeper.catalog.models import Product, Sku
from storekeeper.catalog.schemas import (
    MAX_ID,
    IdPath,
    ProductCreate,
    ProductUpdate,
    SkuCodePath,
    SkuCreate,
    SkuUpdate,
    storable_text,
)
from storekeeper.catalog.stock import StockFigures
from storekeeper.db import UnitOfWork, UnitOfWorkDep
from storekeeper.errors import Conflict, ValidationFailed, VersionConflict
from storekeeper.inventory.queries import available_by_sku
from storekeeper.pagination import CursorQuery
from storekeeper.web.catalog_pages import CategoryChoice, live_category_choices
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FormInvalid,
    Refusal,
    amount_text,
    attempt,
    build,
    form_refusal,
    integer,
    json_object,
    money_cents,
    optional_text,
    refusal_errors,
    text,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import format_money, render, settings_of

router = APIRouter(prefix="/catalog", route_class=WebRoute)

PRODUCTS_PATH = "/admin/catalog/products"
SKUS_PATH = "/admin/catalog/skus"
PAGE_SIZE = 25
# Empty SKU rows on a new product's form; "Add another SKU" posts the form back with one
# more, keeping what was typed. Rows left empty are ignored.
NEW_SKU_ROWS = 2
MAX_SKU_ROWS = 100
CODE_TAKEN = "This code is already in use (deleted SKUs keep theirs)."


def _done(path: str, request: Request, message: str) -> Response:
    response = see_other(path)
    set_flash(response, settings_of(request), message)
    return response


def _labels(choices: list[CategoryChoice]) -> dict[int, str]:
    return {choice.id: choice.label for choice in choices}


def _category_id(raw: str) -> int | None:
    """The id chosen in a category select; None when nothing (or nothing sensible) was."""
    if raw.isdecimal() and 1 <= int(raw) <= MAX_ID:
        return int(raw)
    return None


# --- list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductRow:
    product: Product
    category: str
    skus: list[Sku]
    available: int

    @property
    def prices(self) -> str:
        """The price range of each currency the SKUs are sold in, such as `12.50 to 19.99
        USD` (with an en dash) or `19.99 USD, 1,250.50 EUR`: prices in different
        currencies never share a range."""
        by_currency: dict[str, list[int]] = {}
        for sku in self.skus:
            by_currency.setdefault(sku.currency, []).append(sku.price_cents)
        ranges = []
        for currency, prices in by_currency.items():
            low, high = min(prices), max(prices)
            if low == high:
                ranges.append(format_money(low, currency))
            else:
                ranges.append(f"{format_money(low)} \u2013 {format_money(high, currency)}")
        return ", ".join(ranges)


@dataclass(frozen=True)
class ProductList:
    choices: list[CategoryChoice]
    rows: list[ProductRow]
    next_cursor: str | None


async def product_list(
    session: AsyncSession,
    viewer: User,
    filters: catalog.ProductFilters | None,
    cursor: str | None,
    *,
    stock: StockFigures,
) -> ProductList:
    """The category choices and, given `filters`, a page of live products (the API's
    `list_products_for`) with their category, live SKUs and availability (from `stock`)."""
    choices = await live_category_choices(session)
    if filters is None:
        return ProductList(choices, [], None)
    page = await catalog.list_products_for(
        session,
        viewer,
        filters,
        include_deleted=False,
        limit=PAGE_SIZE,
        cursor=cursor,
        stock=stock,
    )
    labels = _labels(choices)
    views: list[catalog.ProductView] = page.rows
    rows = [
        ProductRow(
            view.product,
            labels.get(view.product.category_id, ""),
            [sku_view.sku for sku_view in view.skus],
            sum(sku_view.available for sku_view in view.skus),
        )
        for view in views
    ]
    return ProductList(choices, rows, page.next_cursor)


@router.get("/products")
async def products_page(
    request: Request,
    user: StaffUser,
    uow: UnitOfWorkDep,
    stock: StockFiguresDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category_id: Annotated[str | None, Query(max_length=12)] = None,
    cursor: CursorQuery = None,
) -> Response:
    search = (q or "").strip()
    chosen = _category_id(category_id or "")
    errors: dict[str, str] = {}
    if category_id and chosen is None:
        errors["category_id"] = "Choose a category from the list."
    try:
        storable_text(search)
    except ValueError as exc:
        errors["q"] = f"The search {exc}."
    filters = None if errors else catalog.ProductFilters(category_id=chosen, q=search or None)
    try:
        listing = await uow.run(product_list, user, filters, cursor, stock=stock)
    except ValidationFailed as refused:
        errors = refusal_errors(refused)
        listing = await uow.run(product_list, user, None, None, stock=stock)
    return render(
        request,
        "catalog/products.html",
        {
            "section": PRODUCTS_PATH,
            "rows": listing.rows,
            "q": search,
            "category_id": chosen,
            "choices": listing.choices,
            "cursor": cursor,
            "next_cursor": listing.next_cursor,
            "errors": errors,
        },
        status_code=422 if errors else 200,
    )


# --- create a product with its SKUs ------------------------------------------------------


@dataclass
class SkuRow:
    """One SKU row of the new-product form, as typed."""

    code: str = ""
    price: str = ""
    currency: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.code or self.price or self.currency)


@dataclass
class ProductForm:
    values: dict[str, str] = field(default_factory=dict)
    rows: list[SkuRow] = field(default_factory=list)


def _read_rows(form: FormData) -> list[SkuRow]:
    raw_count = text(form, "rows")
    count = int(raw_count) if raw_count.isdecimal() else NEW_SKU_ROWS
    count = max(1, min(count, MAX_SKU_ROWS))
    return [
        SkuRow(
            text(form, f"sku-{index}-code"),
            text(form, f"sku-{index}-price"),
            text(form, f"sku-{index}-currency"),
        )
        for index in range(count)
    ]


def _product_values(form: FormData) -> dict[str, str]:
    return {name: text(form, name) for name in ("name", "category_id", "description", "attributes")}


def _product_input(form: FormData, rows: list[SkuRow]) -> ProductCreate:
    """The API's `ProductCreate` from the form, or `FormInvalid` with every message at
    once: a field's own message (price, JSON) wins over the model's."""
    errors: dict[str, str] = {}
    kept = [(index, row) for index, row in enumerate(rows) if not row.is_empty]
    skus: list[dict[str, Any]] = []
    for index, row in kept:
        try:
            price = money_cents(form, f"sku-{index}-price", "price")
        except FormInvalid as invalid:
            errors.update(invalid.errors)
            price = 0
        skus.append({"code": row.code, "price_cents": price, "currency": row.currency or None})
    try:
        attributes = json_object(form, "attributes")
    except FormInvalid as invalid:
        errors.update(invalid.errors)
        attributes = {}
    category_id = text(form, "category_id")
    if not category_id:
        errors["category_id"] = "Choose a category."
    if not text(form, "name"):
        errors["name"] = "Enter the product's name."
    values = {
        "name": text(form, "name"),
        "description": optional_text(form, "description"),
        "category_id": category_id or None,
        "attributes": attributes,
        "skus": skus,
    }
    try:
        data = build(ProductCreate, values)
    except FormInvalid as invalid:
        for name, message in invalid.errors.items():
            errors.setdefault(_row_field(name, kept), message)
    if errors:
        raise FormInvalid(errors)
    return data


def _row_field(name: str, kept: list[tuple[int, SkuRow]]) -> str:
    """`skus.1.price_cents` (the second SKU sent) → `sku-3-price` (the form's row)."""
    parts = name.split(".")
    if parts[0] != "skus" or len(parts) < 3 or not parts[1].isdecimal():
        return name
    index = kept[int(parts[1])][0]
    field_name = {"price_cents": "price"}.get(parts[2], parts[2])
    return f"sku-{index}-{field_name}"


def _new_product_page(
    request: Request,
    choices: list[CategoryChoice],
    form: ProductForm,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "catalog/product_new.html",
        {
            "section": PRODUCTS_PATH,
            "choices": choices,
            "values": form.values,
            "rows": form.rows,
            "errors": errors or {},
            "default_currency": settings_of(request).default_currency,
        },
        status_code=status_code,
    )


@router.get("/products/new")
async def new_product_page(
    request: Request,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    category_id: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    choices = await uow.run(live_category_choices)
    chosen = _category_id(category_id or "")
    form = ProductForm(
        {"category_id": str(chosen) if chosen else ""},
        [SkuRow() for _ in range(NEW_SKU_ROWS)],
    )
    return _new_product_page(request, choices, form)


@router.post("/products")
async def create_product(request: Request, uow: UnitOfWorkDep, form: StaffForm) -> Response:
    rows = _read_rows(form)
    typed = ProductForm(_product_values(form), rows)
    if text(form, "action") == "add-row":
        # Never creates the product: at the row limit the form comes back as it was.
        choices = await uow.run(live_category_choices)
        if len(rows) < MAX_SKU_ROWS:
            typed.rows.append(SkuRow())
        return _new_product_page(request, choices, typed)
    outcome: Product | Refusal
    try:
        data = _product_input(form, rows)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(
            uow, catalog.create_product, data, settings_of(request).default_currency
        )
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{outcome.id}", request, f"Product “{outcome.name}” created.")
    errors = dict(outcome.errors)
    if isinstance(outcome.error, Conflict):
        taken = set(outcome.error.extra.get("codes", []))
        for index, row in enumerate(rows):
            if row.code.upper() in taken:
                errors[f"sku-{index}-code"] = CODE_TAKEN
    choices = await uow.run(live_category_choices)
    return _new_product_page(request, choices, typed, errors, outcome.status)


# --- product page ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductDetail:
    product: Product
    category: str
    skus: list[Sku]
    available: dict[int, int]


async def product_detail(
    session: AsyncSession, product_id: int, *, stock: StockFigures
) -> ProductDetail:
    """A live product, the label of its category, its live SKUs and their availability
    (from `stock`)."""
    product = await catalog.get_product(session, product_id)
    choices = await live_category_choices(session)
    found = await catalog.live_skus_with_stock(session, [product.id], stock=stock)
    return ProductDetail(
        product,
        _labels(choices).get(product.category_id, ""),
        found.by_product[product.id],
        found.available,
    )


async def _product_page(
    request: Request,
    uow: UnitOfWork,
    product_id: int,
    *,
    stock: StockFigures,
    sku_errors: dict[str, str] | None = None,
    sku_values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    detail = await uow.run(product_detail, product_id, stock=stock)
    return render(
        request,
        "catalog/product.html",
        {
            "section": PRODUCTS_PATH,
            "product": detail.product,
            "category": detail.category,
            "skus": detail.skus,
            "available": detail.available,
            "errors": sku_errors or {},
            "values": sku_values or {},
            "default_currency": settings_of(request).default_currency,
        },
        status_code=status_code,
    )


@router.get("/products/{product_id}")
async def product_page(
    request: Request,
    product_id: IdPath,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    stock: StockFiguresDep,
) -> Response:
    return await _product_page(request, uow, product_id, stock=stock)


# --- edit and delete a product -----------------------------------------------------------


def _attributes_text(attributes: dict[str, Any]) -> str:
    return orjson.dumps(attributes, option=orjson.OPT_INDENT_2).decode() if attributes else ""


async def product_with_choices(
    session: AsyncSession, product_id: int
) -> tuple[Product, list[CategoryChoice]]:
    """A live product and the choices of its category select."""
    product = await catalog.get_product(session, product_id)
    return product, await live_category_choices(session)


async def _edit_product_page(
    request: Request,
    uow: UnitOfWork,
    product_id: int,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The edit form: with what was typed after a refusal, else (first visit, stale edit)
    the product as it is now, with its current version."""
    product, choices = await uow.run(product_with_choices, product_id)
    values = typed or {
        "name": product.name,
        "category_id": str(product.category_id),
        "description": product.description or "",
        "attributes": _attributes_text(product.attributes),
    }
    return render(
        request,
        "catalog/product_edit.html",
        {
            "section": PRODUCTS_PATH,
            "product": product,
            "choices": choices,
            "values": values,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/products/{product_id}/edit")
async def edit_product_page(
    request: Request, product_id: IdPath, _user: StaffUser, uow: UnitOfWorkDep
) -> Response:
    return await _edit_product_page(request, uow, product_id)


def _product_update(form: FormData, typed: dict[str, str]) -> ProductUpdate:
    """The API's `ProductUpdate` from the edit form, or `FormInvalid` with every message at
    once: a field's own message (name, category, JSON) wins over the model's."""
    errors: dict[str, str] = {}
    try:
        attributes = json_object(form, "attributes")
    except FormInvalid as invalid:
        errors, attributes = invalid.errors, {}
    if not typed["name"]:
        errors["name"] = "Enter the product's name."
    if not typed["category_id"]:
        errors["category_id"] = "Choose a category."
    values = {
        "name": typed["name"],
        "category_id": typed["category_id"] or None,
        "description": typed["description"] or None,
        "attributes": attributes,
        "version": text(form, "version") or None,
    }
    try:
        data = build(ProductUpdate, values)
    except FormInvalid as invalid:
        errors = {**invalid.errors, **errors}
    if errors:
        raise FormInvalid(errors)
    return data


@router.post("/products/{product_id}")
async def update_product(
    request: Request, product_id: IdPath, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    typed = _product_values(form)
    outcome: Product | Refusal
    try:
        data = _product_update(form, typed)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(uow, catalog.update_product, product_id, data)
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{product_id}", request, f"Product “{outcome.name}” saved.")
    stale = isinstance(outcome.error, VersionConflict)
    return await _edit_product_page(
        request,
        uow,
        product_id,
        typed=None if stale else typed,
        errors=outcome.errors,
        status_code=outcome.status,
    )


@router.post("/products/{product_id}/delete")
async def delete_product(
    request: Request,
    product_id: IdPath,
    uow: UnitOfWorkDep,
    stock: StockFiguresDep,
    _form: StaffForm,
) -> Response:
    outcome = await attempt(uow, catalog.delete_product, product_id)
    if isinstance(outcome, Refusal):
        return await _product_page(
            request,
            uow,
            product_id,
            stock=stock,
            sku_errors=outcome.errors,
            status_code=outcome.status,
        )
    return _done(PRODUCTS_PATH, request, "Product and its SKUs deleted.")


# --- SKUs --------------------------------------------------------------------------------


def _sku_create(form: FormData, values: dict[str, str], product_id: int) -> SkuCreate:
    """The API's `SkuCreate` from the add-SKU form, or `FormInvalid` with every message at
    once (the price's under `price`)."""
    errors: dict[str, str] = {}
    try:
        price = money_cents(form, "price", "price")
    except FormInvalid as invalid:
        errors, price = invalid.errors, 0
    if not values["code"]:
        errors["code"] = "Enter the SKU's code."
    data_values = {
        "product_id": product_id,
        "code": values["code"],
        "price_cents": price,
        "currency": values["currency"] or None,
    }
    try:
        data = build(SkuCreate, data_values)
    except FormInvalid as invalid:
        renamed = {("price" if k == "price_cents" else k): m for k, m in invalid.errors.items()}
        errors = {**renamed, **errors}
    if errors:
        raise FormInvalid(errors)
    return data


@router.post("/products/{product_id}/skus")
async def add_sku(
    request: Request,
    product_id: IdPath,
    uow: UnitOfWorkDep,
    stock: StockFiguresDep,
    form: StaffForm,
) -> Response:
    values = {name: text(form, name) for name in ("code", "price", "currency")}
    outcome: Sku | Refusal
    try:
        data = _sku_create(form, values, product_id)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(
            uow, catalog.create_sku, data, settings_of(request).default_currency
        )
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{product_id}", request, f"SKU {outcome.code} added.")
    errors = dict(outcome.errors)
    if isinstance(outcome.error, Conflict) and outcome.error.extra.get("codes"):
        errors["code"] = CODE_TAKEN
    return await _product_page(
        request,
        uow,
        product_id,
        stock=stock,
        sku_errors=errors,
        sku_values=values,
        status_code=outcome.status,
    )


@dataclass(frozen=True)
class SkuDetail:
    sku: Sku
    product: Product
    available: int


async def sku_detail(session: AsyncSession, code: str) -> SkuDetail:
    """A live SKU, its product and its availability."""
    sku = await catalog.get_sku(session, code)
    product = await catalog.get_product(session, sku.product_id)
    available = (await available_by_sku(session, [sku.id]))[sku.id]
    return SkuDetail(sku, product, available)


async def _edit_sku_page(
    request: Request,
    uow: UnitOfWork,
    code: str,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    detail = await uow.run(sku_detail, code)
    sku = detail.sku
    values = typed or {
        "price": amount_text(sku.price_cents),
        "attributes": _attributes_text(sku.attributes),
        "low_stock_threshold": (
            "" if sku.low_stock_threshold is None else str(sku.low_stock_threshold)
        ),
        "max_per_customer": "" if sku.max_per_customer is None else str(sku.max_per_customer),
    }
    return render(
        request,
        "catalog/sku_edit.html",
        {
            "section": PRODUCTS_PATH,
            "sku": sku,
            "product": detail.product,
            "available": detail.available,
            "default_threshold": settings_of(request).low_stock_threshold,
            "values": values,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/skus/{code}/edit")
async def edit_sku_page(
    request: Request, code: SkuCodePath, _user: StaffUser, uow: UnitOfWorkDep
) -> Response:
    return await _edit_sku_page(request, uow, code)


def _sku_update(form: FormData) -> SkuUpdate:
    """The API's `SkuUpdate` from the edit form, or `FormInvalid` with every message at
    once (the price's under `price`)."""
    errors: dict[str, str] = {}
    try:
        price = money_cents(form, "price", "price")
    except FormInvalid as invalid:
        errors, price = invalid.errors, 0
    try:
        attributes = json_object(form, "attributes")
    except FormInvalid as invalid:
        errors, attributes = {**errors, **invalid.errors}, {}
    try:
        # Blank: the SKU follows the default threshold.
        threshold = integer(form, "low_stock_threshold", "threshold", required=False)
    except FormInvalid as invalid:
        errors, threshold = {**errors, **invalid.errors}, None
    try:
        # Blank: no limit.
        most = integer(form, "max_per_customer", "limit", required=False)
    except FormInvalid as invalid:
        errors, most = {**errors, **invalid.errors}, None
    values = {
        "price_cents": price,
        "attributes": attributes,
        "low_stock_threshold": threshold,
        "max_per_customer": most,
        "version": text(form, "version") or None,
    }
    try:
        data = build(SkuUpdate, values)
    except FormInvalid as invalid:
        renamed = {("price" if k == "price_cents" else k): m for k, m in invalid.errors.items()}
        errors = {**renamed, **errors}
    if errors:
        raise FormInvalid(errors)
    return data


@router.post("/skus/{code}")
async def update_sku(
    request: Request, code: SkuCodePath, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    typed = {
        "price": text(form, "price"),
        "attributes": text(form, "attributes"),
        "low_stock_threshold": text(form, "low_stock_threshold"),
        "max_per_customer": text(form, "max_per_customer"),
    }
    outcome: Sku | Refusal
    try:
        data = _sku_update(form)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(uow, catalog.update_sku, code, data)
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{outcome.product_id}", request, f"SKU {outcome.code} saved.")
    stale = isinstance(outcome.error, VersionConflict)
    return await _edit_sku_page(
        request,
        uow,
        code,
        typed=None if stale else typed,
        errors=outcome.errors,
        status_code=outcome.status,
    )


async def delete_live_sku(session: AsyncSession, code: str) -> Sku:
    """`catalog.delete_sku` of a live SKU (NotFound for a deleted one, as `get_sku`),
    returning it for the page's message."""
    sku = await catalog.get_sku(session, code)
    await catalog.delete_sku(session, code)
    return sku


@router.post("/skus/{code}/delete")
async def delete_sku(
    request: Request, code: SkuCodePath, uow: UnitOfWorkDep, _form: StaffForm
) -> Response:
    outcome = await attempt(uow, delete_live_sku, code)
    if isinstance(outcome, Refusal):
        return await _edit_sku_page(
            request, uow, code, errors=outcome.errors, status_code=outcome.status
        )
    return _done(f"{PRODUCTS_PATH}/{outcome.product_id}", request, f"SKU {outcome.code} deleted.")
