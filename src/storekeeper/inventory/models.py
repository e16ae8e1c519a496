"""Locations, stock levels, the append-only movement ledger, and reservations.

A reservation is a hold (status `held`, with an expiry) or an allocation (`allocated`); a
converted hold keeps its id and becomes an allocation. `available_units` is the one
definition of a level's `available` figure, for SQL and for figures alike; the Core
table handles at the end are what set-based statements are built on.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Table,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storekeeper.db import Base, BigIntPK, JSONType, TimestampMixin, utcnow


def available_units(on_hand: Any, reserved: Any, allocated: Any) -> Any:
    """What a stock level can still promise: on hand, less what is held and allocated.

    The one definition of `available`: given a level's columns it is a SQL expression,
    given its figures it is the figure.
    """
    return on_hand - reserved - allocated


def available_of(level: Any) -> ColumnElement[int]:
    """`available` of a `stock_levels` table or alias, as a SQL expression."""
    expression: ColumnElement[int] = available_units(
        level.c.on_hand, level.c.reserved, level.c.allocated
    )
    return expression


def available_sql(alias: str | None = None) -> str:
    """`available` as SQL text, for raw statements (`alias.on_hand - ...`) and the CHECK."""
    prefix = f"{alias}." if alias else ""
    return str(
        available_units(
            literal_column(f"{prefix}on_hand"),
            literal_column(f"{prefix}reserved"),
            literal_column(f"{prefix}allocated"),
        )
    )


class ReservationStatus(StrEnum):
    HELD = "held"
    ALLOCATED = "allocated"
    RELEASED = "released"
    EXPIRED = "expired"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class MovementKind(StrEnum):
    RECEIVE = "receive"
    ADJUST = "adjust"
    HOLD = "hold"
    RELEASE = "release"
    EXPIRE = "expire"
    CONVERT = "convert"
    ALLOCATE = "allocate"
    FULFIL = "fulfil"
    CANCEL = "cancel"


class Location(TimestampMixin, Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Higher priority is drawn from first when a request names no location.
    priority: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("sku_id", "location_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("allocated >= 0", name="allocated_not_negative"),
        CheckConstraint(f"{available_sql()} >= 0", name="available_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    allocated: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StockMovement(Base):
    """Append-only: one row per change to one level, written in the same transaction."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        Index("ix_stock_movements_sku_id_id", "sku_id", "id"),
        # Stock as of a time: a SKU's rows up to that time, in one range of this index; on
        # PostgreSQL the deltas ride along, so the sum is an index-only scan.
        Index(
            "ix_stock_movements_sku_id_created_at",
            "sku_id",
            "created_at",
            postgresql_include=[
                "location_id",
                "on_hand_delta",
                "reserved_delta",
                "allocated_delta",
            ],
        ),
        # A movement is about one level (which references its SKU and location): checked
        # against the level row the same statement locked, not against the shared SKU and
        # location rows every concurrent hold would lock.
        ForeignKeyConstraint(
            ["sku_id", "location_id"], ["stock_levels.sku_id", "stock_levels.location_id"]
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sku_id: Mapped[int] = mapped_column()
    location_id: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    on_hand_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    allocated_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(String(5000))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reservation(TimestampMixin, Base):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(
            "status IN ('held', 'allocated', 'released', 'expired', 'fulfilled', 'cancelled')",
            name="status_known",
        ),
        # The sweeper's work list: live holds by expiry.
        Index(
            "ix_reservations_held_expires_at",
            "expires_at",
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
        Index("ix_reservations_status_created_at", "status", "created_at"),
        # A client token is its caller's own: unique per creator, so another caller's
        # identical token makes a reservation of its own instead of finding this one.
        UniqueConstraint("created_by", "client_token"),
        # Reservations made without a creator (by the system) share one namespace.
        Index(
            "uq_reservations_client_token_no_creator",
            "client_token",
            unique=True,
            sqlite_where=text("created_by IS NULL"),
            postgresql_where=text("created_by IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_token: Mapped[str] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column()
    reference: Mapped[str | None] = mapped_column(String(128))
    # The domain that owns an allocation's lifecycle ("order" for an order's allocation):
    # only that owner may fulfil or cancel it, so an order's status and its stock cannot
    # drift apart. NULL for holds and for allocations made through the inventory API.
    managed_by: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ReservationLine(Base):
    __tablename__ = "reservation_lines"
    __table_args__ = (
        UniqueConstraint("reservation_id", "sku_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_reservation_lines_sku_id_location_id", "sku_id", "location_id"),
        ForeignKeyConstraint(
            ["sku_id", "location_id"], ["stock_levels.sku_id", "stock_levels.location_id"]
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    reservation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reservations.id", ondelete="CASCADE")
    )
    sku_id: Mapped[int] = mapped_column()
    location_id: Mapped[int] = mapped_column()
    quantity: Mapped[int] = mapped_column()


class ReconciliationRun(Base):
    """A consistency report as it was found, kept: by `POST /inventory/reconciliation-runs`,
    `storekeeper check` and the periodic reconciliation job."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (Index("ix_reconciliation_runs_started_at_id", "started_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column()
    levels_checked: Mapped[int] = mapped_column(BigInteger)
    is_consistent: Mapped[bool] = mapped_column()
    # The issues as the report lists them ({sku, location, check, expected, actual}).
    issues: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    # Who asked: "api", "cli" or "schedule".
    trigger: Mapped[str] = mapped_column(String(16))


class StockImport(Base):
    """An applied CSV import under an Idempotency-Key: the same key and file again return
    this report instead of applying the file twice. Keys are their caller's own."""

    __tablename__ = "stock_imports"
    __table_args__ = (UniqueConstraint("created_by", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReconciliationSchedule(Base):
    """One row: when the periodic reconciliation last ran. The job claims the period with a
    conditional update of this row, so one process at a time records a run per period."""

    __tablename__ = "reconciliation_schedule"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column()


# Core handles of the tables, for the set-based statements of the ledger, claims and reads.
levels = cast(Table, StockLevel.__table__)
movements = cast(Table, StockMovement.__table__)
reservations = cast(Table, Reservation.__table__)
reservation_lines = cast(Table, ReservationLine.__table__)
locations = cast(Table, Location.__table__)
