"""Request and response bodies of the inventory API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from storekeeper.pagination import Page
from storekeeper.validation import storable_text

CODE_PATTERN = r"^[A-Za-z0-9._-]+$"

Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=CODE_PATTERN, to_upper=True)
]
# Free text must be storable on PostgreSQL too: no NUL, no lone surrogates.
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(storable_text)
]
Token = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(storable_text)
]
Note = Annotated[str, StringConstraints(max_length=5000), AfterValidator(storable_text)]
# A SKU code named in a URL: anything that cannot be a code is bad input (422), not a lookup.
SkuInPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN, description="SKU code.")
]
SkuInQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=64, pattern=CODE_PATTERN, description="SKU code."),
]
SkuCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=CODE_PATTERN)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]

AdjustmentReason = Literal["receive", "return", "count", "damage", "loss", "correction"]


class Input(BaseModel):
    # A docstring under a field is its description in the OpenAPI document.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Output(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class LocationIn(Input):
    code: Code
    """Letters, digits, `.`, `_` and `-`, at most 64; stored upper-case, unique."""
    name: Name
    """A name for people."""
    priority: Annotated[int, Field(strict=True, ge=-1_000_000, le=1_000_000)] = 0
    """Stock is drawn from the highest priority first (ties in creation order)."""


class LocationOut(Output):
    id: int
    """The location's id."""
    code: str
    """The location code (upper-case)."""
    name: str
    """A name for people."""
    priority: int
    """Stock is drawn from the highest priority first."""
    is_active: bool
    """Inactive locations are passed over unless a request names them."""
    created_at: datetime
    """When it was created (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


class LocationStock(Output):
    location: str
    """The location code."""
    on_hand: int
    """Units physically there."""
    reserved: int
    """Units held by live holds."""
    allocated: int
    """Units allocated to orders or allocations, not yet shipped."""
    available: int
    """`on_hand - reserved - allocated`: what can be held or ordered now."""


class StockOut(Output):
    """A SKU's stock, in total and per location."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "TEE-RED-M",
                    "on_hand": 50,
                    "reserved": 3,
                    "allocated": 5,
                    "available": 42,
                    "locations": [
                        {
                            "location": "MAIN",
                            "on_hand": 50,
                            "reserved": 3,
                            "allocated": 5,
                            "available": 42,
                        }
                    ],
                }
            ]
        }
    )

    sku: str
    """The SKU code."""
    on_hand: int
    """Units physically there. Summed over locations."""
    reserved: int
    """Units held by live holds. Summed over locations."""
    allocated: int
    """Units allocated to orders or allocations, not yet shipped. Summed over locations."""
    available: int
    """`on_hand - reserved - allocated`: what can be held or ordered now. Summed over locations."""
    locations: list[LocationStock]
    """The same figures per location."""


class AdjustmentIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"delta": 50, "reason": "receive", "location": "MAIN", "note": "PO 4711"}]
        }
    )

    delta: Annotated[int, Field(strict=True, ge=-1_000_000_000, le=1_000_000_000)]
    """Units to add (> 0) or remove (< 0); never 0."""
    reason: AdjustmentReason
    """`receive`, `return`, `count`, `damage`, `loss` or `correction`."""
    location: Code | None = None
    """The location code; left out: the highest-priority active location."""
    note: Note | None = None
    """Free text kept with the movement."""

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


class MovementOut(Output):
    id: int
    """The movement's id: ascending in the order movements were written."""
    sku: str
    """The SKU code."""
    location: str
    """The location code."""
    kind: str
    """`receive`, `adjust`, `hold`, `release`, `expire`, `convert`, `allocate`, `fulfil` or
    `cancel`."""
    on_hand_delta: int
    """Change of `on_hand`."""
    reserved_delta: int
    """Change of `reserved`."""
    allocated_delta: int
    """Change of `allocated`."""
    reason: str | None
    """The adjustment's reason; null for reservation movements."""
    reference: str | None
    """The hold, allocation or order it belongs to, if any."""
    note: str | None
    """The adjustment's note."""
    actor_id: int | None
    """The user who caused it; null for the system (expiry)."""
    created_at: datetime
    """When it was written (UTC)."""


class MovementFeedPage(Page[MovementOut]):
    """A page of the global ledger feed; `resume_cursor` is where to continue later, set
    even on the last page."""

    resume_cursor: str | None
    """Where to continue later (pass it as `cursor`); set even on the last page."""


class LevelOut(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "TEE-RED-M",
                    "location": "MAIN",
                    "on_hand": 50,
                    "reserved": 3,
                    "allocated": 5,
                    "available": 42,
                    "version": 12,
                }
            ]
        }
    )

    sku: str
    """The SKU code."""
    location: str
    """The location code."""
    on_hand: int
    """Units physically there."""
    reserved: int
    """Units held by live holds."""
    allocated: int
    """Units allocated to orders or allocations, not yet shipped."""
    available: int
    """`on_hand - reserved - allocated`: what can be held or ordered now."""
    version: int
    """Increases on every change of the level."""


class AdjustmentOut(Output):
    movement: MovementOut
    """The ledger row written."""
    level: LevelOut
    """The level after it."""


class ItemIn(Input):
    sku: Code
    """The SKU code (any case)."""
    quantity: Quantity
    """Units, 1 to 1,000,000."""
    location: Code | None = None
    """Take the units from this location only; left out: from the locations in priority order."""


Items = Annotated[list[ItemIn], Field(min_length=1, max_length=100)]


class HoldIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_token": "checkout-7f3a",
                    "items": [{"sku": "TEE-RED-M", "quantity": 2}],
                    "ttl_seconds": 600,
                    "reference": "cart-1234",
                }
            ]
        }
    )

    client_token: Token
    """Your idempotency key: the same token with the same body answers the existing hold (200); with
    another body, 422 `idempotency_key_reused`."""
    items: Items
    """1 to 100 lines; all are held or none."""
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)] | None = None
    """Seconds until the hold expires and its stock returns, 1 to 86,400; left out:
    STOREKEEPER_DEFAULT_HOLD_TTL_SECONDS (900)."""
    reference: Token | None = None
    """Your own reference (a cart or session id), returned as is."""


class HoldExtendIn(Input):
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)]
    """The hold's new life from now, 1 to 86,400 seconds: `expires_at` becomes now + this."""


class AllocationIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_token": "erp-order-5521",
                    "items": [{"sku": "TEE-RED-M", "quantity": 1, "location": "MAIN"}],
                    "reference": "ERP-5521",
                }
            ]
        }
    )

    client_token: Token
    """Your idempotency key, as for holds."""
    items: Items
    """1 to 100 lines; all are allocated or none."""
    reference: Token | None = None
    """Your own reference (an external order number), returned as is."""


class ItemOut(Output):
    sku: str
    """The SKU code."""
    quantity: int
    """Units."""
    location: str
    """The location the units were taken from."""


class ReservationOut(Output):
    """A hold or an allocation (a converted hold keeps its id)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0f8c2a52-4d8e-4c43-9f57-2b1d9f6c1a10",
                    "client_token": "checkout-7f3a",
                    "status": "held",
                    "items": [{"sku": "TEE-RED-M", "quantity": 2, "location": "MAIN"}],
                    "expires_at": "2026-12-01T09:40:00Z",
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                    "reference": "cart-1234",
                    "managed_by": None,
                }
            ]
        }
    )

    id: uuid.UUID
    """The hold's or allocation's id (a converted hold keeps it)."""
    client_token: str
    """The idempotency key it was created with."""
    status: str
    """Holds: `held`, `released`, `expired`, then `allocated` once converted; allocations:
    `allocated`, `fulfilled` or `cancelled`."""
    items: list[ItemOut]
    """Its lines, one per SKU and location."""
    expires_at: datetime | None
    """When a `held` hold expires (UTC); null for allocations."""
    created_at: datetime
    """When it was created (UTC)."""
    updated_at: datetime
    """When its status last changed (UTC)."""
    reference: str | None
    """The reference it was created with."""
    managed_by: str | None = Field(
        description='"order" when an order owns the allocation: fulfil and cancel it by '
        "changing the order's status; null when the inventory API may change it."
    )

    @classmethod
    def of(cls, reservation: Any, items: Sequence[tuple[str, int, str]]) -> ReservationOut:
        """The API's view of `reservation` (a model or a row with its columns) and its
        lines as (SKU code, quantity, location code), by SKU."""
        return cls(
            id=reservation.id,
            client_token=reservation.client_token,
            status=reservation.status,
            items=[
                ItemOut(sku=sku, quantity=quantity, location=location)
                for sku, quantity, location in items
            ],
            expires_at=reservation.expires_at,
            created_at=reservation.created_at,
            updated_at=reservation.updated_at,
            reference=reservation.reference,
            managed_by=reservation.managed_by,
        )


class ConsistencyIssue(Output):
    sku: str
    """The SKU code."""
    location: str
    """The location code."""
    check: str
    """Which figure disagrees."""
    expected: int
    """What the reservations or the ledger say."""
    actual: int
    """What the level says."""


class ConsistencyReport(Output):
    is_consistent: bool
    """No issue found."""
    checked_at: datetime
    """When the check ran (UTC)."""
    levels_checked: int
    """Stock levels compared."""
    issues: list[ConsistencyIssue]
    """Every disagreement found."""


class ReconciliationRunOut(Output):
    """A consistency report as it was found, kept."""

    id: int
    """The run's id."""
    started_at: datetime
    """When the check began (UTC)."""
    finished_at: datetime
    """When it ended (UTC)."""
    levels_checked: int
    """Stock levels compared."""
    is_consistent: bool
    """No issue found."""
    issues: list[ConsistencyIssue]
    """Every disagreement found, as it stood then."""
    trigger: str = Field(description='Who recorded it: "api", "cli" or "schedule".')


class ImportRowOut(Output):
    row: int = Field(
        description="The row's number among the file's rows (1: the first after the header)."
    )
    sku: str
    """The row's SKU code, as written in the file."""
    location: str
    """The row's location code (empty: the highest-priority location)."""
    status: Literal["applied", "unchanged", "failed"]
    """`applied` (or would be, in a dry run), `unchanged` (nothing to change) or `failed`."""
    delta: int | None = None
    """The change of `on_hand` the row makes; null when it failed."""
    error: str | None = None
    """Why the row failed; null otherwise."""


class ImportReportOut(Output):
    applied: int
    """Rows that change a level (in a dry run: would)."""
    unchanged: int
    """Rows whose level already has the figure."""
    failed: int
    """Rows refused; any makes the whole import change nothing (422)."""
    rows: list[ImportRowOut]
    """Every row of the file, in order."""
