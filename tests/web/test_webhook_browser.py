"""The webhook pages in a real browser (headless Chromium against a real server process, the
fixtures of `test_browser.py`): an admin creates an endpoint and sees its secret once."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.web.conftest import LAPTOP, PHONE, LiveServer, screenshot, sign_in_with_browser

pytestmark = pytest.mark.browser

# A literal public address: the live server refuses private targets and resolves nothing.
PUBLIC_URL = "https://93.184.215.14/browser-hooks"
SECRET_NOTE = "Copy it now: it will not be shown again."


async def _unlabelled_fields(page: Page) -> list[str]:
    fields: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(field => field.labels.length === 0)
            .map(field => field.name || field.id)"""
    )
    return fields


async def test_admin_creates_an_endpoint_and_sees_the_secret_once(
    page: Page, live_server: LiveServer
) -> None:
    await sign_in_with_browser(page, live_server.admin.email)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    assert await _unlabelled_fields(page) == []

    await page.get_by_label("URL").fill(PUBLIC_URL)
    await page.get_by_label("order.paid").check()
    await page.get_by_label("order.shipped").check()
    await page.get_by_label("Description").fill("Browser test endpoint")
    await page.get_by_role("button", name="Create endpoint").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Webhook endpoint created")
    await expect(page.get_by_role("alert")).to_contain_text(SECRET_NOTE)
    secret = await page.locator("[data-secret]").text_content()
    assert secret is not None and re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    await screenshot(page, "webhook-secret")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.set_viewport_size(LAPTOP)

    # The endpoint's page never shows it again, nor does the page reloaded.
    await page.get_by_role("link", name="go to the endpoint").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(r"Webhook endpoint \d+")
    )
    await expect(page.locator("[data-url]")).to_have_text(PUBLIC_URL)
    await expect(page.locator("[data-state]")).to_have_text("active")
    assert secret not in await page.content()
    await page.reload()
    assert secret not in await page.content() and SECRET_NOTE not in await page.content()
    await screenshot(page, "webhook-endpoint")

    # Rotating asks first, then shows the new secret once, the same way.
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("New signing secret")
    rotated = await page.locator("[data-secret]").text_content()
    assert rotated is not None and rotated.startswith("whsec_") and rotated != secret

    # Leave the shared server as it was: delete the endpoint.
    await page.get_by_role("link", name="go to the endpoint").click()
    assert rotated not in await page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete endpoint").click()
    await expect(page.get_by_role("status")).to_contain_text("deleted with its deliveries")
    await expect(page.get_by_text("No webhook endpoints yet.")).to_be_visible()
    await screenshot(page, "webhooks")
