"""/metrics: the business gauges computed at each scrape from one statement, no `_created`
series, and a scrape that still answers while the database does not."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event, insert, update

from storekeeper.app import create_app
from storekeeper.catalog.models import Sku
from storekeeper.config import LockingStrategy, Settings, StockPolicy
from storekeeper.db import Database, utcnow
from storekeeper.events.models import Event, WebhookDelivery, WebhookEndpoint
from storekeeper.inventory import stock
from storekeeper.inventory.models import Reservation
from storekeeper.notifications.models import Email
from tests.web.shop import stocked_shop


def _samples(text: str, prefix: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


async def _arrange(db: Database) -> None:
    # Levels (default threshold 5): OUT received then all taken out; LOW 4 and EDGE 5 at or
    # under the threshold; FINE 50; OWN 8 under its own threshold of 10; GONE is deleted.
    await stocked_shop(db, {"OUT": 2, "LOW": 4, "EDGE": 5, "FINE": 50, "OWN": 8, "GONE": 0})
    now = utcnow()
    async with db.transaction() as session:
        await stock.adjust_stock(
            session, "OUT", delta=-2, reason="damage", policy=StockPolicy(LockingStrategy.ATOMIC)
        )
        await session.execute(update(Sku).where(Sku.code == "OWN").values(low_stock_threshold=10))
        await session.execute(update(Sku).where(Sku.code == "GONE").values(is_deleted=True))
    async with db.transaction() as session:
        # Every event so far published: the backlog below is only what is inserted here.
        await session.execute(update(Event).values(id=Event.seq, published_at=now))
        reservations = [
            ("held", now + timedelta(minutes=5)),
            ("held", now + timedelta(minutes=10)),
            ("held", now - timedelta(seconds=1)),  # expired, not swept yet: not live
            ("released", None),
            ("allocated", None),
        ]
        await session.execute(
            insert(Reservation),
            [
                {
                    "client_token": f"t{index}",
                    "request_fingerprint": "f",
                    "status": status,
                    "expires_at": expires_at,
                }
                for index, (status, expires_at) in enumerate(reservations)
            ],
        )
        top = max(
            (await session.execute(Event.__table__.select())).mappings(), key=lambda r: r["seq"]
        )["seq"]
        published = top + 100
        await session.execute(
            insert(Event),
            [
                {"type": "test.published", "data": {}, "id": published, "published_at": now},
                {"type": "test.waiting", "data": {}},
                {"type": "test.waiting", "data": {}},
                {"type": "test.waiting", "data": {}},
            ],
        )
        endpoint_id = (
            await session.execute(
                insert(WebhookEndpoint)
                .values(url="https://example.com/hook", event_types=["*"], secret="s" * 32)
                .returning(WebhookEndpoint.id)
            )
        ).scalar_one()
        await session.execute(
            insert(WebhookDelivery),
            [
                {"endpoint_id": endpoint_id, "event_id": event_id, "status": status}
                for event_id, status in (
                    (published, "pending"),
                    (published - 100, "failed"),
                    (published - 101, "succeeded"),
                    (published - 102, "dead"),
                )
                if event_id > 0
            ],
        )
        await session.execute(
            insert(Email),
            [
                {
                    "event_id": published,
                    "kind": "order_confirmation",
                    "to_address": f"c{index}@example.com",
                    "subject": "s",
                    "body_text": "b",
                    "body_html": "b",
                    "status": status,
                }
                for index, status in enumerate(["pending", "failed", "sent", "skipped", "dead"])
            ],
        )


async def test_the_business_gauges_have_exact_figures(
    client: httpx.AsyncClient, db: Database
) -> None:
    await _arrange(db)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        response = await client.get("/metrics")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert response.status_code == 200
    assert _samples(response.text, "storekeeper_business_figures_up") == {
        "storekeeper_business_figures_up": 1.0
    }
    assert _samples(response.text, "storekeeper_stock_levels") == {
        'storekeeper_stock_levels{state="out"}': 1.0,
        'storekeeper_stock_levels{state="low"}': 3.0,  # LOW, EDGE, OWN
    }
    assert _samples(response.text, "storekeeper_holds_live") == {"storekeeper_holds_live": 2.0}
    assert _samples(response.text, "storekeeper_outbox_backlog") == {
        'storekeeper_outbox_backlog{queue="events"}': 3.0,
        'storekeeper_outbox_backlog{queue="webhook_deliveries"}': 2.0,
        'storekeeper_outbox_backlog{queue="emails"}': 2.0,
    }
    assert "# TYPE storekeeper_outbox_backlog gauge" in response.text
    # One statement for all of them.
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


async def test_an_empty_database_gives_zeros(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert _samples(text, "storekeeper_stock_levels") == {
        'storekeeper_stock_levels{state="out"}': 0.0,
        'storekeeper_stock_levels{state="low"}': 0.0,
    }
    assert _samples(text, "storekeeper_holds_live") == {"storekeeper_holds_live": 0.0}


async def test_no_created_series(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    text = (await client.get("/metrics")).text
    assert "storekeeper_http_requests_total{" in text
    assert re.findall(r"^\w+_created\b.*$", text, flags=re.MULTILINE) == []


async def test_metrics_answer_while_the_database_is_down(settings: Settings) -> None:
    dead = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
    )
    app = create_app(dead)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
    assert response.status_code == 200
    assert _samples(response.text, "storekeeper_business_figures_up") == {
        "storekeeper_business_figures_up": 0.0
    }
    assert "storekeeper_stock_levels" not in response.text
    assert "storekeeper_http_requests_total" in response.text
