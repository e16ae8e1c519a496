"""The outbox of events, their publication, webhook endpoints and their deliveries.

An event is written by the transaction whose change it announces (`outbox.record`), with
`seq` from the table's own sequence and no public `id` yet. Sequence values are taken when
a row is written, not when its transaction commits, so on their own they can show a reader
event 8 before a still-running transaction commits event 7. The publisher
(`publisher.publish_events`, one process at a time) therefore gives committed events their
public `id` in the order it finds them: ids are gapless and only ever appended, so a
consumer that keeps the last id it saw never misses one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from storekeeper.db import Base, BigIntPK, JSONType, TimestampMixin, utcnow


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # The publisher's work list: events not published yet, in write order.
        Index(
            "ix_events_unpublished_seq",
            "seq",
            sqlite_where=text("id IS NULL"),
            postgresql_where=text("id IS NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The public, gapless, commit-ordered id; NULL until published.
    id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column()
    # Set for an event meant for one webhook endpoint only (`webhook.ping`).
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    published_at: Mapped[datetime | None] = mapped_column()


class EventPublication(Base):
    """One row: the last public event id given out. The publisher locks it, so one process
    at a time publishes."""

    __tablename__ = "event_publication"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookEndpoint(TimestampMixin, Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Event types it receives, or ["*"] for all.
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(String(5000))
    is_active: Mapped[bool] = mapped_column(default=True)
    secret: Mapped[str] = mapped_column(String(128))
    # Since when every attempt has failed (NULL after a success); 24 h of that deactivates.
    failing_since: Mapped[datetime | None] = mapped_column()
    deactivated_reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DeliveryStatus:
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'dead')", name="status_known"
        ),
        Index("uq_webhook_deliveries_endpoint_event", "endpoint_id", "event_id", unique=True),
        # The senders' work list: deliveries due for an attempt.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status IN ('pending', 'failed')"),
            postgresql_where=text("status IN ('pending', 'failed')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # When the next attempt is due; NULL once succeeded or dead.
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    # A sender's lease on an attempt in flight: until then no other sender takes it; a
    # sender killed mid-attempt leaves it to be retried once the lease has run out.
    locked_until: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
