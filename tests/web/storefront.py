"""A catalog for storefront tests and a customer signing in through the shop's forms."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database
from storekeeper.inventory import stock as inventory_stock
from tests.conftest import TEST_PASSWORD
from tests.web.conftest import csrf_of

ORDER_LINK = re.compile(r"/shop/orders/([0-9a-f-]{36})")


@dataclass(frozen=True)
class Catalog:
    tools_id: int
    hammers_id: int
    garden_id: int
    hammer_id: int
    saw_id: int
    spade_id: int


async def add_product(
    db: Database,
    category_id: int,
    name: str,
    skus: dict[str, tuple[int, int]],
    description: str | None = None,
) -> int:
    """A product with SKUs `{code: (price_cents, units received)}`."""
    async with db.transaction() as session:
        product = Product(name=name, category_id=category_id, description=description)
        session.add(product)
        await session.flush()
        session.add_all(
            Sku(code=code, product_id=product.id, price_cents=price, currency="USD")
            for code, (price, _) in skus.items()
        )
        await session.flush()
        for code, (_, units) in skus.items():
            if units:
                await inventory_stock.adjust_stock(
                    session,
                    code,
                    delta=units,
                    reason="receive",
                    policy=StockPolicy(LockingStrategy.ATOMIC),
                )
        return product.id


async def add_category(db: Database, name: str, parent: Category | None = None) -> Category:
    async with db.transaction() as session:
        category = Category(
            name=name,
            parent_id=parent.id if parent else None,
            path="/",
            depth=parent.depth + 1 if parent else 0,
        )
        session.add(category)
        await session.flush()
        category.path = f"{parent.path if parent else '/'}{category.id}/"
        return category


async def small_catalog(db: Database) -> Catalog:
    """Tools > Hammers (a claw hammer: 3 left and plenty), Tools (a saw, sold out),
    Garden (a spade at 45.00, plenty)."""
    tools = await add_category(db, "Tools")
    hammers = await add_category(db, "Hammers", tools)
    garden = await add_category(db, "Garden")
    hammer = await add_product(
        db,
        hammers.id,
        "Claw hammer",
        {"HAM-16": (1250, 3), "HAM-20": (1490, 40)},
        "A steel claw hammer.",
    )
    saw = await add_product(db, tools.id, "Panel saw", {"SAW-1": (2200, 0)})
    spade = await add_product(db, garden.id, "Garden spade", {"SPADE-1": (4500, 25)})
    return Catalog(tools.id, hammers.id, garden.id, hammer, saw, spade)


async def shop_sign_in(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD, next_path: str = "/shop"
) -> httpx.Response:
    form_page = await client.get("/shop/sign-in")
    assert form_page.status_code == 200
    return await client.post(
        "/shop/sign-in",
        data={
            "email": email,
            "password": password,
            "next": next_path,
            "csrf_token": csrf_of(form_page),
        },
    )


async def post_form(
    client: httpx.AsyncClient, page_path: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Open `page_path` and post `data` to `action` with that page's CSRF token."""
    page = await client.get(page_path)
    assert page.status_code == 200, page.text
    return await client.post(action, data={**data, "csrf_token": csrf_of(page)})


async def add_to_cart(client: httpx.AsyncClient, product_id: int, sku: str, quantity: int) -> None:
    response = await post_form(
        client,
        f"/shop/products/{product_id}",
        "/shop/cart/items",
        {"sku": sku, "quantity": str(quantity)},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/shop/cart"


async def save_address(client: httpx.AsyncClient) -> int:
    response = await post_form(
        client,
        "/shop/account",
        "/shop/checkout/address",
        {
            "name": "Cleo Customer",
            "line1": "1 Main Street",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
    )
    assert response.status_code == 303, response.text
    match = re.search(r"address=(\d+)", response.headers["location"])
    assert match
    return int(match.group(1))


def checkout_form(page: httpx.Response) -> dict[str, str]:
    """The hidden fields and chosen address of a rendered checkout page."""
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    address = re.search(r'name="shipping_address_id" value="(\d+)" checked', page.text)
    assert key and address, "the checkout page has no order form"
    return {
        "csrf_token": csrf_of(page),
        "idempotency_key": key.group(1),
        "shipping_address_id": address.group(1),
    }
