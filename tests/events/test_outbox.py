"""The outbox: events commit with their change or not at all, get gapless public ids in
the order they became visible, and fan out to the webhook endpoints that subscribe."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, select

from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events import outbox
from storekeeper.events.models import Event, WebhookDelivery, WebhookEndpoint
from storekeeper.events.publisher import publish_all

EVENTS = "/api/v1/events"


async def _write(session: object, count: int, event_type: str = outbox.ORDER_PAID) -> None:
    await outbox.record_many(session, event_type, [{"n": n} for n in range(count)])  # type: ignore[arg-type]


async def _endpoint(db: Database, event_types: list[str], *, age: timedelta) -> int:
    async with db.transaction() as session:
        endpoint = WebhookEndpoint(
            url="http://127.0.0.1:9/hook",
            event_types=event_types,
            is_active=True,
            secret="whsec_" + "A" * 32,
            created_at=utcnow() - age,
            updated_at=utcnow() - age,
        )
        session.add(endpoint)
        await session.flush()
        return endpoint.id


async def test_published_events_get_gapless_ids_and_the_feed_lists_them_oldest_first(
    client: httpx.AsyncClient, db: Database, staff_headers: dict[str, str]
) -> None:
    await UnitOfWork(db).run(_write, 3)
    await UnitOfWork(db).run(_write, 2, outbox.ORDER_SHIPPED)
    unpublished = await client.get(EVENTS, headers=staff_headers)
    assert unpublished.status_code == 200 and unpublished.json()["items"] == []

    assert await publish_all(db) == 5
    assert await publish_all(db) == 0
    page = (await client.get(f"{EVENTS}?limit=4", headers=staff_headers)).json()
    assert [event["id"] for event in page["items"]] == [1, 2, 3, 4]
    assert [event["type"] for event in page["items"]] == ["order.paid"] * 3 + ["order.shipped"]
    assert page["items"][0]["data"] == {"n": 0}
    rest = (await client.get(f"{EVENTS}?after=4", headers=staff_headers)).json()
    assert [event["id"] for event in rest["items"]] == [5]
    following = (
        await client.get(f"{EVENTS}?cursor={page['next_cursor']}", headers=staff_headers)
    ).json()
    assert [event["id"] for event in following["items"]] == [5]
    shipped = (await client.get(f"{EVENTS}?type=order.shipped", headers=staff_headers)).json()
    assert [event["id"] for event in shipped["items"]] == [4, 5]


async def test_a_rolled_back_unit_writes_no_event(db: Database) -> None:
    async def fails(session: object) -> None:
        await _write(session, 2)
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await UnitOfWork(db).run(fails)
    async with db.transaction(write=False) as session:
        assert (await session.scalars(select(Event.seq))).all() == []
    assert await publish_all(db) == 0


async def test_the_feed_is_for_staff(
    client: httpx.AsyncClient, customer_headers: dict[str, str]
) -> None:
    assert (await client.get(EVENTS)).status_code == 401
    denied = await client.get(EVENTS, headers=customer_headers)
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"


async def test_events_fan_out_to_subscribed_endpoints_that_existed_when_they_occurred(
    db: Database,
) -> None:
    everything = await _endpoint(db, ["*"], age=timedelta(hours=1))
    shipped_only = await _endpoint(db, ["order.shipped"], age=timedelta(hours=1))
    await UnitOfWork(db).run(_write, 1, outbox.ORDER_PAID)
    await UnitOfWork(db).run(_write, 1, outbox.ORDER_SHIPPED)
    # Created after those events occurred: it receives none of them.
    newcomer = await _endpoint(db, ["*"], age=timedelta(0))

    async def ping(session: object) -> None:
        await outbox.record(session, outbox.WEBHOOK_PING, {}, endpoint_id=shipped_only)  # type: ignore[arg-type]

    await UnitOfWork(db).run(ping)
    await publish_all(db)
    async with db.transaction(write=False) as session:
        rows = (
            await session.execute(
                select(
                    WebhookDelivery.endpoint_id, WebhookDelivery.event_id, WebhookDelivery.status
                ).order_by(WebhookDelivery.endpoint_id, WebhookDelivery.event_id)
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        (everything, 1, "pending"),
        (everything, 2, "pending"),
        (shipped_only, 2, "pending"),
        (shipped_only, 3, "pending"),
    ]
    assert newcomer not in {row.endpoint_id for row in rows}


async def test_an_idle_publication_run_only_reads(db: Database) -> None:
    """Every process runs the publisher every second: with nothing to publish it sends one
    read and takes no lock (on SQLite, not the database's write lock)."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await publish_all(db) == 0
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    queries = [statement for statement in sent if not statement.startswith(("BEGIN", "COMMIT"))]
    assert len(queries) == 1 and queries[0].startswith("SELECT events.seq")
    assert not any("FOR UPDATE" in statement or "IMMEDIATE" in statement for statement in sent)
