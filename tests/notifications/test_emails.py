"""Customer emails for orders, sent to a real SMTP server on 127.0.0.1: one confirmation
per order with its lines, total and address, shipped and cancelled notices, exactly once;
kept as `skipped` without SMTP; retried on the schedule while the server is down, `sent`
when it is back or `dead` after the last attempt; leases; SMTP login; the periodic job."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from storekeeper.accounts.models import User
from storekeeper.app import periodic_jobs
from storekeeper.config import Environment, Settings
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events.models import EventPublication
from storekeeper.events.publisher import publish_all
from storekeeper.notifications.models import Email, EmailCursor
from storekeeper.notifications.sender import (
    Outcome,
    SmtpTarget,
    claim_due,
    record_outcome,
    send_due,
    smtp_target,
)
from storekeeper.notifications.service import prepare_all
from storekeeper.tasks import BackgroundRunner
from tests.notifications.conftest import PASSWORD, USERNAME, SmtpServer
from tests.orders.conftest import API, SkuMaker

ORDERS = f"{API}/orders"


async def _order(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    items: list[tuple[str, int]],
    **body: Any,
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
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, status: str
) -> None:
    response = await client.patch(
        f"{ORDERS}/{order_id}/status", headers=headers, json={"status": status}
    )
    assert response.status_code == 200, response.text


async def _jobs(db: Database, settings: Settings) -> int:
    """Publish, make the emails, send what is due; returns the number of attempts."""
    await publish_all(db)
    await prepare_all(db, settings)
    return await send_due(db, settings)


async def _emails(db: Database) -> list[Email]:
    async with db.transaction(write=False) as session:
        return list((await session.scalars(select(Email).order_by(Email.id))).all())


def _text(message: Any) -> str:
    """The plain-text part as written (SMTP carries CRLF line ends and a closing one)."""
    body: str = message.get_body(preferencelist=("plain",)).get_content()
    return body.replace("\r\n", "\n").rstrip("\n") + "\n"


def _html(message: Any) -> str:
    body: str = message.get_body(preferencelist=("html",)).get_content()
    return body


async def _last_published(db: Database) -> int:
    async with db.transaction(write=False) as session:
        last: int = await session.scalar(select(EventPublication.last_event_id)) or 0
        return last


@pytest.fixture
async def pen_and_ink(db: Database, make_sku: SkuMaker) -> int:
    """PEN and INK with stock; returns the id of the last event published so far (receiving
    the stock announces it: the order events of a test are numbered after those)."""
    await make_sku("PEN", price_cents=250, stock=20, product_name="Pen")
    await make_sku("INK", price_cents=900, stock=5, product_name="Ink <b>blue</b>")
    await publish_all(db)
    return await _last_published(db)


async def _address(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.post(
        f"{API}/users/me/addresses",
        headers=headers,
        json={
            "name": "Kari Nordmann",
            "line1": "1 Main St",
            "line2": "Flat 3",
            "city": "Oslo",
            "postal_code": "0150",
            "country": "NO",
        },
    )
    assert response.status_code == 201, response.text
    address_id: int = response.json()["id"]
    return address_id


async def test_an_order_gets_one_confirmation_then_its_notices_exactly_once(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_user: User,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    before = pen_and_ink
    address_id = await _address(client, customer_headers)
    order = await _order(
        client, customer_headers, [("PEN", 2), ("INK", 1)], shipping_address_id=address_id
    )

    assert await _jobs(db, mail) == 1
    [received] = smtp_server.received
    assert received.mail_from == "storekeeper@localhost"
    assert received.rcpt_tos == ["customer@example.com"]
    message = received.message
    assert message["From"] == "storekeeper@localhost"
    assert message["To"] == "customer@example.com"
    assert message["Subject"] == f"Your order {order['id']} is confirmed"
    [email] = await _emails(db)
    assert message["Message-ID"] == f"<storekeeper-email-{email.id}@localhost>"
    assert _text(message) == (
        "Hello Test Customer,\n"
        "\n"
        f"thank you for your order {order['id']}.\n"
        "\n"
        "2 x Pen (PEN) at 2.50 USD: 5.00 USD\n"
        "1 x Ink <b>blue</b> (INK) at 9.00 USD: 9.00 USD\n"
        "\n"
        "Total: 14.00 USD\n"
        "\n"
        "Shipping to:\n"
        "Kari Nordmann\n"
        "1 Main St\n"
        "Flat 3\n"
        "0150 Oslo\n"
        "NO\n"
    )
    html = _html(message)
    assert f"<strong>{order['id']}</strong>" in html
    assert "<td>Ink &lt;b&gt;blue&lt;/b&gt;</td>" in html
    assert "<b>blue</b>" not in html
    assert "<th>14.00 USD</th>" in html
    assert (
        email.event_id,
        email.kind,
        email.to_address,
        email.status,
        email.attempts,
        email.last_error,
        email.locked_until,
        email.next_attempt_at,
    ) == (before + 1, "order_confirmation", "customer@example.com", "sent", 1, None, None, None)
    assert email.sent_at is not None
    assert email.body_text == _text(message)

    # Running the jobs again sends nothing more.
    assert await _jobs(db, mail) == 0
    assert len(smtp_server.received) == 1

    await _set_status(client, staff_headers, order["id"], "shipped")
    assert await _jobs(db, mail) == 1
    shipped = smtp_server.received[1].message
    assert shipped["To"] == "customer@example.com"
    assert shipped["Subject"] == f"Your order {order['id']} has shipped"
    assert _text(shipped) == f"Hello Test Customer,\n\nyour order {order['id']} has shipped.\n"

    # A second order, paid (no email) then cancelled: its confirmation and the notice.
    second = await _order(client, customer_headers, [("PEN", 1)])
    await _set_status(client, staff_headers, second["id"], "paid")
    await _set_status(client, customer_headers, second["id"], "cancelled")
    assert await _jobs(db, mail) == 2
    assert sorted(r.message["Subject"] for r in smtp_server.received[2:]) == [
        f"Your order {second['id']} has been cancelled",
        f"Your order {second['id']} is confirmed",
    ]
    cancelled = next(
        r.message for r in smtp_server.received[2:] if "cancelled" in r.message["Subject"]
    )
    assert f"your order {second['id']} has been cancelled." in _text(cancelled)
    confirmation = next(
        r.message for r in smtp_server.received[2:] if "confirmed" in r.message["Subject"]
    )
    assert "1 x Pen (PEN) at 2.50 USD: 2.50 USD\n" in _text(confirmation)
    assert "Total: 2.50 USD\n" in _text(confirmation)
    assert "No shipping address was given." in _text(confirmation)

    assert await _jobs(db, mail) == 0
    assert len(smtp_server.received) == 4
    assert [(e.event_id - before, e.kind, e.status, e.attempts) for e in await _emails(db)] == [
        (1, "order_confirmation", "sent", 1),
        (2, "order_shipped", "sent", 1),
        (3, "order_confirmation", "sent", 1),
        (5, "order_cancelled", "sent", 1),
    ]
    async with db.transaction(write=False) as session:
        assert await session.scalar(select(EmailCursor.last_event_id)) == before + 5


async def test_without_smtp_emails_are_kept_as_skipped_and_never_sent(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    assert settings.smtp_url is None
    order = await _order(client, customer_headers, [("PEN", 3)])
    await _set_status(client, staff_headers, order["id"], "shipped")

    assert await _jobs(db, settings) == 0
    emails = await _emails(db)
    assert [(e.kind, e.status, e.attempts, e.next_attempt_at) for e in emails] == [
        ("order_confirmation", "skipped", 0, None),
        ("order_shipped", "skipped", 0, None),
    ]
    assert "3 x Pen (PEN) at 2.50 USD: 7.50 USD" in emails[0].body_text
    assert emails[1].subject == f"Your order {order['id']} has shipped"

    # Configuring SMTP later sends only what is made from then on.
    settings.smtp_url = smtp_server.url
    assert await _jobs(db, settings) == 0
    assert smtp_server.received == []
    assert [e.status for e in await _emails(db)] == ["skipped", "skipped"]


async def test_a_server_that_is_down_is_retried_until_it_is_back(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    mail.webhook_retry_schedule = [0, 0, 0]
    await smtp_server.stop()
    order = await _order(client, customer_headers, [("PEN", 1)])

    for attempt in (1, 2):
        assert await _jobs(db, mail) == 1
        [email] = await _emails(db)
        assert (email.status, email.attempts, email.sent_at) == ("failed", attempt, None)
        assert email.next_attempt_at is not None
        assert email.locked_until is None
        assert email.last_error is not None
        assert email.last_error.startswith("SMTPConnectError")

    await smtp_server.start()
    assert await _jobs(db, mail) == 1
    [email] = await _emails(db)
    assert (email.status, email.attempts, email.last_error) == ("sent", 3, None)
    [received] = smtp_server.received
    assert received.message["Subject"] == f"Your order {order['id']} is confirmed"

    assert await _jobs(db, mail) == 0
    assert len(smtp_server.received) == 1


async def test_an_email_is_dead_after_the_last_attempt_of_the_schedule(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    mail.webhook_retry_schedule = [0]
    await smtp_server.stop()
    await _order(client, customer_headers, [("PEN", 1)])

    assert await _jobs(db, mail) == 1
    assert [(e.status, e.attempts) for e in await _emails(db)] == [("failed", 1)]
    assert await _jobs(db, mail) == 1
    [email] = await _emails(db)
    assert (email.status, email.attempts, email.next_attempt_at) == ("dead", 2, None)
    assert email.last_error is not None

    await smtp_server.start()
    assert await _jobs(db, mail) == 0
    assert smtp_server.received == []


async def test_a_claim_is_leased_and_only_its_own_outcome_is_recorded(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    customer_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    await _order(client, customer_headers, [("PEN", 1)])
    await publish_all(db)
    await prepare_all(db, mail)

    [first] = await UnitOfWork(db).run(claim_due, lease_seconds=60)
    assert first.number == 1
    assert await UnitOfWork(db).run(claim_due, lease_seconds=60) == []
    assert await send_due(db, mail) == 0

    # The lease runs out (the sender died): the email is claimed again.
    async with db.transaction() as session:
        await session.execute(update(Email).values(locked_until=utcnow() - timedelta(seconds=1)))
    [second] = await UnitOfWork(db).run(claim_due, lease_seconds=60)
    assert (second.email_id, second.number) == (first.email_id, 2)
    schedule = (0, 0)
    late = await UnitOfWork(db).run(record_outcome, first, Outcome(True, None), schedule)
    assert late is None
    assert await UnitOfWork(db).run(record_outcome, second, Outcome(True, None), schedule) == (
        "sent"
    )
    [email] = await _emails(db)
    assert (email.status, email.attempts) == ("sent", 2)


async def test_concurrent_jobs_make_each_email_once(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    for _ in range(3):
        await _order(client, customer_headers, [("PEN", 1)])
    await publish_all(db)
    await asyncio.gather(*(prepare_all(db, mail) for _ in range(4)))
    await asyncio.gather(*(send_due(db, mail) for _ in range(4)))
    assert [(e.event_id - pen_and_ink, e.status, e.attempts) for e in await _emails(db)] == [
        (1, "sent", 1),
        (2, "sent", 1),
        (3, "sent", 1),
    ]
    assert len(smtp_server.received) == 3


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_login_from_the_url(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    customer_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    server = SmtpServer(require_login=True)
    await server.start()
    try:
        mail.smtp_url = f"smtp://127.0.0.1:{server.port}"
        await _order(client, customer_headers, [("PEN", 1)])
        assert await _jobs(db, mail) == 1
        [email] = await _emails(db)
        assert email.status == "failed"
        assert server.received == []

        mail.smtp_url = f"smtp://{USERNAME}:s3cret%3A%2F%40@127.0.0.1:{server.port}"
        assert await _jobs(db, mail) == 1
        [received] = server.received
        assert received.login == USERNAME
        assert [e.status for e in await _emails(db)] == ["sent"]
    finally:
        await server.stop()
    assert PASSWORD == "s3cret:/@"


async def test_the_periodic_jobs_publish_and_send(
    client: httpx.AsyncClient,
    db: Database,
    mail: Settings,
    smtp_server: SmtpServer,
    customer_headers: dict[str, str],
    pen_and_ink: int,
) -> None:
    assert "send-emails" in [job.name for job in periodic_jobs(mail)]
    order = await _order(client, customer_headers, [("PEN", 1)])
    runner = BackgroundRunner(db)
    runner.start(periodic_jobs(mail))
    try:
        async with asyncio.timeout(10):
            await smtp_server.arrived.wait()
    finally:
        await runner.stop()
    [received] = smtp_server.received
    assert received.message["Subject"] == f"Your order {order['id']} is confirmed"


def test_smtp_urls() -> None:
    assert smtp_target("smtp://mail.example.com") == SmtpTarget(
        "mail.example.com", 25, None, None, use_tls=False, start_tls=False
    )
    assert smtp_target("smtps://u%40x:p%2Fw@mail.example.com") == SmtpTarget(
        "mail.example.com", 465, "u@x", "p/w", use_tls=True, start_tls=False
    )
    assert smtp_target("smtp://mail.example.com:587?starttls=true") == SmtpTarget(
        "mail.example.com", 587, None, None, use_tls=False, start_tls=True
    )

    def settings(url: str) -> Settings:
        return Settings(env=Environment.TEST, smtp_url=url, _env_file=None)  # type: ignore[call-arg]

    assert settings("").smtp_url is None
    for wrong in ("http://mail.example.com", "smtp://", "smtp://host:99999"):
        with pytest.raises(ValidationError):
            settings(wrong)
