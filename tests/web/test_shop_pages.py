"""The storefront's pages, driven like a browser without scripts: forms with their CSRF
tokens, redirects after posts, and the same services (and figures) as the API."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import event, func, select

from storekeeper.accounts.models import Role, User
from storekeeper.db import Database
from storekeeper.orders.models import Order
from tests.conftest import TEST_PASSWORD, UserFactory, bearer
from tests.web.conftest import csrf_of
from tests.web.storefront import (
    ORDER_LINK,
    Catalog,
    add_category,
    add_product,
    add_to_cart,
    checkout_form,
    post_form,
    save_address,
    shop_sign_in,
    small_catalog,
)

API = "/api/v1"


@pytest.fixture
async def catalog(db: Database) -> Catalog:
    return await small_catalog(db)


@pytest.fixture
async def customer(client: httpx.AsyncClient, make_user: UserFactory) -> User:
    user = await make_user(Role.CUSTOMER, email="cleo@example.com")
    signed_in = await shop_sign_in(client, user.email)
    assert signed_in.status_code == 303
    return user


async def order_count(db: Database) -> int:
    async with db.transaction(write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Order)) or 0)


def product_names(page: httpx.Response) -> list[str]:
    return re.findall(r'<span class="product-name">([^<]+)</span>', page.text)


# --- browsing ----------------------------------------------------------------------------


async def test_the_front_page_lists_products_with_categories_and_availability(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    page = await client.get("/shop")
    assert page.status_code == 200
    assert product_names(page) == ["Claw hammer", "Panel saw", "Garden spade"]
    # The category tree, nested: Hammers under Tools.
    assert re.search(r"Tools</a>\s*<ul>\s*<li>\s*<a href=\"/shop\?category=\d+\"", page.text)
    assert "from 12.50 USD" in page.text
    assert "Sold out" in page.text
    # The strict CSP of a page without scripts.
    csp = page.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text


async def test_a_category_shows_its_subtree(client: httpx.AsyncClient, catalog: Catalog) -> None:
    tools = await client.get(f"/shop?category={catalog.tools_id}")
    assert product_names(tools) == ["Claw hammer", "Panel saw"]
    hammers = await client.get(f"/shop?category={catalog.hammers_id}")
    assert product_names(hammers) == ["Claw hammer"]
    missing = await client.get("/shop?category=999999")
    assert missing.status_code == 422
    assert "No category with id 999999." in missing.text


async def test_search_and_filters_narrow_the_list(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    assert product_names(await client.get("/shop?q=hammer")) == ["Claw hammer"]
    assert product_names(await client.get("/shop?min_price=20")) == ["Panel saw", "Garden spade"]
    assert product_names(await client.get("/shop?max_price=14.90")) == ["Claw hammer"]
    assert product_names(await client.get("/shop?in_stock=1")) == ["Claw hammer", "Garden spade"]
    assert product_names(await client.get("/shop?q=spade&in_stock=1&min_price=40")) == [
        "Garden spade"
    ]
    nothing = await client.get("/shop?q=anvil")
    assert nothing.status_code == 200
    assert "No products match" in nothing.text
    wrong = await client.get("/shop?min_price=cheap")
    assert wrong.status_code == 422
    assert "Enter an amount such as 20 or 19.99." in wrong.text


async def test_the_list_pages_by_keyset_with_a_constant_number_of_statements(
    client: httpx.AsyncClient, db: Database
) -> None:
    category = await add_category(db, "Bulk")
    for number in range(30):
        await add_product(db, category.id, f"Item {number:02d}", {f"BULK-{number}": (100, 5)})
    counted: list[str] = []

    def count(*_args: object) -> None:
        counted.append("statement")

    async def statements(url: str) -> tuple[int, list[str]]:
        counted.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            page = await client.get(url)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        assert page.status_code == 200
        return len(counted), product_names(page)

    one = await statements("/shop?q=Item+07")
    assert one[1] == ["Item 07"]
    full, names = await statements("/shop")
    assert names == [f"Item {n:02d}" for n in range(24)]
    # Categories, a page of products, their SKUs with stock: however many are shown.
    assert full == one[0]
    first = await client.get("/shop")
    next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert next_link
    second = await client.get(next_link.group(1).replace("&amp;", "&"))
    assert product_names(second) == [f"Item {n:02d}" for n in range(24, 30)]
    assert 'rel="next"' not in second.text
    assert "First page" in second.text


async def test_a_product_page_shows_skus_prices_and_availability(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    page = await client.get(f"/shop/products/{catalog.hammer_id}")
    assert page.status_code == 200
    assert "Only 3 left" in page.text
    assert "In stock" in page.text
    assert page.text.count(">Add to cart</button>") == 2
    assert "12.50 USD" in page.text and "14.90 USD" in page.text
    sold_out = await client.get(f"/shop/products/{catalog.saw_id}")
    assert "Sold out" in sold_out.text
    assert ">Notify me</button>" in sold_out.text
    assert ">Add to cart</button>" not in sold_out.text
    assert (await client.get("/shop/products/999999")).status_code == 404
    assert (await client.get("/shop/products/abc")).status_code == 404


# --- accounts ----------------------------------------------------------------------------


async def test_register_signs_the_new_customer_in(client: httpx.AsyncClient, db: Database) -> None:
    registered = await post_form(
        client,
        "/shop/register",
        "/shop/register",
        {"email": "new@example.com", "password": "a-long-enough-secret", "full_name": "Nia New"},
    )
    assert registered.status_code == 303
    assert registered.headers["location"] == "/shop"
    account = await client.get("/shop/account")
    assert account.status_code == 200
    assert "Nia New" in account.text and "new@example.com" in account.text
    async with db.transaction(write=False) as session:
        user = await session.scalar(select(User).where(User.email == "new@example.com"))
    assert user is not None and user.role == "customer"


async def test_register_refuses_a_taken_email_and_a_weak_password(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    await make_user(Role.CUSTOMER, email="taken@example.com")
    taken = await post_form(
        client,
        "/shop/register",
        "/shop/register",
        {"email": "taken@example.com", "password": "a-long-enough-secret", "full_name": ""},
    )
    assert taken.status_code == 409
    assert "A user with this email already exists." in taken.text
    weak = await post_form(
        client,
        "/shop/register",
        "/shop/register",
        {"email": "weak@example.com", "password": "short", "full_name": ""},
    )
    assert weak.status_code == 422
    assert 'id="password-error"' in weak.text


async def test_sign_in_refusals_and_sign_out(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    user = await make_user(Role.CUSTOMER, email="cleo@example.com")
    await make_user(Role.STAFF, email="sam@example.com")
    wrong = await shop_sign_in(client, user.email, "not-the-password")
    assert wrong.status_code == 400
    assert "The email or password is not right." in wrong.text
    staff = await shop_sign_in(client, "sam@example.com")
    assert staff.status_code == 400
    assert "Staff accounts sign in at /admin." in staff.text
    signed_in = await shop_sign_in(client, user.email, next_path="/shop/orders")
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/shop/orders"
    cookie = client.cookies.get("storekeeper_shop_session", path="/shop")
    assert cookie
    signed_out = await post_form(client, "/shop/account", "/shop/sign-out", {})
    assert signed_out.status_code == 303
    # The old cookie no longer works: its sign-in row has ended.
    client.cookies.set("storekeeper_shop_session", cookie, path="/shop")
    again = await client.get("/shop/orders")
    assert again.status_code == 303
    assert again.headers["location"] == "/shop/sign-in?next=%2Fshop%2Forders"


async def test_pages_of_a_customer_ask_for_sign_in_and_never_follow_another_site(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    for path in ("/shop/cart", "/shop/checkout", "/shop/orders", "/shop/account"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/shop/sign-in?next=")
    await make_user(Role.CUSTOMER, email="cleo@example.com")
    evil = await shop_sign_in(client, "cleo@example.com", next_path="//evil.example/shop")
    assert evil.headers["location"] == "/shop"


async def test_a_form_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, catalog: Catalog, customer: User
) -> None:
    response = await client.post("/shop/cart/items", data={"sku": "HAM-20", "quantity": "1"})
    assert response.status_code == 403
    assert "did not come from this shop" in response.text


async def test_staff_sign_in_sends_a_customer_to_the_shop(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    await make_user(Role.CUSTOMER, email="cleo@example.com")
    page = await client.get("/admin/sign-in")
    refused = await client.post(
        "/admin/sign-in",
        data={"email": "cleo@example.com", "password": TEST_PASSWORD, "csrf_token": csrf_of(page)},
    )
    assert "use the shop instead" in refused.text
    assert 'href="/shop/sign-in"' in refused.text


# --- the cart and checkout ---------------------------------------------------------------


async def test_the_cart_adds_changes_and_removes_lines(
    client: httpx.AsyncClient, catalog: Catalog, customer: User
) -> None:
    await add_to_cart(client, catalog.hammer_id, "HAM-20", 2)
    await add_to_cart(client, catalog.hammer_id, "HAM-20", 1)
    await add_to_cart(client, catalog.spade_id, "SPADE-1", 1)
    cart = await client.get("/shop/cart")
    assert "Added 1 of SPADE-1 to your cart." in cart.text
    assert 'value="3" inputmode' in cart.text
    assert "89.70 USD" in cart.text  # 3 x 14.90 + 45.00
    [ham_line] = re.findall(
        r'action="/shop/cart/items/([0-9a-f-]{36})" class="qty-form"', cart.text
    )[:1]
    changed = await client.post(
        f"/shop/cart/items/{ham_line}", data={"quantity": "1", "csrf_token": csrf_of(cart)}
    )
    assert changed.status_code == 303
    cart = await client.get("/shop/cart")
    assert "59.90 USD" in cart.text
    removed = await client.post(
        f"/shop/cart/items/{ham_line}/remove", data={"csrf_token": csrf_of(cart)}
    )
    assert removed.status_code == 303
    cart = await client.get("/shop/cart")
    assert "HAM-20" not in cart.text and "SPADE-1" in cart.text
    refused = await post_form(
        client,
        f"/shop/products/{catalog.hammer_id}",
        "/shop/cart/items",
        {"sku": "NOPE", "quantity": "1", "next": f"/shop/products/{catalog.hammer_id}"},
    )
    assert refused.status_code == 303
    assert refused.headers["location"] == f"/shop/products/{catalog.hammer_id}"


async def test_checkout_places_one_order_however_often_the_form_is_sent(
    client: httpx.AsyncClient, db: Database, catalog: Catalog, customer: User
) -> None:
    await add_to_cart(client, catalog.hammer_id, "HAM-16", 2)
    await add_to_cart(client, catalog.spade_id, "SPADE-1", 1)
    await save_address(client)
    page = await client.get("/shop/checkout")
    assert page.status_code == 200
    assert ">Place order</button>" in page.text
    form = checkout_form(page)
    first = await client.post("/shop/checkout", data=form)
    assert first.status_code == 303
    order_path = first.headers["location"]
    assert ORDER_LINK.fullmatch(order_path)
    # The same form again (a double click, a reload that re-posts): the same order.
    again = await client.post("/shop/checkout", data=form)
    assert again.status_code == 303
    assert again.headers["location"] == order_path
    assert await order_count(db) == 1
    order = await client.get(order_path)
    assert "Thank you" not in order.text  # the flash was replaced by the replay's
    assert "70.00 USD" in order.text  # 2 x 12.50 + 45.00
    assert "1 Main Street" in order.text
    assert (await client.get("/shop/cart")).text.count("Your cart is empty.") == 1


async def test_checkout_without_an_address_or_key_is_refused(
    client: httpx.AsyncClient, db: Database, catalog: Catalog, customer: User
) -> None:
    await add_to_cart(client, catalog.spade_id, "SPADE-1", 1)
    page = await client.get("/shop/checkout")
    assert "Save an address to place the order." in page.text
    no_address = await client.post(
        "/shop/checkout", data={"csrf_token": csrf_of(page), "idempotency_key": "k-1"}
    )
    assert no_address.status_code == 422
    assert "Choose the address to ship to." in no_address.text
    address_id = await save_address(client)
    no_key = await client.post(
        "/shop/checkout",
        data={"csrf_token": csrf_of(page), "shipping_address_id": str(address_id)},
    )
    assert no_key.status_code == 422
    assert await order_count(db) == 0


async def test_a_new_address_at_checkout_is_saved_and_chosen(
    client: httpx.AsyncClient, catalog: Catalog, customer: User
) -> None:
    await add_to_cart(client, catalog.spade_id, "SPADE-1", 1)
    address_id = await save_address(client)
    page = await client.get(f"/shop/checkout?address={address_id}")
    assert f'value="{address_id}" checked' in page.text
    invalid = await post_form(
        client, "/shop/checkout", "/shop/checkout/address", {"name": "X", "city": "Y"}
    )
    assert invalid.status_code == 422
    assert 'id="line1-error"' in invalid.text


async def test_insufficient_stock_names_the_short_lines_and_keeps_the_cart(
    client: httpx.AsyncClient, db: Database, catalog: Catalog, customer: User
) -> None:
    await add_to_cart(client, catalog.hammer_id, "HAM-16", 5)
    await add_to_cart(client, catalog.spade_id, "SPADE-1", 1)
    await save_address(client)
    page = await client.get("/shop/checkout")
    short = await client.post("/shop/checkout", data=checkout_form(page))
    assert short.status_code == 409
    assert "Not enough stock" in short.text
    assert "<strong>Claw hammer</strong> (HAM-16): you asked for 5," in short.text
    assert "only 3 left" in short.text
    assert "SPADE-1" not in short.text
    assert await order_count(db) == 0
    cart = await client.get("/shop/cart")
    assert "HAM-16" in cart.text and "SPADE-1" in cart.text


# --- orders ------------------------------------------------------------------------------


async def place(client: httpx.AsyncClient, catalog: Catalog) -> str:
    await add_to_cart(client, catalog.hammer_id, "HAM-16", 1)
    await save_address(client)
    page = await client.get("/shop/checkout")
    placed = await client.post("/shop/checkout", data=checkout_form(page))
    assert placed.status_code == 303
    return str(placed.headers["location"])


async def test_my_orders_and_cancelling_one(
    client: httpx.AsyncClient, catalog: Catalog, customer: User
) -> None:
    order_path = await place(client, catalog)
    orders = await client.get("/shop/orders")
    assert orders.status_code == 200
    assert order_path in orders.text and "Pending" in orders.text
    order = await client.get(order_path)
    assert "Status history" in order.text
    assert order.text.count('class="status status-pending"') == 2  # the title and history
    assert ">Cancel order</button>" in order.text
    product = await client.get(f"/shop/products/{catalog.hammer_id}")
    assert "Only 2 left" in product.text
    cancelled = await post_form(client, order_path, f"{order_path}/cancel", {"version": "1"})
    assert cancelled.status_code == 303
    order = await client.get(order_path)
    assert "Your order is cancelled." in order.text
    assert re.search(r"status-pending.*status-cancelled", order.text, re.DOTALL)
    assert ">Cancel order</button>" not in order.text
    # The stock is back.
    assert "Only 3 left" in (await client.get(f"/shop/products/{catalog.hammer_id}")).text


async def test_a_stale_cancel_is_refused_with_the_services_message(
    client: httpx.AsyncClient, catalog: Catalog, customer: User
) -> None:
    order_path = await place(client, catalog)
    stale = await post_form(client, order_path, f"{order_path}/cancel", {"version": "7"})
    assert stale.status_code == 303
    order = await client.get(order_path)
    assert "Expected version 7 but the order is at version 1." in order.text


async def test_another_customers_order_is_not_found(
    client: httpx.AsyncClient,
    app: object,
    catalog: Catalog,
    customer: User,
    make_user: UserFactory,
) -> None:
    order_path = await place(client, catalog)
    await make_user(Role.CUSTOMER, email="other@example.com")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        assert (await shop_sign_in(other, "other@example.com")).status_code == 303
        page = await other.get(order_path)
        assert page.status_code == 404
        assert "No such order." in page.text
        cancel = await post_form(other, "/shop/orders", f"{order_path}/cancel", {"version": "1"})
        assert cancel.status_code == 404
        assert order_path not in (await other.get("/shop/orders")).text


# --- addresses and the waitlist ----------------------------------------------------------


async def test_addresses_are_added_and_removed(
    client: httpx.AsyncClient, settings: object, customer: User
) -> None:
    saved = await post_form(
        client,
        "/shop/account",
        "/shop/account/addresses",
        {
            "name": "Cleo",
            "line1": "2 Side Road",
            "city": "Shelbyville",
            "postal_code": "54321",
            "country": "US",
        },
    )
    assert saved.status_code == 303
    account = await client.get("/shop/account")
    assert "2 Side Road" in account.text
    address_id = re.search(r"/shop/account/addresses/(\d+)/delete", account.text)
    assert address_id
    removed = await client.post(
        f"/shop/account/addresses/{address_id.group(1)}/delete",
        data={"csrf_token": csrf_of(account)},
    )
    assert removed.status_code == 303
    assert "2 Side Road" not in (await client.get("/shop/account")).text


async def test_notify_me_joins_the_waitlist(
    client: httpx.AsyncClient, catalog: Catalog, customer: User, settings: object
) -> None:
    joined = await post_form(
        client,
        f"/shop/products/{catalog.saw_id}",
        "/shop/waitlist",
        {"sku": "SAW-1", "next": f"/shop/products/{catalog.saw_id}"},
    )
    assert joined.status_code == 303
    product = await client.get(f"/shop/products/{catalog.saw_id}")
    assert "We will email you when SAW-1 is back in stock." in product.text
    assert ">Notify me</button>" not in product.text
    # The API shows the same entry: one waitlist.
    api = await client.get(f"{API}/users/me/waitlist", headers=bearer(settings, customer))  # type: ignore[arg-type]
    assert [entry["sku"] for entry in api.json()["items"]] == ["SAW-1"]
    account = await client.get("/shop/account")
    assert "SAW-1" in account.text and "Waiting" in account.text
    left = await client.post("/shop/waitlist/SAW-1/leave", data={"csrf_token": csrf_of(account)})
    assert left.status_code == 303
    assert "You are not waiting for anything." in (await client.get("/shop/account")).text
