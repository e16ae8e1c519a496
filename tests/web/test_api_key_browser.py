"""The API key pages in a real browser (headless Chromium against a real server process, the
fixtures of `test_browser.py`): an admin creates a key, sees it once, and revokes it."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from storekeeper.web.api_key_pages import NO_SCOPES
from tests.web.conftest import LAPTOP, PHONE, LiveServer, screenshot, sign_in_with_browser

pytestmark = pytest.mark.browser

KEY_NOTE = "Copy it now: it will not be shown again."
NAME = "Browser test key"


async def _unlabelled_fields(page: Page) -> list[str]:
    fields: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(field => field.labels.length === 0)
            .map(field => field.name || field.id)"""
    )
    return fields


async def test_admin_creates_a_key_sees_it_once_and_revokes_it(
    page: Page, live_server: LiveServer
) -> None:
    await sign_in_with_browser(page, live_server.admin.email)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("API keys")
    assert await _unlabelled_fields(page) == []

    # No scope: refused next to the scopes, with the name kept.
    await page.get_by_label("Name").fill(NAME)
    await page.get_by_role("button", name="Create key").click()
    await expect(page.locator("#scopes-error")).to_have_text(NO_SCOPES)
    await expect(page.get_by_label("Name")).to_have_value(NAME)

    await page.get_by_label("inventory:read").check()
    await page.get_by_label("Expires (UTC)").fill("2099-01-31T17:00")
    await page.get_by_label("Requests per minute").fill("120")
    await page.get_by_role("button", name="Create key").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("API key created")
    await expect(page.get_by_role("alert")).to_contain_text(KEY_NOTE)
    key = await page.locator("[data-api-key]").text_content()
    assert key is not None and re.fullmatch(r"sk_[A-Za-z0-9_-]{43}", key)
    await screenshot(page, "api-key-created")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.set_viewport_size(LAPTOP)

    # The list never shows it again, nor does the page reloaded.
    await page.get_by_role("link", name="go to the API keys").click()
    row = page.get_by_role("row").filter(has_text=NAME)
    await expect(row).to_contain_text(key[:10])
    await expect(row).to_contain_text("2099-01-31 17:00 UTC")
    assert key not in await page.content()
    await page.reload()
    assert key not in await page.content() and KEY_NOTE not in await page.content()
    await screenshot(page, "api-keys")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.set_viewport_size(LAPTOP)

    # Revoking asks first; leave the shared server as it was.
    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("status")).to_contain_text("revoked")
    await expect(page.get_by_text("No API keys yet.")).to_be_visible()
