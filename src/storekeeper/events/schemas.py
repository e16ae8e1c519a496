"""HTTP bodies of the events domain: the feed, webhook endpoints and their deliveries.

Every input limit is checked here, before anything reaches a service or the database: a
webhook `url` is an absolute `http` or `https` URL of at most 2048 characters with a host
(whether that host may be reached is the service's check, `webhooks.vet_url`),
`event_types` names known types or is exactly `["*"]`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from storekeeper.events.outbox import EVENT_TYPES
from storekeeper.pagination import INT64_MAX, MAX_ID
from storekeeper.validation import storable_text

MAX_URL_LENGTH = 2048
MAX_EVENT_TYPES = 20
ALL_EVENTS = "*"


class EventOut(BaseModel):
    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1041,
                    "type": "order.created",
                    "occurred_at": "2026-12-01T09:30:00Z",
                    "data": {"id": "3e5f7a9b-1c2d-4e6f-8a0b-2c4d6e8f0a1b", "status": "pending"},
                }
            ]
        },
    )

    id: int = Field(description="Gapless, in the order events became visible.")
    type: str = Field(examples=["order.created"])
    """The event type (`order.created`, `stock.low`, ...)."""
    occurred_at: datetime
    """When it happened (UTC)."""
    data: dict[str, Any]
    """The event's payload: the resource as the API shows it."""


def _webhook_url(value: str) -> str:
    storable_text(value)
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("must be a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if port == 0:
        raise ValueError("must not name port 0")
    return value


def _event_types(value: list[str]) -> list[str]:
    if ALL_EVENTS in value:
        if value != [ALL_EVENTS]:
            raise ValueError('"*" (every type) must be the only entry')
        return value
    unknown = [item for item in value if item not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    if len(set(value)) != len(value):
        raise ValueError("each event type may be listed once")
    return value


WebhookUrl = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://shop.example/hooks"]),
    AfterValidator(_webhook_url),
]
EventTypes = Annotated[
    list[Annotated[str, Field(max_length=64)]],
    Field(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description='Event types to receive, or `["*"]` for every type.',
        examples=[["order.created", "order.paid"]],
    ),
    AfterValidator(_event_types),
]
Description = Annotated[str, Field(max_length=5000), AfterValidator(storable_text)]
EndpointIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Webhook endpoint id.")]
DeliveryIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="Delivery id.")]
DeliveryStatusName = Literal["pending", "succeeded", "failed", "dead"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "url": "https://shop.example/hooks",
                    "event_types": ["order.created", "order.paid"],
                    "description": "Order notifications for the ERP",
                }
            ]
        },
    )

    url: WebhookUrl
    """Where events are POSTed: an `http` or `https` URL on a host the service may reach."""
    event_types: EventTypes
    description: Description | None = None
    """Free text for people."""


class WebhookUpdate(BaseModel):
    """Only the fields sent change; `url`, `event_types` and `is_active` cannot be null."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    required_values: ClassVar[tuple[str, ...]] = ("url", "event_types", "is_active")

    url: WebhookUrl | None = None
    """The new URL."""
    event_types: EventTypes | None = None
    """The event types to receive, or `["*"]` for every type."""
    description: Description | None = None
    """Free text for people."""
    is_active: bool | None = Field(
        default=None, description="`true` reactivates and forgets the failures so far."
    )

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for field in self.required_values:
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class WebhookOut(BaseModel):
    """An endpoint as admins see it; the secret is shown on creation and rotation only."""

    model_config = ConfigDict(
        from_attributes=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 4,
                    "url": "https://shop.example/hooks",
                    "event_types": ["order.created", "order.paid"],
                    "description": "Order notifications for the ERP",
                    "is_active": True,
                    "failing_since": None,
                    "deactivated_reason": None,
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                }
            ]
        },
    )

    id: int
    """The endpoint's id."""
    url: str
    """Where events are POSTed."""
    event_types: list[str]
    """The event types it receives (`["*"]`: every type)."""
    description: str | None
    """Free text for people."""
    is_active: bool
    """false: no deliveries are attempted."""
    failing_since: datetime | None = Field(
        description="Since when every attempt has failed; null after a success."
    )
    deactivated_reason: str | None = Field(description="Why the endpoint was deactivated.")
    created_at: datetime
    """When it was registered (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: the signing key. Shown only in "
        "this answer; keep it."
    )


class PingOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    endpoint_id: int
    """The endpoint pinged."""
    type: Literal["webhook.ping"] = "webhook.ping"
    """The event type queued."""
    status: Literal["queued"] = "queued"
    """The ping is queued for delivery."""


class DeliveryOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The delivery's id."""
    event_id: int
    """The event delivered."""
    event_type: str
    """Its type."""
    status: DeliveryStatusName
    """`pending` (to be attempted), `succeeded`, `failed` (will be retried) or `dead` (no more
    retries)."""
    attempts: int
    """Attempts made so far."""
    last_status_code: int | None
    """The HTTP status of the last attempt; null when none was received."""
    last_error: str | None
    """What went wrong in the last attempt."""
    next_attempt_at: datetime | None
    """When the next attempt is due (UTC); null when none is."""
    created_at: datetime
    """When the delivery was queued (UTC)."""
    delivered_at: datetime | None
    """When an attempt succeeded (UTC)."""
