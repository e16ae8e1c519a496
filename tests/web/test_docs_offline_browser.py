"""/docs and /redoc in Chromium with every request off the server refused, as on a network
without internet access: both render from the service's own files. The Swagger UI page is
saved as docs/screenshots/docs-offline.png (shown in the README)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Route, expect

from tests.web.conftest import LAPTOP, LiveServer

pytestmark = pytest.mark.browser

README_SCREENSHOT = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "docs-offline.png"
)


async def test_the_docs_render_without_a_network(browser: Browser, live_server: LiveServer) -> None:
    server = urlsplit(live_server.base_url).netloc
    refused: list[str] = []
    asked: list[str] = []

    async def offline(route: Route) -> None:
        url = route.request.url
        asked.append(url)
        if urlsplit(url).netloc == server:
            await route.continue_()
        else:
            refused.append(url)
            await route.abort("internetdisconnected")

    context = await browser.new_context(viewport=LAPTOP)
    try:
        await context.route("**/*", offline)
        page = await context.new_page()

        await page.goto(f"{live_server.base_url}/docs")
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "Storekeeper", timeout=60_000
        )
        await expect(page.locator(".opblock").first).to_be_visible()
        assert await page.locator(".opblock").count() > 40
        await page.screenshot(path=str(README_SCREENSHOT))

        await page.goto(f"{live_server.base_url}/redoc")
        # ReDoc renders the whole document at once: slow on a busy machine.
        await expect(page.locator("h1").first).to_contain_text("Storekeeper", timeout=60_000)
        assert await page.locator("[data-section-id^='operation/']").count() > 40
    finally:
        await context.close()
    assert refused == []
    assert f"{live_server.base_url}/docs/assets/swagger-ui-bundle.js" in asked
    assert f"{live_server.base_url}/docs/assets/redoc.standalone.js" in asked
