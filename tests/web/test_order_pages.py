"""Order pages over HTTP (no browser): the list by status with paging, an order's page, and
its status buttons with the same rules as the API."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from storekeeper.accounts.models import User
from storekeeper.db import Database
from storekeeper.inventory import queries as inventory
from storekeeper.orders import service as orders
from storekeeper.orders.models import Order, OrderStatus
from storekeeper.web import order_pages
from storekeeper.web.forms import STALE_EDIT
from tests.web.conftest import SignIn, csrf_of
from tests.web.shop import stocked_shop

ORDERS = "/admin/orders"


async def _place(db: Database, actor: User, customer: User, *items: tuple[str, int]) -> uuid.UUID:
    async with db.transaction() as session:
        view = await orders.place_order(
            session, actor=actor, items=list(items), user_id=customer.id
        )
    return view.order.id


async def _set_status(db: Database, actor: User, order_id: uuid.UUID, status: OrderStatus) -> None:
    async with db.transaction() as session:
        await orders.change_order_status(
            session, order_id, status=status, version=None, actor=actor
        )


async def _on_hand_and_available(db: Database, code: str) -> tuple[int, int]:
    async with db.transaction(write=False) as session:
        (stock,) = await inventory.stock_by_codes(session, [code])
    return stock.on_hand, stock.available


def _rows(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-order="([0-9a-f-]{36})">', page.text)


async def test_orders_list_filters_by_status_and_customer_and_pages(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    customer_user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await stocked_shop(db, {"HAM-1": 20, "HAM-2": 20})
    first = await _place(db, staff_user, customer_user, ("HAM-1", 2))
    second = await _place(db, staff_user, customer_user, ("HAM-1", 1), ("HAM-2", 3))
    third = await _place(db, staff_user, staff_user, ("HAM-2", 1))
    await _set_status(db, staff_user, second, OrderStatus.SHIPPED)
    await sign_in("staff@example.com")

    everything = await client.get(ORDERS)
    assert everything.status_code == 200
    assert _rows(everything) == [str(third), str(second), str(first)]
    assert "1 \N{MULTIPLICATION SIGN} HAM-1, 3 \N{MULTIPLICATION SIGN} HAM-2" in everything.text
    assert '<td class="num" data-label="Total">50.00 USD</td>' in everything.text
    assert (
        f'title="customer@example.com" href="{ORDERS}?user_id={customer_user.id}">'
        "customer@example.com</a>" in everything.text
    )

    shipped = await client.get(f"{ORDERS}?status=shipped")
    assert _rows(shipped) == [str(second)]
    assert '<option value="shipped" selected>shipped</option>' in shipped.text
    assert _rows(await client.get(f"{ORDERS}?status=cancelled")) == []
    assert (
        "No orders with status cancelled." in (await client.get(f"{ORDERS}?status=cancelled")).text
    )

    mine = await client.get(f"{ORDERS}?user_id={customer_user.id}&status=")
    assert _rows(mine) == [str(second), str(first)]
    assert 'Orders of <strong class="wrap">customer@example.com</strong>' in mine.text

    bad = await client.get(f"{ORDERS}?status=lost")
    assert bad.status_code == 422
    assert 'id="status-error">Choose a status from the list.</p>' in bad.text
    bad_cursor = await client.get(f"{ORDERS}?cursor=nonsense")
    assert bad_cursor.status_code == 422
    assert "This page link is not valid any more." in bad_cursor.text

    monkeypatch.setattr(order_pages, "PAGE_SIZE", 2)
    page_one = await client.get(ORDERS)
    assert _rows(page_one) == [str(third), str(second)]
    next_link = re.search(r'href="(/admin/orders\?[^"]+)" rel="next"', page_one.text)
    assert next_link
    page_two = await client.get(next_link.group(1).replace("&amp;", "&"))
    assert _rows(page_two) == [str(first)]
    assert 'rel="next"' not in page_two.text


async def test_order_status_buttons_follow_the_lifecycle_and_the_version(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    customer_user: User,
) -> None:
    await stocked_shop(db, {"HAM-1": 10})
    order_id = await _place(db, staff_user, customer_user, ("HAM-1", 4))
    await sign_in("staff@example.com")
    path = f"{ORDERS}/{order_id}"

    page = await client.get(path)
    assert page.status_code == 200
    buttons = re.findall(r'name="status" value="(\w+)"', page.text)
    assert buttons == ["paid", "shipped", "cancelled"]
    assert "<dd data-total>50.00 USD</dd>" in page.text
    assert 'href="/admin/stock/HAM-1">HAM-1</a>' in page.text
    token = csrf_of(page)

    paid = await client.post(
        f"{path}/status", data={"status": "paid", "version": "1", "csrf_token": token}
    )
    assert paid.status_code == 303
    assert paid.headers["location"] == path
    page = await client.get(path)
    assert "Order marked as paid." in page.text
    assert re.findall(r'name="status" value="(\w+)"', page.text) == ["shipped", "cancelled"]

    stale = await client.post(
        f"{path}/status", data={"status": "cancelled", "version": "1", "csrf_token": token}
    )
    assert stale.status_code == 409
    assert STALE_EDIT in stale.text
    assert await _on_hand_and_available(db, "HAM-1") == (10, 6)

    no_token = await client.post(f"{path}/status", data={"status": "shipped", "version": "2"})
    assert no_token.status_code == 403
    missing_version = await client.post(
        f"{path}/status", data={"status": "shipped", "csrf_token": token}
    )
    assert missing_version.status_code == 422
    assert "This form is missing the order&#39;s version." in missing_version.text

    shipped = await client.post(
        f"{path}/status", data={"status": "shipped", "version": "2", "csrf_token": token}
    )
    assert shipped.status_code == 303
    assert await _on_hand_and_available(db, "HAM-1") == (6, 6)
    page = await client.get(path)
    assert "Order shipped: its stock has left the warehouse." in page.text
    assert "This order is shipped: that is final, no further change is possible." in page.text
    assert 'name="status" value=' not in page.text

    too_late = await client.post(
        f"{path}/status", data={"status": "cancelled", "version": "3", "csrf_token": token}
    )
    assert too_late.status_code == 409
    assert "An order that is shipped cannot become cancelled." in too_late.text

    assert (await client.get(f"{ORDERS}/{uuid.uuid4()}")).status_code == 404
    assert (await client.get(f"{ORDERS}/not-a-uuid")).status_code == 404


async def test_order_page_shows_the_address_one_line_each_without_an_empty_line2(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    customer_user: User,
) -> None:
    await stocked_shop(db, {"HAM-1": 10})
    order_id = await _place(db, staff_user, customer_user, ("HAM-1", 1))
    address = {
        "name": "Cleo Customer",
        "line1": "1 Example Street",
        "line2": None,
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    }
    async with db.transaction() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        order.shipping_address = address
    await sign_in("staff@example.com")

    page = await client.get(f"{ORDERS}/{order_id}")
    assert page.status_code == 200
    lines = re.search(r"<address data-address>(.*?)</address>", page.text, re.S)
    assert lines, "the order page shows no address"
    assert re.findall(r'<span class="address-line">([^<]*)</span>', lines.group(1)) == [
        "Cleo Customer",
        "1 Example Street",
        "12345 Springfield",
        "US",
    ]
    assert "Street12345" not in page.text
