"""Sending webhooks to a real HTTP receiver on 127.0.0.1: signatures, retries on the
schedule, `dead` after the last attempt, manual retries, rotated secrets, leases, the
address check at send time, deactivation after 24 h of failures, and endpoints that do
not hold each other up."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from standardwebhooks import Webhook, WebhookVerificationError

from storekeeper.app import periodic_jobs
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events import outbox
from storekeeper.events.delivery import (
    Outcome,
    claim_due,
    deliver_due,
    new_client,
    record_outcome,
    signed_request,
)
from storekeeper.events.models import WebhookDelivery, WebhookEndpoint
from storekeeper.events.publisher import publish_all
from storekeeper.tasks import BackgroundRunner
from tests.events.receiver import Receiver

HOOKS = "/api/v1/webhooks"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def hooks(settings: Settings) -> Settings:
    """Settings for sending to 127.0.0.1 quickly: no waiting between attempts."""
    settings.webhook_allow_private_networks = True
    settings.webhook_retry_schedule = [0, 0, 0]
    settings.webhook_timeout_seconds = 1.0
    settings.events_interval_seconds = 0.05
    return settings


async def _endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, event_types: list[str]
) -> dict[str, Any]:
    response = await client.post(
        HOOKS, json={"url": url, "event_types": event_types}, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _emit(db: Database, event_type: str, data: dict[str, Any]) -> None:
    async def write(session: Any) -> None:
        await outbox.record(session, event_type, data)

    await UnitOfWork(db).run(write)
    await publish_all(db)


async def _deliver(db: Database, settings: Settings) -> int:
    async with new_client(settings) as http:
        return await deliver_due(db, settings, http)


async def _deliveries(
    client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: int
) -> list[dict[str, Any]]:
    response = await client.get(f"{HOOKS}/{endpoint_id}/deliveries", headers=headers)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _attempts_counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "storekeeper_webhook_delivery_attempts_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_delivery_is_signed_the_standard_webhooks_way(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(client, admin_headers, receiver.url("/hook"), ["order.paid"])
    await _emit(db, outbox.ORDER_SHIPPED, {"order_id": 6})  # not subscribed
    await _emit(db, outbox.ORDER_PAID, {"order_id": 7, "total_cents": 1250})

    assert await _deliver(db, hooks) == 1
    [request] = receiver.at("/hook")
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Storekeeper-Webhooks/")
    assert request.headers["webhook-id"] == "2"
    sent_at = int(request.headers["webhook-timestamp"])
    assert abs(sent_at - utcnow().timestamp()) < 5
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["id"] == 2 and payload["type"] == "order.paid"
    assert payload["data"] == {"order_id": 7, "total_cents": 1250}
    assert set(payload) == {"id", "type", "occurred_at", "data"}
    feed = (await client.get("/api/v1/events?type=order.paid", headers=admin_headers)).json()
    assert datetime.fromisoformat(payload["occurred_at"]) == datetime.fromisoformat(
        feed["items"][0]["occurred_at"]
    )
    # The signature is exactly the contract's HMAC, and no other secret verifies it.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"k" * 32).decode()).verify(
            request.body, request.headers
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(request.body + b" ", request.headers)

    [delivery] = await _deliveries(client, admin_headers, endpoint["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200 and delivery["last_error"] is None
    assert delivery["delivered_at"] is not None and delivery["next_attempt_at"] is None
    assert await _deliver(db, hooks) == 0
    assert len(receiver.requests) == 1


def test_the_signer_matches_the_standard_webhooks_verifier() -> None:
    import hashlib
    import hmac

    from storekeeper.events.delivery import Attempt

    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    attempt = Attempt(
        delivery_id=1,
        endpoint_id=1,
        number=1,
        url="http://receiver.example/",
        secret=secret,
        event_id=41,
        event_type="stock.low",
        occurred_at=datetime.fromisoformat("2026-12-02T10:00:00.5+00:00"),
        data={"sku": "TEE-S", "available": 3, "threshold": 5},
    )
    body, headers = signed_request(attempt, utcnow())
    assert orjson.loads(body) == {
        "id": 41,
        "type": "stock.low",
        "occurred_at": "2026-12-02T10:00:00.500000Z",
        "data": {"sku": "TEE-S", "available": 3, "threshold": 5},
    }
    expected = hmac.new(
        bytes(range(32)),
        f"41.{headers['webhook-timestamp']}.".encode() + body,
        hashlib.sha256,
    ).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    assert Webhook(secret).verify(body, headers) == json.loads(body)


async def test_a_failing_receiver_is_retried_until_it_answers_2xx(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    receiver.plan("/flaky", 500, 500, 200)
    endpoint = await _endpoint(client, admin_headers, receiver.url("/flaky"), ["*"])
    await _emit(db, outbox.ORDER_CREATED, {"order_id": 1})
    failed_before, succeeded_before = _attempts_counted("failed"), _attempts_counted("succeeded")

    assert await _deliver(db, hooks) == 3
    requests = receiver.at("/flaky")
    assert len(requests) == 3
    assert {request.headers["webhook-id"] for request in requests} == {"1"}
    assert len({request.body for request in requests}) == 1
    [delivery] = await _deliveries(client, admin_headers, endpoint["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200 and delivery["last_error"] is None
    assert _attempts_counted("failed") - failed_before == 2
    assert _attempts_counted("succeeded") - succeeded_before == 1
    # A success clears the endpoint's failing streak; nothing more is sent.
    read = (await client.get(f"{HOOKS}/{endpoint['id']}", headers=admin_headers)).json()
    assert read["failing_since"] is None and read["is_active"] is True
    assert await _deliver(db, hooks) == 0
    assert len(receiver.at("/flaky")) == 3


async def test_a_failed_attempt_waits_for_the_schedule(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    hooks.webhook_retry_schedule = [60, 600]
    receiver.otherwise["/down"] = 502
    endpoint = await _endpoint(client, admin_headers, receiver.url("/down"), ["*"])
    await _emit(db, outbox.ORDER_CREATED, {"order_id": 1})
    before = utcnow()
    assert await _deliver(db, hooks) == 1
    [delivery] = await _deliveries(client, admin_headers, endpoint["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 502
    assert delivery["last_error"] == "HTTP 502: answer 502"
    wait = datetime.fromisoformat(delivery["next_attempt_at"]) - before
    assert timedelta(seconds=60) <= wait < timedelta(seconds=65)
    assert await _deliver(db, hooks) == 0
    read = (await client.get(f"{HOOKS}/{endpoint['id']}", headers=admin_headers)).json()
    assert read["failing_since"] is not None and read["is_active"] is True


async def test_a_receiver_that_never_answers_makes_the_delivery_dead(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    hooks.webhook_retry_schedule = [0, 0]
    hooks.webhook_timeout_seconds = 0.2
    receiver.otherwise["/silent"] = "hang"
    endpoint = await _endpoint(client, admin_headers, receiver.url("/silent"), ["*"])
    await _emit(db, outbox.HOLD_EXPIRED, {"hold_id": "h"})
    dead_before = _attempts_counted("dead")

    assert await _deliver(db, hooks) == 3
    assert len(receiver.at("/silent")) == 3
    [delivery] = await _deliveries(client, admin_headers, endpoint["id"])
    assert delivery["status"] == "dead" and delivery["attempts"] == 3
    assert delivery["last_status_code"] is None
    assert delivery["last_error"] == "no answer within 0.2 s"
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is None
    assert _attempts_counted("dead") - dead_before == 1
    assert await _deliver(db, hooks) == 0
    async with db.transaction(write=False) as session:
        lease = await session.scalar(select(WebhookDelivery.locked_until))
    assert lease is None


async def test_retry_attempts_the_same_delivery_again_now(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    hooks.webhook_retry_schedule = []  # one attempt, then dead
    receiver.plan("/once", 503)
    endpoint = await _endpoint(client, admin_headers, receiver.url("/once"), ["*"])
    other = await _endpoint(client, admin_headers, receiver.url("/other"), ["order.paid"])
    await _emit(db, outbox.ORDER_CREATED, {"order_id": 1})
    assert await _deliver(db, hooks) == 1
    [dead] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (dead["status"], dead["attempts"], dead["last_status_code"]) == ("dead", 1, 503)

    path = f"{HOOKS}/{endpoint['id']}/deliveries/{dead['id']}/retry"
    retried = await client.post(path, headers=admin_headers)
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert (body["id"], body["status"], body["attempts"]) == (dead["id"], "failed", 1)
    assert body["next_attempt_at"] is not None
    assert await _deliver(db, hooks) == 1
    [done] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (done["id"], done["status"], done["attempts"]) == (dead["id"], "succeeded", 2)
    assert len(receiver.at("/once")) == 2

    # A succeeded delivery can be sent again too.
    again = await client.post(path, headers=admin_headers)
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert await _deliver(db, hooks) == 1
    [resent] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (resent["status"], resent["attempts"]) == ("succeeded", 3)
    assert {r.headers["webhook-id"] for r in receiver.at("/once")} == {"1"}

    wrong_endpoint = f"{HOOKS}/{other['id']}/deliveries/{dead['id']}/retry"
    assert (await client.post(wrong_endpoint, headers=admin_headers)).status_code == 404
    unknown = f"{HOOKS}/{endpoint['id']}/deliveries/999/retry"
    assert (await client.post(unknown, headers=admin_headers)).status_code == 404
    await client.patch(
        f"{HOOKS}/{endpoint['id']}", json={"is_active": False}, headers=admin_headers
    )
    inactive = await client.post(path, headers=admin_headers)
    assert inactive.status_code == 409 and inactive.json()["code"] == "conflict"


async def test_after_rotation_deliveries_verify_with_the_new_secret_only(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(client, admin_headers, receiver.url("/rotated"), ["order.paid"])
    bystander = await _endpoint(client, admin_headers, receiver.url("/bystander"), ["*"])
    rotated = await client.post(f"{HOOKS}/{endpoint['id']}/rotate-secret", headers=admin_headers)
    new_secret = rotated.json()["secret"]
    pinged = await client.post(f"{HOOKS}/{endpoint['id']}/ping", headers=admin_headers)
    assert pinged.status_code == 202
    assert await publish_all(db) == 1

    assert await _deliver(db, hooks) == 1
    [request] = receiver.at("/rotated")
    payload = Webhook(new_secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.ping" and payload["data"] == {"endpoint_id": endpoint["id"]}
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert receiver.at("/bystander") == []
    assert await _deliveries(client, admin_headers, bystander["id"]) == []


async def test_a_lease_left_by_a_dead_sender_is_taken_again_once_it_runs_out(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    endpoint = await _endpoint(client, admin_headers, receiver.url("/hook"), ["*"])
    await _emit(db, outbox.ORDER_PAID, {"order_id": 1})
    # A sender claims the attempt and dies before it sends or records anything.
    [lost] = await UnitOfWork(db).run(claim_due, lease_seconds=60, per_endpoint=4)
    assert (lost.number, lost.event_id, lost.url) == (1, 1, receiver.url("/hook"))
    assert await _deliver(db, hooks) == 0  # leased: nobody else takes it
    assert receiver.requests == []

    async def lease_runs_out(session: Any) -> None:
        await session.execute(
            update(WebhookDelivery).values(locked_until=utcnow() - timedelta(seconds=1))
        )

    await UnitOfWork(db).run(lease_runs_out)
    assert await _deliver(db, hooks) == 1
    [delivery] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2)
    # The lost sender's late outcome no longer owns the delivery and changes nothing.
    late = Outcome(succeeded=False, status_code=500, error="HTTP 500", seconds=0.1)
    assert await UnitOfWork(db).run(record_outcome, lost, late, (0, 0, 0)) is None
    [unchanged] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (unchanged["status"], unchanged["last_status_code"]) == ("succeeded", 200)


async def test_the_address_is_checked_again_right_before_sending(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    literal = await _endpoint(client, admin_headers, receiver.url("/hook"), ["*"])
    named = await _endpoint(client, admin_headers, f"http://localhost:{receiver.port}/named", ["*"])
    # Private targets were allowed when the endpoints were made; now they are not.
    hooks.webhook_allow_private_networks = False
    hooks.webhook_retry_schedule = [60]
    await _emit(db, outbox.ORDER_PAID, {"order_id": 1})
    assert await _deliver(db, hooks) == 2
    assert receiver.requests == []
    [by_literal] = await _deliveries(client, admin_headers, literal["id"])
    assert (by_literal["status"], by_literal["attempts"]) == ("failed", 1)
    assert by_literal["last_status_code"] is None
    assert by_literal["last_error"] == (
        "refused to send: the host is a loopback address (127.0.0.1)"
    )
    [by_name] = await _deliveries(client, admin_headers, named["id"])
    assert by_name["last_error"].startswith(
        "refused to send: the host 'localhost' resolves to a loopback address"
    )


async def test_an_endpoint_failing_for_24_hours_is_deactivated(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    receiver.plan("/broken", 500)
    endpoint = await _endpoint(client, admin_headers, receiver.url("/broken"), ["*"])

    async def failing_for_a_day(session: Any) -> None:
        await session.execute(
            update(WebhookEndpoint).values(failing_since=utcnow() - timedelta(hours=24, minutes=1))
        )

    await UnitOfWork(db).run(failing_for_a_day)
    await _emit(db, outbox.ORDER_PAID, {"order_id": 1})
    # One failed attempt, then the endpoint is off: its due retry is not attempted.
    assert await _deliver(db, hooks) == 1
    read = (await client.get(f"{HOOKS}/{endpoint['id']}", headers=admin_headers)).json()
    assert read["is_active"] is False
    assert "every delivery attempt failed for 24 hours" in read["deactivated_reason"]
    assert read["deactivated_reason"].endswith("Last error: HTTP 500: answer 500")
    [delivery] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert await _deliver(db, hooks) == 0

    on = await client.patch(
        f"{HOOKS}/{endpoint['id']}", json={"is_active": True}, headers=admin_headers
    )
    assert on.json()["deactivated_reason"] is None and on.json()["failing_since"] is None
    assert await _deliver(db, hooks) == 1
    [delivered] = await _deliveries(client, admin_headers, endpoint["id"])
    assert (delivered["status"], delivered["attempts"]) == ("succeeded", 2)


async def test_a_hanging_endpoint_does_not_hold_up_another(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    hooks.webhook_retry_schedule = []
    hooks.webhook_timeout_seconds = 0.6
    receiver.otherwise["/slow"] = "hang"
    slow = await _endpoint(client, admin_headers, receiver.url("/slow"), ["*"])
    await _endpoint(client, admin_headers, receiver.url("/fast"), ["*"])
    await _emit(db, outbox.ORDER_PAID, {"order_id": 1})

    sending = asyncio.create_task(_deliver(db, hooks))
    await receiver.wait_for("/slow", 1)
    await receiver.wait_for("/fast", 1)
    # While the slow endpoint's attempt hangs, a new event reaches the fast one at once.
    published_at = asyncio.get_running_loop().time()
    await _emit(db, outbox.ORDER_SHIPPED, {"order_id": 1})
    fast = await receiver.wait_for("/fast", 2, within=0.5)
    assert fast[1].at - published_at < 0.4
    assert not sending.done()
    assert await sending == 4
    assert [r.headers["webhook-id"] for r in fast] == ["1", "2"]
    statuses = [d["status"] for d in await _deliveries(client, admin_headers, slow["id"])]
    assert statuses == ["dead", "dead"]


async def test_attempts_towards_one_endpoint_are_capped(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    hooks.webhook_concurrency_per_endpoint = 2
    receiver.otherwise["/busy"] = ("slow", 0.1, 200)
    endpoint = await _endpoint(client, admin_headers, receiver.url("/busy"), ["*"])

    async def five(session: Any) -> None:
        await outbox.record_many(session, outbox.STOCK_OUT, [{"n": n} for n in range(5)])

    await UnitOfWork(db).run(five)
    assert await publish_all(db) == 5
    assert await _deliver(db, hooks) == 5
    assert receiver.most_active["/busy"] == 2
    assert sorted(int(r.headers["webhook-id"]) for r in receiver.at("/busy")) == [1, 2, 3, 4, 5]
    statuses = {d["status"] for d in await _deliveries(client, admin_headers, endpoint["id"])}
    assert statuses == {"succeeded"}


async def test_senders_side_by_side_attempt_each_delivery_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    receiver.otherwise["/a"] = ("slow", 0.02, 200)
    receiver.otherwise["/b"] = ("slow", 0.02, 204)
    first = await _endpoint(client, admin_headers, receiver.url("/a"), ["*"])
    second = await _endpoint(client, admin_headers, receiver.url("/b"), ["order.paid"])

    async def many(session: Any) -> None:
        await outbox.record_many(session, outbox.ORDER_PAID, [{"n": n} for n in range(12)])

    await UnitOfWork(db).run(many)
    assert await publish_all(db) == 12
    made = await asyncio.gather(*(_deliver(db, hooks) for _ in range(3)))
    assert sum(made) == 24
    for path, endpoint in (("/a", first), ("/b", second)):
        ids = sorted(int(r.headers["webhook-id"]) for r in receiver.at(path))
        assert ids == list(range(1, 13)), path
        response = await client.get(
            f"{HOOKS}/{endpoint['id']}/deliveries?limit=50", headers=admin_headers
        )
        rows = response.json()["items"]
        assert {(d["status"], d["attempts"]) for d in rows} == {("succeeded", 1)}


async def test_the_server_jobs_publish_and_deliver_and_a_stopped_sender_leaves_its_lease(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    hooks: Settings,
    receiver: Receiver,
) -> None:
    receiver.otherwise["/hang"] = "hang"
    endpoint = await _endpoint(client, admin_headers, receiver.url("/job"), ["order.paid"])
    hanging = await _endpoint(client, admin_headers, receiver.url("/hang"), ["order.paid"])
    jobs = [job for job in periodic_jobs(hooks) if job.name.endswith(("events", "webhooks"))]
    assert [job.name for job in jobs] == ["publish-events", "deliver-webhooks"]
    runner = BackgroundRunner(db)
    runner.start(jobs)
    try:

        async def write(session: Any) -> None:
            await outbox.record(session, outbox.ORDER_PAID, {"order_id": 9})

        await UnitOfWork(db).run(write)
        [request] = await receiver.wait_for("/job", 1)
        await receiver.wait_for("/hang", 1)
    finally:
        await runner.stop()
    assert Webhook(endpoint["secret"]).verify(request.body, request.headers)["data"] == {
        "order_id": 9
    }
    # Stopped mid-attempt: the delivery stays leased, to be claimed again after the lease.
    async with db.transaction(write=False) as session:
        row = (
            await session.execute(
                select(
                    WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.locked_until
                ).where(WebhookDelivery.endpoint_id == hanging["id"])
            )
        ).one()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.locked_until is not None and row.locked_until > utcnow()
