"""The storefront in a real browser: headless Chromium against a real server process.

The journeys a customer takes, with no script on any page: browse, search, add two SKUs,
check out, follow the order, cancel it; two customers racing for the last unit; a double
click on "Place order"; another customer's order page. The journey keeps a screenshot of
every page at laptop and phone width (docs/screenshots/shop-*.png, shown in the README).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from tests.web.conftest import LAPTOP, PHONE, LiveServer

pytestmark = pytest.mark.browser

API = "/api/v1"
PASSWORD = "a-long-enough-secret"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ORDER_URL = re.compile(r".*/shop/orders/[0-9a-f-]{36}$")


async def _seed(live_server: LiveServer, tag: str, skus: dict[str, tuple[str, int, int]]) -> int:
    """A category and one product per SKU `{code: (product name, price, units)}`, made
    through the API as the admin; the category's id."""
    headers = live_server.api_headers(live_server.admin)
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=headers) as api:
        category = await api.post(f"{API}/categories", json={"name": f"Shop {tag}"})
        assert category.status_code == 201, category.text
        category_id: int = category.json()["id"]
        for code, (name, price, units) in skus.items():
            product = await api.post(
                f"{API}/products",
                json={
                    "name": name,
                    "description": f"{name}, sturdy and simple.",
                    "category_id": category_id,
                    "skus": [{"code": code, "price_cents": price, "currency": "USD"}],
                },
            )
            assert product.status_code == 201, product.text
            if units:
                received = await api.post(
                    f"{API}/inventory/{code}/adjustments",
                    json={"delta": units, "reason": "receive"},
                )
                assert received.status_code in (200, 201), received.text
    return category_id


async def _context(browser: Browser, live_server: LiveServer) -> BrowserContext:
    # No JavaScript at all: every flow is links and forms.
    context = await browser.new_context(
        base_url=live_server.base_url, viewport=LAPTOP, java_script_enabled=False
    )
    context.set_default_timeout(10_000)
    return context


def _nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Your shop")


async def _register(page: Page, name: str) -> str:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto("/shop/register")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(_nav(page).get_by_role("link", name="My orders")).to_be_visible()
    return email


async def _add(page: Page, product: str, sku: str, quantity: int) -> None:
    await page.goto("/shop")
    await page.get_by_role("search").get_by_label("Search products").fill(product)
    await page.get_by_role("search").get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=product).click()
    line = page.locator(f"#sku-{sku}")
    await line.get_by_label("Quantity").fill(str(quantity))
    await line.get_by_role("button", name="Add to cart").click()
    await expect(page.get_by_role("status")).to_have_text(
        f"Added {quantity} of {sku} to your cart."
    )


async def _new_address(page: Page) -> None:
    await page.get_by_label("Full name").fill("Cleo Customer")
    await page.get_by_label("Street and number").fill("1 Main Street")
    await page.get_by_label("Postal code").fill("12345")
    await page.get_by_label("City").fill("Springfield")
    await page.get_by_label("Country (two letters, e.g. DE)").fill("US")
    await page.get_by_role("button", name="Save and use this address").click()
    await expect(page.get_by_role("radio")).to_be_checked()


async def _to_checkout(page: Page) -> None:
    await page.goto("/shop/cart")
    await page.get_by_role("button", name="Check out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    if await page.get_by_role("radio").count() == 0:
        await _new_address(page)


async def _look(page: Page, name: str) -> None:
    """Screenshots at laptop and phone width; at phone width nothing is wider than the
    screen, and every field has a label."""
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOCS_SCREENSHOTS / f"shop-{name}.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(DOCS_SCREENSHOTS / f"shop-{name}-phone.png"), full_page=True)
    width = await page.evaluate("document.documentElement.scrollWidth")
    await page.set_viewport_size(LAPTOP)
    assert width <= PHONE["width"], f"{name} is {width}px wide at phone width"


async def test_browse_search_buy_two_skus_follow_and_cancel(
    browser: Browser, live_server: LiveServer
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    await _seed(
        live_server,
        tag,
        {
            f"LAMP-{tag}": (f"Desk lamp {tag}", 3900, 3),
            f"MUG-{tag}": (f"Enamel mug {tag}", 1200, 30),
            f"KETTLE-{tag}": (f"Camp kettle {tag}", 2750, 0),
        },
    )
    context = await _context(browser, live_server)
    # Screenshots need scripts to measure the page width: a second, scripted context
    # looks at the same pages (the flows themselves run without JavaScript).
    shots = await browser.new_context(base_url=live_server.base_url, viewport=LAPTOP)
    try:
        page = await context.new_page()
        await page.goto("/shop")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Products")
        await (
            page.get_by_role("navigation", name="Categories")
            .get_by_role("link", name=f"Shop {tag}")
            .click()
        )
        await expect(page.locator(".product-name")).to_have_text(
            [f"Desk lamp {tag}", f"Enamel mug {tag}", f"Camp kettle {tag}"]
        )
        await page.get_by_label("In stock only").check()
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page.locator(".product-name")).to_have_text(
            [f"Desk lamp {tag}", f"Enamel mug {tag}"]
        )
        await page.get_by_role("link", name=f"Desk lamp {tag}").click()
        await expect(page.locator(f"#sku-LAMP-{tag} .stock")).to_have_text("Only 3 left")

        email = await _register(page, "Journey")
        await _add(page, f"Desk lamp {tag}", f"LAMP-{tag}", 2)
        await _add(page, f"Enamel mug {tag}", f"MUG-{tag}", 3)
        await expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
        await expect(page.locator(".line-name")).to_have_text(
            [f"Desk lamp {tag}", f"Enamel mug {tag}"]
        )
        await expect(page.locator(".summary .total strong")).to_have_text("114.00 USD")
        await page.get_by_label(f"Quantity of MUG-{tag}").fill("2")
        await page.locator(".line").nth(1).get_by_role("button", name="Update").click()
        await expect(page.locator(".summary .total strong")).to_have_text("102.00 USD")

        await _to_checkout(page)
        await page.get_by_role("button", name="Place order").click()
        await expect(page).to_have_url(ORDER_URL)
        await expect(page.get_by_role("status")).to_have_text("Thank you: your order is placed.")
        order_url = page.url
        await expect(page.locator(".history li")).to_have_count(1)
        await expect(page.locator("tfoot td")).to_have_text("102.00 USD")

        await _nav(page).get_by_role("link", name="My orders").click()
        await expect(page.locator("tbody tr")).to_have_count(1)
        await page.goto(order_url)
        await page.get_by_role("button", name="Cancel order").click()
        await expect(page.get_by_role("status")).to_have_text("Your order is cancelled.")
        await expect(page.locator(".history .status")).to_have_text(["Pending", "Cancelled"])
        await expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)

        # Sold out: "Notify me" puts the customer on the waitlist.
        await page.goto("/shop")
        await page.get_by_role("search").get_by_label("Search products").fill(f"kettle {tag}")
        await page.get_by_role("search").get_by_role("button", name="Search").click()
        await page.get_by_role("link", name=f"Camp kettle {tag}").click()
        await expect(page.locator(".stock")).to_have_text("Sold out")
        await page.get_by_role("button", name="Notify me").click()
        await _nav(page).get_by_role("link", name="Account").click()
        await expect(page.locator(".waitlist li span").first).to_have_text(f"KETTLE-{tag}")

        # The pictures: the same pages, seen by the same customer in the scripted context.
        await shots.add_cookies(await context.cookies())
        look = await shots.new_page()
        await look.goto(f"/shop?category={await _category_of(page, tag)}")
        await _look(look, "home")
        await look.goto(order_url)
        await _look(look, "order")
        await look.goto("/shop/orders")
        await _look(look, "orders")
        await look.goto("/shop/account")
        await _look(look, "account")
        await _add(look, f"Desk lamp {tag}", f"LAMP-{tag}", 1)
        await _look(look, "cart")
        await look.goto("/shop/checkout")
        await _look(look, "checkout")
        await look.get_by_role("link", name="Back to the cart").click()
        await look.goto("/shop")
        await look.get_by_role("search").get_by_label("Search products").fill(f"lamp {tag}")
        await look.get_by_role("search").get_by_role("button", name="Search").click()
        await look.get_by_role("link", name=f"Desk lamp {tag}").click()
        await _look(look, "product")
        assert email
    finally:
        await shots.close()
        await context.close()


async def _category_of(page: Page, tag: str) -> str:
    await page.goto("/shop")
    link = page.get_by_role("navigation", name="Categories").get_by_role("link", name=f"Shop {tag}")
    href = await link.get_attribute("href")
    assert href
    return href.rsplit("=", 1)[1]


async def test_two_customers_race_for_the_last_unit(
    browser: Browser, live_server: LiveServer
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    await _seed(live_server, tag, {f"LAST-{tag}": (f"Last lantern {tag}", 5000, 1)})
    contexts = [await _context(browser, live_server) for _ in range(2)]
    try:
        pages = [await context.new_page() for context in contexts]
        for number, page in enumerate(pages):
            await _register(page, f"Racer{number}")
            await _add(page, f"Last lantern {tag}", f"LAST-{tag}", 1)
            await _to_checkout(page)
        # Both press "Place order" at once.
        await asyncio.gather(
            *(page.get_by_role("button", name="Place order").click() for page in pages)
        )
        for page in pages:
            await page.wait_for_load_state()
        headings = [await page.get_by_role("heading", level=1).inner_text() for page in pages]
        won = [page for page, heading in zip(pages, headings, strict=True) if "Order" in heading]
        lost = [
            page
            for page, heading in zip(pages, headings, strict=True)
            if heading == "Not enough stock"
        ]
        assert len(won) == 1 and len(lost) == 1, headings
        await expect(won[0]).to_have_url(ORDER_URL)
        await expect(lost[0].locator(".shortages li")).to_have_text(
            f"Last lantern {tag} (LAST-{tag}): you asked for 1, it is sold out."
        )
        # The loser's cart is intact.
        await lost[0].get_by_role("link", name="Change your cart").click()
        await expect(lost[0].locator(".line-name")).to_have_text([f"Last lantern {tag}"])
    finally:
        for context in contexts:
            await context.close()


async def test_a_double_submitted_checkout_places_one_order(
    browser: Browser, live_server: LiveServer
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    await _seed(live_server, tag, {f"TWICE-{tag}": (f"Twice tin {tag}", 800, 10)})
    context = await _context(browser, live_server)
    try:
        page = await context.new_page()
        await _register(page, "Twice")
        await _add(page, f"Twice tin {tag}", f"TWICE-{tag}", 2)
        await _to_checkout(page)
        form = {
            name: await page.locator(f'#place-order input[name="{name}"]').first.get_attribute(
                "value"
            )
            or ""
            for name in ("csrf_token", "idempotency_key")
        }
        form["shipping_address_id"] = (
            await page.get_by_role("radio").first.get_attribute("value") or ""
        )
        await page.get_by_role("button", name="Place order").dblclick()
        await expect(page).to_have_url(ORDER_URL)
        order_url = page.url
        # The same form sent again later (a reload that re-posts it): the same order.
        again = await context.request.post("/shop/checkout", form=form, max_redirects=0)
        assert again.status == 303
        assert order_url.endswith(again.headers["location"])
        await page.goto("/shop/orders")
        await expect(page.locator("tbody tr")).to_have_count(1)
    finally:
        await context.close()


async def test_another_customers_order_page_is_not_found(
    browser: Browser, live_server: LiveServer
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    await _seed(live_server, tag, {f"MINE-{tag}": (f"Private parcel {tag}", 1500, 5)})
    owner = await _context(browser, live_server)
    other = await _context(browser, live_server)
    try:
        page = await owner.new_page()
        await _register(page, "Owner")
        await _add(page, f"Private parcel {tag}", f"MINE-{tag}", 1)
        await _to_checkout(page)
        await page.get_by_role("button", name="Place order").click()
        await expect(page).to_have_url(ORDER_URL)
        snooper = await other.new_page()
        await _register(snooper, "Snooper")
        response = await snooper.goto(page.url)
        assert response is not None and response.status == 404
        await expect(snooper.get_by_role("alert")).to_have_text("No such order.")
    finally:
        await owner.close()
        await other.close()
