"""Customer emails, the cursor of published events they are made from, and the waitlist.

An email is made once per (published event, kind, recipient): `emails.event_id` is the
event's public, gapless id (an order event makes one email, a `stock.back_in_stock` event
one per waiting customer), and the single `email_cursor` row holds the last event id
already turned into emails. One process at a time advances it (it locks that row; the
others skip), the way `event_publication` is numbered.

A waitlist entry is one customer waiting for one SKU: `waiting` until a back-in-stock
email is made for it, then `notified`; joining again makes it `waiting` anew.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storekeeper.db import Base, BigIntPK, utcnow


class EmailKind:
    ORDER_CONFIRMATION = "order_confirmation"
    ORDER_SHIPPED = "order_shipped"
    ORDER_CANCELLED = "order_cancelled"
    BACK_IN_STOCK = "back_in_stock"


class EmailStatus:
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    # Made while no SMTP server was configured: kept, never sent.
    SKIPPED = "skipped"


class Email(Base):
    __tablename__ = "emails"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'dead', 'skipped')", name="status_known"
        ),
        CheckConstraint(
            "kind IN ('order_confirmation', 'order_shipped', 'order_cancelled', 'back_in_stock')",
            name="kind_known",
        ),
        # One email per event, kind and recipient: made exactly once.
        Index("uq_emails_event_kind_to_address", "event_id", "kind", "to_address", unique=True),
        # The senders' work list: emails due for an attempt.
        Index(
            "ix_emails_due",
            "next_attempt_at",
            sqlite_where=text("status IN ('pending', 'failed')"),
            postgresql_where=text("status IN ('pending', 'failed')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id"))
    kind: Mapped[str] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=EmailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # When the next attempt is due; NULL once sent, dead or skipped.
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    # A sender's lease on an attempt in flight (see `events.delivery` for the pattern).
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class EmailCursor(Base):
    """One row: the last published event id already turned into emails."""

    __tablename__ = "email_cursor"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class WaitlistStatus:
    WAITING = "waiting"
    NOTIFIED = "notified"


class WaitlistEntry(Base):
    """A customer waiting for a SKU to be back in stock (one entry per SKU and customer)."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        UniqueConstraint("sku_id", "user_id"),
        CheckConstraint("status IN ('waiting', 'notified')", name="status_known"),
        # Who is waiting for a SKU (what a `stock.back_in_stock` event notifies).
        Index(
            "ix_waitlist_entries_waiting",
            "sku_id",
            "id",
            sqlite_where=text("status = 'waiting'"),
            postgresql_where=text("status = 'waiting'"),
        ),
        # A customer's entries in keyset (id) order.
        Index("ix_waitlist_entries_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=WaitlistStatus.WAITING)
    # When the customer (last) joined: a re-join after a notification starts anew.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column()
