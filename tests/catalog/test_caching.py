"""HTTP and Redis caching of public catalog reads: ETags, 304, Cache-Control, the
staleness bound after a stock change, catalog edits seen at once, Redis down."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, select

from storekeeper.app import create_app
from storekeeper.catalog import cache as catalog_cache
from storekeeper.catalog.models import CatalogVersion
from storekeeper.config import LockingStrategy, Settings, StockPolicy
from storekeeper.db import Database
from storekeeper.inventory import stock
from tests.catalog.conftest import API, Maker, StatementCounter

REDIS_URL = "redis://127.0.0.1:6379/13"
MAX_AGE = 5


class Clock:
    """The wall clock the catalog cache reads, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # 1000.0 starts a window of 5 seconds (window 200).
    fake = Clock(1000.0)
    monkeypatch.setattr(catalog_cache, "clock", fake)
    return fake


async def _product(
    make_category: Maker, client: httpx.AsyncClient, staff_headers: dict[str, str], code: str
) -> dict[str, Any]:
    category = await make_category(f"Cached {uuid.uuid4().hex[:6]}")
    body = {
        "name": "Cached product",
        "category_id": category["id"],
        "skus": [{"code": code, "price_cents": 1200}],
    }
    response = await client.post(f"{API}/products", json=body, headers=staff_headers)
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


async def _receive(db: Database, code: str, quantity: int) -> None:
    async with db.transaction() as session:
        await stock.adjust_stock(
            session,
            code,
            delta=quantity,
            reason="receive",
            policy=StockPolicy(LockingStrategy.ATOMIC),
        )


async def _hold(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> None:
    body = {"client_token": uuid.uuid4().hex, "items": [{"sku": code, "quantity": 1}]}
    response = await client.post(f"{API}/inventory/holds", json=body, headers=headers)
    assert response.status_code == 201, response.text


async def _version(db: Database) -> int:
    async with db.transaction(write=False) as session:
        return int(await session.scalar(select(CatalogVersion.version)) or 0)


def _available(page: dict[str, Any], code: str) -> int:
    for product in page["items"]:
        for sku in product["skus"]:
            if sku["code"] == code:
                return int(sku["available"])
    raise AssertionError(f"{code} not listed")


async def test_list_and_product_carry_etag_and_cache_control_and_answer_304(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str], clock: Clock
) -> None:
    product = await _product(make_category, client, staff_headers, "ETAG-1")
    for url in (f"{API}/products?limit=10", f"{API}/products/{product['id']}"):
        first = await client.get(url)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag == catalog_cache.etag_of(first.content)
        assert first.headers["cache-control"] == f"public, max-age={MAX_AGE}"
        again = await client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        other = await client.get(url, headers={"If-None-Match": '"other", "tags"'})
        assert other.status_code == 200
        assert other.json() == first.json()
    clock.now = 1003.4
    late = await client.get(f"{API}/products?limit=10", headers={"If-None-Match": etag})
    assert late.headers["cache-control"] == "public, max-age=1"
    # Past its max-age, a copy that is still what would be sent is still current.
    clock.now = 1017.0
    later = await client.get(url, headers={"If-None-Match": etag})
    assert later.status_code == 304


async def test_staff_reads_of_deleted_rows_are_not_cached(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    await _product(make_category, client, staff_headers, "ETAG-2")
    response = await client.get(f"{API}/products?include_deleted=true", headers=staff_headers)
    assert response.status_code == 200
    assert "etag" not in response.headers
    assert "cache-control" not in response.headers


async def test_a_catalog_edit_bumps_the_version_and_a_hold_does_not(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    staff_headers: dict[str, str],
    clock: Clock,
) -> None:
    product = await _product(make_category, client, staff_headers, "ETAG-3")
    await _receive(db, "ETAG-3", 10)
    url = f"{API}/products/{product['id']}"
    etag = (await client.get(url)).headers["etag"]
    before = await _version(db)

    await _hold(client, staff_headers, "ETAG-3")
    # Holds never touch the version row: it would serialise every hold behind one row.
    # Without Redis the page is read afresh: its availability, and so its tag, changed.
    assert await _version(db) == before
    held = await client.get(url, headers={"If-None-Match": etag})
    assert held.status_code == 200
    assert held.json()["skus"][0]["available"] == 9
    etag = held.headers["etag"]

    response = await client.patch(
        url, json={"name": "Renamed", "version": product["version"]}, headers=staff_headers
    )
    assert response.status_code == 200, response.text
    assert await _version(db) == before + 1
    fresh = await client.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.json()["name"] == "Renamed"
    assert fresh.headers["etag"] != etag


@pytest.fixture
def redis_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"redis_url": REDIS_URL, "cache_key_prefix": f"test-{uuid.uuid4().hex}"}
    )


@pytest.fixture
async def redis_client(redis_settings: Settings, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second application on the same database, with the Redis catalog cache on."""
    cached = create_app(redis_settings)
    async with cached.router.lifespan_context(cached):
        transport = httpx.ASGITransport(app=cached, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def _cache_count(outcome: str) -> float:
    value = REGISTRY.get_sample_value("storekeeper_catalog_cache_total", {"outcome": outcome})
    return value or 0.0


async def test_a_cached_list_is_never_older_than_max_age_after_a_stock_change(
    client: httpx.AsyncClient,
    redis_client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    staff_headers: dict[str, str],
    clock: Clock,
) -> None:
    await _product(make_category, client, staff_headers, "STALE-1")
    await _receive(db, "STALE-1", 10)
    url = f"{API}/products?limit=50"
    misses = _cache_count("miss")
    assert _available((await redis_client.get(url)).json(), "STALE-1") == 10
    assert _cache_count("miss") == misses + 1

    await _hold(client, staff_headers, "STALE-1")
    hits = _cache_count("hit")
    clock.now = 1004.9
    # Still the window the page was read in: Redis answers, with what it read then, and
    # says it may be reused for no longer than the window lasts.
    cached = await redis_client.get(url)
    assert _cache_count("hit") == hits + 1
    assert _available(cached.json(), "STALE-1") == 10
    assert cached.headers["cache-control"] == "public, max-age=0"
    clock.now = 1005.0
    # max_age after the read, nothing cached before the hold is served any more.
    assert _available((await redis_client.get(url)).json(), "STALE-1") == 9
    assert _available((await client.get(url)).json(), "STALE-1") == 9


async def test_a_catalog_edit_is_seen_through_redis_at_once(
    client: httpx.AsyncClient,
    redis_client: httpx.AsyncClient,
    make_category: Maker,
    staff_headers: dict[str, str],
    clock: Clock,
) -> None:
    product = await _product(make_category, client, staff_headers, "EDIT-1")
    url = f"{API}/products/{product['id']}"
    assert (await redis_client.get(url)).json()["name"] == "Cached product"
    response = await client.patch(
        url, json={"name": "Edited", "version": product["version"]}, headers=staff_headers
    )
    assert response.status_code == 200, response.text
    assert (await redis_client.get(url)).json()["name"] == "Edited"


async def test_a_redis_hit_costs_one_statement_and_so_does_a_304_from_redis(
    client: httpx.AsyncClient,
    redis_client: httpx.AsyncClient,
    make_category: Maker,
    staff_headers: dict[str, str],
    statement_counter: StatementCounter,
    clock: Clock,
    backend: str,
) -> None:
    await _product(make_category, client, staff_headers, "COUNT-1")
    # The version read; on SQLite the transaction's explicit BEGIN is one more.
    expected = 2 if backend == "sqlite" else 1
    url = f"{API}/products?limit=50"
    etag = (await redis_client.get(url)).headers["etag"]

    async def statements(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
        statement_counter.count = 0
        statement_counter.active = True
        response = await http.get(url, headers=headers)
        statement_counter.active = False
        assert response.status_code in (200, 304)
        return statement_counter.count

    cached_app = redis_client._transport.app  # type: ignore[attr-defined]
    event.listen(cached_app.state.db.engine.sync_engine, "before_cursor_execute", statement_counter)
    assert await statements(redis_client, {}) == expected
    assert await statements(redis_client, {"If-None-Match": etag}) == expected


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


async def test_redis_down_means_uncached_200s(
    client: httpx.AsyncClient,
    make_category: Maker,
    staff_headers: dict[str, str],
    settings: Settings,
    closed_port: int,
) -> None:
    product = await _product(make_category, client, staff_headers, "DOWN-1")
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})
    application = create_app(down)
    errors = _cache_count("error")
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for url in (f"{API}/products?limit=10", f"{API}/products/{product['id']}"):
                for _ in range(3):
                    response = await http.get(url)
                    assert response.status_code == 200
                    assert response.json() == (await client.get(url)).json()
    assert _cache_count("error") >= errors + 1


async def test_the_public_list_rendered_from_rows_is_the_models_rendering(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Rendering")
    body = {
        "name": "Chemise été",
        "description": None,
        "category_id": category["id"],
        "attributes": {"material": "lin", "weight": 1.5, "tags": ["a", "é"]},
        "skus": [
            {"code": "REND-1", "price_cents": 1999, "attributes": {"size": "M"}},
            {"code": "REND-2", "price_cents": 2999, "low_stock_threshold": 2},
        ],
    }
    assert (
        await client.post(f"{API}/products", json=body, headers=staff_headers)
    ).status_code == 201
    await _product(make_category, client, staff_headers, "REND-3")
    await _receive(db, "REND-1", 7)
    # Staff asking for deleted rows (there are none) get the models' rendering.
    for query in ("limit=50", "limit=1"):
        public = await client.get(f"{API}/products?{query}")
        modelled = await client.get(
            f"{API}/products?{query}&include_deleted=true", headers=staff_headers
        )
        assert public.status_code == modelled.status_code == 200
        assert public.content == modelled.content
    assert public.json()["next_cursor"] is not None


async def test_a_public_page_is_the_version_and_two_statements_whatever_its_size(
    client: httpx.AsyncClient,
    make_category: Maker,
    staff_headers: dict[str, str],
    statement_counter: StatementCounter,
    backend: str,
) -> None:
    for number in range(30):
        await _product(make_category, client, staff_headers, f"SIZE-{number}")

    async def statements(limit: int) -> int:
        statement_counter.count = 0
        statement_counter.active = True
        response = await client.get(f"{API}/products?limit={limit}")
        statement_counter.active = False
        assert response.status_code == 200
        assert len(response.json()["items"]) == limit
        return statement_counter.count

    # The version, the products, their live SKUs with availability (and SQLite's BEGIN).
    expected = 4 if backend == "sqlite" else 3
    assert await statements(1) == expected
    assert await statements(30) == expected
