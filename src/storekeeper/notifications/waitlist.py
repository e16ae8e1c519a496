"""The waitlist: customers waiting for a SKU to be back in stock.

An entry is one customer and one SKU (unique on the pair). Joining and leaving are each one
statement on that pair, never a read and then a write, so two requests at once cannot
make two entries or trip over each other:

- joining inserts the entry `waiting`, or turns a `notified` one back to `waiting` with a
  new `created_at` (an upsert whose update applies only to a notified entry); an entry
  already waiting is left as it is and reported so (the route answers 200 instead of 201);
- leaving deletes the entry, if there is one.

On a published `stock.back_in_stock` event the email job (`service.prepare_emails`) calls
`take_waiting`: one UPDATE turns every waiting entry of the SKU `notified` and returns whose
they were, so each waiting customer gets one email and nobody gets a second one for the
same wait, in the unit of work that makes the emails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import User
from storekeeper.catalog.models import Product, Sku
from storekeeper.db import dialect_insert, utcnow
from storekeeper.errors import NotFound
from storekeeper.notifications.models import WaitlistEntry, WaitlistStatus
from storekeeper.pagination import decode_id_cursor, page_of

# User ids per statement when reading the recipients of a long waitlist.
RECIPIENT_CHUNK = 1000


@dataclass(frozen=True)
class WaitlistEntryView:
    sku: str
    status: str
    created_at: datetime
    notified_at: datetime | None


@dataclass(frozen=True)
class Joined:
    entry: WaitlistEntryView
    # True when the customer is newly waiting (a new entry, or a notified one renewed);
    # False when they were waiting already.
    is_new: bool


@dataclass(frozen=True)
class WaitlistPage:
    rows: list[WaitlistEntryView]
    next_cursor: str | None


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


@dataclass(frozen=True)
class BackInStock:
    """The SKU a back-in-stock event names, and the customers who were waiting for it."""

    sku: str
    product_name: str
    recipients: list[Recipient]


def _no_sku(code: str) -> NotFound:
    return NotFound(f"No SKU with code {code.upper()}.")


async def _sku_of(session: AsyncSession, code: str, *, include_deleted: bool) -> tuple[int, str]:
    """The (id, code) of the SKU `code`; `NotFound` for an unknown one, and for a deleted
    one unless `include_deleted`."""
    query = select(Sku.id, Sku.code).where(Sku.code == code.upper())
    if not include_deleted:
        query = query.where(Sku.is_deleted.is_(False))
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise _no_sku(code)
    return row.id, row.code


async def join_waitlist(session: AsyncSession, user_id: int, code: str) -> Joined:
    """Put the customer on the waitlist of a live SKU (`NotFound` for an unknown or deleted
    one). Waiting already: nothing changes and `is_new` is False."""
    sku_id, sku_code = await _sku_of(session, code, include_deleted=False)
    now = utcnow()
    insert = dialect_insert(session, WaitlistEntry).values(
        sku_id=sku_id,
        user_id=user_id,
        status=WaitlistStatus.WAITING,
        created_at=now,
        notified_at=None,
    )
    joined = (
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[WaitlistEntry.sku_id, WaitlistEntry.user_id],
                set_={"status": WaitlistStatus.WAITING, "created_at": now, "notified_at": None},
                # Only a notified entry is renewed; a waiting one is kept as it is (and is
                # locked by the statement on PostgreSQL all the same).
                where=WaitlistEntry.status == WaitlistStatus.NOTIFIED,
            ).returning(WaitlistEntry.created_at)
        )
    ).scalar_one_or_none()
    if joined is not None:
        return Joined(WaitlistEntryView(sku_code, WaitlistStatus.WAITING, joined, None), True)
    waiting = (
        await session.execute(
            select(WaitlistEntry.status, WaitlistEntry.created_at, WaitlistEntry.notified_at).where(
                WaitlistEntry.sku_id == sku_id, WaitlistEntry.user_id == user_id
            )
        )
    ).one()
    return Joined(
        WaitlistEntryView(sku_code, waiting.status, waiting.created_at, waiting.notified_at),
        False,
    )


async def leave_waitlist(session: AsyncSession, user_id: int, code: str) -> None:
    """Take the customer off the waitlist of a SKU (nothing when they are not on it;
    `NotFound` for an unknown SKU). A deleted SKU's entry can still be left."""
    sku_id, _ = await _sku_of(session, code, include_deleted=True)
    await session.execute(
        delete(WaitlistEntry)
        .where(WaitlistEntry.sku_id == sku_id, WaitlistEntry.user_id == user_id)
        .execution_options(synchronize_session=False)
    )


async def list_my_waitlist(
    session: AsyncSession, user_id: int, *, limit: int, cursor: str | None = None
) -> WaitlistPage:
    """The customer's entries in id order (keyset paging); a malformed cursor is a
    `ValidationFailed` (422)."""
    query = (
        select(
            WaitlistEntry.id,
            Sku.code,
            WaitlistEntry.status,
            WaitlistEntry.created_at,
            WaitlistEntry.notified_at,
        )
        .join(Sku, Sku.id == WaitlistEntry.sku_id)
        .where(WaitlistEntry.user_id == user_id)
    )
    after = decode_id_cursor(cursor)
    if after is not None:
        query = query.where(WaitlistEntry.id > after)
    rows = (await session.execute(query.order_by(WaitlistEntry.id).limit(limit + 1))).all()
    items, next_cursor = page_of(rows, limit, lambda row: [row.id])
    return WaitlistPage(
        [WaitlistEntryView(row.code, row.status, row.created_at, row.notified_at) for row in items],
        next_cursor,
    )


async def take_waiting(session: AsyncSession, code: str, now: datetime) -> BackInStock | None:
    """Turn every waiting entry of the SKU `code` `notified` (at `now`) and return who was
    waiting; None for an unknown or deleted SKU (its entries are left alone)."""
    sku = (
        await session.execute(
            select(Sku.id, Sku.code, Sku.is_deleted, Product.name)
            .join(Product, Product.id == Sku.product_id)
            .where(Sku.code == code.upper())
        )
    ).one_or_none()
    if sku is None or sku.is_deleted:
        return None
    user_ids = sorted(
        (
            await session.execute(
                update(WaitlistEntry)
                .where(
                    WaitlistEntry.sku_id == sku.id,
                    WaitlistEntry.status == WaitlistStatus.WAITING,
                )
                .values(status=WaitlistStatus.NOTIFIED, notified_at=now)
                .returning(WaitlistEntry.user_id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    recipients: list[Recipient] = []
    for start in range(0, len(user_ids), RECIPIENT_CHUNK):
        chunk = user_ids[start : start + RECIPIENT_CHUNK]
        users = await session.execute(
            select(User.email, User.full_name).where(User.id.in_(chunk)).order_by(User.id)
        )
        recipients.extend(Recipient(user.email, user.full_name or user.email) for user in users)
    return BackInStock(sku.code, sku.name, recipients)
