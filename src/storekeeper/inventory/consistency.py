"""The consistency report: do the stock figures agree with the reservations and the ledger?

Per (SKU, location) level it checks that no bucket and no `available` is negative, that
`reserved` equals the live held lines, `allocated` the allocated lines, and each of
`on_hand`, `reserved` and `allocated` the sum of its ledger deltas. Ledger rows or live lines
whose level does not exist are reported too. Everything is one set-based statement (one
snapshot, a few aggregate scans), so it stays fast on millions of levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import utcnow
from storekeeper.inventory.lines import skus
from storekeeper.inventory.models import (
    ReservationStatus,
    available_of,
    available_units,
    levels,
    locations,
    movements,
    reservation_lines,
    reservations,
)

MAX_ISSUES = 1000


@dataclass(frozen=True)
class Issue:
    sku: str
    location: str
    check: str
    expected: int
    actual: int


@dataclass(frozen=True)
class Report:
    is_consistent: bool
    checked_at: datetime
    levels_checked: int
    issues: list[Issue]


def _mismatches() -> Any:
    """Rows (sku_id, location_id, level figures, line sums, ledger sums) that disagree."""
    held = ReservationStatus.HELD.value
    allocated = ReservationStatus.ALLOCATED.value
    lines = (
        select(
            reservation_lines.c.sku_id,
            reservation_lines.c.location_id,
            func.sum(
                case((reservations.c.status == held, reservation_lines.c.quantity), else_=0)
            ).label("held"),
            func.sum(
                case((reservations.c.status == allocated, reservation_lines.c.quantity), else_=0)
            ).label("allocated"),
        )
        .join(reservations, reservations.c.id == reservation_lines.c.reservation_id)
        .where(reservations.c.status.in_([held, allocated]))
        .group_by(reservation_lines.c.sku_id, reservation_lines.c.location_id)
        .cte("live_lines")
    )
    ledger = (
        select(
            movements.c.sku_id,
            movements.c.location_id,
            func.sum(movements.c.on_hand_delta).label("on_hand"),
            func.sum(movements.c.reserved_delta).label("reserved"),
            func.sum(movements.c.allocated_delta).label("allocated"),
        )
        .group_by(movements.c.sku_id, movements.c.location_id)
        .cte("ledger")
    )
    held_sum = func.coalesce(lines.c.held, 0)
    allocated_sum = func.coalesce(lines.c.allocated, 0)
    ledger_on_hand = func.coalesce(ledger.c.on_hand, 0)
    ledger_reserved = func.coalesce(ledger.c.reserved, 0)
    ledger_allocated = func.coalesce(ledger.c.allocated, 0)
    at_level = (
        select(
            levels.c.sku_id,
            levels.c.location_id,
            levels.c.on_hand,
            levels.c.reserved,
            levels.c.allocated,
            held_sum,
            allocated_sum,
            ledger_on_hand,
            ledger_reserved,
            ledger_allocated,
        )
        .select_from(levels)
        .outerjoin(
            lines,
            and_(lines.c.sku_id == levels.c.sku_id, lines.c.location_id == levels.c.location_id),
        )
        .outerjoin(
            ledger,
            and_(
                ledger.c.sku_id == levels.c.sku_id,
                ledger.c.location_id == levels.c.location_id,
            ),
        )
        .where(
            or_(
                levels.c.on_hand < 0,
                levels.c.reserved < 0,
                levels.c.allocated < 0,
                available_of(levels) < 0,
                levels.c.reserved != held_sum,
                levels.c.allocated != allocated_sum,
                levels.c.on_hand != ledger_on_hand,
                levels.c.reserved != ledger_reserved,
                levels.c.allocated != ledger_allocated,
            )
        )
    )

    def no_level(source: Any) -> Any:
        return ~exists().where(
            levels.c.sku_id == source.c.sku_id, levels.c.location_id == source.c.location_id
        )

    zero = literal(0)
    ledger_without_level = select(
        ledger.c.sku_id,
        ledger.c.location_id,
        zero,
        zero,
        zero,
        zero,
        zero,
        ledger.c.on_hand,
        ledger.c.reserved,
        ledger.c.allocated,
    ).where(
        no_level(ledger),
        or_(ledger.c.on_hand != 0, ledger.c.reserved != 0, ledger.c.allocated != 0),
    )
    lines_without_level = select(
        lines.c.sku_id,
        lines.c.location_id,
        zero,
        zero,
        zero,
        lines.c.held,
        lines.c.allocated,
        zero,
        zero,
        zero,
    ).where(no_level(lines), or_(lines.c.held != 0, lines.c.allocated != 0))
    return union_all(at_level, ledger_without_level, lines_without_level).limit(MAX_ISSUES)


def _issues_of(row: Any) -> list[tuple[str, int, int]]:
    """(check, expected, actual) for every check the row fails."""
    (
        _sku_id,
        _location_id,
        on_hand,
        reserved,
        allocated,
        held_sum,
        allocated_sum,
        ledger_on_hand,
        ledger_reserved,
        ledger_allocated,
    ) = row
    available = available_units(on_hand, reserved, allocated)
    checks = [
        ("on_hand_not_negative", on_hand >= 0, 0, on_hand),
        ("reserved_not_negative", reserved >= 0, 0, reserved),
        ("allocated_not_negative", allocated >= 0, 0, allocated),
        (
            "available_not_negative",
            available >= 0,
            0,
            available,
        ),
        ("reserved_matches_holds", reserved == held_sum, held_sum, reserved),
        ("allocated_matches_allocations", allocated == allocated_sum, allocated_sum, allocated),
        ("on_hand_matches_ledger", on_hand == ledger_on_hand, ledger_on_hand, on_hand),
        ("reserved_matches_ledger", reserved == ledger_reserved, ledger_reserved, reserved),
        ("allocated_matches_ledger", allocated == ledger_allocated, ledger_allocated, allocated),
    ]
    return [(name, int(expected), int(actual)) for name, ok, expected, actual in checks if not ok]


async def check_consistency(session: AsyncSession) -> Report:
    """The report (at most `MAX_ISSUES` levels' issues are listed)."""
    checked_at = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # The ledger aggregate has one group per level: give it memory to hash in, and
        # this report more time than an API statement gets.
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
        await session.execute(text("SET LOCAL statement_timeout = '300s'"))
    levels_checked = (await session.execute(select(func.count()).select_from(levels))).scalar_one()
    rows = (await session.execute(_mismatches())).all()
    if not rows:
        return Report(True, checked_at, levels_checked, [])
    sku_rows = await session.execute(
        select(skus.c.id, skus.c.code).where(skus.c.id.in_({row[0] for row in rows}))
    )
    sku_codes = {row.id: row.code for row in sku_rows}
    location_rows = await session.execute(select(locations.c.id, locations.c.code))
    location_codes = {row.id: row.code for row in location_rows}
    issues = [
        Issue(
            sku_codes.get(row[0], str(row[0])),
            location_codes.get(row[1], str(row[1])),
            check,
            expected,
            actual,
        )
        for row in sorted(rows, key=lambda row: (row[0], row[1]))
        for check, expected, actual in _issues_of(row)
    ]
    return Report(not issues, checked_at, levels_checked, issues)
