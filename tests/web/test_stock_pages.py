"""Stock, holds and consistency pages over HTTP (no browser)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import update

from storekeeper.accounts.models import User
from storekeeper.db import Database
from storekeeper.inventory.models import StockLevel
from storekeeper.pagination import encode_cursor
from storekeeper.web import stock_pages
from tests.catalog.conftest import StatementCounter
from tests.web.conftest import SignIn, count_statements, csrf_of
from tests.web.shop import stocked_shop


async def _adjust(client: httpx.AsyncClient, code: str, **data: str) -> httpx.Response:
    page = await client.get(f"/admin/stock/{code}")
    return await client.post(
        f"/admin/stock/{code}/adjustments", data={**data, "csrf_token": csrf_of(page)}
    )


async def test_adjustments_change_levels_ledger_and_chart(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"HAM-1": 0, "HAM-2": 4})
    await sign_in("staff@example.com")

    received = await _adjust(client, "ham-1", delta="25", reason="receive", location="", note="")
    assert received.status_code == 303
    assert received.headers["location"] == "/admin/stock/HAM-1"
    damaged = await _adjust(
        client, "HAM-1", delta="-2", reason="damage", location="MAIN", note="Dropped <box>"
    )
    assert damaged.status_code == 303

    page = (await client.get("/admin/stock/HAM-1")).text
    assert "Stock of HAM-1 changed by -2 units." in page
    assert '<dd data-figure="on-hand">23</dd>' in page
    assert '<dd data-figure="available">23</dd>' in page
    assert "damage — Dropped &lt;box&gt;" in page
    assert page.count('<td class="nowrap">') == 2
    # The chart ends today at 23 units.
    assert "units on" in page
    assert page.rstrip().endswith("</html>")
    assert ", 23 on " in page

    listing = (await client.get("/admin/stock")).text
    assert 'href="/admin/stock/HAM-1">HAM-1</a>' in listing
    assert 'href="/admin/stock/HAM-2">HAM-2</a>' in listing
    jump = await client.get("/admin/stock?sku=ham-2")
    assert jump.headers["location"] == "/admin/stock/HAM-2"


async def test_adjustment_refusals_are_shown_next_to_the_fields(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"HAM-1": 3})
    await sign_in("staff@example.com")

    zero = await _adjust(client, "HAM-1", delta="0", reason="count")
    assert zero.status_code == 422
    assert 'id="delta-error">Delta must not be zero.' in zero.text

    words = await _adjust(client, "HAM-1", delta="ten", reason="count")
    assert words.status_code == 422
    assert 'id="delta-error">The change in units must be a whole number.' in words.text

    huge = await _adjust(client, "HAM-1", delta="1" + "0" * 30, reason="receive")
    assert huge.status_code == 422
    assert 'id="delta-error">' in huge.text

    reason = await _adjust(client, "HAM-1", delta="1", reason="gift")
    assert reason.status_code == 422
    assert 'id="reason-error">' in reason.text

    too_many = await _adjust(client, "HAM-1", delta="-4", reason="loss")
    assert too_many.status_code == 409
    assert "The removal would take available stock below zero." in too_many.text
    assert 'value="-4"' in too_many.text

    nowhere = await _adjust(client, "HAM-1", delta="1", reason="receive", location="MOON")
    assert nowhere.status_code == 422
    assert 'id="location-error">' in nowhere.text

    page = (await client.get("/admin/stock/HAM-1")).text
    assert '<dd data-figure="on-hand">3</dd>' in page

    assert (await client.get("/admin/stock/NOPE")).status_code == 404
    assert (await client.get("/admin/stock/bad%20code")).status_code == 404


async def test_holds_list_by_status_and_release(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    staff_headers: dict[str, str],
) -> None:
    await stocked_shop(db, {"HAM-1": 10})
    created = await client.post(
        "/api/v1/inventory/holds",
        json={"client_token": "cart-42", "items": [{"sku": "HAM-1", "quantity": 4}]},
        headers=staff_headers,
    )
    assert created.status_code == 201, created.text
    hold_id = created.json()["id"]
    await sign_in("staff@example.com")

    page = await client.get("/admin/holds")
    assert hold_id in page.text
    assert "4 \N{MULTIPLICATION SIGN} <a" in page.text
    released = await client.post(
        f"/admin/holds/{hold_id}/release", data={"csrf_token": csrf_of(page)}
    )
    assert released.status_code == 303
    assert f"Hold {hold_id} released." in (await client.get("/admin/holds")).text
    assert "No holds with status held." in (await client.get("/admin/holds")).text
    assert hold_id in (await client.get("/admin/holds?status=released")).text
    level = (await client.get("/api/v1/inventory/HAM-1", headers=staff_headers)).json()
    assert (level["reserved"], level["available"]) == (0, 10)


async def test_consistency_page_says_plainly_when_all_is_well_and_lists_problems(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"HAM-1": 10})
    await sign_in("staff@example.com")
    clean = (await client.get("/admin/consistency")).text
    assert "agree with the reservations and the ledger. Nothing to fix." in clean

    async with db.transaction() as session:
        await session.execute(update(StockLevel).values(on_hand=StockLevel.on_hand + 5))
    broken = (await client.get("/admin/consistency")).text
    assert 'data-consistent="false"' in broken
    assert "HAM-1" in broken


async def test_stock_page_cursors_out_of_the_id_range_are_refused(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"HAM-1": 3})
    await sign_in("staff@example.com")

    for path, cursor in (
        ("/admin/stock", encode_cursor([2**40])),
        ("/admin/stock", encode_cursor(["1"])),
        ("/admin/stock/HAM-1", encode_cursor([2**63])),
        # A time with no UTC form, a naive time, an id that is no UUID: each alone.
        ("/admin/holds", encode_cursor(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())])),
        ("/admin/holds", encode_cursor(["2026-01-01T00:00:00", str(uuid.uuid4())])),
        ("/admin/holds", encode_cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"])),
    ):
        response = await client.get(path, params={"cursor": cursor})
        assert response.status_code == 422, (path, cursor)


async def test_movement_references_link_to_their_hold_or_allocation_and_its_order(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    customer_user: User,
    staff_headers: dict[str, str],
) -> None:
    await stocked_shop(db, {"HAM-1": 10})
    held = await client.post(
        "/api/v1/inventory/holds",
        json={"client_token": "cart-7", "items": [{"sku": "HAM-1", "quantity": 2}]},
        headers=staff_headers,
    )
    assert held.status_code == 201, held.text
    hold_id = held.json()["id"]
    ordered = await client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "HAM-1", "quantity": 3}], "user_id": customer_user.id},
        headers=staff_headers,
    )
    assert ordered.status_code == 201, ordered.text
    order_id = ordered.json()["id"]
    await sign_in("staff@example.com")

    ledger = await client.get("/admin/stock/HAM-1")
    linked = re.findall(r'href="/admin/reservations/([0-9a-f-]{36})"', ledger.text)
    allocation_id = next(ref for ref in linked if ref != hold_id)
    assert hold_id in linked
    assert set(linked) == {hold_id, allocation_id}
    # The dashboard's latest movements link the same way.
    assert f'href="/admin/reservations/{hold_id}"' in (await client.get("/admin")).text
    # The holds list links each hold to its page.
    assert f'href="/admin/reservations/{hold_id}"' in (await client.get("/admin/holds")).text

    hold = await client.get(f"/admin/reservations/{hold_id}")
    assert hold.status_code == 200
    assert f'<h1>Hold <code class="wrap">{hold_id}</code></h1>' in hold.text
    assert '<td class="num">2</td>' in hold.text
    assert "none: not made by an order" in hold.text
    assert "Release hold" in hold.text

    allocation = await client.get(f"/admin/reservations/{allocation_id}")
    assert f'<h1>Allocation <code class="wrap">{allocation_id}</code></h1>' in allocation.text
    assert f'<dd data-order-link><a href="/admin/orders/{order_id}">' in allocation.text

    order_page = await client.get(f"/admin/orders/{order_id}")
    assert f'href="/admin/reservations/{allocation_id}">Allocation' in order_page.text
    assert (await client.get(f"/admin/reservations/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/admin/reservations/not-an-id")).status_code == 404


# What the stock list cost before it named products and filtered by location, measured
# per backend (SQLite's driver sends two statements more for the session's checks).
STOCK_LIST_STATEMENTS = {"sqlite": 5, "postgresql": 3}


def _listed(page: httpx.Response) -> list[tuple[str, str]]:
    """(SKU, product) of each SKU on the stock list, in order."""
    return re.findall(
        r'data-sku="([A-Z0-9-]+)">.*?</th>\s*<td[^>]*data-product>([^<]*)</td>', page.text, re.S
    )


async def test_stock_list_names_products_and_filters_by_location_in_the_same_statements(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    staff_headers: dict[str, str],
    statement_counter: StatementCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await stocked_shop(db, {"HAM-1": 5, "HAM-2": 0, "HAM-3": 7})
    north = await client.post(
        "/api/v1/locations",
        json={"code": "NORTH", "name": "North depot", "priority": 1},
        headers=staff_headers,
    )
    assert north.status_code == 201, north.text
    received = await client.post(
        "/api/v1/inventory/HAM-3/adjustments",
        json={"delta": 4, "reason": "receive", "location": "NORTH"},
        headers=staff_headers,
    )
    assert received.status_code == 201, received.text
    await sign_in("staff@example.com")

    cost_all, everything = await count_statements(statement_counter, client, "/admin/stock")
    assert _listed(everything) == [
        ("HAM-1", "Claw hammer"),
        ("HAM-2", "Claw hammer"),
        ("HAM-3", "Claw hammer"),
    ]

    cost_north, at_north = await count_statements(
        statement_counter, client, "/admin/stock?location=north"
    )
    assert _listed(at_north) == [("HAM-3", "Claw hammer")]
    assert 'name="location" maxlength="64" autocomplete="off" value="NORTH"' in at_north.text
    assert "<td>NORTH</td>" in at_north.text
    assert "<td>MAIN</td>" not in at_north.text
    # Product names and the filter cost no statement more than the list did: the session's
    # checks, then the SKU page (with product names) and their levels, one statement each.
    assert cost_all == cost_north == STOCK_LIST_STATEMENTS[db.engine.dialect.name]

    monkeypatch.setattr(stock_pages, "PAGE_SIZE", 1)
    cost_one, first = await count_statements(statement_counter, client, "/admin/stock")
    assert cost_one == cost_all
    assert _listed(first) == [("HAM-1", "Claw hammer")]
    assert 'href="/admin/stock?cursor=' in first.text

    _, unknown = await count_statements(statement_counter, client, "/admin/stock?location=NOWHERE")
    assert _listed(unknown) == []
    assert "No SKU is stocked at NOWHERE." in unknown.text
