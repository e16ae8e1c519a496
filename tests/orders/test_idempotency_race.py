"""The database decides between concurrent requests with one Idempotency-Key: the second
waits on the unique index while the first is uncommitted, then answers with its order."""

from __future__ import annotations

import asyncio

from storekeeper.accounts.models import User
from storekeeper.db import Database
from storekeeper.orders import service
from storekeeper.orders.schemas import OrderOut
from tests.orders.conftest import Figures, SkuMaker, written_events


async def test_the_unique_key_decides_between_concurrent_orders(
    db: Database,
    postgres_only: None,
    customer_user: User,
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("KEYED", stock=10)

    async def place() -> service.OrderView:
        async with db.transaction() as session:
            return await service.place_order(
                session, actor=customer_user, items=[("KEYED", 2)], idempotency_key="same"
            )

    async with db.transaction() as session:
        first = await service.place_order(
            session, actor=customer_user, items=[("KEYED", 2)], idempotency_key="same"
        )
        second_request = asyncio.create_task(place())
        await asyncio.sleep(0.5)
        # Neither the lookup nor anything in memory stops it: it is queued on the index.
        assert not second_request.done()
    second = await second_request
    assert first.created is True
    assert second.created is False
    assert second.order.id == first.order.id
    assert [(line.sku_code, line.quantity) for line in second.lines] == [("KEYED", 2)]
    assert await figures("KEYED") == (10, 0, 2, 8)
    # The loser wrote no event: one order, one order.created.
    assert await written_events(db) == [
        ("order.created", OrderOut.from_view(first).model_dump(mode="json"))
    ]
