"""The waitlist over HTTP and its back-in-stock emails, sent to a real SMTP server on
127.0.0.1: joining (201, then 200), leaving (204, idempotent), listing one's own entries
with paging, refusals (401, 404, 422); on `stock.back_in_stock` one email per waiting
customer, exactly once, entries `notified`; leaving, re-joining and other SKUs' waitlists;
joins at once; the end-to-end path from a stock receipt."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from storekeeper.accounts.models import Role, User
from storekeeper.catalog.models import Sku
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork
from storekeeper.events import outbox
from storekeeper.events.publisher import publish_all
from storekeeper.notifications.models import Email, WaitlistEntry
from storekeeper.notifications.sender import send_due
from storekeeper.notifications.service import prepare_all
from tests.conftest import UserFactory, bearer
from tests.notifications.conftest import Received, SmtpServer
from tests.orders.conftest import API, SkuMaker
from tests.web.conftest import SignIn

ME = f"{API}/users/me/waitlist"


def waitlist_of(code: str) -> str:
    return f"{API}/skus/{code}/waitlist"


async def _announce(db: Database, code: str, available: int = 3) -> None:
    """A `stock.back_in_stock` event for the SKU, written in a unit of work of its own."""

    async def record(session: Any) -> None:
        await outbox.record(
            session, outbox.STOCK_BACK_IN_STOCK, {"sku": code, "available": available}
        )

    await UnitOfWork(db).run(record)


async def _jobs(db: Database, settings: Settings) -> int:
    """Publish, make the emails, send what is due; returns the number of attempts."""
    await publish_all(db)
    await prepare_all(db, settings)
    return await send_due(db, settings)


async def _entries(db: Database) -> list[tuple[str, str, str, bool]]:
    """(SKU code, user email, status, has notified_at) of every entry, by SKU and user."""
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(Sku.code, User.email, WaitlistEntry.status, WaitlistEntry.notified_at)
            .join(Sku, Sku.id == WaitlistEntry.sku_id)
            .join(User, User.id == WaitlistEntry.user_id)
            .order_by(Sku.code, User.email)
        )
        return [(r.code, r.email, r.status, r.notified_at is not None) for r in rows]


async def _back_in_stock_emails(db: Database) -> list[Email]:
    async with db.transaction(write=False) as session:
        return list(
            (
                await session.scalars(
                    select(Email).where(Email.kind == "back_in_stock").order_by(Email.id)
                )
            ).all()
        )


def _text(received: Received) -> str:
    body: str = received.message.get_body(preferencelist=("plain",)).get_content()
    return body.replace("\r\n", "\n").rstrip("\n") + "\n"


def _html(received: Received) -> str:
    body: str = received.message.get_body(preferencelist=("html",)).get_content()
    return body


async def _join(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> httpx.Response:
    return await client.post(waitlist_of(code), headers=headers)


async def _customer(make_user: UserFactory, settings: Settings, name: str) -> dict[str, str]:
    user = await make_user(Role.CUSTOMER, email=f"{name}@example.com", full_name=name.title())
    return bearer(settings, user)


# Joining, leaving, listing


async def test_join_then_join_again_then_leave(
    client: httpx.AsyncClient, customer_headers: dict[str, str], make_sku: SkuMaker
) -> None:
    await make_sku("LAMP-1")

    joined = await _join(client, customer_headers, "lamp-1")
    assert joined.status_code == 201, joined.text
    body = joined.json()
    assert body["sku"] == "LAMP-1"
    assert body["status"] == "waiting"
    assert body["notified_at"] is None
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.utcoffset() is not None and created_at.utcoffset().total_seconds() == 0

    again = await _join(client, customer_headers, "LAMP-1")
    assert again.status_code == 200, again.text
    assert again.json() == body

    listed = await client.get(ME, headers=customer_headers)
    assert listed.status_code == 200
    assert listed.json() == {"items": [body], "next_cursor": None}

    left = await client.delete(waitlist_of("LAMP-1"), headers=customer_headers)
    assert left.status_code == 204 and left.content == b""
    # Leaving again (not on it any more) is the same answer.
    assert (await client.delete(waitlist_of("lamp-1"), headers=customer_headers)).status_code == 204
    assert (await client.get(ME, headers=customer_headers)).json() == {
        "items": [],
        "next_cursor": None,
    }

    # Joining after leaving is a new entry.
    rejoined = await _join(client, customer_headers, "LAMP-1")
    assert rejoined.status_code == 201
    assert rejoined.json()["created_at"] > body["created_at"]


async def test_the_list_is_only_mine_in_id_order_and_paged(
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: UserFactory,
    make_sku: SkuMaker,
) -> None:
    ann = await _customer(make_user, settings, "ann")
    bob = await _customer(make_user, settings, "bob")
    for code in ("A1", "B2", "C3", "D4"):
        await make_sku(code)
    for code in ("C3", "A1", "D4"):
        assert (await _join(client, ann, code)).status_code == 201
    assert (await _join(client, bob, "B2")).status_code == 201

    first = await client.get(ME, headers=ann, params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [item["sku"] for item in page["items"]] == ["C3", "A1"]
    assert page["next_cursor"]
    second = (
        await client.get(ME, headers=ann, params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert [item["sku"] for item in second["items"]] == ["D4"]
    assert second["next_cursor"] is None

    theirs = (await client.get(ME, headers=bob)).json()
    assert [(item["sku"], item["status"]) for item in theirs["items"]] == [("B2", "waiting")]

    # Bob leaving a waitlist he is not on changes nothing of Ann's.
    assert (await client.delete(waitlist_of("C3"), headers=bob)).status_code == 204
    assert len((await client.get(ME, headers=ann)).json()["items"]) == 3

    for bad in ({"cursor": "not-a-cursor!"}, {"limit": 0}, {"limit": 201}):
        refused = await client.get(ME, headers=ann, params=bad)
        assert refused.status_code == 422, bad
        assert refused.json()["code"] == "validation_error"


async def test_unknown_or_deleted_skus_are_404(
    client: httpx.AsyncClient, customer_headers: dict[str, str], make_sku: SkuMaker
) -> None:
    await make_sku("GONE", deleted=True)
    for code in ("NOPE", "GONE"):
        refused = await _join(client, customer_headers, code)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "not_found"
        assert refused.json()["status"] == 404
    unknown = await client.delete(waitlist_of("NOPE"), headers=customer_headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    # A deleted SKU's waitlist can still be left (an entry made before it was deleted).
    assert (await client.delete(waitlist_of("GONE"), headers=customer_headers)).status_code == 204
    assert (await client.get(ME, headers=customer_headers)).json()["items"] == []


async def test_without_a_token_it_is_401(client: httpx.AsyncClient, make_sku: SkuMaker) -> None:
    await make_sku("LAMP")
    bad_token = {"Authorization": "Bearer not-a-token"}
    for headers in ({}, bad_token):
        for response in (
            await client.post(waitlist_of("LAMP"), headers=headers),
            await client.delete(waitlist_of("LAMP"), headers=headers),
            await client.get(ME, headers=headers),
        ):
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "unauthorized"


async def test_a_malformed_code_is_422(
    client: httpx.AsyncClient, customer_headers: dict[str, str]
) -> None:
    for code in ("bad$code", "with%20space", "X" * 65):
        for method in ("POST", "DELETE"):
            response = await client.request(method, waitlist_of(code), headers=customer_headers)
            assert response.status_code == 422, (method, code, response.text)
            assert response.json()["code"] == "validation_error"


async def test_staff_may_wait_too(
    client: httpx.AsyncClient, staff_headers: dict[str, str], make_sku: SkuMaker
) -> None:
    await make_sku("LAMP")
    assert (await _join(client, staff_headers, "LAMP")).status_code == 201


async def test_joins_at_once_make_one_entry(
    client: httpx.AsyncClient, db: Database, customer_headers: dict[str, str], make_sku: SkuMaker
) -> None:
    await make_sku("LAMP")
    answers = await asyncio.gather(*(_join(client, customer_headers, "LAMP") for _ in range(6)))
    assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
    assert len({answer.json()["created_at"] for answer in answers}) == 1
    assert await _entries(db) == [("LAMP", "customer@example.com", "waiting", False)]


# Back-in-stock emails


async def test_each_waiting_customer_gets_one_email_exactly_once(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    make_user: UserFactory,
    make_sku: SkuMaker,
) -> None:
    await make_sku("LAMP-9", product_name="Desk lamp <b>brass</b>")
    await make_sku("DESK")
    ann = await _customer(make_user, mail, "ann")
    bob = await _customer(make_user, mail, "bob")
    cat = await _customer(make_user, mail, "cat")
    dan = await _customer(make_user, mail, "dan")
    for headers in (ann, bob, cat):
        assert (await _join(client, headers, "LAMP-9")).status_code == 201
    assert (await _join(client, dan, "DESK")).status_code == 201
    # Cat leaves before the lamp is back.
    assert (await client.delete(waitlist_of("LAMP-9"), headers=cat)).status_code == 204

    await _announce(db, "LAMP-9")
    assert await _jobs(db, mail) == 2
    assert len(smtp_server.received) == 2
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "ann@example.com",
        "bob@example.com",
    ]
    for received in smtp_server.received:
        assert received.message["Subject"] == "LAMP-9 is back in stock"
        assert received.message["To"] == received.rcpt_tos[0]
    ann_mail = next(r for r in smtp_server.received if r.rcpt_tos == ["ann@example.com"])
    assert _text(ann_mail) == (
        "Hello Ann,\n"
        "\n"
        "Desk lamp <b>brass</b> (LAMP-9) is back in stock.\n"
        "\n"
        "You asked to be told once when it was back; join its waitlist again to be told "
        "next time.\n"
    )
    html = _html(ann_mail)
    assert "<strong>LAMP-9</strong>" in html
    assert "Desk lamp &lt;b&gt;brass&lt;/b&gt;" in html and "<b>brass</b>" not in html

    assert await _entries(db) == [
        ("DESK", "dan@example.com", "waiting", False),
        ("LAMP-9", "ann@example.com", "notified", True),
        ("LAMP-9", "bob@example.com", "notified", True),
    ]
    emails = await _back_in_stock_emails(db)
    assert [(e.to_address, e.status, e.attempts) for e in emails] == [
        ("ann@example.com", "sent", 1),
        ("bob@example.com", "sent", 1),
    ]
    assert len({e.event_id for e in emails}) == 1
    listed = (await client.get(ME, headers=ann)).json()["items"]
    assert [(item["sku"], item["status"]) for item in listed] == [("LAMP-9", "notified")]
    assert listed[0]["notified_at"] is not None
    ann_before = listed[0]

    # A second back-in-stock event for the lamp: nobody is waiting, nothing is sent.
    await _announce(db, "LAMP-9", 7)
    assert await _jobs(db, mail) == 0
    assert len(smtp_server.received) == 2
    assert len(await _back_in_stock_emails(db)) == 2

    # Ann joins again (201: newly waiting, a new created_at), Bob does not; the next event
    # emails Ann alone, once.
    rejoined = await _join(client, ann, "LAMP-9")
    assert rejoined.status_code == 201, rejoined.text
    assert rejoined.json()["status"] == "waiting"
    assert rejoined.json()["notified_at"] is None
    assert rejoined.json()["created_at"] > ann_before["created_at"]
    assert (await _join(client, ann, "LAMP-9")).status_code == 200
    await _announce(db, "LAMP-9")
    assert await _jobs(db, mail) == 1
    assert [r.rcpt_tos for r in smtp_server.received[2:]] == [["ann@example.com"]]
    assert await _jobs(db, mail) == 0

    # The desk's waitlist was untouched all along; its own event emails Dan alone.
    assert ("DESK", "dan@example.com", "waiting", False) in await _entries(db)
    await _announce(db, "DESK")
    assert await _jobs(db, mail) == 1
    [desk] = smtp_server.received[3:]
    assert desk.rcpt_tos == ["dan@example.com"]
    assert desk.message["Subject"] == "DESK is back in stock"
    assert "Product DESK (DESK) is back in stock." in _text(desk)
    assert len(smtp_server.received) == 4


async def test_two_events_in_one_batch_email_once(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("LAMP")
    assert (await _join(client, customer_headers, "LAMP")).status_code == 201
    await _announce(db, "LAMP")
    await _announce(db, "lamp")  # the code as any case names the same SKU
    await publish_all(db)
    # Several email jobs at once: one of them makes the emails.
    await asyncio.gather(*(prepare_all(db, mail) for _ in range(3)))
    await asyncio.gather(*(send_due(db, mail) for _ in range(3)))
    assert [r.rcpt_tos for r in smtp_server.received] == [["customer@example.com"]]
    assert [e.to_address for e in await _back_in_stock_emails(db)] == ["customer@example.com"]


async def test_without_smtp_the_emails_are_kept_as_skipped(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    assert settings.smtp_url is None
    await make_sku("LAMP")
    assert (await _join(client, customer_headers, "LAMP")).status_code == 201
    await _announce(db, "LAMP")
    assert await _jobs(db, settings) == 0
    [email] = await _back_in_stock_emails(db)
    assert (email.to_address, email.subject, email.status, email.next_attempt_at) == (
        "customer@example.com",
        "LAMP is back in stock",
        "skipped",
        None,
    )
    assert await _entries(db) == [("LAMP", "customer@example.com", "notified", True)]


async def test_an_event_for_a_deleted_or_unknown_sku_emails_nobody(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("LAMP")
    assert (await _join(client, customer_headers, "LAMP")).status_code == 201
    async with db.transaction() as session:
        await session.execute(update(Sku).where(Sku.code == "LAMP").values(is_deleted=True))
    await _announce(db, "LAMP")
    await _announce(db, "NO-SUCH-SKU")
    assert await _jobs(db, mail) == 0
    assert smtp_server.received == []
    assert await _entries(db) == [("LAMP", "customer@example.com", "waiting", False)]
    # The events were consumed all the same: the email cursor moved past them.
    assert await publish_all(db) == 0
    assert await prepare_all(db, mail) == 0


async def test_a_stock_receipt_from_zero_emails_the_waiting_customers(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    """End to end: the inventory announces `stock.back_in_stock` when a SKU's available
    units rise from 0, and that event is what sends the emails."""
    await make_sku("LAMP")
    assert (await _join(client, customer_headers, "LAMP")).status_code == 201
    received = await client.post(
        f"{API}/inventory/LAMP/adjustments",
        headers=staff_headers,
        json={"delta": 4, "reason": "receive"},
    )
    assert received.status_code == 201, received.text
    assert await _jobs(db, mail) == 1
    [email] = smtp_server.received
    assert email.rcpt_tos == ["customer@example.com"]
    assert email.message["Subject"] == "LAMP is back in stock"
    # More stock while some is available already is not "back in stock": nothing more.
    more = await client.post(
        f"{API}/inventory/LAMP/adjustments",
        headers=staff_headers,
        json={"delta": 2, "reason": "receive"},
    )
    assert more.status_code == 201, more.text
    assert (await _join(client, customer_headers, "LAMP")).status_code == 201
    assert await _jobs(db, mail) == 0
    assert len(smtp_server.received) == 1


async def test_the_staff_page_lists_and_filters_back_in_stock_emails(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    sign_in: SignIn,
    staff_user: User,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("LAMP")
    assert (await _join(client, customer_headers, "LAMP")).status_code == 201
    await _announce(db, "LAMP")
    await _jobs(db, settings)

    await sign_in(staff_user.email)
    page = await client.get("/admin/notifications", params={"kind": "back_in_stock"})
    assert page.status_code == 200, page.text
    assert '<option value="back_in_stock" selected>back in stock</option>' in page.text
    assert "of kind back in stock, newest first" in page.text
    assert "LAMP is back in stock" in page.text
    assert "customer@example.com" in page.text
    others = await client.get("/admin/notifications", params={"kind": "order_shipped"})
    assert others.status_code == 200 and "LAMP is back in stock" not in others.text


@pytest.mark.parametrize("path", ["/skus/{code}/waitlist", "/users/me/waitlist"])
def test_the_routes_are_in_the_openapi_document(app: Any, path: str) -> None:
    paths = app.openapi()["paths"]
    assert f"/api/v1{path}" in paths
