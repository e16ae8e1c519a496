"""Webhook endpoints: their administration, secrets and the check of where they may point.

Endpoint and delivery functions take the session of a unit of work, flush and never
commit. Whether a URL may be targeted needs DNS, which never runs inside a transaction:
`vet_url` resolves the host first and returns a `VettedUrl`, the only kind of URL
`create_endpoint` and `update_endpoint` accept. Unless private networks are allowed
(`Settings.webhooks_may_target_private_networks`), a URL whose host is, or resolves to, a
private, loopback, link-local, multicast, reserved or unspecified address is refused; the
sender checks the address again right before each attempt (`refusal_of_host`), since what
a name resolves to can change.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import NewType, overload
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.config import Settings
from storekeeper.db import utcnow
from storekeeper.errors import Conflict, NotFound, ValidationFailed
from storekeeper.events import outbox
from storekeeper.events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from storekeeper.events.schemas import WebhookCreate, WebhookUpdate
from storekeeper.pagination import INT64_MAX, decode_id_cursor, page_of

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# How long a name may take to resolve before the URL is refused (or the attempt fails).
RESOLVE_TIMEOUT_SECONDS = 5.0

# A URL that passed `vet_url`: its host may be targeted under the settings of the moment.
VettedUrl = NewType("VettedUrl", str)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


# Where a URL may point


def refusal_of_address(address: IPAddress) -> str | None:
    """Why `address` may not be targeted, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or address.teredo
        if isinstance(embedded, tuple):  # teredo: (server, client)
            embedded = embedded[1]
        if embedded is not None:
            return refusal_of_address(embedded)
    for kind in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address ({address})"
    if not address.is_global:
        return f"not a public address ({address})"
    return None


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return host, port


@dataclass(frozen=True)
class Resolved:
    """Where a host may be reached: a public address to connect to, or why it may not."""

    address: str | None
    refusal: str | None


async def resolve_public(host: str, port: int) -> Resolved:
    """The address to connect to for `host`, when it is (or resolves only to) public
    addresses; else why not (not public, or it does not resolve). Runs DNS: never call it
    in a transaction."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        reason = refusal_of_address(literal)
        return Resolved(None, f"the host is {reason}") if reason else Resolved(host, None)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, TimeoutError):
        infos = []
    if not infos:
        return Resolved(None, f"the host {host!r} does not resolve")
    addresses = [str(sockaddr[0]).split("%", 1)[0] for *_rest, sockaddr in infos]
    for address in addresses:
        reason = refusal_of_address(ipaddress.ip_address(address))
        if reason is not None:
            return Resolved(None, f"the host {host!r} resolves to {reason}")
    return Resolved(addresses[0], None)


async def refusal_of_host(host: str, port: int) -> str | None:
    """Why `host` may not be targeted, or None."""
    return (await resolve_public(host, port)).refusal


@dataclass(frozen=True)
class Target:
    """How to send to a webhook URL: the URL to request, and the Host header and TLS name
    to keep when the URL's host was replaced by the address it was checked at."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


async def pinned_target(url: str, settings: Settings) -> Target | str:
    """Where to send `url` now, or why not. Unless private networks are allowed, the host
    is resolved and checked, and the request goes to the very address that was checked
    (the name is kept for the Host header and for TLS): a name that resolves to a public
    address for the check and to a private one for the connection (DNS rebinding) cannot
    reach the private one."""
    if settings.webhooks_may_target_private_networks:
        return Target(url, {}, {})
    parts = urlsplit(url)
    host, port = _host_and_port(url)
    resolved = await resolve_public(host, port)
    if resolved.address is None:
        return resolved.refusal or "the host does not resolve"
    address = resolved.address
    pinned_host = f"[{address}]" if ":" in address else address
    netloc = pinned_host if parts.port is None else f"{pinned_host}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme.lower() == "https" else {}
    return Target(
        parts._replace(netloc=netloc).geturl(),
        {"host": parts.netloc.rsplit("@", 1)[-1]},
        extensions,
    )


async def refusal_of_url(url: str, settings: Settings) -> str | None:
    """Why `url` may not be targeted now, or None (always None when the settings allow
    private networks)."""
    if settings.webhooks_may_target_private_networks:
        return None
    host, port = _host_and_port(url)
    return await refusal_of_host(host, port)


@overload
async def vet_url(url: str, settings: Settings) -> VettedUrl: ...
@overload
async def vet_url(url: None, settings: Settings) -> None: ...
async def vet_url(url: str | None, settings: Settings) -> VettedUrl | None:
    """`url` (already checked for form by the schema) if it may be targeted, else a 422 on
    `body.url`. Resolves the host: call it before the unit of work, never inside one."""
    if url is None:
        return None
    reason = await refusal_of_url(url, settings)
    if reason is not None:
        raise ValidationFailed.field(
            ["body", "url"], f"webhook URLs must point at public hosts: {reason}"
        )
    return VettedUrl(url)


# Endpoints


@dataclass(frozen=True)
class EndpointPage:
    rows: list[WebhookEndpoint]
    next_cursor: str | None


async def _endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.")
    return endpoint


async def create_endpoint(
    session: AsyncSession, data: WebhookCreate, url: VettedUrl, created_by: int | None
) -> WebhookEndpoint:
    """A new active endpoint with a new secret (the caller shows it once)."""
    now = utcnow()
    endpoint = WebhookEndpoint(
        url=url,
        event_types=list(data.event_types),
        description=data.description,
        is_active=True,
        secret=new_secret(),
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def list_endpoints(session: AsyncSession, *, limit: int, cursor: str | None) -> EndpointPage:
    """Endpoints in id order."""
    query = select(WebhookEndpoint)
    after = decode_id_cursor(cursor)
    if after is not None:
        query = query.where(WebhookEndpoint.id > after)
    rows = (await session.scalars(query.order_by(WebhookEndpoint.id).limit(limit + 1))).all()
    items, next_cursor = page_of(rows, limit, lambda row: [row.id])
    return EndpointPage(items, next_cursor)


async def get_endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    return await _endpoint(session, endpoint_id)


async def update_endpoint(
    session: AsyncSession, endpoint_id: int, data: WebhookUpdate, url: VettedUrl | None
) -> WebhookEndpoint:
    """Apply the fields sent. Reactivating (or pointing at a new URL) forgets the failures
    so far; deactivating by hand records that as the reason."""
    endpoint = await _endpoint(session, endpoint_id)
    fields = data.model_fields_set
    if url is not None and url != endpoint.url:
        endpoint.url = url
        endpoint.failing_since = None
    if "event_types" in fields and data.event_types is not None:
        endpoint.event_types = list(data.event_types)
    if "description" in fields:
        endpoint.description = data.description
    active = data.is_active
    if "is_active" in fields and active is not None and active != endpoint.is_active:
        endpoint.is_active = active
        if active:
            endpoint.failing_since = None
            endpoint.deactivated_reason = None
        else:
            endpoint.deactivated_reason = "Deactivated by an admin."
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    """Delete the endpoint; its deliveries and ping events go with it (ON DELETE CASCADE)."""
    result = await session.execute(
        delete(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .returning(WebhookEndpoint.id)
        .execution_options(synchronize_session=False)
    )
    if result.scalar_one_or_none() is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.")


async def rotate_secret(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    """A new secret; every attempt claimed from now on is signed with it only."""
    endpoint = await _endpoint(session, endpoint_id)
    endpoint.secret = new_secret()
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


def _require_active(endpoint: WebhookEndpoint, action: str) -> None:
    if not endpoint.is_active:
        raise Conflict(
            f"Webhook endpoint {endpoint.id} is inactive; reactivate it (PATCH is_active) "
            f"before you {action}."
        )


async def ping(session: AsyncSession, endpoint_id: int) -> int:
    """Record a `webhook.ping` event for this endpoint alone (whatever its event types);
    the publisher gives it its delivery. An inactive endpoint receives nothing: 409."""
    endpoint = await _endpoint(session, endpoint_id)
    _require_active(endpoint, "ping it")
    await outbox.record(
        session, outbox.WEBHOOK_PING, {"endpoint_id": endpoint.id}, endpoint_id=endpoint.id
    )
    return endpoint.id


# Deliveries


@dataclass(frozen=True)
class DeliveryView:
    id: int
    event_id: int
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryPage:
    rows: list[DeliveryView]
    next_cursor: str | None


_DELIVERY_COLUMNS = (
    WebhookDelivery.id,
    WebhookDelivery.event_id,
    Event.type.label("event_type"),
    WebhookDelivery.status,
    WebhookDelivery.attempts,
    WebhookDelivery.last_status_code,
    WebhookDelivery.last_error,
    WebhookDelivery.next_attempt_at,
    WebhookDelivery.created_at,
    WebhookDelivery.delivered_at,
)


_DELIVERIES = select(*_DELIVERY_COLUMNS).join(Event, Event.id == WebhookDelivery.event_id)


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: int,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> DeliveryPage:
    """The endpoint's deliveries, newest first, optionally of one status."""
    await _endpoint(session, endpoint_id)
    query = _DELIVERIES.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    before = decode_id_cursor(cursor, INT64_MAX)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    rows = (await session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1))).all()
    items, next_cursor = page_of(rows, limit, lambda row: [row.id])
    return DeliveryPage([DeliveryView(**row._asdict()) for row in items], next_cursor)


async def retry_delivery(session: AsyncSession, endpoint_id: int, delivery_id: int) -> DeliveryView:
    """Make the delivery due now: a `failed` or `dead` one becomes `failed` and due again
    (a dead one gets one more attempt), a `succeeded` one is sent again (`pending`). Its
    `attempts` grows by one when the sender makes the attempt."""
    endpoint = await _endpoint(session, endpoint_id)
    delivery = (
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id)
            .with_for_update()
        )
    ).one_or_none()
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id} of webhook endpoint {endpoint_id}.")
    _require_active(endpoint, "retry its deliveries")
    if delivery.status in (DeliveryStatus.FAILED, DeliveryStatus.DEAD):
        delivery.status = DeliveryStatus.FAILED
    elif delivery.status == DeliveryStatus.SUCCEEDED:
        delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = utcnow()
    await session.flush()
    row = (await session.execute(_DELIVERIES.where(WebhookDelivery.id == delivery.id))).one()
    return DeliveryView(**row._asdict())
