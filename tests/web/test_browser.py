"""The staff pages in a real browser: headless Chromium against a real server process.

One journey walks through the pages the way a member of staff would, on one server and one
browser page, so the whole browser run costs a few seconds; every page it visits is saved as
a screenshot (test-artifacts/screenshots/)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Page, expect

from storekeeper.db import utcnow
from storekeeper.web.dependencies import CsrfRejected
from storekeeper.web.forms import STALE_EDIT
from storekeeper.web.sign_in import NOT_STAFF
from tests.web.conftest import LAPTOP, PHONE, LiveServer, screenshot, sign_in_with_browser

pytestmark = pytest.mark.browser

API = "/api/v1"
# Long enough to break a careless layout: a 59-character word in a 190-character name.
LONG_NAME = (
    "Claw hammer with a "
    + "fibreglass-handle-and-anti-vibration-grip-for-long-workdays"
    + (" and a magnetic nail starter" * 4)
)


async def test_customer_is_refused_at_sign_in(page: Page, live_server: LiveServer) -> None:
    await sign_in_with_browser(page, live_server.customer.email)
    await expect(page.get_by_role("alert")).to_have_text(NOT_STAFF)
    await expect(page).to_have_url(f"{live_server.base_url}/admin/sign-in")
    await screenshot(page, "sign-in-customer-refused")


async def _look(page: Page, name: str) -> None:
    """Save the page's screenshot and check that every field on it has a label."""
    await screenshot(page, name)
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(field => field.labels.length === 0)
            .map(field => field.name || field.id)"""
    )
    assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"


async def _figure(page: Page, name: str) -> int:
    text = await page.locator(f'[data-figure="{name}"]').text_content()
    assert text is not None
    return int(text.replace(",", ""))


async def _flow(page: Page) -> tuple[int, int]:
    """Units received and shipped in the dashboard chart, from its text description."""
    description = await page.locator("#flow-desc").text_content()
    match = re.match(r"([\d,]+) units received and ([\d,]+) shipped", description or "")
    assert match, description
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


async def _fits_the_phone(page: Page, name: str) -> None:
    """The page at phone width: nothing wider than the screen (tables scroll in their card)."""
    await page.set_viewport_size(PHONE)
    await _look(page, f"{name}-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.set_viewport_size(LAPTOP)


async def _dashboard(page: Page) -> dict[str, int]:
    """The dashboard's figures and the chart's totals."""
    await page.goto("/admin")
    received, shipped = await _flow(page)
    return {
        "skus": await _figure(page, "skus"),
        "on_hand": await _figure(page, "units-on-hand"),
        "received": received,
        "shipped": shipped,
        "orders_shipped": await _figure(page, "orders-shipped"),
    }


async def _receive(page: Page, code: str, units: int) -> None:
    await page.goto(f"/admin/stock/{code}")
    await page.get_by_label("Change in units").fill(str(units))
    await page.get_by_label("Reason").select_option("receive")
    await page.get_by_role("button", name="Apply adjustment").click()
    await expect(page.get_by_role("status")).to_have_text(
        f"Stock of {code} changed by +{units} units."
    )


async def test_staff_journey(page: Page, live_server: LiveServer) -> None:
    api = httpx.AsyncClient(
        base_url=live_server.base_url, headers=live_server.api_headers(live_server.admin)
    )
    async with api:
        await _sign_in_and_look_around(page, live_server)
        before = await _dashboard(page)
        product_id, codes = await _create_category_and_product(page)
        await _receive_stock_and_see_the_dashboard_change(page, codes, before)
        await _stale_edit_is_refused(page, api, product_id)
        await _form_without_csrf_token_is_refused(page, codes[0])
        await _order_placed_and_shipped_through_the_api(page, api, live_server, codes)
        await _order_moved_along_with_the_buttons(page, api, live_server, codes)
        await _product_shows_what_is_left(page, product_id, codes)
        await _sign_out(page)


async def _sign_in_and_look_around(page: Page, live_server: LiveServer) -> None:
    await page.goto("/admin")
    await expect(page).to_have_url(f"{live_server.base_url}/admin/sign-in?next=%2Fadmin")
    await _look(page, "sign-in")
    await sign_in_with_browser(page, live_server.admin.email)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    await _look(page, "dashboard-before")
    # The first Tab reaches the skip link, the next ones the main navigation.
    await page.keyboard.press("Tab")
    await expect(page.locator(":focus")).to_have_text("Skip to content")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(page.locator(":focus")).to_have_text("Dashboard")
    nav = page.get_by_role("navigation", name="Main")
    for section in ("Products", "Categories", "Stock", "Holds", "Consistency"):
        await nav.get_by_role("link", name=section).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(section)
        await _look(page, f"section-{section.lower()}")
    await expect(page.get_by_role("status")).to_contain_text("stock levels agree")


async def _create_category_and_product(page: Page) -> tuple[int, list[str]]:
    await page.goto("/admin/catalog/categories")
    await page.locator("#name").fill("Hand tools")
    await page.get_by_role("button", name="Create category").click()
    await expect(page.get_by_role("status")).to_have_text("Category “Hand tools” created.")
    await page.locator("#name").fill("Hammers")
    await page.locator("#parent_id").select_option(label="Hand tools")
    await page.get_by_role("button", name="Create category").click()
    await expect(page.locator(".tree")).to_contain_text("Hammers")
    await _look(page, "categories")

    await page.goto("/admin/catalog/products")
    await page.get_by_role("link", name="New product").click()
    await page.get_by_role("button", name="Create product").click()
    await expect(page.locator("#name-error")).to_have_text("Enter the product's name.")
    await expect(page.locator("#category_id-error")).to_have_text("Choose a category.")
    await _look(page, "product-new-refused")

    codes = ["CLAW-16OZ", "CLAW-20OZ"]
    await page.get_by_label("Name").fill(LONG_NAME)
    await page.get_by_label("Category").select_option(label="Hand tools / Hammers")
    await page.get_by_label("Description").fill("Forged steel head.\nLifetime warranty.")
    for row, (code, price) in enumerate(zip(codes, ("24.50", "27.00"), strict=True)):
        await page.locator(f"#sku-{row}-code").fill(code.lower())
        await page.locator(f"#sku-{row}-price").fill(price)
    await page.get_by_role("button", name="Create product").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(LONG_NAME)
    match = re.search(r"/admin/catalog/products/(\d+)$", page.url)
    assert match, page.url
    await expect(page.locator(f'[data-price="{codes[0]}"]')).to_have_text("24.50 USD")
    await expect(page.locator(f'[data-price="{codes[1]}"]')).to_have_text("27.00 USD")
    await _look(page, "product")
    await _fits_the_phone(page, "product")

    await page.goto("/admin/catalog/products?q=claw")
    await expect(page.get_by_role("link", name=LONG_NAME)).to_be_visible()
    await _look(page, "products-search")
    await _fits_the_phone(page, "products")
    return int(match.group(1)), codes


async def _receive_stock_and_see_the_dashboard_change(
    page: Page, codes: list[str], before: dict[str, int]
) -> None:
    await _receive(page, codes[0], 40)
    await _receive(page, codes[1], 15)
    await expect(page.locator('[data-figure="on-hand"]')).to_have_text("15")
    await _look(page, "stock-sku")

    await page.get_by_role("link", name="Dashboard").click()
    after = await _dashboard(page)
    assert after == {
        "skus": before["skus"] + 2,
        "on_hand": before["on_hand"] + 55,
        "received": before["received"] + 55,
        "shipped": before["shipped"],
        "orders_shipped": before["orders_shipped"],
    }
    today = f"{utcnow().date():%Y-%m-%d}"
    await expect(page.locator("rect.chart-received title")).to_have_text(
        [f"Received {today}: {after['received']}"]
    )
    await expect(page.get_by_role("region", name="Low stock")).not_to_contain_text(codes[0])
    movements = page.get_by_role("region", name="Recent movements")
    await expect(movements.get_by_role("row").nth(1).get_by_role("cell")).to_have_text(
        [re.compile(r"UTC$"), codes[1], "MAIN", "receive", "+15", "0", "0", "receive"]
    )
    await _look(page, "dashboard-received")


async def _stale_edit_is_refused(page: Page, api: httpx.AsyncClient, product_id: int) -> None:
    await page.goto(f"/admin/catalog/products/{product_id}")
    await page.get_by_role("link", name="Edit product").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Edit {LONG_NAME}")
    # Someone else saves a change while this form is open.
    changed = await api.patch(
        f"{API}/products/{product_id}", json={"name": "Claw hammer", "version": 1}
    )
    assert changed.status_code == 200, changed.text

    await page.get_by_label("Name").fill("My edit")
    await page.get_by_role("button", name="Save product").click()
    await expect(page.get_by_role("alert")).to_have_text(STALE_EDIT)
    await expect(page.get_by_label("Name")).to_have_value("Claw hammer")
    await _look(page, "product-stale-edit")
    current = (await api.get(f"{API}/products/{product_id}")).json()
    assert (current["name"], current["version"]) == ("Claw hammer", 2)


async def _form_without_csrf_token_is_refused(page: Page, code: str) -> None:
    await page.goto(f"/admin/stock/{code}")
    form = page.locator(f'form[action="/admin/stock/{code}/adjustments"]')
    await form.locator('input[name="csrf_token"]').evaluate("field => field.remove()")
    await page.get_by_label("Change in units").fill("-40")
    await page.get_by_label("Reason").select_option("damage")
    await page.get_by_role("button", name="Apply adjustment").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Forbidden")
    await expect(page.get_by_role("alert")).to_have_text(CsrfRejected.default_detail)
    await _look(page, "csrf-refused")
    await page.goto(f"/admin/stock/{code}")
    await expect(page.locator('[data-figure="on-hand"]')).to_have_text("40")


async def _order_placed_and_shipped_through_the_api(
    page: Page, api: httpx.AsyncClient, live_server: LiveServer, codes: list[str]
) -> None:
    before = await _dashboard(page)
    items = [{"sku": codes[0], "quantity": 3}, {"sku": codes[1], "quantity": 1}]
    placed = await api.post(
        f"{API}/orders", json={"items": items, "user_id": live_server.customer.id}
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    shipped = await api.patch(
        f"{API}/orders/{order['id']}/status",
        json={"status": "shipped", "version": order["version"]},
    )
    assert shipped.status_code == 200, shipped.text

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Orders").click()
    await page.get_by_label("Status").select_option("shipped")
    await expect(page).to_have_url(f"{live_server.base_url}/admin/orders?status=shipped")
    row = page.locator(f'tr[data-order="{order["id"]}"]')
    await expect(row.get_by_role("cell")).to_have_text(
        [
            re.compile(r"UTC$"),
            live_server.customer.email,
            "shipped",
            f"3 \N{MULTIPLICATION SIGN} {codes[0]}, 1 \N{MULTIPLICATION SIGN} {codes[1]}",
            "100.50 USD",
        ]
    )
    await _look(page, "orders")
    await row.get_by_role("link", name=re.compile(order["id"])).click()
    await expect(page.locator("[data-status]")).to_have_text("shipped")
    await expect(page.locator("[data-total]")).to_have_text("100.50 USD")
    await expect(page.get_by_text("that is final")).to_be_visible()
    await _look(page, "order")
    await _fits_the_phone(page, "order")

    after = await _dashboard(page)
    assert after["shipped"] == before["shipped"] + 4
    assert after["on_hand"] == before["on_hand"] - 4
    assert after["orders_shipped"] == before["orders_shipped"] + 1
    today = f"{utcnow().date():%Y-%m-%d}"
    await expect(page.locator("rect.chart-shipped title")).to_have_text(
        [f"Shipped {today}: {after['shipped']}"]
    )
    await _look(page, "dashboard")


async def _order_moved_along_with_the_buttons(
    page: Page, api: httpx.AsyncClient, live_server: LiveServer, codes: list[str]
) -> None:
    placed = await api.post(
        f"{API}/orders",
        json={"items": [{"sku": codes[1], "quantity": 2}], "user_id": live_server.customer.id},
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    await page.goto(f"/admin/orders/{order_id}")
    await expect(page.locator("[data-status]")).to_have_text("pending")
    await page.get_by_role("button", name="Mark as paid").click()
    await expect(page.get_by_role("status")).to_have_text("Order marked as paid.")
    await expect(page.locator("[data-status]")).to_have_text("paid")
    # Cancelling asks first; the dialog is accepted.
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel order").click()
    await expect(page.locator("[data-status]")).to_have_text("cancelled")
    await _look(page, "order-cancelled")
    current = (await api.get(f"{API}/orders/{order_id}")).json()
    assert (current["status"], current["version"]) == ("cancelled", 3)
    stock = (await api.get(f"{API}/inventory/{codes[1]}")).json()
    assert (stock["on_hand"], stock["allocated"], stock["available"]) == (14, 0, 14)


async def _product_shows_what_is_left(page: Page, product_id: int, codes: list[str]) -> None:
    """40 + 15 received, 3 + 1 shipped, 2 ordered and cancelled (back on the shelf)."""
    await page.goto(f"/admin/catalog/products/{product_id}")
    await expect(page.locator(f'[data-available="{codes[0]}"]')).to_have_text("37")
    await expect(page.locator(f'[data-available="{codes[1]}"]')).to_have_text("14")
    await _look(page, "product-after-orders")


async def _sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await page.goto("/admin")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Staff sign-in")
