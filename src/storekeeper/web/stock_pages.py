"""Stock pages: levels per SKU and location, a SKU's adjustments, ledger and on-hand chart,
holds (list by status, release) and the consistency report.

Reads and writes go through `storekeeper.inventory`, so an adjustment here is exactly an
adjustment through the API: same validation, same ledger row, same refusal when it would
take available stock below zero.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from storekeeper.catalog.schemas import SkuCodePath
from storekeeper.db import DatabaseDep, utcnow
from storekeeper.errors import StorekeeperError, ValidationFailed
from storekeeper.inventory import service as inventory
from storekeeper.inventory.consistency import check_consistency
from storekeeper.inventory.models import ReservationStatus
from storekeeper.inventory.schemas import AdjustmentIn, AdjustmentReason
from storekeeper.pagination import (
    INT64_MAX,
    CursorQuery,
    decode_id_cursor,
    decode_time_id_cursor,
    encode_cursor,
)
from storekeeper.web import charts, dashboard
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FORM_ERROR,
    FormInvalid,
    build,
    integer,
    optional_text,
    refusal_errors,
    text,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import render, settings_of

router = APIRouter(route_class=WebRoute)

PAGE_SIZE = 50
STOCK_PATH = "/admin/stock"
HOLDS_PATH = "/admin/holds"
ADJUSTMENT_REASONS = get_args(AdjustmentReason)
HOLD_STATUSES = [
    ReservationStatus.HELD.value,
    ReservationStatus.ALLOCATED.value,
    ReservationStatus.RELEASED.value,
    ReservationStatus.EXPIRED.value,
]


@router.get("/stock")
async def stock_list(
    request: Request,
    _user: StaffUser,
    db: DatabaseDep,
    cursor: CursorQuery = None,
    sku: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if sku:
        return see_other(f"{STOCK_PATH}/{sku.strip().upper()}")
    async with db.transaction(write=False) as session:
        rows = await inventory.stock_page(
            session, after_sku_id=decode_id_cursor(cursor), limit=PAGE_SIZE + 1
        )
    next_cursor = encode_cursor([rows[PAGE_SIZE - 1].sku_id]) if len(rows) > PAGE_SIZE else None
    return render(
        request,
        "stock/list.html",
        {"section": STOCK_PATH, "rows": rows[:PAGE_SIZE], "next_cursor": next_cursor},
    )


async def _sku_page(
    request: Request,
    db: DatabaseDep,
    code: str,
    *,
    before: int | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    async with db.transaction(write=False) as session:
        sku_id, sku_code = await inventory.sku_by_code(session, code)
        (figures,) = await inventory.stock_by_codes(session, [sku_code])
        locations = await inventory.list_locations(session)
        movements = await inventory.movements_of_sku(
            session, sku_id, before_id=before, limit=PAGE_SIZE + 1
        )
        history = await dashboard.on_hand_by_day(session, sku_id, utcnow().date())
    days = dashboard.chart_days(utcnow().date())
    chart = charts.step_chart(
        days,
        history,
        title=f"Units of {sku_code} on hand, last 30 days",
        description=(
            f"{history[0]:,} units on {days[0]:%Y-%m-%d}, {history[-1]:,} on {days[-1]:%Y-%m-%d}."
        ),
        chart_id="on-hand",
    )
    older = encode_cursor([movements[PAGE_SIZE - 1].id]) if len(movements) > PAGE_SIZE else None
    return render(
        request,
        "stock/sku.html",
        {
            "section": STOCK_PATH,
            "sku": sku_code,
            "figures": figures,
            "locations": [location for location in locations if location.is_active],
            "reasons": ADJUSTMENT_REASONS,
            "movements": movements[:PAGE_SIZE],
            "older_cursor": older,
            "chart": chart,
            "errors": errors or {},
            "values": values or {},
        },
        status_code=status_code,
    )


@router.get("/stock/{code}")
async def sku_stock_page(
    request: Request,
    code: SkuCodePath,
    _user: StaffUser,
    db: DatabaseDep,
    cursor: CursorQuery = None,
) -> Response:
    return await _sku_page(request, db, code, before=decode_id_cursor(cursor, INT64_MAX))


@router.post("/stock/{code}/adjustments")
async def adjust(
    request: Request, code: SkuCodePath, user: StaffUser, db: DatabaseDep, form: StaffForm
) -> Response:
    settings = settings_of(request)
    values = {
        "delta": text(form, "delta"),
        "reason": text(form, "reason"),
        "location": optional_text(form, "location"),
        "note": optional_text(form, "note"),
    }

    async def work(session: AsyncSession) -> inventory.Adjustment:
        adjustment = build(
            AdjustmentIn,
            {**values, "delta": integer(form, "delta", "change in units")},
        )
        return await inventory.adjust_stock(
            session,
            code,
            delta=adjustment.delta,
            reason=adjustment.reason,
            location_code=adjustment.location,
            note=adjustment.note,
            actor_id=user.id,
            locking=settings.locking,
            optimistic_retries=settings.optimistic_max_retries,
        )

    try:
        adjustment = await db.run(work)
    except FormInvalid as invalid:
        errors, status = invalid.errors, 422
    except ValidationFailed as refused:
        errors, status = refusal_errors(refused), 422
    except StorekeeperError as refused:
        errors, status = {FORM_ERROR: refused.detail}, refused.status_code
    else:
        response = see_other(f"{STOCK_PATH}/{adjustment.sku}")
        change = f"{adjustment.deltas.on_hand:+,}"
        set_flash(response, settings, f"Stock of {adjustment.sku} changed by {change} units.")
        return response
    return await _sku_page(request, db, code, errors=errors, values=values, status_code=status)


# --- holds -------------------------------------------------------------------------------


@router.get("/holds")
async def holds_page(
    request: Request,
    _user: StaffUser,
    db: DatabaseDep,
    status: Annotated[str | None, Query(max_length=16)] = ReservationStatus.HELD.value,
    cursor: CursorQuery = None,
) -> Response:
    wanted = status if status in HOLD_STATUSES else None
    async with db.transaction(write=False) as session:
        views = await inventory.list_reservations(
            session,
            holds=True,
            status=wanted,
            sku_code=None,
            after=decode_time_id_cursor(cursor),
            limit=PAGE_SIZE + 1,
        )
    next_cursor = None
    if len(views) > PAGE_SIZE:
        last = views[PAGE_SIZE - 1].reservation
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return render(
        request,
        "stock/holds.html",
        {
            "section": HOLDS_PATH,
            "holds": views[:PAGE_SIZE],
            "status": wanted or "",
            "statuses": HOLD_STATUSES,
            "next_cursor": next_cursor,
            "now": utcnow(),
        },
    )


@router.post("/holds/{hold_id}/release")
async def release_hold(
    request: Request, hold_id: uuid.UUID, user: StaffUser, db: DatabaseDep, _form: StaffForm
) -> Response:
    async def work(session: AsyncSession) -> None:
        await inventory.release_hold(session, hold_id, actor_id=user.id)

    await db.run(work)
    response = see_other(HOLDS_PATH)
    set_flash(response, settings_of(request), f"Hold {hold_id} released.")
    return response


# --- consistency -------------------------------------------------------------------------


@router.get("/consistency")
async def consistency_page(request: Request, _user: StaffUser, db: DatabaseDep) -> Response:
    async with db.transaction(write=False) as session:
        report = await check_consistency(session)
    context = {"section": "/admin/consistency", "report": report}
    return render(request, "stock/consistency.html", context)
