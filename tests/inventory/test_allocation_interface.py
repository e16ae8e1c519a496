"""The service interface orders and checkout call: allocate, fulfil, cancel."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database
from storekeeper.errors import IdempotencyKeyReused, InsufficientStock, ValidationFailed
from storekeeper.inventory import service
from storekeeper.inventory.models import StockLevel
from storekeeper.inventory.service import StockLine
from tests.inventory.conftest import Receiver, SkuFactory

STRATEGIES = list(LockingStrategy)


async def _figures(db: Database, sku_id: int) -> tuple[int, int, int]:
    async with db.transaction(write=False) as session:
        level = (
            await session.execute(select(StockLevel).where(StockLevel.sku_id == sku_id))
        ).scalar_one()
        return level.on_hand, level.reserved, level.allocated


@pytest.mark.parametrize("locking", STRATEGIES)
async def test_allocate_fulfil_cancel(
    db: Database, make_sku: SkuFactory, receive: Receiver, locking: LockingStrategy
) -> None:
    apple = await make_sku("APPLE")
    pear = await make_sku("PEAR")
    await receive("APPLE", 10)
    await receive("PEAR", 3)

    async with db.transaction() as session:
        first = await service.allocate_stock(
            session,
            [StockLine(pear, 2), StockLine(apple, 4)],
            policy=StockPolicy(locking),
            client_token="order-1",
            request_fingerprint="f1",
        )
    assert first.status == "allocated"
    assert await _figures(db, apple) == (10, 0, 4)
    assert await _figures(db, pear) == (3, 0, 2)

    async with db.transaction() as session:
        again = await service.allocate_stock(
            session,
            [StockLine(pear, 2), StockLine(apple, 4)],
            policy=StockPolicy(locking),
            client_token="order-1",
            request_fingerprint="f1",
        )
    assert again.id == first.id
    assert await _figures(db, apple) == (10, 0, 4)

    with pytest.raises(IdempotencyKeyReused):
        async with db.transaction() as session:
            await service.allocate_stock(
                session,
                [StockLine(apple, 1)],
                policy=StockPolicy(locking),
                client_token="order-1",
                request_fingerprint="f2",
            )

    with pytest.raises(InsufficientStock) as short:
        async with db.transaction() as session:
            await service.allocate_stock(
                session,
                [StockLine(apple, 6), StockLine(pear, 2)],
                policy=StockPolicy(locking),
                client_token="order-2",
                request_fingerprint="f3",
            )
    assert short.value.shortages == [{"sku": "PEAR", "requested": 2, "available": 1}]
    assert await _figures(db, apple) == (10, 0, 4)

    async with db.transaction() as session:
        fulfilled = await service.fulfil_allocation(session, first.id)
    assert fulfilled.status == "fulfilled"
    assert await _figures(db, apple) == (6, 0, 0)
    assert await _figures(db, pear) == (1, 0, 0)

    async with db.transaction() as session:
        second = await service.allocate_stock(
            session,
            [StockLine(apple, 6)],
            policy=StockPolicy(locking),
            client_token="order-3",
            request_fingerprint="f4",
        )
        cancelled = await service.cancel_allocation(session, second.id)
    assert cancelled.status == "cancelled"
    assert await _figures(db, apple) == (6, 0, 0)


async def test_deleted_sku_refuses_allocation(
    db: Database, make_sku: SkuFactory, receive: Receiver
) -> None:
    gone = await make_sku("GONE", deleted=True)
    with pytest.raises(ValidationFailed):
        async with db.transaction() as session:
            await service.allocate_stock(
                session,
                [StockLine(gone, 1)],
                policy=StockPolicy(LockingStrategy.ATOMIC),
                client_token="t",
                request_fingerprint="f",
            )
