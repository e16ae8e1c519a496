"""Orders with explicit items, the status machine with its stock effects, and ownership."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from storekeeper.accounts.models import User
from storekeeper.db import Database
from storekeeper.inventory.models import Reservation
from storekeeper.orders.models import Order
from storekeeper.orders.service import allowed_transitions
from tests.orders.conftest import API, Figures, HeadersMaker, SkuMaker, consistency_issues

ORDERS = f"{API}/orders"
STATUSES = ["pending", "paid", "shipped", "cancelled"]
ALLOWED = {
    ("pending", "paid"),
    ("pending", "shipped"),
    ("paid", "shipped"),
    ("pending", "cancelled"),
    ("paid", "cancelled"),
}


async def _order(
    client: httpx.AsyncClient, headers: dict[str, str], items: list[tuple[str, int]], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        ORDERS,
        headers=headers,
        json={"items": [{"sku": sku, "quantity": quantity} for sku, quantity in items], **body},
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def _set_status(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, status: str, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"{ORDERS}/{order_id}/status", headers=headers, json={"status": status, **body}
    )


async def _counts(db: Database) -> tuple[int, int]:
    async with db.transaction(write=False) as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        reservations = (
            await session.execute(select(func.count()).select_from(Reservation))
        ).scalar_one()
    return orders, reservations


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_allowed_transitions_follow_the_contract() -> None:
    pairs = {
        (source, target.value) for source in STATUSES for target in allowed_transitions(source)
    }
    assert pairs == ALLOWED
    assert allowed_transitions("shipped") == []
    assert allowed_transitions("cancelled") == []


async def test_customer_orders_for_themselves_and_staff_for_anyone(
    client: httpx.AsyncClient,
    customer_user: User,
    customer_headers: dict[str, str],
    staff_user: User,
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("PEN", price_cents=250, stock=20, product_name="Pen")
    await make_sku("INK", price_cents=900, stock=5, product_name="Ink")

    own = await _order(client, customer_headers, [("pen", 2), ("INK", 1)])
    assert own["user_id"] == customer_user.id
    assert own["created_by"] == customer_user.id
    assert [(i["sku"], i["quantity"], i["line_total_cents"]) for i in own["items"]] == [
        ("PEN", 2, 500),
        ("INK", 1, 900),
    ]
    assert own["total_cents"] == 1400
    assert own["shipping_address"] is None
    self_named = await _order(client, customer_headers, [("PEN", 1)], user_id=customer_user.id)
    assert self_named["user_id"] == customer_user.id

    for_customer = await _order(client, staff_headers, [("PEN", 1)], user_id=customer_user.id)
    assert for_customer["user_id"] == customer_user.id
    assert for_customer["created_by"] == staff_user.id
    listed = (await client.get(ORDERS, headers=customer_headers)).json()
    assert for_customer["id"] in {order["id"] for order in listed["items"]}

    address = await client.post(
        f"{API}/users/me/addresses",
        headers=customer_headers,
        json={
            "name": "Home",
            "line1": "1 Main St",
            "city": "Oslo",
            "postal_code": "0150",
            "country": "NO",
        },
    )
    assert address.status_code == 201
    shipped_to_customer = await _order(
        client,
        staff_headers,
        [("PEN", 1)],
        user_id=customer_user.id,
        shipping_address_id=address.json()["id"],
    )
    assert shipped_to_customer["shipping_address"]["city"] == "Oslo"
    # The address must be the order owner's: the customer's address on the staff member's
    # own order is refused.
    not_theirs = await client.post(
        ORDERS,
        headers=staff_headers,
        json={
            "items": [{"sku": "PEN", "quantity": 1}],
            "shipping_address_id": address.json()["id"],
        },
    )
    assert not_theirs.status_code == 422

    forbidden = await client.post(
        ORDERS,
        headers=customer_headers,
        json={"items": [{"sku": "PEN", "quantity": 1}], "user_id": staff_user.id},
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    assert await figures("PEN") == (20, 0, 5, 15)
    assert await figures("INK") == (5, 0, 1, 4)


async def test_invalid_orders_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("OK", stock=3)
    await make_sku("GONE", stock=3, deleted=True)
    await make_sku("EURO", stock=3, currency="EUR")
    line = {"sku": "OK", "quantity": 1}
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        (customer_headers, {"items": []}),
        (customer_headers, {"items": [line] * 2}),
        (customer_headers, {"items": [{"sku": f"S{n}", "quantity": 1} for n in range(101)]}),
        (customer_headers, {"items": [{"sku": "NOPE", "quantity": 1}]}),
        (customer_headers, {"items": [{"sku": "GONE", "quantity": 1}]}),
        (customer_headers, {"items": [line, {"sku": "EURO", "quantity": 1}]}),
        (customer_headers, {"items": [{"sku": "OK", "quantity": 0}]}),
        (customer_headers, {"items": [line], "shipping_address_id": 12345}),
        (customer_headers, {"items": [line], "unknown": 1}),
        (staff_headers, {"items": [line], "user_id": 999_999}),
        (staff_headers, {"items": [line], "user_id": 2**40}),
        (customer_headers, {"items": [line], "shipping_address_id": 2**40}),
    ]
    for headers, body in cases:
        response = await client.post(ORDERS, headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_error"
    short = await client.post(
        ORDERS, headers=customer_headers, json={"items": [{"sku": "OK", "quantity": 4}]}
    )
    assert short.status_code == 409
    assert short.json()["shortages"] == [{"sku": "OK", "requested": 4, "available": 3}]
    assert (await client.post(ORDERS, json={"items": [line]})).status_code == 401
    assert await figures("OK") == (3, 0, 0, 3)
    assert await _counts(db) == (0, 0)


async def test_idempotent_orders_replay_and_refuse_another_request(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("A", stock=10)
    await make_sku("B", stock=10)
    headers = {**customer_headers, "Idempotency-Key": "order-7"}
    body = {"items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]}
    first = await client.post(ORDERS, headers=headers, json=body)
    assert first.status_code == 201
    reordered = {"items": [{"sku": "b", "quantity": 1}, {"sku": "A", "quantity": 2}]}
    replay = await client.post(ORDERS, headers=headers, json=reordered)
    assert replay.status_code == 200
    assert replay.json() == first.json()
    other = await client.post(
        ORDERS, headers=headers, json={"items": [{"sku": "A", "quantity": 3}]}
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # A checkout with a key already used by an order is another request as well.
    await client.post(
        f"{API}/carts/me/items", headers=customer_headers, json={"sku": "A", "quantity": 2}
    )
    checkout = await client.post(f"{API}/carts/me/checkout", headers=headers)
    assert checkout.status_code == 422
    assert checkout.json()["code"] == "idempotency_key_reused"
    assert await figures("A") == (10, 0, 2, 8)
    assert await figures("B") == (10, 0, 1, 9)
    assert await _counts(db) == (1, 1)


async def test_concurrent_orders_with_one_key_make_one_order(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("HOT", stock=10)
    headers = {**customer_headers, "Idempotency-Key": "retry-storm"}
    body = {"items": [{"sku": "HOT", "quantity": 3}]}
    responses = await asyncio.gather(
        *(client.post(ORDERS, headers=headers, json=body) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await figures("HOT") == (10, 0, 3, 7)
    assert await _counts(db) == (1, 1)
    assert await consistency_issues(client, staff_headers) == []


# Stock of a 2-unit order of a SKU with 10 on hand, by order status:
# (on_hand, reserved, allocated, available).
STOCK_BY_STATUS = {
    "pending": (10, 0, 2, 8),
    "paid": (10, 0, 2, 8),
    "shipped": (8, 0, 0, 8),
    "cancelled": (10, 0, 0, 10),
}


async def test_every_transition_with_its_stock_effect(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    for source in STATUSES:
        for target in STATUSES:
            code = f"T-{source}-{target}"
            await make_sku(code, stock=10)
            order = await _order(client, customer_headers, [(code, 2)])
            if source != "pending":
                moved = await _set_status(client, staff_headers, order["id"], source)
                assert moved.status_code == 200, moved.text
                order = moved.json()
            assert await figures(code) == STOCK_BY_STATUS[source]

            response = await _set_status(client, staff_headers, order["id"], target)
            if (source, target) in ALLOWED:
                assert response.status_code == 200, (source, target, response.text)
                assert response.json()["status"] == target
                assert response.json()["version"] == order["version"] + 1
                assert await figures(code) == STOCK_BY_STATUS[target], (source, target)
            elif source == target:
                # Asking again for the status it already has changes nothing.
                assert response.status_code == 200, (source, target, response.text)
                assert response.json() == order
                assert await figures(code) == STOCK_BY_STATUS[source]
            else:
                assert response.status_code == 409, (source, target, response.text)
                assert response.json()["code"] == "invalid_transition"
                assert await figures(code) == STOCK_BY_STATUS[source], (source, target)
                current = await client.get(f"{ORDERS}/{order['id']}", headers=staff_headers)
                assert current.json() == order
    assert await consistency_issues(client, staff_headers) == []


async def test_customers_may_only_cancel_their_own_orders(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_customer: HeadersMaker,
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("MINE", stock=10)
    order = await _order(client, customer_headers, [("MINE", 4)])
    other = await make_customer()

    assert (await client.get(f"{ORDERS}/{order['id']}", headers=other)).status_code == 404
    for status in ("cancelled", "shipped"):
        response = await _set_status(client, other, order["id"], status)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    for status in ("paid", "shipped"):
        response = await _set_status(client, customer_headers, order["id"], status)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert await figures("MINE") == (10, 0, 4, 6)

    paid = await _set_status(client, staff_headers, order["id"], "paid")
    assert paid.status_code == 200
    cancelled = await _set_status(client, customer_headers, order["id"], "cancelled")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert await figures("MINE") == (10, 0, 0, 10)
    missing = await _set_status(
        client, staff_headers, "00000000-0000-0000-0000-000000000000", "paid"
    )
    assert missing.status_code == 404


async def test_a_stale_version_is_refused(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("VER", stock=5)
    order = await _order(client, customer_headers, [("VER", 1)])
    paid = await _set_status(client, staff_headers, order["id"], "paid", version=1)
    assert paid.status_code == 200
    assert paid.json()["version"] == 2
    stale = await _set_status(client, staff_headers, order["id"], "shipped", version=1)
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    assert stale.json()["current_version"] == 2
    assert await figures("VER") == (5, 0, 1, 4)
    shipped = await _set_status(client, staff_headers, order["id"], "shipped", version=2)
    assert shipped.status_code == 200
    assert shipped.json()["version"] == 3
    assert await figures("VER") == (4, 0, 0, 4)
    for body in (
        {"status": "lost"},
        {"status": "paid", "version": 0},
        {"status": "paid", "version": 2**40},
        {},
    ):
        response = await client.patch(
            f"{ORDERS}/{order['id']}/status", headers=staff_headers, json=body
        )
        assert response.status_code == 422


async def test_an_orders_allocation_changes_only_with_the_order(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
    db: Database,
) -> None:
    await make_sku("OWN", stock=5)
    order = await _order(client, customer_headers, [("OWN", 2)])
    async with db.transaction(write=False) as session:
        allocation_id = (
            await session.execute(
                select(Order.allocation_id).where(Order.id == uuid.UUID(order["id"]))
            )
        ).scalar_one()
    allocation = await client.get(
        f"{API}/inventory/allocations/{allocation_id}", headers=staff_headers
    )
    assert allocation.json()["managed_by"] == "order"
    for action in ("fulfil", "cancel"):
        refused = await client.post(
            f"{API}/inventory/allocations/{allocation_id}/{action}", headers=staff_headers
        )
        assert refused.status_code == 409
        assert refused.json()["code"] == "conflict"
        assert await figures("OWN") == (5, 0, 2, 3)
    shipped = await _set_status(client, staff_headers, order["id"], "shipped")
    assert shipped.status_code == 200
    assert await figures("OWN") == (3, 0, 0, 3)
    allocation = await client.get(
        f"{API}/inventory/allocations/{allocation_id}", headers=staff_headers
    )
    assert allocation.json()["status"] == "fulfilled"
    assert await consistency_issues(client, staff_headers) == []


async def test_concurrent_status_changes_apply_once(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("RACE", stock=10)
    order = await _order(client, customer_headers, [("RACE", 3)])
    responses = await asyncio.gather(
        *(
            _set_status(client, staff_headers, order["id"], status, version=1)
            for status in ("shipped", "cancelled") * 4
        )
    )
    outcomes = sorted(
        (r.status_code, r.json().get("code", r.json().get("status"))) for r in responses
    )
    winners = [outcome for outcome in outcomes if outcome[0] == 200]
    assert len(winners) == 1
    assert outcomes.count((409, "version_conflict")) == 7
    final = winners[0][1]
    assert await figures("RACE") == ((7, 0, 0, 7) if final == "shipped" else (10, 0, 0, 10))
    assert await consistency_issues(client, staff_headers) == []


async def test_counters_count_committed_orders_and_status_changes(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("COUNT", stock=2)
    created = _metric("storekeeper_orders_created_total", source="order")
    shipped = _metric("storekeeper_order_status_changes_total", status="shipped")
    order = await _order(client, customer_headers, [("COUNT", 2)])
    refused = await client.post(
        ORDERS, headers=customer_headers, json={"items": [{"sku": "COUNT", "quantity": 1}]}
    )
    assert refused.status_code == 409
    assert _metric("storekeeper_orders_created_total", source="order") == created + 1
    assert (await _set_status(client, staff_headers, order["id"], "shipped")).status_code == 200
    assert (await _set_status(client, staff_headers, order["id"], "shipped")).status_code == 200
    assert (await _set_status(client, staff_headers, order["id"], "paid")).status_code == 409
    assert _metric("storekeeper_order_status_changes_total", status="shipped") == shipped + 1
    text = (await client.get("/metrics")).text
    assert "storekeeper_orders_created_total" in text
    assert "storekeeper_order_status_changes_total" in text


async def test_unauthenticated_callers_are_refused(client: httpx.AsyncClient) -> None:
    order_id = "00000000-0000-0000-0000-000000000000"
    assert (await client.get(ORDERS)).status_code == 401
    assert (await client.get(f"{ORDERS}/{order_id}")).status_code == 401
    assert (
        await client.patch(f"{ORDERS}/{order_id}/status", json={"status": "paid"})
    ).status_code == 401
