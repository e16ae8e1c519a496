"""Security headers on every response, the metrics token, and docs that can be turned off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from storekeeper.app import create_app
from storekeeper.config import Environment, Settings
from tests.accounts.conftest import PROBLEM

HSTS = "max-age=31536000; includeSubDomains"


@asynccontextmanager
async def _client(settings: Settings, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.mark.parametrize(
    "path", ["/health", "/api/v1/catalog/categories", "/api/v1/users/me", "/admin/sign-in", "/nope"]
)
async def test_every_response_says_nosniff_and_no_hsts_outside_production(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert "strict-transport-security" not in response.headers


async def test_production_responses_carry_hsts(settings: Settings) -> None:
    async with _client(settings, env=Environment.PRODUCTION, secret_key="k" * 40) as client:
        for path in ("/health", "/api/v1/users/me"):
            response = await client.get(path)
            assert response.headers.get_list("strict-transport-security") == [HSTS]
            assert response.headers["x-content-type-options"] == "nosniff"


async def test_metrics_need_the_token_when_one_is_set(settings: Settings) -> None:
    async with _client(settings, metrics_token="s3cret-metrics-token") as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic s3cret-metrics-token"},
        ):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == PROBLEM
            assert refused.json()["code"] == "unauthorized"
        allowed = await client.get(
            "/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"}
        )
        assert allowed.status_code == 200
        assert "storekeeper_http_requests_total" in allowed.text


async def test_metrics_are_open_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


async def test_docs_can_be_turned_off(settings: Settings) -> None:
    async with _client(settings, docs_enabled=False) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404
    async with _client(settings) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 200
