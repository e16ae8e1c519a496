"""Layout of the staff pages measured in a real browser: what only rendering can show (a badge
on one line, an email cut with an ellipsis rather than broken mid-word), and the screenshots
of the fixed pages kept in docs/screenshots/ for the README."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.conftest import TEST_PASSWORD
from tests.web.conftest import (
    LAPTOP,
    PHONE,
    SCREENSHOTS,
    LiveServer,
    screenshot,
    sign_in_with_browser,
)

pytestmark = pytest.mark.browser

API = "/api/v1"
# The README's pictures are redrawn only when asked for (`STOREKEEPER_UPDATE_SCREENSHOTS=1`),
# so an ordinary test run leaves the working tree as it found it.
DOCS_SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("STOREKEEPER_UPDATE_SCREENSHOTS") == "1"
    else SCREENSHOTS / "docs"
)
# An address with no spaces and a long local part: the kind a careless cell breaks mid-word.
LONG_LOCAL = "procurement.department.of.the.northern.regional.warehouse"

# For every element matched: on how many lines its text lies (distinct tops of its boxes),
# its height and line height, and whether its text is cut with an ellipsis.
MEASURE = """(selector) => [...document.querySelectorAll(selector)].map(element => {
    const style = getComputedStyle(element);
    const range = document.createRange();
    range.selectNodeContents(element);
    return {
        text: element.textContent,
        lines: new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size,
        height: element.getBoundingClientRect().height,
        lineHeight: parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.6,
        cut: element.scrollWidth > element.clientWidth,
        ellipsis: style.textOverflow === 'ellipsis',
    };
})"""


async def _shop_with_an_order(api: httpx.AsyncClient, email: str) -> str:
    """A SKU with stock, a customer with `email` and one order of theirs; the order's id."""
    suffix = uuid.uuid4().hex[:6].upper()
    category = await api.post(f"{API}/categories", json={"name": f"Layout {suffix}"})
    assert category.status_code == 201, category.text
    code = f"LAYOUT-{suffix}"
    product = await api.post(
        f"{API}/products",
        json={
            "name": "Claw hammer",
            "category_id": category.json()["id"],
            # Held to a threshold of its own: 8 left after the order is low stock.
            "skus": [{"code": code, "price_cents": 1250, "low_stock_threshold": 10}],
        },
    )
    assert product.status_code == 201, product.text
    received = await api.post(
        f"{API}/inventory/{code}/adjustments", json={"delta": 10, "reason": "receive"}
    )
    assert received.status_code == 201, received.text
    customer = await api.post(
        f"{API}/auth/register", json={"email": email, "password": TEST_PASSWORD}
    )
    assert customer.status_code == 201, customer.text
    token = await api.post(
        f"{API}/auth/token",
        data={"username": email, "password": TEST_PASSWORD},
        headers={"Authorization": ""},
    )
    assert token.status_code == 200, token.text
    # An address without a second line: the order page shows it one line per element.
    address = await api.post(
        f"{API}/users/me/addresses",
        json={
            "name": "Cleo Customer",
            "line1": "1 Example Street",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert address.status_code == 201, address.text
    order = await api.post(
        f"{API}/orders",
        json={
            "items": [{"sku": code, "quantity": 2}],
            "user_id": customer.json()["id"],
            "shipping_address_id": address.json()["id"],
        },
    )
    assert order.status_code == 201, order.text
    order_id: str = order.json()["id"]
    paid = await api.patch(f"{API}/orders/{order_id}/status", json={"status": "paid", "version": 1})
    assert paid.status_code == 200, paid.text
    return order_id


async def _one_line_each(page: Page, selector: str) -> list[dict[str, object]]:
    measured: list[dict[str, object]] = await page.evaluate(MEASURE, selector)
    assert measured, f"nothing matches {selector}"
    for item in measured:
        assert item["lines"] == 1, f"{selector} {item['text']!r} spans {item['lines']} lines"
        assert float(str(item["height"])) < 1.5 * float(str(item["lineHeight"])), item
    return measured


async def test_orders_list_keeps_badges_and_emails_on_one_line(
    page: Page, live_server: LiveServer
) -> None:
    email = f"{LONG_LOCAL}.{uuid.uuid4().hex[:8]}@example-wholesale-customers.com"
    api = httpx.AsyncClient(
        base_url=live_server.base_url, headers=live_server.api_headers(live_server.admin)
    )
    async with api:
        order_id = await _shop_with_an_order(api, email)
    await sign_in_with_browser(page, live_server.admin.email)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    for viewport in (LAPTOP, PHONE):
        await page.set_viewport_size(viewport)
        await page.goto("/admin/orders")
        row = f'tr[data-order="{order_id}"]'
        await expect(page.locator(row)).to_be_visible()
        await _one_line_each(page, f"{row} .status")
        (cell,) = await _one_line_each(page, f"{row} .email")
        # The whole address is there (and in the title), cut at the end, never broken.
        assert cell["text"] == email
        assert cell["ellipsis"] is True
        assert await page.locator(f"{row} .email").get_attribute("title") == email
        assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    await page.set_viewport_size(LAPTOP)
    await screenshot(page, "orders-list-long-email")


async def test_screenshots_of_the_fixed_pages(page: Page, live_server: LiveServer) -> None:
    """The pages the README shows, drawn from live data into docs/screenshots/."""
    api = httpx.AsyncClient(
        base_url=live_server.base_url, headers=live_server.api_headers(live_server.admin)
    )
    async with api:
        order_id = await _shop_with_an_order(api, f"shots-{uuid.uuid4().hex[:8]}@example.com")
    await sign_in_with_browser(page, live_server.admin.email)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in (
        ("dashboard", "/admin"),
        ("orders", "/admin/orders"),
        ("order", f"/admin/orders/{order_id}"),
        ("stock", "/admin/stock"),
    ):
        await page.goto(path)
        if name == "order":
            lines = page.locator("[data-address] .address-line")
            await expect(lines).to_have_text(
                ["Cleo Customer", "1 Example Street", "12345 Springfield", "US"]
            )
        await page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (DOCS_SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
