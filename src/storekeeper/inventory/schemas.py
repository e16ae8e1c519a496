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
    model_config = ConfigDict(extra="forbid")


class LocationIn(Input):
    code: Code
    name: Name
    priority: Annotated[int, Field(strict=True, ge=-1_000_000, le=1_000_000)] = 0


class LocationOut(BaseModel):
    id: int
    code: str
    name: str
    priority: int
    is_active: bool
    created_at: datetime
    updated_at: datetime


class LocationStock(BaseModel):
    location: str
    on_hand: int
    reserved: int
    allocated: int
    available: int


class StockOut(BaseModel):
    """A SKU's stock, in total and per location."""

    sku: str
    on_hand: int
    reserved: int
    allocated: int
    available: int
    locations: list[LocationStock]


class AdjustmentIn(Input):
    delta: Annotated[int, Field(strict=True, ge=-1_000_000_000, le=1_000_000_000)]
    reason: AdjustmentReason
    location: Code | None = None
    note: Note | None = None

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


class MovementOut(BaseModel):
    id: int
    sku: str
    location: str
    kind: str
    on_hand_delta: int
    reserved_delta: int
    allocated_delta: int
    reason: str | None
    reference: str | None
    note: str | None
    actor_id: int | None
    created_at: datetime


class MovementFeedPage(Page[MovementOut]):
    """A page of the global ledger feed; `resume_cursor` is where to continue later, set
    even on the last page."""

    resume_cursor: str | None


class LevelOut(BaseModel):
    sku: str
    location: str
    on_hand: int
    reserved: int
    allocated: int
    available: int
    version: int


class AdjustmentOut(BaseModel):
    movement: MovementOut
    level: LevelOut


class ItemIn(Input):
    sku: Code
    quantity: Quantity
    location: Code | None = None


Items = Annotated[list[ItemIn], Field(min_length=1, max_length=100)]


class HoldIn(Input):
    client_token: Token
    items: Items
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)] | None = None
    reference: Token | None = None


class HoldExtendIn(Input):
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=86_400)]


class AllocationIn(Input):
    client_token: Token
    items: Items
    reference: Token | None = None


class ItemOut(BaseModel):
    sku: str
    quantity: int
    location: str


class ReservationOut(BaseModel):
    """A hold or an allocation (a converted hold keeps its id)."""

    id: uuid.UUID
    client_token: str
    status: str
    items: list[ItemOut]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    reference: str | None
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


class ConsistencyIssue(BaseModel):
    sku: str
    location: str
    check: str
    expected: int
    actual: int


class ConsistencyReport(BaseModel):
    is_consistent: bool
    checked_at: datetime
    levels_checked: int
    issues: list[ConsistencyIssue]


class ReconciliationRunOut(BaseModel):
    """A consistency report as it was found, kept."""

    id: int
    started_at: datetime
    finished_at: datetime
    levels_checked: int
    is_consistent: bool
    issues: list[ConsistencyIssue]
    trigger: str = Field(description='Who recorded it: "api", "cli" or "schedule".')


class ImportRowOut(BaseModel):
    row: int = Field(
        description="The row's number among the file's rows (1: the first after the header)."
    )
    sku: str
    location: str
    status: Literal["applied", "unchanged", "failed"]
    delta: int | None = None
    error: str | None = None


class ImportReportOut(BaseModel):
    applied: int
    unchanged: int
    failed: int
    rows: list[ImportRowOut]
