"""The statements a checkout sends: the figures of the hot path, for 1 line and for 10, so a
change that adds a round trip (or one per line) fails here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from storekeeper.db import Database
from tests.orders.conftest import API, HeadersMaker, SkuMaker, add_to_cart

CHECKOUT = f"{API}/carts/me/checkout"

# (1 line, 10 lines): statements of one checkout, the authentication lookup included.
EXPECTED = {"sqlite": (15, 51), "postgresql": (11, 20)}


@contextmanager
def statements_sent(db: Database) -> Iterator[list[str]]:
    """Every statement the application sends to the database inside the block."""
    sent: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split())[:70])

    event.listen(db.engine.sync_engine, "before_cursor_execute", _record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", _record)


async def _checkout_statements(
    client: httpx.AsyncClient, db: Database, headers: dict[str, str], codes: list[str]
) -> list[str]:
    for code in codes:
        await add_to_cart(client, headers, code, 2)
    with statements_sent(db) as sent:
        response = await client.post(CHECKOUT, headers=headers)
    assert response.status_code == 201, response.text
    assert len(response.json()["items"]) == len(codes)
    return sent


async def test_a_checkout_costs_the_same_statements_for_one_line_and_for_ten(
    client: httpx.AsyncClient,
    db: Database,
    make_sku: SkuMaker,
    make_customer: HeadersMaker,
    backend: str,
) -> None:
    codes = [f"C{number}" for number in range(10)]
    for code in codes:
        await make_sku(code, stock=100)
    # A first checkout warms what a process does once (caches of the app and the driver).
    await _checkout_statements(client, db, await make_customer(), codes[:1])

    one = await _checkout_statements(client, db, await make_customer(), codes[:1])
    ten = await _checkout_statements(client, db, await make_customer(), codes)
    print("one line:", len(one), *one, sep="\n  ")
    print("ten lines:", len(ten), *ten, sep="\n  ")
    # The SKUs are read once (with the cart) and the order lines written by one INSERT, so
    # what still grows with the lines is the claim: on PostgreSQL one statement per line
    # (level, ledger row and reservation line together), on SQLite four (level update,
    # ledger row, reservation line, location code).
    assert (len(one), len(ten)) == EXPECTED[backend]
