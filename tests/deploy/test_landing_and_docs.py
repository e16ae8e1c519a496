"""The landing page at `/` and the documentation pages that load nothing from elsewhere."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from storekeeper.app import create_app
from storekeeper.config import Settings

# Every URL a page refers to: src/href attributes and the urls its inline script passes.
_REFERENCES = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@asynccontextmanager
async def _client(settings: Settings, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCES.findall(html)]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/docs",
            {
                "/docs/assets/swagger-ui.css",
                "/docs/assets/favicon.png",
                "/docs/assets/swagger-ui-bundle.js",
                "/openapi.json",
            },
        ),
        ("/redoc", {"/docs/assets/favicon.png", "/docs/assets/redoc.standalone.js"}),
    ],
)
async def test_the_docs_pages_load_only_same_origin_assets(
    client: httpx.AsyncClient, page: str, expected: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "cdn." not in html
    assert "https://" not in html and "http://" not in html
    references = set(_references(html))
    # ReDoc takes its document as an attribute of its element.
    if page == "/redoc":
        assert 'spec-url="/openapi.json"' in html
    assert references == expected
    for reference in references:
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 1000, reference


async def test_swagger_ui_asks_no_validator(client: httpx.AsyncClient) -> None:
    assert '"validatorUrl": null' in (await client.get("/docs")).text


async def test_the_assets_have_their_media_types(client: httpx.AsyncClient) -> None:
    for name, media_type in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "text/javascript"),
        ("favicon.png", "image/png"),
    ):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == media_type
    missing = await client.get("/docs/assets/core.py")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_landing_page_links_what_the_service_serves(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    links = re.findall(r'<a href="([^"]+)">', response.text)
    assert links == ["/docs", "/redoc", "/shop", "/admin", "/health", "/health/ready"]
    for link in links:
        # /admin sends a visitor who is not signed in to the sign-in page.
        assert (await client.get(link)).status_code == (303 if link == "/admin" else 200), link
    assert "<h1>Storekeeper</h1>" in response.text


async def test_without_docs_the_landing_page_links_none(settings: Settings) -> None:
    async with _client(settings, docs_enabled=False) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css"):
            assert (await client.get(path)).status_code == 404, path
        links = re.findall(r'<a href="([^"]+)">', (await client.get("/")).text)
        assert links == ["/shop", "/admin", "/health", "/health/ready"]


async def test_the_redoc_bundle_asks_for_no_cdn_image(client: httpx.AsyncClient) -> None:
    bundle = (await client.get("/docs/assets/redoc.standalone.js")).text
    assert "cdn.redoc.ly" not in bundle
    assert 'alt:"redocly logo",onError:()=>t(!1),src:"data:,"' in bundle
