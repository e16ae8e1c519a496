"""Carts, checkout and orders: the rules of the orders domain.

Every stock effect goes through the inventory service: an order owns one allocation
(`allocate_stock`), shipping fulfils it and cancelling cancels it, so the ledger and the
consistency report cover orders too. Functions flush, never commit: the caller's unit of
work makes a checkout or an order all-or-nothing.

Idempotency: an order placed with an `Idempotency-Key` stores the key (unique per caller)
and a fingerprint of the request. Its allocation's client token is derived from the same
key, so of two concurrent requests with one key the database lets one allocate and create
the order; the other waits on the unique index, takes nothing and answers with that order.

Carts are locked (an upsert that touches the cart row) by every change and by checkout, so
one customer's concurrent checkouts and edits of one cart run one after the other.

Events (`orders.events`): a new order writes `order.created` and a status change
`order.paid`, `order.shipped` or `order.cancelled`, in the same unit of work, with the order
as the API shows it. A replayed order and a change to the status the order already has
write none; a refused one rolls back with its unit, event and all.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts import service as accounts
from storekeeper.accounts.models import User
from storekeeper.accounts.policy import is_staff
from storekeeper.catalog.models import Product, Sku
from storekeeper.config import StockPolicy
from storekeeper.db import Database, UnitOfWork, after_commit, dialect_insert, utcnow
from storekeeper.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    VersionConflict,
)
from storekeeper.idempotency import fingerprint
from storekeeper.inventory import service as inventory
from storekeeper.inventory.lines import (
    MAX_LINES,
    MAX_QUANTITY,
    ResolvedLine,
    check_quantity,
    check_shape,
)
from storekeeper.inventory.queries import available_by_sku
from storekeeper.inventory.service import DEFAULT_POLICY
from storekeeper.orders import events, purchases
from storekeeper.orders.metrics import ORDER_STATUS_CHANGES, ORDERS_CREATED
from storekeeper.orders.models import Cart, CartItem, Order, OrderLine, OrderStatus
from storekeeper.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_time_id_cursor,
    newest_first,
    page_of,
)

log = structlog.get_logger("storekeeper.orders")

# Marks an order's allocation so only the orders domain fulfils or cancels it.
ALLOCATION_MANAGER = "order"
# The largest total a BIGINT column holds; 100 lines at the price and quantity limits could
# exceed it, and such an order is refused rather than failing in the database.
MAX_TOTAL_CENTS = 2**63 - 1

cart_items = cast(Table, CartItem.__table__)

TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    OrderStatus.PENDING: (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.CANCELLED),
    OrderStatus.PAID: (OrderStatus.SHIPPED, OrderStatus.CANCELLED),
    OrderStatus.SHIPPED: (),
    OrderStatus.CANCELLED: (),
}


def allowed_transitions(status: OrderStatus | str) -> list[OrderStatus]:
    """The statuses an order in `status` may move to (empty for the final ones)."""
    return list(TRANSITIONS[OrderStatus(status)])


# --- views -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CartLine:
    """One cart item with its SKU's current price, product name and availability."""

    id: uuid.UUID
    sku_id: int
    sku: str
    product_name: str
    quantity: int
    unit_price_cents: int
    currency: str
    available: int
    is_deleted: bool
    # The SKU's `max_per_customer` (None: no limit).
    max_per_customer: int | None = None

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


@dataclass(frozen=True)
class CartView:
    cart: Cart
    lines: list[CartLine]
    currency: str

    @property
    def total_cents(self) -> int:
        return sum(line.line_total_cents for line in self.lines)


@dataclass(frozen=True)
class OrderView:
    """An order with its lines; `created` is False when an idempotent request replayed it."""

    order: Order
    lines: list[OrderLine]
    created: bool = False

    @property
    def status(self) -> OrderStatus:
        return OrderStatus(self.order.status)


@dataclass(frozen=True)
class OrderPage:
    items: list[OrderView]
    next_cursor: str | None


@dataclass(frozen=True)
class _PricedLine:
    """A line about to be ordered: the SKU with its price and product name right now."""

    sku_id: int
    sku: str
    product_name: str
    quantity: int
    unit_price_cents: int
    currency: str
    # The SKU's `max_per_customer`, read with the price (None: no limit).
    max_per_customer: int | None = None


# --- carts -------------------------------------------------------------------------------


async def find_cart(session: AsyncSession, user_id: int) -> Cart | None:
    return (await session.scalars(select(Cart).where(Cart.user_id == user_id))).one_or_none()


async def get_or_create_cart(session: AsyncSession, user_id: int) -> Cart:
    """The user's cart, created on first use (concurrent first uses create one)."""
    now = utcnow()
    await session.execute(
        dialect_insert(session, Cart)
        .values(id=uuid.uuid4(), user_id=user_id, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    cart = await find_cart(session, user_id)
    assert cart is not None
    return cart


async def _locked_cart(session: AsyncSession, user_id: int) -> Cart:
    """The user's cart, created if needed and touched: the row stays locked until the unit
    of work ends, so changes to one cart (and its checkout) queue behind each other."""
    now = utcnow()
    upsert = (
        dialect_insert(session, Cart)
        .values(id=uuid.uuid4(), user_id=user_id, created_at=now, updated_at=now)
        .on_conflict_do_update(index_elements=["user_id"], set_={"updated_at": now})
        .returning(Cart)
        .execution_options(populate_existing=True)
    )
    cart: Cart = (await session.scalars(upsert)).one()
    return cart


async def _cart_lines(
    session: AsyncSession, cart_id: uuid.UUID, *, with_available: bool = True
) -> list[CartLine]:
    rows = (
        await session.execute(
            select(
                CartItem.id,
                Sku.id,
                Sku.code,
                Product.name,
                CartItem.quantity,
                Sku.price_cents,
                Sku.currency,
                Sku.is_deleted,
                Sku.max_per_customer,
            )
            .join(Sku, Sku.id == CartItem.sku_id)
            .join(Product, Product.id == Sku.product_id)
            .where(CartItem.cart_id == cart_id)
            .order_by(CartItem.created_at, CartItem.id)
        )
    ).all()
    available = await available_by_sku(session, [row[1] for row in rows]) if with_available else {}
    return [
        CartLine(
            id=item_id,
            sku_id=sku_id,
            sku=code,
            product_name=name,
            quantity=quantity,
            unit_price_cents=price,
            currency=currency,
            available=available.get(sku_id, 0),
            is_deleted=deleted,
            max_per_customer=limit,
        )
        for item_id, sku_id, code, name, quantity, price, currency, deleted, limit in rows
    ]


async def cart_view(session: AsyncSession, cart: Cart, *, default_currency: str) -> CartView:
    """The cart with current prices and availability (three statements)."""
    lines = await _cart_lines(session, cart.id)
    currency = lines[0].currency if lines else default_currency
    return CartView(cart, lines, currency)


async def my_cart(session: AsyncSession, user_id: int, *, default_currency: str) -> CartView:
    """The user's cart as `cart_view` shows it, created on first use."""
    cart = await find_cart(session, user_id) or await get_or_create_cart(session, user_id)
    return await cart_view(session, cart, default_currency=default_currency)


async def add_cart_item(
    session: AsyncSession, *, user_id: int, sku: str, quantity: int, default_currency: str
) -> CartView:
    """Put `quantity` of a live SKU in the cart; a SKU already there gets its line raised.
    Answers with the whole cart."""
    check_quantity(quantity, ["body", "quantity"])
    cart = await _locked_cart(session, user_id)
    code = sku.upper()
    found = (
        await session.execute(select(Sku.id, Sku.currency, Sku.is_deleted).where(Sku.code == code))
    ).one_or_none()
    if found is None or found.is_deleted:
        state = "deleted" if found is not None else "unknown"
        raise ValidationFailed.field(["body", "sku"], f"{state} SKU {code!r}")
    present = (
        await session.execute(
            select(CartItem.sku_id, Sku.currency)
            .join(Sku, Sku.id == CartItem.sku_id)
            .where(CartItem.cart_id == cart.id)
        )
    ).all()
    if found.id not in {row.sku_id for row in present} and len(present) >= MAX_LINES:
        raise ValidationFailed.field(["body", "sku"], f"a cart holds at most {MAX_LINES} lines")
    currencies = {row.currency for row in present}
    if currencies and found.currency not in currencies:
        raise ValidationFailed.field(
            ["body", "sku"],
            f"SKU {code!r} is priced in {found.currency}; the cart is in {currencies.pop()}",
        )
    now = utcnow()
    insert = dialect_insert(session, CartItem).values(
        id=uuid.uuid4(),
        cart_id=cart.id,
        sku_id=found.id,
        quantity=quantity,
        created_at=now,
        updated_at=now,
    )
    raised = cart_items.c.quantity + insert.excluded.quantity
    upsert = insert.on_conflict_do_update(
        index_elements=["cart_id", "sku_id"],
        set_={"quantity": raised, "updated_at": now},
        where=raised <= MAX_QUANTITY,
    ).returning(cart_items.c.id)
    if (await session.execute(upsert)).one_or_none() is None:
        raise ValidationFailed.field(
            ["body", "quantity"], f"the line would exceed {MAX_QUANTITY} units"
        )
    return await cart_view(session, cart, default_currency=default_currency)


async def update_cart_item(
    session: AsyncSession,
    *,
    user_id: int,
    item_id: uuid.UUID,
    quantity: int,
    default_currency: str,
) -> CartView:
    """Set a line's quantity; another user's item is indistinguishable from a missing one.
    Answers with the whole cart."""
    check_quantity(quantity, ["body", "quantity"])
    cart = await _locked_cart(session, user_id)
    changed = await session.execute(
        update(CartItem)
        .where(CartItem.id == item_id, CartItem.cart_id == cart.id)
        .values(quantity=quantity, updated_at=utcnow())
        .returning(CartItem.id)
        .execution_options(synchronize_session=False)
    )
    if changed.one_or_none() is None:
        raise NotFound("No such cart item.")
    return await cart_view(session, cart, default_currency=default_currency)


async def remove_cart_item(session: AsyncSession, *, user_id: int, item_id: uuid.UUID) -> None:
    cart = await _locked_cart(session, user_id)
    removed = await session.execute(
        delete(CartItem)
        .where(CartItem.id == item_id, CartItem.cart_id == cart.id)
        .returning(CartItem.id)
        .execution_options(synchronize_session=False)
    )
    if removed.one_or_none() is None:
        raise NotFound("No such cart item.")


# --- placing orders ----------------------------------------------------------------------


def _request_fingerprint(
    kind: str, user_id: int, items: Iterable[tuple[str, int]], shipping_address_id: int | None
) -> str:
    """Same order request, same fingerprint: the order of the lines does not matter."""
    lines = sorted([code.upper(), quantity] for code, quantity in items)
    return fingerprint(
        {
            "kind": kind,
            "user_id": user_id,
            "items": lines,
            "shipping_address_id": shipping_address_id,
        }
    )


def _allocation_token(created_by: int, idempotency_key: str) -> str:
    """The allocation's client token for an idempotent order: one per (caller, key), and
    never equal to a token of an order placed without a key."""
    digest = hashlib.sha256(f"{created_by}:{idempotency_key}".encode()).hexdigest()
    return f"order-key:{digest}"


def _key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "This Idempotency-Key was already used for a different request; use a new key."
    )


async def _order_by_key(session: AsyncSession, created_by: int, key: str) -> Order | None:
    return (
        await session.scalars(
            select(Order).where(Order.created_by == created_by, Order.idempotency_key == key)
        )
    ).one_or_none()


async def _order_owner(session: AsyncSession, actor: User, user_id: int | None) -> int:
    """Whose order it is: the caller's own, or (staff only) an active user's."""
    if user_id is None or user_id == actor.id:
        return actor.id
    if not is_staff(actor):
        raise Forbidden("Customers place orders for themselves only.")
    owner = await session.get(User, user_id)
    if owner is None or not owner.is_active:
        raise ValidationFailed.field(["body", "user_id"], f"no active user with id {user_id}")
    return owner.id


async def _shipping_address(
    session: AsyncSession, user_id: int, address_id: int | None
) -> dict[str, Any] | None:
    """A copy of one of the order owner's addresses. Someone else's address id is refused
    like an unknown one (422), so an id reveals nothing about other users."""
    if address_id is None:
        return None
    try:
        address = await accounts.get_own_address(session, user_id, address_id)
    except NotFound:
        raise ValidationFailed.field(
            ["body", "shipping_address_id"], f"no address with id {address_id}"
        ) from None
    return {
        "name": address.name,
        "line1": address.line1,
        "line2": address.line2,
        "city": address.city,
        "postal_code": address.postal_code,
        "country": address.country,
    }


async def _priced_lines(
    session: AsyncSession, items: Sequence[tuple[str, int]]
) -> list[_PricedLine]:
    """Validate explicit `(sku code, quantity)` lines and price them, in request order."""
    codes = [code.upper() for code, _ in items]
    check_shape(len(items), [quantity for _, quantity in items], codes, loc=["body"], per="order")
    rows = await session.execute(
        select(
            Sku.id,
            Sku.code,
            Sku.price_cents,
            Sku.currency,
            Sku.is_deleted,
            Sku.max_per_customer,
            Product.name,
        )
        .join(Product, Product.id == Sku.product_id)
        .where(Sku.code.in_(codes))
    )
    found = {row.code: row for row in rows}
    lines = []
    for index, (code, (_, quantity)) in enumerate(zip(codes, items, strict=True)):
        sku = found.get(code)
        if sku is None or sku.is_deleted:
            state = "deleted" if sku is not None else "unknown"
            raise ValidationFailed.field(["body", "items", index, "sku"], f"{state} SKU {code!r}")
        lines.append(
            _PricedLine(
                sku.id,
                sku.code,
                sku.name,
                quantity,
                sku.price_cents,
                sku.currency,
                sku.max_per_customer,
            )
        )
    return lines


async def _create_order(
    session: AsyncSession,
    *,
    source: str,
    user_id: int,
    actor: User,
    lines: Sequence[_PricedLine],
    shipping_address: dict[str, Any] | None,
    idempotency_key: str | None,
    request_fingerprint: str,
    policy: StockPolicy,
) -> OrderView:
    """Allocate every line (all or none) and write the order with its price snapshot."""
    currencies = sorted({line.currency for line in lines})
    if len(currencies) > 1:
        raise ValidationFailed.field(
            ["body", "items"], f"one order is in one currency, not {', '.join(currencies)}"
        )
    total_cents = sum(line.unit_price_cents * line.quantity for line in lines)
    if total_cents > MAX_TOTAL_CENTS:
        raise ValidationFailed.field(["body", "items"], "the order total is too large")
    # Purchase limits first: their counter rows are locked before the stock levels (the hot
    # rows, locked last). Orders of SKUs without a limit touch no row.
    counted = await _count_purchases(
        session,
        user_id=user_id,
        actor=actor,
        lines=lines,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
    )
    if isinstance(counted, OrderView):
        return counted
    order_id = uuid.uuid4()
    client_token = (
        _allocation_token(actor.id, idempotency_key)
        if idempotency_key is not None
        else f"order:{order_id}"
    )
    try:
        # The lines' SKUs were read (live) in this unit of work: no second lookup.
        allocation = await inventory.allocate_known_stock(
            session,
            [ResolvedLine(line.sku_id, line.sku, line.quantity, None) for line in lines],
            client_token=client_token,
            request_fingerprint=request_fingerprint,
            reference=f"order:{order_id}",
            actor_id=actor.id,
            policy=policy,
            managed_by=ALLOCATION_MANAGER,
        )
    except IdempotencyKeyReused:
        raise _key_reused() from None
    now = utcnow()
    order_insert = (
        dialect_insert(session, Order)
        .values(
            id=order_id,
            user_id=user_id,
            created_by=actor.id,
            status=OrderStatus.PENDING.value,
            currency=currencies[0],
            total_cents=total_cents,
            shipping_address=shipping_address,
            allocation_id=allocation.id,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            version=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["created_by", "idempotency_key"])
        .returning(Order)
    )
    order = (await session.scalars(order_insert)).one_or_none()
    if order is None:
        # A concurrent request with the same key won (the allocation above was its own,
        # handed back by the client token, so no stock was taken twice).
        assert idempotency_key is not None
        existing = await _order_by_key(session, actor.id, idempotency_key)
        assert existing is not None
        if existing.request_fingerprint != request_fingerprint:
            raise _key_reused()
        await purchases.give_back(session, user_id, counted)
        return await _view(session, existing, created=False)
    order_lines = [
        OrderLine(
            order_id=order.id,
            sku_id=line.sku_id,
            sku_code=line.sku,
            product_name=line.product_name,
            quantity=line.quantity,
            unit_price_cents=line.unit_price_cents,
            line_total_cents=line.unit_price_cents * line.quantity,
        )
        for line in lines
    ]
    # One multi-row INSERT for every line (the ORM's flush sends one per line on SQLite);
    # the objects stay transient: nothing reads their ids.
    await session.execute(
        insert(OrderLine).values(
            [
                {
                    "order_id": line.order_id,
                    "sku_id": line.sku_id,
                    "sku_code": line.sku_code,
                    "product_name": line.product_name,
                    "quantity": line.quantity,
                    "unit_price_cents": line.unit_price_cents,
                    "line_total_cents": line.line_total_cents,
                }
                for line in order_lines
            ]
        )
    )
    view = OrderView(order, order_lines, created=True)
    await events.order_created(session, view)
    after_commit(session, ORDERS_CREATED.labels(source=source).inc)
    return view


async def _count_purchases(
    session: AsyncSession,
    *,
    user_id: int,
    actor: User,
    lines: Sequence[_PricedLine],
    idempotency_key: str | None,
    request_fingerprint: str,
) -> list[purchases.LimitedLine] | OrderView:
    """Count the lines of SKUs with a `max_per_customer` against the customer (`user_id`,
    whoever places the order). Returns what was counted, or raises `PurchaseLimitExceeded`.

    With an `idempotency_key`, a refusal may only mean that a concurrent request with the
    same key committed this very order (its units now count): that order is returned
    instead (a view, `created` False), and what this request counted is given back."""
    limited = [
        purchases.LimitedLine(line.sku_id, line.sku, line.quantity, line.max_per_customer)
        for line in lines
        if line.max_per_customer is not None
    ]
    if not limited:
        return []
    claimed = await purchases.claim(session, user_id, limited)
    if claimed.refused is None:
        return claimed.counted
    if idempotency_key is not None:
        existing = await _order_by_key(session, actor.id, idempotency_key)
        if existing is not None:
            if existing.request_fingerprint != request_fingerprint:
                raise _key_reused()
            await purchases.give_back(session, user_id, claimed.counted)
            return await _view(session, existing, created=False)
    raise claimed.refused


async def checkout(
    session: AsyncSession,
    *,
    user: User,
    shipping_address_id: int | None = None,
    idempotency_key: str | None = None,
    policy: StockPolicy = DEFAULT_POLICY,
) -> OrderView:
    """Turn the user's cart into an order in the caller's unit of work: validate every
    line, allocate them all, snapshot prices, names and the address, empty the cart.

    With an `idempotency_key` already used by this user, the earlier order comes back
    (`created` False) when the request matches it: the same shipping address, and a cart
    that is either empty (the earlier checkout emptied it) or holds what was ordered.
    Anything else is `IdempotencyKeyReused`.
    """
    cart = await _locked_cart(session, user.id)
    lines = await _cart_lines(session, cart.id, with_available=False)
    if idempotency_key is not None:
        existing = await _order_by_key(session, user.id, idempotency_key)
        if existing is not None:
            view = await _view(session, existing, created=False)
            ordered = (
                [(line.sku, line.quantity) for line in lines]
                if lines
                else [(line.sku_code, line.quantity) for line in view.lines]
            )
            replayed = _request_fingerprint("checkout", user.id, ordered, shipping_address_id)
            if existing.request_fingerprint != replayed:
                raise _key_reused()
            return view
    if not lines:
        raise ValidationFailed.field(["cart"], "the cart is empty")
    for index, line in enumerate(lines):
        if line.is_deleted:
            raise ValidationFailed.field(
                ["cart", "items", index, "sku"],
                f"SKU {line.sku!r} is no longer sold; remove it from the cart",
            )
    request_fingerprint = _request_fingerprint(
        "checkout", user.id, [(line.sku, line.quantity) for line in lines], shipping_address_id
    )
    address = await _shipping_address(session, user.id, shipping_address_id)
    view = await _create_order(
        session,
        source="checkout",
        user_id=user.id,
        actor=user,
        lines=[
            _PricedLine(
                line.sku_id,
                line.sku,
                line.product_name,
                line.quantity,
                line.unit_price_cents,
                line.currency,
                line.max_per_customer,
            )
            for line in lines
        ],
        shipping_address=address,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        policy=policy,
    )
    if view.created:
        await session.execute(delete(CartItem).where(CartItem.cart_id == cart.id))
    return view


async def place_order(
    session: AsyncSession,
    *,
    actor: User,
    items: Sequence[tuple[str, int]],
    user_id: int | None = None,
    shipping_address_id: int | None = None,
    idempotency_key: str | None = None,
    policy: StockPolicy = DEFAULT_POLICY,
) -> OrderView:
    """An order of explicit `(sku code, quantity)` lines, stock allocated, for the actor or
    (staff only) for `user_id`. Idempotent by `idempotency_key` like `checkout`: the same
    key and request return the earlier order (`created` False)."""
    owner_id = await _order_owner(session, actor, user_id)
    request_fingerprint = _request_fingerprint("order", owner_id, items, shipping_address_id)
    if idempotency_key is not None:
        existing = await _order_by_key(session, actor.id, idempotency_key)
        if existing is not None:
            if existing.request_fingerprint != request_fingerprint:
                raise _key_reused()
            return await _view(session, existing, created=False)
    lines = await _priced_lines(session, items)
    address = await _shipping_address(session, owner_id, shipping_address_id)
    return await _create_order(
        session,
        source="order",
        user_id=owner_id,
        actor=actor,
        lines=lines,
        shipping_address=address,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        policy=policy,
    )


# --- reading orders ----------------------------------------------------------------------


async def _lines_of(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[OrderLine]]:
    """The lines of several orders, in one statement."""
    lines: dict[uuid.UUID, list[OrderLine]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        rows = await session.scalars(
            select(OrderLine)
            .where(OrderLine.order_id.in_(order_ids))
            .order_by(OrderLine.order_id, OrderLine.id)
        )
        for line in rows:
            lines[line.order_id].append(line)
    return lines


async def _view(session: AsyncSession, order: Order, *, created: bool = False) -> OrderView:
    lines = await _lines_of(session, [order.id])
    return OrderView(order, lines[order.id], created=created)


def _visible_to(order: Order, viewer: User) -> bool:
    return is_staff(viewer) or order.user_id == viewer.id


async def get_order(session: AsyncSession, order_id: uuid.UUID, *, viewer: User) -> OrderView:
    """The order with its lines; another customer's order is indistinguishable from a
    missing one."""
    order = await session.get(Order, order_id)
    if order is None or not _visible_to(order, viewer):
        raise NotFound("No such order.")
    return await _view(session, order)


def _order_cursor(order: Order) -> list[str]:
    return [order.created_at.isoformat(), str(order.id)]


async def list_orders(
    session: AsyncSession,
    *,
    viewer: User,
    status: OrderStatus | None = None,
    user_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> OrderPage:
    """Orders newest first, keyset-paginated on (created_at, id), lines included: two
    statements whatever the page size. Customers see only their own orders (a `user_id`
    of someone else gives them an empty page)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed.field(["query", "limit"], f"limit must be 1 to {MAX_LIMIT}")
    after = decode_time_id_cursor(cursor)
    query = select(Order)
    if not is_staff(viewer):
        query = query.where(Order.user_id == viewer.id)
    if user_id is not None:
        query = query.where(Order.user_id == user_id)
    if status is not None:
        query = query.where(Order.status == OrderStatus(status).value)
    query = newest_first(query, Order.created_at, Order.id, after).limit(limit + 1)
    orders = list((await session.scalars(query)).all())
    page, next_cursor = page_of(orders, limit, _order_cursor)
    lines = await _lines_of(session, [order.id for order in page])
    return OrderPage([OrderView(order, lines[order.id]) for order in page], next_cursor)


# --- status changes ----------------------------------------------------------------------


async def change_order_status(
    session: AsyncSession,
    order_id: uuid.UUID,
    *,
    status: OrderStatus | str,
    version: int | None,
    actor: User,
) -> OrderView:
    """Move an order along its lifecycle; shipping fulfils its allocation, cancelling
    returns the stock.

    Staff may make any allowed move; a customer may only cancel their own order (another
    customer's order is NotFound, any other move Forbidden). A given `version` must be the
    current one (VersionConflict). Asking for the status the order already has returns it
    unchanged; any move not in `allowed_transitions` is InvalidTransition.
    """
    target = OrderStatus(status)
    order = (
        await session.scalars(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if order is None or not _visible_to(order, actor):
        raise NotFound("No such order.")
    if not is_staff(actor) and target is not OrderStatus.CANCELLED:
        raise Forbidden("Customers may only cancel their own orders.")
    if version is not None and version != order.version:
        raise VersionConflict(
            f"Expected version {version} but the order is at version {order.version}.",
            current_version=order.version,
        )
    current = OrderStatus(order.status)
    if current is target:
        return await _view(session, order)
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"An order that is {current.value} cannot become {target.value}.",
            current_status=current.value,
            allowed=[allowed.value for allowed in TRANSITIONS[current]],
        )
    # The order row is locked above, so its status and version are still the ones checked.
    return await _move_order(session, order, target, actor_id=actor.id)


async def _move_order(
    session: AsyncSession,
    order: Order,
    target: OrderStatus,
    *,
    actor_id: int | None,
    reason: str | None = None,
) -> OrderView:
    """Move a locked order, whose move to `target` was checked, with its stock: shipping
    fulfils its allocation; cancelling gives its units back to the customer's purchase
    limits (counter rows before stock rows, as when ordering) and cancels its allocation.
    Writes the status event (with `reason` in its data when given)."""
    if target is OrderStatus.SHIPPED:
        await inventory.fulfil_allocation(
            session,
            order.allocation_id,
            actor_id=actor_id,
            managed_by=ALLOCATION_MANAGER,
        )
    elif target is OrderStatus.CANCELLED:
        await purchases.give_back_order(session, order.id, order.user_id)
        await inventory.cancel_allocation(
            session,
            order.allocation_id,
            actor_id=actor_id,
            managed_by=ALLOCATION_MANAGER,
        )
    changed = (
        await session.scalars(
            update(Order)
            .where(Order.id == order.id)
            .values(status=target.value, version=Order.version + 1, updated_at=utcnow())
            .returning(Order)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    ).one()
    view = await _view(session, changed)
    await events.status_changed(session, view, reason=reason)
    after_commit(session, ORDER_STATUS_CHANGES.labels(status=target.value).inc)
    return view


# --- payment timeout ---------------------------------------------------------------------

PAYMENT_TIMEOUT_REASON = "payment_timeout"
# Orders cancelled per unit of work: a short transaction per batch (it holds the stock rows
# of its orders' SKUs until it commits), and a killed sweeper loses at most one batch's
# uncommitted work, which rolls back whole.
PAYMENT_TIMEOUT_BATCH = 20


async def cancel_unpaid_batch(
    session: AsyncSession, *, older_than: datetime, limit: int = PAYMENT_TIMEOUT_BATCH
) -> int:
    """Cancel at most `limit` orders still `pending` that were created at or before
    `older_than`, each the way a cancellation is (its units given back, its allocation
    cancelled, `order.cancelled` with `reason: "payment_timeout"`). Returns how many.

    The orders are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL: sweepers side by
    side take disjoint batches, and an order a request is changing right now is left for
    the next run. Each claimed order is re-checked under its lock, so one that was paid or
    cancelled meanwhile is left alone (on SQLite, whose writers queue, likewise)."""
    claimed = list(
        (
            await session.scalars(
                select(Order)
                .where(
                    Order.status == OrderStatus.PENDING.value,
                    Order.created_at <= older_than,
                )
                .order_by(Order.created_at, Order.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    cancelled = 0
    for order in claimed:
        if order.status != OrderStatus.PENDING.value:
            continue
        await _move_order(
            session,
            order,
            OrderStatus.CANCELLED,
            actor_id=None,
            reason=PAYMENT_TIMEOUT_REASON,
        )
        cancelled += 1
    return cancelled


async def cancel_unpaid_orders(
    db: Database, *, timeout_seconds: int, batch_size: int = PAYMENT_TIMEOUT_BATCH
) -> int:
    """The background job: cancel every order `pending` for longer than `timeout_seconds`
    (STOREKEEPER_ORDER_PAYMENT_TIMEOUT_SECONDS), one short unit of work per batch. Safe in
    several processes at once."""
    unit = UnitOfWork(db)
    older_than = utcnow() - timedelta(seconds=timeout_seconds)
    total = 0
    while True:
        cancelled = await unit.run(cancel_unpaid_batch, older_than=older_than, limit=batch_size)
        total += cancelled
        if cancelled < batch_size:
            break
    if total:
        log.info("unpaid_orders_cancelled", count=total, timeout_seconds=timeout_seconds)
    return total
