"""The storefront's routes under /shop: the catalog, the cart, checkout, orders, the account.

Handlers are thin, like the staff pages': who is asking (`session`), one unit of work that
calls the domain services (the same calls the API makes), a template. Changes are forms
answered with a redirect (POST, redirect, GET), so a reload never repeats one; checkout
also carries an Idempotency-Key in its form, so a double click or a re-sent form places
one order. Nothing here needs JavaScript.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from storekeeper.accounts import service as accounts
from storekeeper.accounts.models import User
from storekeeper.accounts.schemas import AddressCreate, RegisterRequest
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.catalog.service import ProductFilters
from storekeeper.catalog.stock import StockFigures
from storekeeper.db import UnitOfWork, UnitOfWorkDep, WritingUnitOfWorkDep
from storekeeper.errors import (
    IdempotencyKeyReused,
    InsufficientStock,
    NotFound,
    RateLimited,
    StorekeeperError,
    ValidationFailed,
)
from storekeeper.notifications import waitlist
from storekeeper.orders import queries as order_queries
from storekeeper.orders import service as orders
from storekeeper.orders.models import OrderStatus
from storekeeper.pagination import MAX_ID, CursorQuery
from storekeeper.shop import views
from storekeeper.shop.accounts import (
    ShopSignInRefused,
    end_customer_session,
    register_customer,
    sign_in_customer,
)
from storekeeper.shop.routing import ShopRoute, flash_to, see_other
from storekeeper.shop.session import (
    SHOP_COOKIES,
    SHOP_PATH,
    Customer,
    CustomerForm,
    OptionalCustomer,
    VisitorForm,
    is_safe_next,
)
from storekeeper.shop.templating import STATIC_DIR, render
from storekeeper.web.forms import (
    FORM_ERROR,
    FormInvalid,
    build,
    field_errors,
    integer,
    optional_text,
    refusal_errors,
    text,
)
from storekeeper.web.security import clear_cookie, start_session
from storekeeper.web.templating import settings_of

router = APIRouter(prefix=SHOP_PATH, include_in_schema=False, route_class=ShopRoute)

PAGE_SIZE = 24
ORDERS_PAGE_SIZE = 20
CART_PATH = "/shop/cart"
CHECKOUT_PATH = "/shop/checkout"
ORDERS_PATH = "/shop/orders"
ACCOUNT_PATH = "/shop/account"
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "postal_code", "country")
STATIC_FILES = {"shop.css": "text/css"}


def _stock(request: Request) -> StockFigures:
    figures: StockFigures = request.app.state.stock_figures
    return figures


def _currency(request: Request) -> str:
    return settings_of(request).default_currency


@router.get("/static/{name}")
async def shop_static_file(name: str) -> Response:
    """The shop's stylesheet (no scripts: the shop has none)."""
    if name not in STATIC_FILES:
        raise NotFound("There is no such file.")
    return FileResponse(
        STATIC_DIR / name,
        media_type=STATIC_FILES[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


# --- the catalog ---------------------------------------------------------------------------


def _price_cents(raw: str | None, field: str, errors: dict[str, str]) -> int | None:
    """A price typed as `19.99` or `19` in cents, exactly; a message in `errors` if not."""
    value = (raw or "").strip().replace(",", "")
    if not value:
        return None
    units, dot, minor = value.partition(".")
    if (
        len(value) > 12
        or not units.isdecimal()
        or (dot and not (minor.isdecimal() and len(minor) <= 2))
    ):
        errors[field] = "Enter an amount such as 20 or 19.99."
        return None
    return int(units) * 100 + int(minor.ljust(2, "0") if minor else 0)


@router.get("")
async def shop_home(
    request: Request,
    uow: UnitOfWorkDep,
    user: OptionalCustomer,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    min_price: Annotated[str | None, Query(max_length=20)] = None,
    max_price: Annotated[str | None, Query(max_length=20)] = None,
    in_stock: Annotated[str | None, Query(max_length=5)] = None,
    cursor: CursorQuery = None,
) -> Response:
    """The shop's front page: categories, search, filters and a page of products."""
    errors: dict[str, str] = {}
    query = (q or "").strip() or None
    if query is not None and not query.isprintable():
        errors["q"] = "Search for words without control characters."
        query = None
    filters = ProductFilters(
        category_id=category,
        q=query,
        min_price_cents=_price_cents(min_price, "min_price", errors),
        max_price_cents=_price_cents(max_price, "max_price", errors),
        in_stock=True if in_stock else None,
    )
    params = {
        "q": query or "",
        "category": category,
        "min_price": (min_price or "").strip(),
        "max_price": (max_price or "").strip(),
        "in_stock": "1" if in_stock else "",
    }
    front: views.Storefront | None = None
    if not errors:
        try:
            front = await uow.run(
                views.storefront, filters, limit=PAGE_SIZE, cursor=cursor, stock=_stock(request)
            )
        except ValidationFailed as refused:
            shown = refusal_errors(refused)
            errors = {"category" if "category_id" in key else key: v for key, v in shown.items()}
    if front is None:
        front = await uow.run(
            views.storefront, ProductFilters(), limit=1, cursor=None, stock=_stock(request)
        )
        front = views.Storefront(front.categories, views.Page([], None))
    return render(
        request,
        "home.html",
        {
            "section": SHOP_PATH,
            "categories": front.categories,
            "products": front.products.rows,
            "next_cursor": front.products.next_cursor,
            "cursor": cursor,
            "params": params,
            "category": category,
            "errors": errors,
        },
        status_code=422 if errors else 200,
    )


@router.get("/products/{product_id}")
async def shop_product(
    request: Request,
    product_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    uow: UnitOfWorkDep,
    user: OptionalCustomer,
) -> Response:
    """A product with its SKUs, prices, availability and add-to-cart / notify-me forms."""
    page = await uow.run(
        views.product_page,
        product_id,
        user_id=user.id if user is not None else None,
        stock=_stock(request),
    )
    return render(
        request,
        "product.html",
        {"product": page.view.product, "skus": page.view.skus, "waiting": page.waiting},
    )


# --- the cart ------------------------------------------------------------------------------


def _quantity(form: FormData) -> int:
    quantity = integer(form, "quantity", "quantity")
    if quantity is None or not 1 <= quantity <= 1_000_000:
        raise FormInvalid({"quantity": "Choose a quantity of at least 1."})
    return quantity


def _back_to(form: FormData, fallback: str) -> str:
    path = text(form, "next")
    return path if path and is_safe_next(path) else fallback


@router.post("/cart/items")
async def shop_add_to_cart(
    request: Request, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Add to cart: `sku` and `quantity` (a SKU already there has its quantity raised)."""
    back = _back_to(form, SHOP_PATH)
    sku = text(form, "sku")
    try:
        quantity = _quantity(form)
        await uow.run(
            orders.add_cart_item,
            user_id=user.id,
            sku=sku,
            quantity=quantity,
            default_currency=_currency(request),
        )
    except FormInvalid as invalid:
        return flash_to(request, back, next(iter(invalid.errors.values())))
    except StorekeeperError as refused:
        return flash_to(request, back, _refusal_text(refused))
    return flash_to(request, CART_PATH, f"Added {quantity} of {sku} to your cart.")


def _refusal_text(refused: StorekeeperError) -> str:
    if isinstance(refused, ValidationFailed):
        return " ".join(refusal_errors(refused).values())
    return refused.detail


@router.get("/cart")
async def shop_cart(request: Request, uow: WritingUnitOfWorkDep, user: Customer) -> Response:
    """The cart with current prices and availability; change quantities or remove lines."""
    cart = await uow.run(orders.my_cart, user.id, default_currency=_currency(request))
    return render(request, "cart.html", {"section": CART_PATH, "cart": cart})


@router.post("/cart/items/{item_id}")
async def shop_update_cart_item(
    request: Request, item_id: uuid.UUID, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Set a cart line's quantity (0 removes it)."""
    try:
        quantity = integer(form, "quantity", "quantity")
        if quantity is None or not 0 <= quantity <= 1_000_000:
            raise FormInvalid({"quantity": "Choose a quantity of 0 or more."})
        if quantity == 0:
            await uow.run(orders.remove_cart_item, user_id=user.id, item_id=item_id)
            return flash_to(request, CART_PATH, "Removed from your cart.")
        await uow.run(
            orders.update_cart_item,
            user_id=user.id,
            item_id=item_id,
            quantity=quantity,
            default_currency=_currency(request),
        )
    except FormInvalid as invalid:
        return flash_to(request, CART_PATH, next(iter(invalid.errors.values())))
    except ValidationFailed as refused:
        return flash_to(request, CART_PATH, _refusal_text(refused))
    return flash_to(request, CART_PATH, "Quantity updated.")


@router.post("/cart/items/{item_id}/remove")
async def shop_remove_cart_item(
    request: Request, item_id: uuid.UUID, uow: UnitOfWorkDep, user: Customer, _form: CustomerForm
) -> Response:
    """Take a line out of the cart."""
    await uow.run(orders.remove_cart_item, user_id=user.id, item_id=item_id)
    return flash_to(request, CART_PATH, "Removed from your cart.")


# --- checkout ------------------------------------------------------------------------------


async def _checkout_page(
    request: Request,
    uow: UnitOfWork,
    user: User,
    *,
    chosen: int | None = None,
    errors: dict[str, str] | None = None,
    address: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    page = await uow.run(views.checkout_page, user.id, default_currency=_currency(request))
    if chosen is None and page.addresses:
        chosen = page.addresses[-1].id
    return render(
        request,
        "checkout.html",
        {
            "section": CART_PATH,
            "cart": page.cart,
            "addresses": page.addresses,
            "chosen": chosen,
            # A fresh key per rendered form: re-sending this form replays its one order.
            "idempotency_key": str(uuid.uuid4()),
            "errors": errors or {},
            "address": address or {},
            "address_lines": views.address_lines,
        },
        status_code=status_code,
    )


@router.get("/checkout")
async def shop_checkout_page(
    request: Request,
    uow: WritingUnitOfWorkDep,
    user: Customer,
    address: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """The order to place: the cart, a saved address or a new one, and "Place order"."""
    return await _checkout_page(request, uow, user, chosen=address)


@router.post("/checkout")
async def shop_place_order(
    request: Request, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Place order: the cart becomes an order (`orders.checkout`, as
    `POST /carts/me/checkout`) under the form's Idempotency-Key."""
    key = text(form, "idempotency_key")
    address_id = _id_or_none(text(form, "shipping_address_id"))
    if not key or len(key) > 128 or not key.isprintable():
        return await _checkout_page(
            request,
            uow,
            user,
            errors={FORM_ERROR: "This form is missing its order key: reload the page."},
            status_code=422,
        )
    if address_id is None:
        return await _checkout_page(
            request,
            uow,
            user,
            errors={"shipping_address_id": "Choose the address to ship to."},
            status_code=422,
        )
    try:
        view = await uow.run(
            orders.checkout,
            user=user,
            shipping_address_id=address_id,
            idempotency_key=key,
            policy=settings_of(request).stock_policy,
        )
    except InsufficientStock as short:
        cart = await uow.run(orders.my_cart, user.id, default_currency=_currency(request))
        names = {line.sku: line.product_name for line in cart.lines}
        return render(
            request,
            "short.html",
            {"section": CART_PATH, "shortages": short.shortages, "names": names},
            status_code=409,
        )
    except IdempotencyKeyReused:
        return await _checkout_page(
            request,
            uow,
            user,
            chosen=address_id,
            errors={
                FORM_ERROR: "Your cart changed after this checkout page was opened. "
                "Check the order below and place it again."
            },
            status_code=409,
        )
    except ValidationFailed as refused:
        if any(list(e.get("loc", ())) == ["cart"] for e in refused.extra.get("errors", [])):
            return flash_to(request, CART_PATH, "Your cart is empty.")
        return await _checkout_page(
            request, uow, user, chosen=address_id, errors=refusal_errors(refused), status_code=422
        )
    except StorekeeperError as refused:
        return await _checkout_page(
            request,
            uow,
            user,
            chosen=address_id,
            errors={FORM_ERROR: refused.detail},
            status_code=refused.status_code,
        )
    message = "Thank you: your order is placed." if view.created else "Your order is placed."
    return flash_to(request, f"{ORDERS_PATH}/{view.order.id}", message)


def _id_or_none(raw: str) -> int | None:
    """A whole number posted by a hidden field or a radio button, or None."""
    return int(raw) if raw.isdecimal() and len(raw) <= 18 and 1 <= int(raw) <= MAX_ID else None


def _address_form(form: FormData) -> AddressCreate:
    values = {field: optional_text(form, field) for field in ADDRESS_FIELDS}
    return build(AddressCreate, {k: v for k, v in values.items() if v is not None})


@router.post("/checkout/address")
async def shop_checkout_address(
    request: Request, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Save a new address and come back to checkout with it chosen."""
    try:
        address = await uow.run(accounts.create_address, user.id, _address_form(form))
    except FormInvalid as invalid:
        typed = {field: text(form, field) for field in ADDRESS_FIELDS}
        return await _checkout_page(
            request, uow, user, errors=invalid.errors, address=typed, status_code=422
        )
    return see_other(f"{CHECKOUT_PATH}?address={address.id}")


# --- orders --------------------------------------------------------------------------------


@router.get("/orders")
async def shop_orders(
    request: Request, uow: UnitOfWorkDep, user: Customer, cursor: CursorQuery = None
) -> Response:
    """My orders, newest first."""
    page = await uow.run(orders.list_orders, viewer=user, limit=ORDERS_PAGE_SIZE, cursor=cursor)
    return render(
        request,
        "orders.html",
        {"section": ORDERS_PATH, "orders": page.items, "next_cursor": page.next_cursor},
    )


@router.get("/orders/{order_id}")
async def shop_order(
    request: Request, order_id: uuid.UUID, uow: UnitOfWorkDep, user: Customer
) -> Response:
    """One of my orders with its status history; another customer's is a 404."""
    detail = await uow.run(order_queries.order_with_history, order_id, viewer=user)
    can_cancel = OrderStatus.CANCELLED in orders.allowed_transitions(detail.view.status)
    return render(
        request,
        "order.html",
        {
            "section": ORDERS_PATH,
            "order": detail.view.order,
            "lines": detail.view.lines,
            "history": detail.history,
            "can_cancel": can_cancel,
            "address_lines": views.address_lines,
        },
    )


@router.post("/orders/{order_id}/cancel")
async def shop_cancel_order(
    request: Request, order_id: uuid.UUID, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Cancel my order while its status allows (the stock becomes available again)."""
    version = _id_or_none(text(form, "version"))
    try:
        await uow.run(
            orders.change_order_status,
            order_id,
            status=OrderStatus.CANCELLED,
            version=version,
            actor=user,
        )
    except NotFound:
        raise
    except StorekeeperError as refused:
        return flash_to(request, f"{ORDERS_PATH}/{order_id}", refused.detail)
    return flash_to(request, f"{ORDERS_PATH}/{order_id}", "Your order is cancelled.")


# --- the account: addresses and waitlist ---------------------------------------------------


@router.get("/account")
async def shop_account(request: Request, uow: UnitOfWorkDep, user: Customer) -> Response:
    """My details, my addresses and the SKUs I am waiting for."""
    page = await uow.run(views.account_page, user.id)
    return render(
        request,
        "account.html",
        {
            "section": ACCOUNT_PATH,
            "addresses": page.addresses,
            "waitlist": page.waitlist,
            "errors": {},
            "address": {},
            "address_lines": views.address_lines,
        },
    )


@router.post("/account/addresses")
async def shop_add_address(
    request: Request, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Save a new address."""
    try:
        await uow.run(accounts.create_address, user.id, _address_form(form))
    except FormInvalid as invalid:
        page = await uow.run(views.account_page, user.id)
        return render(
            request,
            "account.html",
            {
                "section": ACCOUNT_PATH,
                "addresses": page.addresses,
                "waitlist": page.waitlist,
                "errors": invalid.errors,
                "address": {field: text(form, field) for field in ADDRESS_FIELDS},
                "address_lines": views.address_lines,
            },
            status_code=422,
        )
    return flash_to(request, ACCOUNT_PATH, "Address saved.")


@router.post("/account/addresses/{address_id}/delete")
async def shop_delete_address(
    request: Request,
    address_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    uow: UnitOfWorkDep,
    user: Customer,
    _form: CustomerForm,
) -> Response:
    """Remove one of my addresses (orders keep the copy they were shipped to)."""
    await uow.run(accounts.delete_address, user.id, address_id)
    return flash_to(request, ACCOUNT_PATH, "Address removed.")


@router.post("/waitlist")
async def shop_join_waitlist(
    request: Request, uow: UnitOfWorkDep, user: Customer, form: CustomerForm
) -> Response:
    """Notify me: wait for a sold-out SKU to be back in stock (one email when it is)."""
    sku = text(form, "sku")
    back = _back_to(form, ACCOUNT_PATH)
    try:
        await uow.run(waitlist.join_waitlist, user.id, sku)
    except StorekeeperError as refused:
        return flash_to(request, back, _refusal_text(refused))
    return flash_to(request, back, f"We will email you when {sku} is back in stock.")


@router.post("/waitlist/{code}/leave")
async def shop_leave_waitlist(
    request: Request, code: str, uow: UnitOfWorkDep, user: Customer, _form: CustomerForm
) -> Response:
    """Stop waiting for a SKU."""
    await uow.run(waitlist.leave_waitlist, user.id, code)
    return flash_to(request, ACCOUNT_PATH, f"You are no longer waiting for {code}.")


# --- register, sign in, sign out -----------------------------------------------------------


def _signed_in_response(request: Request, next_path: str, user_id: int, sid: uuid.UUID) -> Response:
    response = see_other(next_path if is_safe_next(next_path) else SHOP_PATH)
    start_session(response, settings_of(request), user_id, sid, SHOP_COOKIES)
    return response


@router.get("/register")
async def shop_register_page(request: Request, next: str = SHOP_PATH) -> Response:
    """The registration form: `email`, `password`, `full_name`."""
    return render(
        request, "register.html", {"next": next, "email": "", "full_name": "", "errors": {}}
    )


@router.post("/register")
async def shop_register(request: Request, uow: UnitOfWorkDep, form: VisitorForm) -> Response:
    """Create a customer account (the API's registration rules) and sign it in."""
    email, full_name = text(form, "email"), text(form, "full_name")
    next_path = text(form, "next") or SHOP_PATH
    errors: dict[str, str] = {}
    status = 422
    try:
        body = build(
            RegisterRequest,
            {
                "email": email,
                "password": form.get("password") or "",
                "full_name": full_name or None,
            },
        )
        signed_in = await uow.run(
            register_customer,
            email=body.email,
            password=body.password,
            full_name=body.full_name,
        )
    except FormInvalid as invalid:
        errors = invalid.errors
    except ValidationFailed as refused:
        errors = field_errors(refused.extra.get("errors", [])) or {FORM_ERROR: refused.detail}
    except StorekeeperError as refused:
        errors, status = {"email": refused.detail}, refused.status_code
    if errors:
        context = {"next": next_path, "email": email, "full_name": full_name, "errors": errors}
        return render(request, "register.html", context, status_code=status)
    return _signed_in_response(request, next_path, signed_in.user.id, signed_in.sign_in_id)


@router.get("/sign-in")
async def shop_sign_in_page(request: Request, next: str = SHOP_PATH) -> Response:
    """The sign-in form: `email` and `password`."""
    return render(request, "sign_in.html", {"next": next, "email": "", "errors": {}})


@router.post("/sign-in")
async def shop_sign_in(request: Request, uow: UnitOfWorkDep, form: VisitorForm) -> Response:
    """Sign a customer in; staff are sent to /admin."""
    email = text(form, "email")
    password = str(form.get("password") or "")
    next_path = text(form, "next") or SHOP_PATH
    errors: dict[str, str] = {}
    status = 400
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if not errors:
        throttle: LoginThrottle = request.app.state.login_throttle
        try:
            signed_in = await uow.run(
                sign_in_customer,
                throttle,
                client_address=request.client.host if request.client else "unknown",
                email=email,
                password=password,
            )
        except ShopSignInRefused as refused:
            errors[FORM_ERROR] = refused.message
        except RateLimited as limited:
            errors[FORM_ERROR] = f"{limited.detail} Wait {limited.retry_after} s."
            status = 429
    if errors:
        context = {"next": next_path, "email": email, "errors": errors}
        return render(request, "sign_in.html", context, status_code=status)
    return _signed_in_response(request, next_path, signed_in.user.id, signed_in.sign_in_id)


@router.post("/sign-out")
async def shop_sign_out(
    request: Request, uow: UnitOfWorkDep, _user: Customer, _form: CustomerForm
) -> Response:
    """Sign out: the session ends for every copy of its cookie."""
    await uow.run(end_customer_session, request.state.web_session)
    response = flash_to(request, SHOP_PATH, "You are signed out.")
    clear_cookie(response, settings_of(request), SHOP_COOKIES.session, SHOP_COOKIES.path)
    return response
