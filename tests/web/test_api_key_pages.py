"""API key pages over HTTP (no browser): the list and the create form, the key shown once,
the key working until it is revoked through the page, the form's refusals next to their
fields, paging, and who may use the pages (admins only, with the form's CSRF token)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from storekeeper.accounts.api_keys import key_digest
from storekeeper.accounts.models import ApiKey, User
from storekeeper.db import Database
from storekeeper.web import api_key_pages
from storekeeper.web.dependencies import NOT_ADMIN
from tests.web.conftest import SignIn, csrf_of

KEYS = "/admin/api-keys"
LOCATIONS = "/api/v1/locations"
KEY_NOTE = "Copy it now: it will not be shown again."
KEY_PATTERN = re.compile(r"<code[^>]*data-api-key[^>]*>(sk_[A-Za-z0-9_-]{43})</code>")


def _key_of(page: httpx.Response) -> str:
    match = KEY_PATTERN.search(page.text)
    assert match, "the page shows no key"
    return match.group(1)


def _key_rows(page: httpx.Response) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-key="(\d+)">', page.text)]


def _field_error(page: httpx.Response, field: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', page.text)
    return html.unescape(found.group(1)) if found else None


def _in_a_year() -> str:
    """A date-time field's value, as a browser sends it (no seconds, no zone: UTC)."""
    return (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M")


async def _keys(db: Database) -> list[ApiKey]:
    async with db.transaction(write=False) as session:
        return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def _create(
    client: httpx.AsyncClient,
    name: str = "Storefront",
    scopes: tuple[str, ...] = ("inventory:read",),
    expires_at: str = "",
    rate_limit_per_minute: str = "",
) -> httpx.Response:
    form = await client.get(KEYS)
    assert form.status_code == 200
    return await client.post(
        KEYS,
        data={
            "csrf_token": csrf_of(form),
            "name": name,
            "scopes": list(scopes),
            "expires_at": expires_at,
            "rate_limit_per_minute": rate_limit_per_minute,
        },
    )


async def _revoke(client: httpx.AsyncClient, key_id: int) -> httpx.Response:
    page = await client.get(KEYS)
    return await client.post(f"{KEYS}/{key_id}/revoke", data={"csrf_token": csrf_of(page)})


async def test_list_and_create_show_the_key_once(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, admin_user: User
) -> None:
    await sign_in(admin_user.email)
    empty = await client.get(KEYS)
    assert empty.status_code == 200
    assert "No API keys yet." in empty.text
    assert f'<a href="{KEYS}" aria-current="page">API keys</a>' in empty.text
    assert '<a href="/admin/webhooks">Webhooks</a>' in empty.text
    # Every scope is a checkbox, with what it allows.
    assert 'id="scope-inventory-read" name="scopes" value="inventory:read"' in empty.text
    assert "<code>orders:write</code>: place orders and change their status" in empty.text
    assert 'name="expires_at" type="datetime-local"' in empty.text

    expiry = _in_a_year()
    created = await _create(
        client,
        name="ERP <sync>",
        scopes=("inventory:read", "orders:read"),
        expires_at=expiry,
        rate_limit_per_minute="600",
    )
    assert created.status_code == 201
    assert "<h1>API key created</h1>" in created.text
    assert KEY_NOTE in created.text
    assert created.headers["cache-control"] == "no-store"
    assert "set-cookie" not in created.headers
    raw_key = _key_of(created)
    (key,) = await _keys(db)
    assert key.key_digest == key_digest(raw_key)
    assert key.prefix == raw_key[:10]
    assert key.name == "ERP <sync>"
    assert key.scopes == ["inventory:read", "orders:read"]
    assert key.rate_limit_per_minute == 600
    assert key.created_by == admin_user.id
    # The date-time field is read as UTC, the time every page shows.
    assert key.expires_at is not None
    assert key.expires_at.strftime("%Y-%m-%dT%H:%M") == expiry
    assert "ERP &lt;sync&gt;" in created.text

    # Never again: the list shows the key's prefix, not the key.
    listed = await client.get(KEYS)
    assert listed.status_code == 200
    assert raw_key not in listed.text and KEY_NOTE not in listed.text
    assert _key_rows(listed) == [key.id]
    row = listed.text[listed.text.index(f'<tr data-key="{key.id}">') :]
    row = row[: row.index("</tr>")]
    assert '<th scope="row" class="wrap">ERP &lt;sync&gt;</th>' in row
    assert f"<code>{key.prefix}…</code>" in row
    scopes = '<code class="nowrap">inventory:read</code>, <code class="nowrap">orders:read</code>'
    assert scopes in row
    assert f"{expiry.replace('T', ' ')} UTC" in row
    assert '<td class="num nowrap" data-label="Rate limit">600/min</td>' in row
    assert '<span class="muted">never</span>' in row  # never used yet
    assert f'action="{KEYS}/{key.id}/revoke" data-confirm=' in row

    second = await _create(client, name="No limits")
    assert second.status_code == 201
    assert _key_of(second) != raw_key
    listed = await client.get(KEYS)
    assert len(_key_rows(listed)) == 2
    no_limit = '<td class="num nowrap" data-label="Rate limit"><span class="muted">none</span></td>'
    assert no_limit in listed.text


async def test_revoke_removes_the_key_and_deactivates_its_account(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, admin_user: User
) -> None:
    await sign_in(admin_user.email)
    assert (await _create(client, name="Stock reader")).status_code == 201
    assert (await _create(client, name="Kept")).status_code == 201
    key, kept = await _keys(db)

    revoked = await _revoke(client, key.id)
    assert revoked.status_code == 303 and revoked.headers["location"] == KEYS
    listed = await client.get(KEYS)
    assert f"API key {key.id} revoked" in listed.text
    assert _key_rows(listed) == [kept.id]
    async with db.transaction(write=False) as session:
        stored = await session.get(ApiKey, key.id)
        assert stored is not None and stored.revoked_at is not None
        account = await session.get(User, key.user_id)
        assert account is not None and not account.is_active
        still = await session.get(ApiKey, kept.id)
        assert still is not None and still.revoked_at is None
        kept_account = await session.get(User, kept.user_id)
        assert kept_account is not None and kept_account.is_active

    # Revoked already (or never there): the list says why nothing happened.
    again = await _revoke(client, key.id)
    assert again.status_code == 404
    assert f'<p class="form-error" role="alert">No API key with id {key.id}.</p>' in again.text
    assert _key_rows(again) == [kept.id]
    for path in (f"{KEYS}/0/revoke", f"{KEYS}/abc/revoke"):
        missing = await client.post(path, data={"csrf_token": csrf_of(listed)})
        assert missing.status_code == 404, path


async def test_the_key_works_until_revoked_through_the_page(
    client: httpx.AsyncClient, sign_in: SignIn, admin_user: User
) -> None:
    await sign_in(admin_user.email)
    reader = _key_of(await _create(client, name="Stock reader"))
    other = _key_of(await _create(client, name="Orders only", scopes=("orders:read",)))
    headers = {"Authorization": f"Bearer {reader}"}
    assert (await client.get(LOCATIONS, headers=headers)).status_code == 200
    # Without `inventory:read` the key is refused the operation, not the sign-in.
    assert (
        await client.get(LOCATIONS, headers={"Authorization": f"Bearer {other}"})
    ).status_code == 403

    listed = await client.get(KEYS)
    reader_id = _key_rows(listed)[0]
    assert (await _revoke(client, reader_id)).status_code == 303
    assert (await client.get(LOCATIONS, headers=headers)).status_code == 401


async def test_create_refusals_are_shown_next_to_their_fields(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, admin_user: User
) -> None:
    await sign_in(admin_user.email)
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    refusals: list[tuple[dict[str, Any], str, str]] = [
        ({"name": ""}, "name", "String should have at least 1 character."),
        ({"name": "   "}, "name", "String should have at least 1 character."),
        ({"name": "x" * 101}, "name", "String should have at most 100 characters."),
        ({"scopes": ()}, "scopes", api_key_pages.NO_SCOPES),
        ({"scopes": ("inventory:teleport",)}, "scopes", "Unknown scope 'inventory:teleport'"),
        ({"expires_at": past}, "expires_at", "Must be in the future."),
        ({"expires_at": "next tuesday"}, "expires_at", api_key_pages.BAD_EXPIRY),
        ({"rate_limit_per_minute": "0"}, "rate_limit_per_minute", "Input should be greater"),
        ({"rate_limit_per_minute": "1000001"}, "rate_limit_per_minute", "Input should be less"),
        (
            {"rate_limit_per_minute": "fast"},
            "rate_limit_per_minute",
            "The requests per minute must be a whole number.",
        ),
    ]
    for fields, field, message in refusals:
        refused = await _create(client, **fields)
        assert refused.status_code == 422, fields
        shown = _field_error(refused, field)
        assert shown is not None and shown.startswith(message), (fields, shown)
        described = (
            '<fieldset aria-describedby="scopes-error">'
            if field == "scopes"
            else f'aria-invalid="true" aria-describedby="{field}-error"'
        )
        assert described in refused.text, fields
        assert "data-api-key" not in refused.text and KEY_NOTE not in refused.text

    # Every field refused at once, each next to its field, with what was typed kept.
    everything = await _create(
        client,
        name="",
        scopes=(),
        expires_at=past,
        rate_limit_per_minute="0",
    )
    assert everything.status_code == 422
    for field in ("name", "scopes", "expires_at", "rate_limit_per_minute"):
        assert _field_error(everything, field), field
    kept = await _create(
        client,
        name="Kept <name>",
        scopes=("orders:read", "orders:write"),
        expires_at=past,
        rate_limit_per_minute="12",
    )
    assert kept.status_code == 422
    assert 'value="Kept &lt;name&gt;"' in kept.text
    assert 'value="orders:read" checked' in kept.text
    assert 'value="orders:write" checked' in kept.text
    assert 'value="inventory:read">' in kept.text  # not chosen: not checked
    assert f'value="{past}"' in kept.text
    assert 'value="12"' in kept.text
    assert await _keys(db) == []


async def test_keys_list_pages(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sign_in(admin_user.email)
    for number in range(3):
        assert (await _create(client, name=f"Key {number}")).status_code == 201
    ids = [key.id for key in await _keys(db)]
    monkeypatch.setattr(api_key_pages, "PAGE_SIZE", 2)
    first = await client.get(KEYS)
    assert _key_rows(first) == ids[:2]
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_link
    second = await client.get(html.unescape(next_link.group(1)))
    assert _key_rows(second) == ids[2:]
    assert 'rel="next"' not in second.text and ">First page</a>" in second.text
    broken = await client.get(f"{KEYS}?cursor=not-a-cursor")
    assert broken.status_code == 422 and "This page link is not valid any more." in broken.text


async def test_staff_who_are_not_admins_get_403(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    admin_user: User,
    staff_user: User,
) -> None:
    await sign_in(admin_user.email)
    assert (await _create(client)).status_code == 201
    (key,) = await _keys(db)
    await client.post("/admin/sign-out", data={"csrf_token": csrf_of(await client.get("/admin"))})

    await sign_in(staff_user.email)
    dashboard = await client.get("/admin")
    assert dashboard.status_code == 200 and KEYS not in dashboard.text
    token = csrf_of(dashboard)
    refused = await client.get(KEYS)
    assert refused.status_code == 403
    assert "<h1>Forbidden</h1>" in refused.text and NOT_ADMIN in refused.text
    posts = {
        KEYS: {"name": "Sneaky", "scopes": "orders:write"},
        f"{KEYS}/{key.id}/revoke": {},
    }
    for path, fields in posts.items():
        refused = await client.post(path, data={"csrf_token": token, **fields})
        assert refused.status_code == 403, path
        assert NOT_ADMIN in refused.text and "data-api-key" not in refused.text
    (unchanged,) = await _keys(db)
    assert unchanged.revoked_at is None


async def test_forms_need_their_csrf_token_and_a_session(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, admin_user: User
) -> None:
    signed_out = await client.get(KEYS)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fapi-keys"
    await sign_in(admin_user.email)
    forged = await client.post(KEYS, data={"name": "Forged", "scopes": "inventory:read"})
    assert forged.status_code == 403 and "data-api-key" not in forged.text
    assert await _keys(db) == []

    assert (await _create(client)).status_code == 201
    (key,) = await _keys(db)
    unsigned = await client.post(f"{KEYS}/{key.id}/revoke")
    assert unsigned.status_code == 403
    wrong = await client.post(f"{KEYS}/{key.id}/revoke", data={"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    (still,) = await _keys(db)
    assert still.revoked_at is None
