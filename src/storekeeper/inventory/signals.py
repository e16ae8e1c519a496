"""Stock announcements: `stock.low`, `stock.out` and `stock.back_in_stock`.

A SKU's announcements follow its total `available` over all locations, and are decided by
where a unit of work moved it: from `before` (the total as the unit found it) to `after`
(as the unit leaves it).

| event | when |
|---|---|
| `stock.low` | `before > threshold >= after` (falls to or below the threshold from above) |
| `stock.out` | `before > 0 == after` |
| `stock.back_in_stock` | `before == 0 < after` (a SKU's first stock included) |

Deciding by crossings gives the hysteresis the contract asks for without a stored state: a
SKU hovering at its threshold crosses it downwards again only after rising above it.

How it is kept exact across processes: the ledger notes each change of a SKU's available
units in the unit of work (`note`), and registers `announce` to run just before the commit.
There, on PostgreSQL, the SKUs whose total moved are locked (`FOR NO KEY UPDATE` on their
`skus` rows, in id order, after every level the unit changed: hot rows stay last, and the
key-share locks of foreign keys are not blocked), then the totals are read by a new
statement, which sees every unit that committed before the lock was granted. Units that
move one SKU's total therefore announce one after another, each from the total the one
before left; `before` is that total less the unit's own net change. On SQLite the unit
already holds the database's write lock. Intermediate totals inside one unit (an inline
reclaim that frees units a hold then takes) are never seen by anyone and never announced.

The one-statement hold (`ledger.hold_one_line_statement`) writes outside a unit of work:
it only serves a hold that leaves its level above the SKU's threshold. Then the SKU's total
stays above the threshold too (no level's `available` is negative), before and after, so
there is nothing to announce and nothing for others to miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import before_commit, is_postgres, settings_of
from storekeeper.events import outbox
from storekeeper.inventory.lines import skus
from storekeeper.inventory.models import available_of, levels

_CHANGES = "storekeeper.stock_changes"


def note(session: AsyncSession, changes: Mapping[int, int]) -> None:
    """Record that this unit of work changed these SKUs' available units (SKU id → net
    units, negative when taken), to be announced before it commits."""
    moved = {sku_id: units for sku_id, units in changes.items() if units}
    if not moved:
        return
    pending: dict[int, int] = session.info.setdefault(_CHANGES, {})
    for sku_id, units in moved.items():
        pending[sku_id] = pending.get(sku_id, 0) + units
    before_commit(session, _CHANGES, announce)


def threshold_in_force(default: int) -> Any:
    """The SKU's `low_stock_threshold`, or `default` when it has none (SQL)."""
    return func.coalesce(skus.c.low_stock_threshold, literal(default))


def crossings(before: int, after: int, threshold: int) -> list[str]:
    """The events a SKU's total moving from `before` to `after` calls for, in order."""
    events = []
    if before > threshold >= after:
        events.append(outbox.STOCK_LOW)
    if before > 0 == after:
        events.append(outbox.STOCK_OUT)
    if before == 0 < after:
        events.append(outbox.STOCK_BACK_IN_STOCK)
    return events


async def announce(session: AsyncSession) -> None:
    """Write the stock events of this unit's changes (run by `before_commit`)."""
    changes: dict[int, int] = session.info.pop(_CHANGES, {})
    moved = sorted(sku_id for sku_id, units in changes.items() if units)
    if not moved:
        return
    if is_postgres(session):
        await session.execute(
            select(skus.c.id)
            .where(skus.c.id.in_(moved))
            .order_by(skus.c.id)
            .with_for_update(key_share=True)
        )
    default = settings_of(session).low_stock_threshold
    totals = (
        await session.execute(
            select(
                skus.c.id,
                skus.c.code,
                threshold_in_force(default),
                func.coalesce(func.sum(available_of(levels)), 0),
            )
            .select_from(skus)
            .outerjoin(levels, levels.c.sku_id == skus.c.id)
            .where(skus.c.id.in_(moved))
            .group_by(skus.c.id, skus.c.code, skus.c.low_stock_threshold)
            .order_by(skus.c.id)
        )
    ).all()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for sku_id, code, threshold, after in totals:
        after = int(after)
        before = after - changes[sku_id]
        for event_type in crossings(before, after, threshold):
            data: dict[str, Any] = {"sku": code, "available": after}
            if event_type == outbox.STOCK_LOW:
                data["threshold"] = threshold
            by_type.setdefault(event_type, []).append(data)
    for event_type in (outbox.STOCK_LOW, outbox.STOCK_OUT, outbox.STOCK_BACK_IN_STOCK):
        await outbox.record_many(session, event_type, by_type.get(event_type, []))
