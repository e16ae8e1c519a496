"""The staff pages in a real browser: headless Chromium against a real server process."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from storekeeper.web.sign_in import NOT_STAFF
from tests.web.conftest import PHONE, LiveServer, screenshot, sign_in_with_browser

pytestmark = pytest.mark.browser


async def test_customer_is_refused_at_sign_in(page: Page, live_server: LiveServer) -> None:
    await sign_in_with_browser(page, live_server.customer.email)
    await expect(page.get_by_role("alert")).to_have_text(NOT_STAFF)
    await expect(page).to_have_url(f"{live_server.base_url}/admin/sign-in")
    await screenshot(page, "sign-in-customer-refused")


async def test_admin_signs_in_sees_the_dashboard_and_signs_out(
    page: Page, live_server: LiveServer
) -> None:
    await page.goto("/admin")
    await expect(page).to_have_url(f"{live_server.base_url}/admin/sign-in?next=%2Fadmin")
    await screenshot(page, "sign-in")
    await sign_in_with_browser(page, live_server.admin.email)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    await expect(page.locator('[data-figure="skus"]')).to_have_text("0")
    await screenshot(page, "dashboard-empty")

    await page.set_viewport_size(PHONE)
    await screenshot(page, "dashboard-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await page.goto("/admin")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Staff sign-in")
