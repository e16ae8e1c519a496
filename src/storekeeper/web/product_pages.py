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

from storekeeper.catalog import service as catalog
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
from storekeeper.db import Database, DatabaseDep
from storekeeper.errors import Conflict, ValidationFailed, VersionConflict
from storekeeper.inventory.queries import available_by_sku
from storekeeper.pagination import CursorQuery
from storekeeper.web.catalog_pages import CategoryChoice, all_categories, category_choices
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FormInvalid,
    Refusal,
    amount_text,
    attempt,
    build,
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


async def _choices(session: AsyncSession) -> list[CategoryChoice]:
    return category_choices(await all_categories(session, include_deleted=False))


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


@router.get("/products")
async def products_page(
    request: Request,
    _user: StaffUser,
    db: DatabaseDep,
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
    rows: list[ProductRow] = []
    next_cursor = None
    async with db.transaction(write=False) as session:
        choices = await _choices(session)
        if not errors:
            filters = catalog.ProductFilters(category_id=chosen, q=search or None)
            try:
                page = await catalog.list_products(
                    session, filters, include_deleted=False, limit=PAGE_SIZE, cursor=cursor
                )
            except ValidationFailed as refused:
                errors = refusal_errors(refused)
            else:
                next_cursor = page.next_cursor
                products: list[Product] = page.rows
                stock = await catalog.live_skus_with_stock(session, [p.id for p in products])
                labels = _labels(choices)
                for product in products:
                    skus = stock.by_product[product.id]
                    rows.append(
                        ProductRow(
                            product,
                            labels.get(product.category_id, ""),
                            skus,
                            sum(stock.available.get(sku.id, 0) for sku in skus),
                        )
                    )
    return render(
        request,
        "catalog/products.html",
        {
            "section": PRODUCTS_PATH,
            "rows": rows,
            "q": search,
            "category_id": chosen,
            "choices": choices,
            "cursor": cursor,
            "next_cursor": next_cursor,
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
    db: DatabaseDep,
    category_id: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    async with db.transaction(write=False) as session:
        choices = await _choices(session)
    chosen = _category_id(category_id or "")
    form = ProductForm(
        {"category_id": str(chosen) if chosen else ""},
        [SkuRow() for _ in range(NEW_SKU_ROWS)],
    )
    return _new_product_page(request, choices, form)


@router.post("/products")
async def create_product(request: Request, db: DatabaseDep, form: StaffForm) -> Response:
    rows = _read_rows(form)
    typed = ProductForm(_product_values(form), rows)
    if text(form, "action") == "add-row":
        # Never creates the product: at the row limit the form comes back as it was.
        async with db.transaction(write=False) as session:
            choices = await _choices(session)
        if len(rows) < MAX_SKU_ROWS:
            typed.rows.append(SkuRow())
        return _new_product_page(request, choices, typed)
    default_currency = settings_of(request).default_currency

    async def work(session: AsyncSession) -> Product:
        data = _product_input(form, rows)
        return await catalog.create_product(session, data, default_currency)

    outcome = await attempt(db, work)
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{outcome.id}", request, f"Product “{outcome.name}” created.")
    errors = dict(outcome.errors)
    if isinstance(outcome.error, Conflict):
        taken = set(outcome.error.extra.get("codes", []))
        for index, row in enumerate(rows):
            if row.code.upper() in taken:
                errors[f"sku-{index}-code"] = CODE_TAKEN
    async with db.transaction(write=False) as session:
        choices = await _choices(session)
    return _new_product_page(request, choices, typed, errors, outcome.status)


# --- product page ------------------------------------------------------------------------


async def _product_page(
    request: Request,
    db: Database,
    product_id: int,
    *,
    sku_errors: dict[str, str] | None = None,
    sku_values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    async with db.transaction(write=False) as session:
        product = await catalog.get_product(session, product_id)
        choices = await _choices(session)
        stock = await catalog.live_skus_with_stock(session, [product.id])
    return render(
        request,
        "catalog/product.html",
        {
            "section": PRODUCTS_PATH,
            "product": product,
            "category": _labels(choices).get(product.category_id, ""),
            "skus": stock.by_product[product.id],
            "available": stock.available,
            "errors": sku_errors or {},
            "values": sku_values or {},
            "default_currency": settings_of(request).default_currency,
        },
        status_code=status_code,
    )


@router.get("/products/{product_id}")
async def product_page(
    request: Request, product_id: IdPath, _user: StaffUser, db: DatabaseDep
) -> Response:
    return await _product_page(request, db, product_id)


# --- edit and delete a product -----------------------------------------------------------


def _attributes_text(attributes: dict[str, Any]) -> str:
    return orjson.dumps(attributes, option=orjson.OPT_INDENT_2).decode() if attributes else ""


async def _edit_product_page(
    request: Request,
    db: Database,
    product_id: int,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The edit form: with what was typed after a refusal, else (first visit, stale edit)
    the product as it is now, with its current version."""
    async with db.transaction(write=False) as session:
        product = await catalog.get_product(session, product_id)
        choices = await _choices(session)
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
    request: Request, product_id: IdPath, _user: StaffUser, db: DatabaseDep
) -> Response:
    return await _edit_product_page(request, db, product_id)


@router.post("/products/{product_id}")
async def update_product(
    request: Request, product_id: IdPath, db: DatabaseDep, form: StaffForm
) -> Response:
    typed = _product_values(form)

    async def work(session: AsyncSession) -> Product:
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
        return await catalog.update_product(session, product_id, data)

    outcome = await attempt(db, work)
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{product_id}", request, f"Product “{outcome.name}” saved.")
    stale = isinstance(outcome.error, VersionConflict)
    return await _edit_product_page(
        request,
        db,
        product_id,
        typed=None if stale else typed,
        errors=outcome.errors,
        status_code=outcome.status,
    )


@router.post("/products/{product_id}/delete")
async def delete_product(
    request: Request, product_id: IdPath, db: DatabaseDep, _form: StaffForm
) -> Response:
    async def work(session: AsyncSession) -> None:
        await catalog.delete_product(session, product_id)

    outcome = await attempt(db, work)
    if isinstance(outcome, Refusal):
        return await _product_page(
            request, db, product_id, sku_errors=outcome.errors, status_code=outcome.status
        )
    return _done(PRODUCTS_PATH, request, "Product and its SKUs deleted.")


# --- SKUs --------------------------------------------------------------------------------


@router.post("/products/{product_id}/skus")
async def add_sku(
    request: Request, product_id: IdPath, db: DatabaseDep, form: StaffForm
) -> Response:
    values = {name: text(form, name) for name in ("code", "price", "currency")}
    default_currency = settings_of(request).default_currency

    async def work(session: AsyncSession) -> Sku:
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
        return await catalog.create_sku(session, data, default_currency)

    outcome = await attempt(db, work)
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{product_id}", request, f"SKU {outcome.code} added.")
    errors = dict(outcome.errors)
    if isinstance(outcome.error, Conflict) and outcome.error.extra.get("codes"):
        errors["code"] = CODE_TAKEN
    return await _product_page(
        request,
        db,
        product_id,
        sku_errors=errors,
        sku_values=values,
        status_code=outcome.status,
    )


async def _edit_sku_page(
    request: Request,
    db: Database,
    code: str,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    async with db.transaction(write=False) as session:
        sku = await catalog.get_sku(session, code)
        product = await catalog.get_product(session, sku.product_id)
        available = (await available_by_sku(session, [sku.id]))[sku.id]
    values = typed or {
        "price": amount_text(sku.price_cents),
        "attributes": _attributes_text(sku.attributes),
    }
    return render(
        request,
        "catalog/sku_edit.html",
        {
            "section": PRODUCTS_PATH,
            "sku": sku,
            "product": product,
            "available": available,
            "values": values,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/skus/{code}/edit")
async def edit_sku_page(
    request: Request, code: SkuCodePath, _user: StaffUser, db: DatabaseDep
) -> Response:
    return await _edit_sku_page(request, db, code)


@router.post("/skus/{code}")
async def update_sku(
    request: Request, code: SkuCodePath, db: DatabaseDep, form: StaffForm
) -> Response:
    typed = {"price": text(form, "price"), "attributes": text(form, "attributes")}

    async def work(session: AsyncSession) -> Sku:
        errors: dict[str, str] = {}
        try:
            price = money_cents(form, "price", "price")
        except FormInvalid as invalid:
            errors, price = invalid.errors, 0
        try:
            attributes = json_object(form, "attributes")
        except FormInvalid as invalid:
            errors, attributes = {**errors, **invalid.errors}, {}
        values = {
            "price_cents": price,
            "attributes": attributes,
            "version": text(form, "version") or None,
        }
        try:
            data = build(SkuUpdate, values)
        except FormInvalid as invalid:
            renamed = {("price" if k == "price_cents" else k): m for k, m in invalid.errors.items()}
            errors = {**renamed, **errors}
        if errors:
            raise FormInvalid(errors)
        return await catalog.update_sku(session, code, data)

    outcome = await attempt(db, work)
    if not isinstance(outcome, Refusal):
        return _done(f"{PRODUCTS_PATH}/{outcome.product_id}", request, f"SKU {outcome.code} saved.")
    stale = isinstance(outcome.error, VersionConflict)
    return await _edit_sku_page(
        request,
        db,
        code,
        typed=None if stale else typed,
        errors=outcome.errors,
        status_code=outcome.status,
    )


@router.post("/skus/{code}/delete")
async def delete_sku(
    request: Request, code: SkuCodePath, db: DatabaseDep, _form: StaffForm
) -> Response:
    async def work(session: AsyncSession) -> Sku:
        sku = await catalog.get_sku(session, code)
        await catalog.delete_sku(session, code)
        return sku

    outcome = await attempt(db, work)
    if isinstance(outcome, Refusal):
        return await _edit_sku_page(
            request, db, code, errors=outcome.errors, status_code=outcome.status
        )
    return _done(f"{PRODUCTS_PATH}/{outcome.product_id}", request, f"SKU {outcome.code} deleted.")
