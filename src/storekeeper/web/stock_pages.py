"""Stock pages: levels per SKU and location, a SKU's adjustments, ledger and on-hand chart,
holds (list by status, release) and the consistency report.

Reads and writes go through `storekeeper.inventory`, so an adjustment here is exactly an
adjustment through the API: same validation, same ledger row, same refusal when it would
take available stock below zero.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from storekeeper.accounts.dependencies import StockPolicyDep
from storekeeper.catalog.schemas import SkuCodePath
from storekeeper.db import UnitOfWork, UnitOfWorkDep, utcnow
from storekeeper.errors import ValidationFailed
from storekeeper.inventory import queries, reconciliation, service, stock, transfer
from storekeeper.inventory.models import ReservationStatus
from storekeeper.inventory.schemas import AdjustmentIn, AdjustmentReason
from storekeeper.orders import queries as order_queries
from storekeeper.pagination import (
    INT64_MAX,
    MAX_ID,
    CursorQuery,
    decode_cursor,
    decode_id_cursor,
    decode_time_id_cursor,
    page_of,
)
from storekeeper.web import charts, dashboard
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FormInvalid,
    Refusal,
    attempt,
    build,
    form_refusal,
    integer,
    optional_text,
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


def _sku_key(row: queries.SkuStock) -> list[int]:
    return [row.sku_id]


def _movement_key(movement: queries.MovementView) -> list[int]:
    return [movement.id]


def _hold_key(view: service.ReservationView) -> list[str]:
    return [view.reservation.created_at.isoformat(), str(view.reservation.id)]


@router.get("/stock")
async def stock_list(
    request: Request,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    cursor: CursorQuery = None,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    location: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if sku:
        return see_other(f"{STOCK_PATH}/{sku.strip().upper()}")
    wanted = location.strip().upper() if location and location.strip() else None
    rows = await uow.run(
        queries.stock_list,
        after_sku_id=decode_id_cursor(cursor),
        limit=PAGE_SIZE + 1,
        location_code=wanted,
    )
    items, next_cursor = page_of(rows, PAGE_SIZE, _sku_key)
    return render(
        request,
        "stock/list.html",
        {
            "section": STOCK_PATH,
            "rows": items,
            "next_cursor": next_cursor,
            "location": wanted or "",
        },
    )


@router.get("/stock/export.csv")
async def export_stock_csv(
    _user: StaffUser,
    uow: UnitOfWorkDep,
    location: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The stock list's Export button: the API's CSV export, for a signed-in person."""
    return StreamingResponse(
        await transfer.export_csv(uow, location or None),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="stock-levels.csv"'},
    )


IMPORT_PATH = f"{STOCK_PATH}/import"


@router.get("/stock/import")
async def import_page(request: Request, _user: StaffUser) -> Response:
    """Upload a stock take or adjustments file; preview it (dry run) before applying."""
    return render(request, "stock/import.html", {"section": STOCK_PATH, "report": None})


@router.post("/stock/import")
async def import_stock(
    request: Request, user: StaffUser, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    """Preview (dry run) or apply an uploaded file through the API's import service: the
    preview shows every row as it would be, with an Apply button carrying the same file."""
    upload = form.get("file")
    if upload is not None and not isinstance(upload, str):
        content = await upload.read()
    else:
        content = str(form.get("content") or "").encode()
    apply = form.get("action") == "apply"
    context: dict[str, Any] = {"section": STOCK_PATH, "report": None, "error": None}
    try:
        parsed = transfer.parse_import(content)
        report = await uow.run(
            transfer.import_stock, parsed, dry_run=not apply, idempotency_key=None, actor_id=user.id
        )
    except ValidationFailed as exc:
        context["error"] = exc.detail
        return render(request, "stock/import.html", context, status_code=422)
    except transfer.ImportRefused as exc:
        context.update(report=exc.extra, refused=True, content=content.decode())
        return render(request, "stock/import.html", context, status_code=422)
    if apply:
        response = see_other(STOCK_PATH)
        set_flash(
            response,
            settings_of(request),
            f"Import applied: {report.applied} row(s) changed, {report.unchanged} unchanged.",
        )
        return response
    context.update(report=report.body(), refused=False, content=content.decode())
    return render(request, "stock/import.html", context)


async def _sku_page(
    request: Request,
    uow: UnitOfWork,
    code: str,
    *,
    before: int | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
    as_of: datetime | None = None,
    as_of_error: str | None = None,
) -> Response:
    days = dashboard.chart_days(utcnow().date())
    page = await uow.run(
        queries.sku_stock_page,
        code,
        before_id=before,
        limit=PAGE_SIZE + 1,
        days=days,
        as_of=as_of,
    )
    sku_code, history = page.stock.sku, page.on_hand_by_day
    chart = charts.step_chart(
        days,
        history,
        title=f"Units of {sku_code} on hand, last 30 days",
        description=(
            f"{history[0]:,} units on {days[0]:%Y-%m-%d}, {history[-1]:,} on {days[-1]:%Y-%m-%d}."
        ),
        chart_id="on-hand",
    )
    movements, older = page_of(page.movements, PAGE_SIZE, _movement_key)
    return render(
        request,
        "stock/sku.html",
        {
            "section": STOCK_PATH,
            "sku": sku_code,
            "figures": page.stock,
            "locations": page.locations,
            "reasons": ADJUSTMENT_REASONS,
            "movements": movements,
            "older_cursor": older,
            "chart": chart,
            "errors": errors or {},
            "values": values or {},
            "as_of": as_of,
            "as_of_error": as_of_error,
        },
        status_code=status_code,
    )


def _as_of(value: str | None) -> tuple[datetime | None, str | None]:
    """The picker's date and time (read as UTC; seconds optional), or the reason it is not
    one."""
    if not value:
        return None, None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, "Enter a date and time, e.g. 2026-11-23T10:00."
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC), None


@router.get("/stock/{code}")
async def sku_stock_page(
    request: Request,
    code: SkuCodePath,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    cursor: CursorQuery = None,
    as_of: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The SKU's stock; with `as_of` (the page's date and time picker, UTC) the figures as
    they stood then, from the ledger."""
    moment, problem = _as_of(as_of)
    return await _sku_page(
        request,
        uow,
        code,
        before=decode_id_cursor(cursor, INT64_MAX),
        as_of=moment,
        as_of_error=problem,
        status_code=422 if problem else 200,
    )


@router.post("/stock/{code}/adjustments")
async def adjust(
    request: Request,
    code: SkuCodePath,
    user: StaffUser,
    uow: UnitOfWorkDep,
    policy: StockPolicyDep,
    form: StaffForm,
) -> Response:
    values = {
        "delta": text(form, "delta"),
        "reason": text(form, "reason"),
        "location": optional_text(form, "location"),
        "note": optional_text(form, "note"),
    }
    outcome: stock.Adjustment | Refusal
    try:
        adjustment = build(
            AdjustmentIn,
            {**values, "delta": integer(form, "delta", "change in units")},
        )
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(
            uow,
            stock.adjust_stock,
            code,
            delta=adjustment.delta,
            reason=adjustment.reason,
            location_code=adjustment.location,
            note=adjustment.note,
            actor_id=user.id,
            policy=policy,
        )
    if isinstance(outcome, Refusal):
        return await _sku_page(
            request, uow, code, errors=outcome.errors, values=values, status_code=outcome.status
        )
    response = see_other(f"{STOCK_PATH}/{outcome.sku}")
    change = f"{outcome.deltas.on_hand:+,}"
    set_flash(response, settings_of(request), f"Stock of {outcome.sku} changed by {change} units.")
    return response


# --- holds -------------------------------------------------------------------------------


@router.get("/holds")
async def holds_page(
    request: Request,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    status: Annotated[str | None, Query(max_length=16)] = ReservationStatus.HELD.value,
    cursor: CursorQuery = None,
) -> Response:
    wanted = status if status in HOLD_STATUSES else None
    views = await uow.run(
        service.list_reservations,
        holds=True,
        status=wanted,
        sku_code=None,
        after=decode_time_id_cursor(cursor),
        limit=PAGE_SIZE + 1,
    )
    holds, next_cursor = page_of(views, PAGE_SIZE, _hold_key)
    return render(
        request,
        "stock/holds.html",
        {
            "section": HOLDS_PATH,
            "holds": holds,
            "status": wanted or "",
            "statuses": HOLD_STATUSES,
            "next_cursor": next_cursor,
            "now": utcnow(),
        },
    )


@router.post("/holds/{hold_id}/release")
async def release_hold(
    request: Request, hold_id: uuid.UUID, user: StaffUser, uow: UnitOfWorkDep, _form: StaffForm
) -> Response:
    await uow.run(service.change_reservation, hold_id, "release", actor_id=user.id)
    response = see_other(HOLDS_PATH)
    set_flash(response, settings_of(request), f"Hold {hold_id} released.")
    return response


@dataclass(frozen=True)
class ReservationPage:
    view: service.ReservationView
    order_id: uuid.UUID | None


async def reservation_and_order(
    session: AsyncSession, reservation_id: uuid.UUID
) -> ReservationPage:
    """A hold or allocation as the API reads it, and the order it serves if any."""
    view = await service.get_reservation(session, reservation_id)
    return ReservationPage(view, await order_queries.order_of_allocation(session, reservation_id))


@router.get("/reservations/{reservation_id}")
async def reservation_page(
    request: Request, reservation_id: uuid.UUID, _user: StaffUser, uow: UnitOfWorkDep
) -> Response:
    """The page a ledger reference links to: the hold or allocation, its lines, and its
    order."""
    found = await uow.run(reservation_and_order, reservation_id)
    return render(
        request,
        "stock/reservation.html",
        {
            "section": HOLDS_PATH,
            "reservation": found.view.reservation,
            "lines": found.view.lines,
            "order_id": found.order_id,
            "now": utcnow(),
        },
    )


# --- consistency -------------------------------------------------------------------------


CONSISTENCY_PATH = "/admin/consistency"


@router.get("/consistency")
async def consistency_page(
    request: Request, _user: StaffUser, uow: UnitOfWorkDep, cursor: CursorQuery = None
) -> Response:
    """The report as of now, and the kept reconciliation runs, newest first."""
    page = await uow.run(
        reconciliation.consistency_page, after=_run_key(cursor), limit=PAGE_SIZE + 1
    )
    runs, older = page_of(page.runs, PAGE_SIZE, _run_cursor)
    context = {
        "section": CONSISTENCY_PATH,
        "report": page.report,
        "runs": runs,
        "older_cursor": older,
    }
    return render(request, "stock/consistency.html", context)


@router.post("/consistency/runs")
async def record_run(
    request: Request, _user: StaffUser, uow: UnitOfWorkDep, _form: StaffForm
) -> Response:
    """Check now and keep the report as a run, as `POST /inventory/reconciliation-runs`."""
    run = await uow.run(reconciliation.record_run, trigger="api")
    response = see_other(f"{CONSISTENCY_PATH}/runs/{run.id}")
    set_flash(response, settings_of(request), f"Reconciliation run {run.id} recorded.")
    return response


@router.get("/consistency/runs/{run_id}")
async def run_page(
    request: Request,
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    _user: StaffUser,
    uow: UnitOfWorkDep,
) -> Response:
    """One kept run with its issues."""
    run = await uow.run(reconciliation.get_run, run_id)
    return render(request, "stock/run.html", {"section": CONSISTENCY_PATH, "run": run})


def _run_cursor(run: Any) -> list[Any]:
    return [run.started_at.isoformat(), run.id]


def _run_key(cursor: str | None) -> tuple[datetime, int] | None:
    key = decode_cursor(cursor, arity=2)
    if key is None:
        return None
    try:
        moment = datetime.fromisoformat(str(key[0]))
        if moment.tzinfo is None or not isinstance(key[1], int) or not 0 <= key[1] <= MAX_ID:
            raise ValueError("malformed")
    except (ValueError, OverflowError):
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor") from None
    return moment.astimezone(UTC), key[1]
