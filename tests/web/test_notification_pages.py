"""Notification pages over HTTP (no browser): the customer emails newest first with their
status and kind filters and paging, the Retry button on failed and dead emails, the note
shown without SMTP, and who may use them (staff and admins; customers are refused)."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from storekeeper.accounts.models import Role, User
from storekeeper.config import Settings
from storekeeper.db import Database, utcnow
from storekeeper.events.models import Event
from storekeeper.notifications.models import Email, EmailKind, EmailStatus
from storekeeper.web import notification_pages
from storekeeper.web.sign_in import NOT_STAFF
from tests.web.conftest import SignIn, csrf_of

PAGE = "/admin/notifications"
SMTP_NOTE = "SMTP is not configured"


def _rows(page: httpx.Response) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-email="(\d+)">', page.text)]


def _row(page: httpx.Response, email_id: int) -> str:
    row = page.text[page.text.index(f'<tr data-email="{email_id}">') :]
    return row[: row.index("</tr>")]


async def _make_emails(db: Database, specs: list[dict[str, Any]]) -> list[int]:
    """One published event per email, then the emails in the order given (oldest first);
    returns their ids."""
    start = utcnow() - timedelta(hours=len(specs))
    ids: list[int] = []
    async with db.transaction() as session:
        for number in range(1, len(specs) + 1):
            session.add(Event(id=number, type="order.created", data={}, published_at=start))
        await session.flush()
        for number, spec in enumerate(specs, start=1):
            email = Email(
                event_id=number,
                kind=spec.get("kind", EmailKind.ORDER_CONFIRMATION),
                to_address=spec.get("to", f"buyer{number}@example.com"),
                subject=spec.get("subject", f"Your order {number}"),
                body_text="text",
                body_html="<p>html</p>",
                status=spec.get("status", EmailStatus.SENT),
                attempts=spec.get("attempts", 1),
                last_error=spec.get("last_error"),
                next_attempt_at=spec.get("next_attempt_at"),
                created_at=start + timedelta(hours=number - 1),
                sent_at=spec.get("sent_at"),
            )
            session.add(email)
            await session.flush()
            ids.append(email.id)
    return ids


async def _email(db: Database, email_id: int) -> Email:
    async with db.transaction(write=False) as session:
        email = await session.get(Email, email_id)
    assert email is not None
    return email


async def _post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    page = await client.get(PAGE)
    return await client.post(path, data={"csrf_token": csrf_of(page), **fields})


async def test_list_filters_and_pages(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sign_in(staff_user.email)
    empty = await client.get(PAGE)
    assert empty.status_code == 200 and "No emails." in empty.text
    assert f'<a href="{PAGE}" aria-current="page">Notifications</a>' in empty.text

    sent_at = utcnow() - timedelta(minutes=5)
    sent, dead, skipped, shipped, failed = await _make_emails(
        db,
        [
            {"status": EmailStatus.SENT, "sent_at": sent_at, "to": "ann@example.com"},
            {
                "status": EmailStatus.DEAD,
                "attempts": 8,
                "last_error": "SMTPRecipientsRefused: <nope>",
                "subject": "Order 2 & co",
            },
            {"status": EmailStatus.SKIPPED, "attempts": 0},
            {"status": EmailStatus.PENDING, "kind": EmailKind.ORDER_SHIPPED, "attempts": 0},
            {
                "status": EmailStatus.FAILED,
                "kind": EmailKind.ORDER_CANCELLED,
                "attempts": 2,
                "last_error": "no answer within 10 s",
                "next_attempt_at": utcnow() + timedelta(minutes=5),
            },
        ],
    )
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert _rows(page) == [failed, shipped, skipped, dead, sent]

    dead_row = _row(page, dead)
    assert '<td class="nowrap" data-label="Kind">order confirmation</td>' in dead_row
    assert f'<td class="wrap" data-label="Recipient">buyer{dead}@example.com</td>' in dead_row
    assert '<td class="wrap" data-label="Subject">Order 2 &amp; co</td>' in dead_row
    assert '<span class="status">dead</span>' in dead_row
    assert '<td class="num" data-label="Attempts">8</td>' in dead_row
    assert "SMTPRecipientsRefused: &lt;nope&gt;" in dead_row
    assert f"{PAGE}/{dead}/retry" in dead_row
    sent_row = _row(page, sent)
    assert '<td class="wrap" data-label="Recipient">ann@example.com</td>' in sent_row
    assert f'data-label="Sent">{sent_at:%Y-%m-%d %H:%M} UTC</td>' in sent_row
    assert "/retry" not in sent_row
    assert f"{PAGE}/{failed}/retry" in _row(page, failed)
    for no_button in (skipped, shipped):
        assert "/retry" not in _row(page, no_button)

    by_status = await client.get(f"{PAGE}?status=dead")
    assert by_status.status_code == 200 and _rows(by_status) == [dead]
    assert '<option value="dead" selected>dead</option>' in by_status.text
    by_kind = await client.get(f"{PAGE}?kind=order_confirmation")
    assert _rows(by_kind) == [skipped, dead, sent]
    both = await client.get(f"{PAGE}?status=failed&kind=order_cancelled")
    assert _rows(both) == [failed]
    none = await client.get(f"{PAGE}?status=sent&kind=order_shipped")
    assert none.status_code == 200 and _rows(none) == []
    assert "No emails with status sent of kind order shipped." in none.text

    bogus_status = await client.get(f"{PAGE}?status=lost")
    assert bogus_status.status_code == 422 and "Choose a status from the list." in bogus_status.text
    bogus_kind = await client.get(f"{PAGE}?kind=newsletter")
    assert bogus_kind.status_code == 422 and "Choose a kind from the list." in bogus_kind.text
    for cursor in ("not-a-cursor", "WyJ4Il0", "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5XQ"):
        broken = await client.get(f"{PAGE}?cursor={cursor}")
        assert broken.status_code == 422, cursor
        assert "This page link is not valid any more." in broken.text
    too_long = await client.get(f"{PAGE}?status={'x' * 40}")
    assert too_long.status_code == 400

    monkeypatch.setattr(notification_pages, "PAGE_SIZE", 2)
    seen: list[int] = []
    path = f"{PAGE}?kind=order_confirmation"
    while True:
        paged = await client.get(path)
        assert paged.status_code == 200
        seen.extend(_rows(paged))
        next_link = re.search(r'href="([^"]+)" rel="next"', paged.text)
        if next_link is None:
            break
        path = html.unescape(next_link.group(1))
        assert "kind=order_confirmation" in path
    assert seen == [skipped, dead, sent]
    assert ">First page</a>" in paged.text


async def test_retry_makes_a_dead_email_due_again(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
) -> None:
    await sign_in(staff_user.email)
    dead, sent, skipped = await _make_emails(
        db,
        [
            {"status": EmailStatus.DEAD, "attempts": 8, "last_error": "refused"},
            {"status": EmailStatus.SENT, "sent_at": utcnow()},
            {"status": EmailStatus.SKIPPED, "attempts": 0},
        ],
    )
    before = utcnow()
    retried = await _post(client, f"{PAGE}/{dead}/retry", status="dead", kind="bogus")
    assert retried.status_code == 303
    assert retried.headers["location"] == f"{PAGE}?status=dead"
    email = await _email(db, dead)
    assert email.status == EmailStatus.FAILED
    assert email.next_attempt_at is not None
    assert before - timedelta(seconds=1) <= email.next_attempt_at <= utcnow()
    assert email.attempts == 8 and email.last_error == "refused"
    page = await client.get(f"{PAGE}?status=failed")
    assert f"Email {dead} to buyer1@example.com is due again" in page.text
    assert _rows(page) == [dead]
    # A failed email can be retried too (it stays failed, due now).
    again = await _post(client, f"{PAGE}/{dead}/retry")
    assert again.status_code == 303 and again.headers["location"] == PAGE

    for refused_id, status in ((sent, "sent"), (skipped, "skipped")):
        refused = await _post(client, f"{PAGE}/{refused_id}/retry")
        assert refused.status_code == 409
        assert f"Email {refused_id} is {status}: only a failed or dead email" in refused.text
        assert (await _email(db, refused_id)).status == status

    missing = await _post(client, f"{PAGE}/999999/retry")
    assert missing.status_code == 404 and "No email with id 999999." in missing.text
    for not_an_id in ("abc", "0", "99999999999999999999"):
        assert (await _post(client, f"{PAGE}/{not_an_id}/retry")).status_code == 404
    forged = await client.post(f"{PAGE}/{sent}/retry", data={})
    assert forged.status_code == 403


async def test_the_note_without_smtp(
    client: httpx.AsyncClient, sign_in: SignIn, admin_user: User, settings: Settings
) -> None:
    await sign_in(admin_user.email)
    assert settings.smtp_url is None
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert SMTP_NOTE in page.text and "kept with status skipped" in page.text
    settings.smtp_url = "smtp://127.0.0.1:2525"
    configured = await client.get(PAGE)
    assert configured.status_code == 200 and SMTP_NOTE not in configured.text


async def test_sign_in_required_and_customers_refused(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    customer_user: User,
) -> None:
    (dead,) = await _make_emails(db, [{"status": EmailStatus.DEAD}])
    anonymous = await client.get(PAGE)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fnotifications"
    posted = await client.post(f"{PAGE}/{dead}/retry", data={})
    assert posted.status_code == 303 and posted.headers["location"] == "/admin/sign-in"

    refused = await sign_in(customer_user.email)
    assert refused.status_code == 400 and NOT_STAFF in refused.text
    assert (await client.get(PAGE)).status_code == 303

    # A session whose account has become a customer's is refused on its next click.
    await sign_in(staff_user.email)
    page = await client.get(PAGE)
    assert page.status_code == 200 and _rows(page) == [dead]
    token = csrf_of(page)
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == staff_user.id).values(role=Role.CUSTOMER.value)
        )
    demoted = await client.post(f"{PAGE}/{dead}/retry", data={"csrf_token": token})
    assert demoted.status_code == 303
    assert demoted.headers["location"].startswith("/admin/sign-in")
    assert (await client.get(PAGE)).status_code == 303
    assert (await _email(db, dead)).status == EmailStatus.DEAD
