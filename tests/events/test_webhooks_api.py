"""The webhook endpoints API (admin): create, list, read, change, delete, rotate the
secret, ping, list and retry deliveries; where a URL may point; who may call it."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlalchemy import func, select, update

from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events import outbox
from storekeeper.events.models import Event, WebhookDelivery, WebhookEndpoint
from storekeeper.events.publisher import publish_all

HOOKS = "/api/v1/webhooks"
PUBLIC_URL = "https://93.184.215.14/hooks"
ENDPOINT_KEYS = {
    "id",
    "url",
    "event_types",
    "description",
    "is_active",
    "failing_since",
    "deactivated_reason",
    "created_at",
    "updated_at",
}


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    body.setdefault("url", PUBLIC_URL)
    body.setdefault("event_types", ["*"])
    response = await client.post(HOOKS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _assert_refused(response: httpx.Response, loc: list[str]) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["errors"][0]["loc"][: len(loc)] == loc


async def test_create_shows_the_secret_once_and_reads_never_show_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    settings.webhook_allow_private_networks = False
    created = await _create(
        client,
        admin_headers,
        event_types=["order.paid", "stock.low"],
        description="ERP",
    )
    assert set(created) == ENDPOINT_KEYS | {"secret"}
    assert created["url"] == PUBLIC_URL
    assert created["event_types"] == ["order.paid", "stock.low"]
    assert created["description"] == "ERP"
    assert created["is_active"] is True
    assert created["failing_since"] is None and created["deactivated_reason"] is None
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32

    one = await client.get(f"{HOOKS}/{created['id']}", headers=admin_headers)
    assert one.status_code == 200 and set(one.json()) == ENDPOINT_KEYS
    assert created["secret"] not in one.text
    listed = await client.get(HOOKS, headers=admin_headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert created["secret"] not in listed.text
    patched = await client.patch(
        f"{HOOKS}/{created['id']}", json={"description": "ERP 2"}, headers=admin_headers
    )
    assert patched.status_code == 200 and set(patched.json()) == ENDPOINT_KEYS

    other = await _create(client, admin_headers)
    assert other["secret"] != created["secret"]


async def test_the_list_is_paginated_by_id(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    settings.webhook_allow_private_networks = False
    ids = [(await _create(client, admin_headers))["id"] for _ in range(3)]
    first = (await client.get(f"{HOOKS}?limit=2", headers=admin_headers)).json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert first["next_cursor"] is not None
    rest = (
        await client.get(f"{HOOKS}?limit=2&cursor={first['next_cursor']}", headers=admin_headers)
    ).json()
    assert [item["id"] for item in rest["items"]] == ids[2:]
    assert rest["next_cursor"] is None
    bad = await client.get(f"{HOOKS}?cursor=garbage!", headers=admin_headers)
    _assert_refused(bad, ["query", "cursor"])


async def test_patch_changes_what_is_sent_and_reactivating_forgets_the_failures(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, db: Database
) -> None:
    settings.webhook_allow_private_networks = False
    created = await _create(client, admin_headers, description="old")
    path = f"{HOOKS}/{created['id']}"
    changed = await client.patch(
        path,
        json={
            "url": "https://93.184.215.15/new",
            "event_types": ["order.created"],
            "description": None,
        },
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["url"] == "https://93.184.215.15/new"
    assert body["event_types"] == ["order.created"]
    assert body["description"] is None and body["is_active"] is True

    off = (await client.patch(path, json={"is_active": False}, headers=admin_headers)).json()
    assert off["is_active"] is False
    assert off["deactivated_reason"] == "Deactivated by an admin."

    async def failing(session: Any) -> None:
        await session.execute(update(WebhookEndpoint).values(failing_since=utcnow()))

    await UnitOfWork(db).run(failing)
    assert (await client.get(path, headers=admin_headers)).json()["failing_since"] is not None
    on = (await client.patch(path, json={"is_active": True}, headers=admin_headers)).json()
    assert on["is_active"] is True
    assert on["failing_since"] is None and on["deactivated_reason"] is None

    for refused, loc in (
        ({"url": None}, ["body"]),
        ({"event_types": None}, ["body"]),
        ({"is_active": None}, ["body"]),
        ({"secret": "whsec_x"}, ["body", "secret"]),
        ({"event_types": []}, ["body", "event_types"]),
    ):
        _assert_refused(await client.patch(path, json=refused, headers=admin_headers), loc)
    missing = await client.patch(f"{HOOKS}/999", json={}, headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_delete_removes_the_endpoint_with_its_deliveries(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, db: Database
) -> None:
    settings.webhook_allow_private_networks = False
    created = await _create(client, admin_headers)
    kept = await _create(client, admin_headers)
    assert (await client.post(f"{HOOKS}/{created['id']}/ping", headers=admin_headers)).status_code
    assert await publish_all(db) == 1

    deleted = await client.delete(f"{HOOKS}/{created['id']}", headers=admin_headers)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await client.get(f"{HOOKS}/{created['id']}", headers=admin_headers)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    again = await client.delete(f"{HOOKS}/{created['id']}", headers=admin_headers)
    assert again.status_code == 404
    async with db.transaction(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    listed = (await client.get(HOOKS, headers=admin_headers)).json()["items"]
    assert [item["id"] for item in listed] == [kept["id"]]


async def test_rotate_returns_a_new_secret_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    settings.webhook_allow_private_networks = False
    created = await _create(client, admin_headers)
    rotated = await client.post(f"{HOOKS}/{created['id']}/rotate-secret", headers=admin_headers)
    assert rotated.status_code == 200
    body = rotated.json()
    assert set(body) == ENDPOINT_KEYS | {"secret"}
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
    read = await client.get(f"{HOOKS}/{created['id']}", headers=admin_headers)
    assert "secret" not in read.json() and body["secret"] not in read.text
    missing = await client.post(f"{HOOKS}/999/rotate-secret", headers=admin_headers)
    assert missing.status_code == 404


async def test_ping_queues_one_event_for_that_endpoint_alone(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, db: Database
) -> None:
    settings.webhook_allow_private_networks = False
    target = await _create(client, admin_headers, event_types=["order.paid"])
    await _create(client, admin_headers, event_types=["*"])
    pinged = await client.post(f"{HOOKS}/{target['id']}/ping", headers=admin_headers)
    assert pinged.status_code == 202
    assert pinged.json() == {
        "endpoint_id": target["id"],
        "type": "webhook.ping",
        "status": "queued",
    }
    assert await publish_all(db) == 1
    async with db.transaction(write=False) as session:
        rows = (
            await session.execute(
                select(WebhookDelivery.endpoint_id, Event.type, Event.data).join(
                    Event, Event.id == WebhookDelivery.event_id
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        (target["id"], "webhook.ping", {"endpoint_id": target["id"]})
    ]
    # Pings are not in the public feed.
    feed = (await client.get("/api/v1/events", headers=admin_headers)).json()
    assert feed["items"] == []

    await client.patch(f"{HOOKS}/{target['id']}", json={"is_active": False}, headers=admin_headers)
    inactive = await client.post(f"{HOOKS}/{target['id']}/ping", headers=admin_headers)
    assert inactive.status_code == 409 and inactive.json()["code"] == "conflict"
    missing = await client.post(f"{HOOKS}/999/ping", headers=admin_headers)
    assert missing.status_code == 404


async def test_event_types_are_known_types_or_everything(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    settings.webhook_allow_private_networks = False
    for event_types in (
        [],
        ["order.teleported"],
        ["webhook.ping"],
        ["*", "order.paid"],
        ["order.paid", "order.paid"],
        ["order.paid"] * 21,
        "order.paid",
        [7],
    ):
        refused = await client.post(
            HOOKS, json={"url": PUBLIC_URL, "event_types": event_types}, headers=admin_headers
        )
        _assert_refused(refused, ["body", "event_types"])
    everything = await _create(client, admin_headers, event_types=["*"])
    assert everything["event_types"] == ["*"]
    all_known = await _create(client, admin_headers, event_types=list(outbox.EVENT_TYPES))
    assert all_known["event_types"] == list(outbox.EVENT_TYPES)


async def test_urls_must_be_http_or_https_with_a_host(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    settings.webhook_allow_private_networks = True
    for url in (
        "ftp://93.184.215.14/hooks",
        "javascript:alert(1)",
        "/relative/path",
        "http:///no-host",
        "https://93.184.215.14:99999/",
        "https://93.184.215.14/with space",
        "https://93.184.215.14/" + "a" * 2030,
        "",
    ):
        refused = await client.post(
            HOOKS, json={"url": url, "event_types": ["*"]}, headers=admin_headers
        )
        _assert_refused(refused, ["body", "url"])
    longest = "https://93.184.215.14/" + "a" * (2048 - len("https://93.184.215.14/"))
    assert (await _create(client, admin_headers, url=longest))["url"] == longest


PRIVATE_URLS = (
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "https://172.16.5.4/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]:9000/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://100.64.0.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
)


async def test_private_targets_are_refused_unless_allowed(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    settings.webhook_allow_private_networks = False
    assert not settings.webhooks_may_target_private_networks
    for url in PRIVATE_URLS:
        refused = await client.post(
            HOOKS, json={"url": url, "event_types": ["*"]}, headers=admin_headers
        )
        _assert_refused(refused, ["body", "url"])
        assert "public hosts" in refused.json()["detail"], url
    loopback = await client.post(
        HOOKS, json={"url": "http://localhost:1/", "event_types": ["*"]}, headers=admin_headers
    )
    assert "'localhost' resolves to a loopback address" in loopback.json()["detail"]
    assert (await client.get(HOOKS, headers=admin_headers)).json()["items"] == []

    public = await _create(client, admin_headers)
    moved = await client.patch(
        f"{HOOKS}/{public['id']}", json={"url": "http://10.0.0.1/"}, headers=admin_headers
    )
    _assert_refused(moved, ["body", "url"])

    settings.webhook_allow_private_networks = True
    for url in PRIVATE_URLS[:3]:
        assert (await _create(client, admin_headers, url=url))["url"] == url


async def test_webhooks_are_for_admins(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    staff_headers: dict[str, str],
    settings: Settings,
) -> None:
    settings.webhook_allow_private_networks = False
    created = await _create(client, admin_headers)
    body = {"url": "http://127.0.0.1/", "event_types": ["*"]}
    for method, path, json in (
        ("POST", HOOKS, body),
        ("GET", HOOKS, None),
        ("GET", f"{HOOKS}/{created['id']}", None),
        ("PATCH", f"{HOOKS}/{created['id']}", {"url": "http://127.0.0.1/"}),
        ("DELETE", f"{HOOKS}/{created['id']}", None),
        ("POST", f"{HOOKS}/{created['id']}/rotate-secret", None),
        ("POST", f"{HOOKS}/{created['id']}/ping", None),
        ("GET", f"{HOOKS}/{created['id']}/deliveries", None),
        ("POST", f"{HOOKS}/{created['id']}/deliveries/1/retry", None),
    ):
        anonymous = await client.request(method, path, json=json)
        assert anonymous.status_code == 401, (method, path)
        denied = await client.request(method, path, json=json, headers=staff_headers)
        assert denied.status_code == 403, (method, path)
        assert denied.json()["code"] == "forbidden"


async def test_deliveries_are_listed_newest_first_by_status(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, db: Database
) -> None:
    settings.webhook_allow_private_networks = False
    created = await _create(client, admin_headers, event_types=["order.paid", "stock.out"])

    async def emit(session: Any) -> None:
        await outbox.record(session, outbox.ORDER_PAID, {"order_id": 1})
        await outbox.record(session, outbox.STOCK_OUT, {"sku": "A", "available": 0})
        await outbox.record(session, outbox.ORDER_PAID, {"order_id": 2})

    await UnitOfWork(db).run(emit)
    assert await publish_all(db) == 3

    async def kill_first(session: Any) -> None:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.event_id == 1)
            .values(status="dead", attempts=8, next_attempt_at=None, last_error="HTTP 500")
        )

    await UnitOfWork(db).run(kill_first)
    path = f"{HOOKS}/{created['id']}/deliveries"
    page = (await client.get(f"{path}?limit=2", headers=admin_headers)).json()
    assert [(d["event_id"], d["event_type"]) for d in page["items"]] == [
        (3, "order.paid"),
        (2, "stock.out"),
    ]
    first = page["items"][0]
    assert set(first) == {
        "id",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    }
    assert first["status"] == "pending" and first["attempts"] == 0
    assert first["next_attempt_at"] is not None and first["delivered_at"] is None
    rest = (
        await client.get(f"{path}?limit=2&cursor={page['next_cursor']}", headers=admin_headers)
    ).json()
    assert [d["event_id"] for d in rest["items"]] == [1] and rest["next_cursor"] is None
    dead = (await client.get(f"{path}?status=dead", headers=admin_headers)).json()["items"]
    assert [(d["event_id"], d["attempts"], d["last_error"]) for d in dead] == [(1, 8, "HTTP 500")]
    pending = (await client.get(f"{path}?status=pending", headers=admin_headers)).json()
    assert [d["event_id"] for d in pending["items"]] == [3, 2]

    _assert_refused(
        await client.get(f"{path}?status=lost", headers=admin_headers), ["query", "status"]
    )
    missing = await client.get(f"{HOOKS}/999/deliveries", headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_the_webhook_routes_are_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    create = spec["paths"]["/api/v1/webhooks"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/WebhookCreate"}
    assert {"201", "401", "403", "422"} <= set(create["responses"])
    retry = spec["paths"]["/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry"]
    assert {"202", "404", "409"} <= set(retry["post"]["responses"])
    assert "secret" not in spec["components"]["schemas"]["WebhookOut"]["properties"]
