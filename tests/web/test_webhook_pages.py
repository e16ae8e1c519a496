"""Webhook pages over HTTP (no browser): the list and the create form, the secret shown
once (on create and on rotate), an endpoint's buttons (activate, deactivate, ping, delete),
its deliveries with their filter, paging and Retry, and who may use them (admins only)."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from sqlalchemy import select, update

from storekeeper.accounts.models import User
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from storekeeper.events.publisher import publish_all
from storekeeper.web import webhook_pages
from storekeeper.web.dependencies import NOT_ADMIN
from tests.web.conftest import SignIn, csrf_of

HOOKS = "/admin/webhooks"
PUBLIC_URL = "https://93.184.215.14/hooks"
SECRET_NOTE = "Copy it now: it will not be shown again."
SECRET_PATTERN = re.compile(r"<code[^>]*data-secret[^>]*>(whsec_[A-Za-z0-9+/=]+)</code>")


def _secret_of(page: httpx.Response) -> str:
    match = SECRET_PATTERN.search(page.text)
    assert match, "the page shows no secret"
    return match.group(1)


def _endpoint_rows(page: httpx.Response) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-endpoint="(\d+)">', page.text)]


def _delivery_rows(page: httpx.Response) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-delivery="(\d+)">', page.text)]


async def _endpoints(db: Database) -> list[WebhookEndpoint]:
    async with db.transaction(write=False) as session:
        return list(await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


async def _create(
    client: httpx.AsyncClient,
    url: str = PUBLIC_URL,
    event_types: tuple[str, ...] = ("*",),
    description: str = "",
) -> httpx.Response:
    form = await client.get(HOOKS)
    assert form.status_code == 200
    return await client.post(
        HOOKS,
        data={
            "csrf_token": csrf_of(form),
            "url": url,
            "event_types": list(event_types),
            "description": description,
        },
    )


async def _post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    page = await client.get(HOOKS)
    return await client.post(path, data={"csrf_token": csrf_of(page), **fields})


@pytest.fixture
def public_only(settings: Settings) -> Settings:
    settings.webhook_allow_private_networks = False
    return settings


async def test_list_and_create_show_the_secret_once(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
) -> None:
    await sign_in(admin_user.email)
    empty = await client.get(HOOKS)
    assert empty.status_code == 200
    assert "No webhook endpoints yet." in empty.text
    assert f'<a href="{HOOKS}" aria-current="page">Webhooks</a>' in empty.text
    # Every known type is a checkbox, and "all" is one more.
    assert 'id="event-all" name="event_types" value="*"' in empty.text
    assert 'id="event-order.paid" name="event_types" value="order.paid"' in empty.text
    assert 'value="webhook.ping"' not in empty.text

    created = await _create(
        client, event_types=("order.paid", "stock.low"), description="ERP <sync>"
    )
    assert created.status_code == 201
    assert "<h1>Webhook endpoint created</h1>" in created.text
    assert SECRET_NOTE in created.text
    secret = _secret_of(created)
    (endpoint,) = await _endpoints(db)
    assert endpoint.secret == secret and secret.startswith("whsec_")
    assert endpoint.url == PUBLIC_URL
    assert endpoint.event_types == ["order.paid", "stock.low"]
    assert endpoint.description == "ERP <sync>"
    assert endpoint.created_by == admin_user.id
    assert f'href="{HOOKS}/{endpoint.id}"' in created.text

    # Never again: not on the endpoint's page, not in the list.
    page = await client.get(f"{HOOKS}/{endpoint.id}")
    assert page.status_code == 200
    assert secret not in page.text and SECRET_NOTE not in page.text
    assert f'<dd class="wrap" data-url>{PUBLIC_URL}</dd>' in page.text
    assert "<dd>order.paid, stock.low</dd>" in page.text
    assert "ERP &lt;sync&gt;" in page.text
    assert "No deliveries." in page.text
    listed = await client.get(HOOKS)
    assert listed.status_code == 200
    assert secret not in listed.text
    assert _endpoint_rows(listed) == [endpoint.id]
    assert f'<a href="{HOOKS}/{endpoint.id}">{PUBLIC_URL}</a>' in listed.text
    assert '<td class="wrap" data-label="Event types">order.paid, stock.low</td>' in listed.text
    assert '<span class="status status-paid">active</span>' in listed.text

    everything = await _create(client, event_types=("*",))
    assert everything.status_code == 201
    assert _secret_of(everything) != secret
    listed = await client.get(HOOKS)
    assert '<td class="wrap" data-label="Event types">all events</td>' in listed.text


async def test_create_refusals_are_shown_on_the_form(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
) -> None:
    await sign_in(admin_user.email)
    private = await _create(client, url="http://127.0.0.1:8080/hook", event_types=("order.paid",))
    assert private.status_code == 422
    assert (
        '<p class="field-error" id="url-error">Webhook URLs must point at public hosts: '
        "the host is a loopback address (127.0.0.1).</p>"
    ) in private.text
    assert 'aria-invalid="true" aria-describedby="url-error"' in private.text
    # What was typed is kept.
    assert 'value="http://127.0.0.1:8080/hook"' in private.text
    assert 'value="order.paid" checked' in private.text
    assert "whsec_" not in private.text

    refusals = {
        ("ftp://93.184.215.14/hooks", ("*",)): ("url", "Must be an http or https URL."),
        ("", ("*",)): ("url", "String should have at least 1 character."),
        (PUBLIC_URL, ()): ("event_types", webhook_pages.NO_EVENT_TYPES),
        (PUBLIC_URL, ("*", "order.paid")): (
            "event_types",
            '"*" (every type) must be the only entry.',
        ),
        (PUBLIC_URL, ("order.teleported",)): ("event_types", "Unknown event type"),
    }
    for (url, types), (field, message) in refusals.items():
        refused = await _create(client, url=url, event_types=types)
        assert refused.status_code == 422, (url, types)
        error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', refused.text)
        assert error, (url, types, refused.text)
        assert html.unescape(error.group(1)).startswith(message[:1].upper() + message[1:])
    too_long = await _create(client, description="x" * 5001)
    assert too_long.status_code == 422 and 'id="description-error"' in too_long.text
    assert await _endpoints(db) == []

    # Private networks allowed: the same URL is accepted.
    public_only.webhook_allow_private_networks = True
    accepted = await _create(client, url="http://127.0.0.1:8080/hook")
    assert accepted.status_code == 201
    assert [endpoint.url for endpoint in await _endpoints(db)] == ["http://127.0.0.1:8080/hook"]


async def test_rotate_shows_the_new_secret_once(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
) -> None:
    await sign_in(admin_user.email)
    first = _secret_of(await _create(client))
    (endpoint,) = await _endpoints(db)
    rotated = await _post(client, f"{HOOKS}/{endpoint.id}/rotate-secret")
    assert rotated.status_code == 200
    assert "<h1>New signing secret</h1>" in rotated.text and SECRET_NOTE in rotated.text
    second = _secret_of(rotated)
    assert second != first and first not in rotated.text
    (endpoint,) = await _endpoints(db)
    assert endpoint.secret == second
    page = await client.get(f"{HOOKS}/{endpoint.id}")
    assert second not in page.text and first not in page.text
    missing = await _post(client, f"{HOOKS}/999/rotate-secret")
    assert missing.status_code == 404 and "No webhook endpoint with id 999." in missing.text


async def test_ping_deactivate_and_activate(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
) -> None:
    await sign_in(admin_user.email)
    await _create(client, event_types=("order.paid",))
    (endpoint,) = await _endpoints(db)
    path = f"{HOOKS}/{endpoint.id}"

    pinged = await _post(client, f"{path}/ping")
    assert pinged.status_code == 303 and pinged.headers["location"] == path
    async with db.transaction(write=False) as session:
        events = (await session.execute(select(Event.type, Event.endpoint_id, Event.data))).all()
    assert [tuple(row) for row in events] == [
        ("webhook.ping", endpoint.id, {"endpoint_id": endpoint.id})
    ]
    page = await client.get(path)
    assert "Ping queued" in page.text
    assert await publish_all(db) == 1
    page = await client.get(path)
    (delivery_id,) = _delivery_rows(page)
    assert "<code>webhook.ping</code>" in page.text

    deactivated = await _post(client, f"{path}/active", is_active="false")
    assert deactivated.status_code == 303 and deactivated.headers["location"] == path
    page = await client.get(path)
    assert "The endpoint is deactivated." in page.text
    assert "<dd data-state>inactive</dd>" in page.text
    assert "Deactivated by an admin." in page.text
    assert f"{path}/ping" not in page.text and "/retry" not in page.text
    assert '<button type="submit">Activate</button>' in page.text

    # The service's refusal, as the API's 409, shown on the page.
    refused = await _post(client, f"{path}/ping")
    assert refused.status_code == 409
    assert f"Webhook endpoint {endpoint.id} is inactive" in refused.text
    refused_retry = await _post(client, f"{path}/deliveries/{delivery_id}/retry")
    assert refused_retry.status_code == 409
    listed = await client.get(HOOKS)
    assert "Deactivated by an admin." in listed.text
    assert '<span class="status status-cancelled">inactive</span>' in listed.text

    bad = await _post(client, f"{path}/active", is_active="maybe")
    assert bad.status_code == 422 and "Choose Activate or Deactivate." in bad.text
    activated = await _post(client, f"{path}/active", is_active="true")
    assert activated.status_code == 303
    page = await client.get(path)
    assert "The endpoint is active: it receives events again." in page.text
    assert "<dd data-state>active</dd>" in page.text and "Deactivated by an admin." not in page.text


async def test_deliveries_filter_page_and_retry(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sign_in(admin_user.email)
    await _create(client)
    (endpoint,) = await _endpoints(db)
    path = f"{HOOKS}/{endpoint.id}"
    for _ in range(3):
        assert (await _post(client, f"{path}/ping")).status_code == 303
    assert await publish_all(db) == 3
    async with db.transaction(write=False) as session:
        first, second, third = await session.scalars(
            select(WebhookDelivery.id).order_by(WebhookDelivery.id)
        )
    async with db.transaction() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == first)
            .values(
                status=DeliveryStatus.DEAD,
                attempts=8,
                last_status_code=500,
                last_error="HTTP 500 <oops>",
                next_attempt_at=None,
            )
        )

    page = await client.get(path)
    assert _delivery_rows(page) == [third, second, first]
    dead_row = page.text[page.text.index(f'<tr data-delivery="{first}">') :]
    dead_row = dead_row[: dead_row.index("</tr>")]
    assert '<span class="status">dead</span>' in dead_row
    assert '<td class="num" data-label="Attempts">8</td>' in dead_row
    assert '<td class="num" data-label="Last code">500</td>' in dead_row
    assert "HTTP 500 &lt;oops&gt;" in dead_row
    assert f"{path}/deliveries/{first}/retry" in dead_row

    dead = await client.get(f"{path}?status=dead")
    assert dead.status_code == 200 and _delivery_rows(dead) == [first]
    assert '<option value="dead" selected>dead</option>' in dead.text
    none = await client.get(f"{path}?status=succeeded")
    assert _delivery_rows(none) == [] and "No deliveries with status succeeded." in none.text
    bogus = await client.get(f"{path}?status=lost")
    assert bogus.status_code == 422 and "Choose a status from the list." in bogus.text
    broken = await client.get(f"{path}?cursor=not-a-cursor")
    assert broken.status_code == 422 and "This page link is not valid any more." in broken.text

    monkeypatch.setattr(webhook_pages, "PAGE_SIZE", 2)
    paged = await client.get(path)
    assert _delivery_rows(paged) == [third, second]
    next_link = re.search(r'href="([^"]+)" rel="next"', paged.text)
    assert next_link
    older = await client.get(html.unescape(next_link.group(1)))
    assert older.status_code == 200 and _delivery_rows(older) == [first]
    assert 'rel="next"' not in older.text and ">First page</a>" in older.text

    retried = await _post(client, f"{path}/deliveries/{first}/retry")
    assert retried.status_code == 303 and retried.headers["location"] == path
    async with db.transaction(write=False) as session:
        delivery = await session.get(WebhookDelivery, first)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is not None
    page = await client.get(f"{path}?status=failed")
    assert f"Delivery {first} is due again" in page.text
    assert _delivery_rows(page) == [first]

    missing = await _post(client, f"{path}/deliveries/999999/retry")
    assert missing.status_code == 404
    assert f"No delivery 999999 of webhook endpoint {endpoint.id}." in missing.text
    not_an_id = await _post(client, f"{path}/deliveries/abc/retry")
    assert not_an_id.status_code == 404


async def test_delete_and_unknown_endpoints(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
) -> None:
    await sign_in(admin_user.email)
    await _create(client)
    await _create(client)
    gone, kept = await _endpoints(db)
    assert (await _post(client, f"{HOOKS}/{gone.id}/ping")).status_code == 303
    assert await publish_all(db) == 1

    deleted = await _post(client, f"{HOOKS}/{gone.id}/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == HOOKS
    listed = await client.get(HOOKS)
    assert f"Webhook endpoint {gone.id} deleted with its deliveries." in listed.text
    assert _endpoint_rows(listed) == [kept.id]
    assert [endpoint.id for endpoint in await _endpoints(db)] == [kept.id]
    async with db.transaction(write=False) as session:
        assert list(await session.scalars(select(WebhookDelivery.id))) == []

    for path in (f"{HOOKS}/{gone.id}", f"{HOOKS}/999", f"{HOOKS}/0", f"{HOOKS}/abc"):
        missing = await client.get(path)
        assert missing.status_code == 404, path
        assert "<h1>Not Found</h1>" in missing.text
    assert "No webhook endpoint with id 999." in (await client.get(f"{HOOKS}/999")).text
    again = await _post(client, f"{HOOKS}/{gone.id}/delete")
    assert again.status_code == 404
    assert f"No webhook endpoint with id {gone.id}." in again.text

    listed = await client.get(f"{HOOKS}?cursor=not-a-cursor")
    assert listed.status_code == 422 and "This page link is not valid any more." in listed.text


async def test_endpoints_list_pages(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sign_in(admin_user.email)
    for _ in range(3):
        assert (await _create(client)).status_code == 201
    ids = [endpoint.id for endpoint in await _endpoints(db)]
    monkeypatch.setattr(webhook_pages, "PAGE_SIZE", 2)
    first = await client.get(HOOKS)
    assert _endpoint_rows(first) == ids[:2]
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_link
    second = await client.get(html.unescape(next_link.group(1)))
    assert _endpoint_rows(second) == ids[2:]


async def test_staff_who_are_not_admins_get_403(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    staff_user: User,
    public_only: Settings,
) -> None:
    await sign_in(admin_user.email)
    await _create(client)
    (endpoint,) = await _endpoints(db)
    await client.post("/admin/sign-out", data={"csrf_token": csrf_of(await client.get("/admin"))})

    await sign_in(staff_user.email)
    dashboard = await client.get("/admin")
    assert dashboard.status_code == 200 and HOOKS not in dashboard.text
    token = csrf_of(dashboard)
    for path in (HOOKS, f"{HOOKS}/{endpoint.id}", f"{HOOKS}/999"):
        refused = await client.get(path)
        assert refused.status_code == 403, path
        assert "<h1>Forbidden</h1>" in refused.text and NOT_ADMIN in refused.text
    posts = {
        HOOKS: {"url": PUBLIC_URL, "event_types": "*"},
        f"{HOOKS}/{endpoint.id}/rotate-secret": {},
        f"{HOOKS}/{endpoint.id}/ping": {},
        f"{HOOKS}/{endpoint.id}/active": {"is_active": "false"},
        f"{HOOKS}/{endpoint.id}/delete": {},
        f"{HOOKS}/{endpoint.id}/deliveries/1/retry": {},
    }
    for path, fields in posts.items():
        refused = await client.post(path, data={"csrf_token": token, **fields})
        assert refused.status_code == 403, path
        assert NOT_ADMIN in refused.text and "whsec_" not in refused.text
    (unchanged,) = await _endpoints(db)
    assert unchanged.secret == endpoint.secret and unchanged.is_active
    async with db.transaction(write=False) as session:
        assert list(await session.scalars(select(Event.seq))) == []


async def test_forms_need_their_csrf_token_and_a_session(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    public_only: Settings,
) -> None:
    signed_out = await client.get(HOOKS)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fwebhooks"
    await sign_in(admin_user.email)
    forged = await client.post(HOOKS, data={"url": PUBLIC_URL, "event_types": "*"})
    assert forged.status_code == 403 and "whsec_" not in forged.text
    assert await _endpoints(db) == []
