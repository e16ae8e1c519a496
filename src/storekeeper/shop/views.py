"""What each shop page reads, as one read-only unit of work per page: compositions of the
domains' own reads (the catalog's listing and search, the cart, addresses, the waitlist),
never a second copy of their rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import Address
from storekeeper.accounts.service import list_addresses
from storekeeper.catalog.service import (
    CategoryNode,
    Page,
    ProductFilters,
    ProductView,
    build_tree,
    get_product_for,
    list_categories_for,
    list_products_for,
)
from storekeeper.catalog.stock import StockFigures
from storekeeper.notifications.waitlist import WaitlistEntryView, list_my_waitlist
from storekeeper.orders.service import CartView, my_cart
from storekeeper.pagination import MAX_LIMIT


@dataclass(frozen=True)
class Storefront:
    categories: list[CategoryNode]
    products: Page


async def storefront(
    session: AsyncSession,
    filters: ProductFilters,
    *,
    limit: int,
    cursor: str | None,
    stock: StockFigures,
) -> Storefront:
    """The category tree (live categories, nested) and a page of products, filtered."""
    categories = await list_categories_for(
        session, None, parent_id=None, include_deleted=False, limit=MAX_LIMIT, cursor=None
    )
    products = await list_products_for(
        session, None, filters, include_deleted=False, limit=limit, cursor=cursor, stock=stock
    )
    return Storefront(build_tree(categories.rows), products)


@dataclass(frozen=True)
class ProductPage:
    view: ProductView
    # The codes of the product's SKUs this customer is waiting for.
    waiting: set[str]


async def product_page(
    session: AsyncSession, product_id: int, *, user_id: int | None, stock: StockFigures
) -> ProductPage:
    view = await get_product_for(session, None, product_id, include_deleted=False, stock=stock)
    waiting: set[str] = set()
    if user_id is not None:
        entries = await list_my_waitlist(session, user_id, limit=MAX_LIMIT)
        codes = {sku.sku.code for sku in view.skus}
        waiting = {entry.sku for entry in entries.rows if entry.status == "waiting"} & codes
    return ProductPage(view, waiting)


@dataclass(frozen=True)
class CheckoutPage:
    cart: CartView
    addresses: list[Address]


async def checkout_page(
    session: AsyncSession, user_id: int, *, default_currency: str
) -> CheckoutPage:
    """The cart (made on first use, hence a writing unit) and the saved addresses."""
    cart = await my_cart(session, user_id, default_currency=default_currency)
    addresses, _ = await list_addresses(session, user_id, limit=MAX_LIMIT, cursor=None)
    return CheckoutPage(cart, addresses)


@dataclass(frozen=True)
class AccountPage:
    addresses: list[Address]
    waitlist: list[WaitlistEntryView]


async def account_page(session: AsyncSession, user_id: int) -> AccountPage:
    addresses, _ = await list_addresses(session, user_id, limit=MAX_LIMIT, cursor=None)
    waitlist = await list_my_waitlist(session, user_id, limit=MAX_LIMIT)
    return AccountPage(addresses, waitlist.rows)


def address_lines(address: Address | dict[str, Any]) -> list[str]:
    """An address as the lines printed on a parcel."""
    get = address.get if isinstance(address, dict) else lambda name: getattr(address, name)
    lines = [get("name"), get("line1"), get("line2"), f"{get('postal_code')} {get('city')}"]
    return [str(line) for line in lines if line] + [str(get("country"))]
