"""HTTP routes of the inventory domain (staff only).

Each route makes one service call through the request's unit of work and shapes the
answer; the hold route's call is `fast_hold.place_hold`, which picks the one-statement path
or the unit of work itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from storekeeper.accounts.dependencies import (
    AccessTokenSubject,
    SettingsDep,
    StaffUser,
    StockPolicyDep,
)
from storekeeper.db import UnitOfWorkDep
from storekeeper.errors import (
    Conflict,
    Forbidden,
    HoldExpired,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    RetryableError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    problem_responses,
)
from storekeeper.idempotency import fingerprint
from storekeeper.inventory import fast_hold, queries, reconciliation, service, stock, transfer
from storekeeper.inventory.consistency import check_consistency
from storekeeper.inventory.lines import RequestedLine
from storekeeper.inventory.models import ReservationStatus
from storekeeper.inventory.schemas import (
    AdjustmentIn,
    AdjustmentOut,
    AllocationIn,
    ConsistencyIssue,
    ConsistencyReport,
    HoldExtendIn,
    HoldIn,
    ImportReportOut,
    ItemIn,
    LevelOut,
    LocationIn,
    LocationOut,
    LocationStock,
    MovementFeedPage,
    MovementOut,
    ReconciliationRunOut,
    ReservationOut,
    SkuCode,
    SkuInPath,
    SkuInQuery,
    StockOut,
)
from storekeeper.pagination import (
    INT64_MAX,
    MAX_ID,
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    decode_id_cursor,
    decode_time_id_cursor,
    encode_cursor,
    page_of,
)

router = APIRouter(tags=["inventory"])

# A location's priority is a 32-bit integer column.
INT32_MAX = 2_147_483_647

AUTH = (Unauthorized, Forbidden)
WRITE_ERRORS = (*AUTH, ValidationFailed, InsufficientStock, IdempotencyKeyReused, RetryableError)


# --- shaping responses -------------------------------------------------------------------


def _reservation_out(view: service.ReservationView) -> ReservationOut:
    return ReservationOut.of(
        view.reservation, [(line.sku, line.quantity, line.location) for line in view.lines]
    )


def _stock_out(stock: queries.SkuStock) -> StockOut:
    return StockOut(
        sku=stock.sku,
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        allocated=stock.allocated,
        available=stock.available,
        locations=[
            LocationStock(
                location=level.location,
                on_hand=level.on_hand,
                reserved=level.reserved,
                allocated=level.allocated,
                available=level.available,
            )
            for level in stock.locations
        ],
    )


def _movement_out(movement: queries.MovementView) -> MovementOut:
    return MovementOut(**vars(movement))


def _items(items: list[ItemIn]) -> list[RequestedLine]:
    return [(item.sku, item.quantity, item.location) for item in items]


def _request_fingerprint(kind: str, items: list[ItemIn], **rest: Any) -> str:
    """Same meaning, same fingerprint: line order and key order do not matter."""
    lines = sorted(
        ({"sku": i.sku, "quantity": i.quantity, "location": i.location} for i in items),
        key=lambda line: str(line["sku"]),
    )
    return fingerprint({"kind": kind, "items": lines, **rest})


def _reservation_cursor(view: service.ReservationView) -> list[str]:
    return [view.reservation.created_at.isoformat(), str(view.reservation.id)]


# --- locations ---------------------------------------------------------------------------


@router.get(
    "/locations",
    response_model=Page[LocationOut],
    responses=problem_responses(*AUTH, ValidationFailed),
)
async def list_locations(
    uow: UnitOfWorkDep, _user: StaffUser, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[LocationOut]:
    """Stock locations, highest priority first, page by page."""
    rows = await uow.run(stock.locations_page, after=_location_cursor(cursor), limit=limit + 1)
    items, next_cursor = page_of(rows, limit, lambda location: [location.priority, location.id])
    return Page(
        items=[LocationOut.model_validate(location, from_attributes=True) for location in items],
        next_cursor=next_cursor,
    )


def _location_cursor(cursor: str | None) -> tuple[int, int] | None:
    """The (priority, id) key of a locations cursor; anything else is a 422."""
    key = decode_cursor(cursor, arity=2)
    if key is None:
        return None
    priority, location_id = key
    if not (
        isinstance(priority, int)
        and isinstance(location_id, int)
        and -INT32_MAX - 1 <= priority <= INT32_MAX
        and 0 <= location_id <= MAX_ID
    ):
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor")
    return priority, location_id


@router.post(
    "/locations",
    status_code=201,
    response_model=LocationOut,
    responses=problem_responses(*AUTH, ValidationFailed, Conflict),
)
async def create_location(body: LocationIn, uow: UnitOfWorkDep, _user: StaffUser) -> LocationOut:
    """A new location; a higher `priority` is drawn from first."""
    location = await uow.run(
        stock.create_location, code=body.code, name=body.name, priority=body.priority
    )
    return LocationOut.model_validate(location, from_attributes=True)


# --- reports and feeds (fixed paths before /inventory/{sku}) -----------------------------


@router.get(
    "/inventory/availability",
    response_model=Page[StockOut],
    responses=problem_responses(*AUTH, NotFound, ValidationFailed),
)
async def availability(
    uow: UnitOfWorkDep,
    _user: StaffUser,
    sku: Annotated[
        list[SkuCode] | None, Query(max_length=200, description="SKU codes (at most 200).")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[StockOut]:
    """Stock of the named SKUs, or of every live SKU page by page."""
    rows = await uow.run(
        queries.availability,
        codes=sku,
        after_sku_id=None if sku else decode_id_cursor(cursor),
        limit=limit + 1,
    )
    if sku:
        return Page(items=[_stock_out(stock) for stock in rows], next_cursor=None)
    items, next_cursor = page_of(rows, limit, lambda stock: [stock.sku_id])
    return Page(items=[_stock_out(stock) for stock in items], next_cursor=next_cursor)


@router.get(
    "/inventory/movements",
    response_model=MovementFeedPage,
    responses=problem_responses(*AUTH, ValidationFailed),
)
async def movement_feed(
    uow: UnitOfWorkDep, _user: StaffUser, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> MovementFeedPage:
    """Every movement, oldest first. Follow `next_cursor` to the end, keep
    `resume_cursor`, and pass it as `cursor` later to receive only what came after."""
    after_id = decode_id_cursor(cursor, INT64_MAX)
    rows = await uow.run(queries.movement_feed, after_id=after_id, limit=limit + 1)
    items, next_cursor = page_of(rows, limit, lambda movement: [movement.id])
    last_id = items[-1].id if items else after_id
    return MovementFeedPage(
        items=[_movement_out(m) for m in items],
        next_cursor=next_cursor,
        resume_cursor=encode_cursor([last_id]) if last_id is not None else None,
    )


@router.get(
    "/inventory/consistency",
    response_model=ConsistencyReport,
    responses=problem_responses(*AUTH),
)
async def consistency(uow: UnitOfWorkDep, _user: StaffUser) -> ConsistencyReport:
    """Do the stock figures agree with the live reservations and with the ledger?"""
    report = await uow.run(check_consistency)
    return ConsistencyReport(
        is_consistent=report.is_consistent,
        checked_at=report.checked_at,
        levels_checked=report.levels_checked,
        issues=[ConsistencyIssue(**vars(issue)) for issue in report.issues],
    )


# --- CSV export and import --------------------------------------------------------------


@router.get(
    "/inventory/export.csv",
    response_class=StreamingResponse,
    responses={
        **problem_responses(*AUTH, ValidationFailed),
        200: {
            "content": {"text/csv": {}},
            "description": "Header sku,location,on_hand,reserved,allocated,available; one "
            "row per level.",
        },
    },
)
async def export_levels_csv(
    uow: UnitOfWorkDep,
    _user: StaffUser,
    location: Annotated[
        str | None, Query(max_length=64, description="Only this location's levels.")
    ] = None,
) -> StreamingResponse:
    """Every stock level as CSV, streamed in keyset batches of 5,000 levels (each batch its
    own read, so memory stays flat however many levels there are). Text cells starting with
    `=`, `+`, `-` or `@` are prefixed with `'` so that spreadsheets do not run them."""
    return StreamingResponse(
        await transfer.export_csv(uow, location),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="stock-levels.csv"'},
    )


IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "sku,location,counted\nHAMMER-L,MAIN,12\n",
            }
        },
    }
}


@router.post(
    "/inventory/import",
    response_model=ImportReportOut,
    response_model_exclude_none=True,
    openapi_extra=IMPORT_BODY,
    responses={
        **problem_responses(
            *AUTH, ValidationFailed, IdempotencyKeyReused, UnsupportedMediaType, RetryableError
        ),
    },
)
async def import_stock_csv(
    request: Request,
    uow: UnitOfWorkDep,
    user: StaffUser,
    dry_run: Annotated[bool, Query(description="Report each row; change nothing.")] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="The same key and file again return the first report (nothing is "
            "applied twice); another file with it: 422 `idempotency_key_reused`.",
        ),
    ] = None,
) -> ImportReportOut:
    """A stock take (`sku,location,counted`: each row sets `on_hand` through a `count`
    adjustment of the difference) or adjustments (`sku,location,delta,reason`), at most
    10,000 rows, all or none. An empty location is the highest-priority one. One failed row:
    422 with the whole report and nothing applied."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType("Send the file as text/csv.")
    parsed = transfer.parse_import(await request.body())
    report = await uow.run(
        transfer.import_stock,
        parsed,
        dry_run=dry_run,
        idempotency_key=idempotency_key,
        actor_id=user.id,
    )
    return ImportReportOut.model_validate(report.body())


# --- reconciliation runs -----------------------------------------------------------------


def _run_out(run: Any) -> ReconciliationRunOut:
    return ReconciliationRunOut(
        id=run.id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        levels_checked=run.levels_checked,
        is_consistent=run.is_consistent,
        issues=[ConsistencyIssue(**issue) for issue in run.issues],
        trigger=run.trigger,
    )


def _run_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """The (started_at, id) key of a reconciliation runs cursor; anything else is a 422."""
    key = decode_cursor(cursor, arity=2)
    if key is None:
        return None
    started_at, run_id = key
    try:
        time = datetime.fromisoformat(str(started_at))
        if time.tzinfo is None or not isinstance(run_id, int) or not 0 <= run_id <= MAX_ID:
            raise ValueError("malformed")
        return time.astimezone(UTC), run_id
    except (ValueError, OverflowError):
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor") from None


@router.post(
    "/inventory/reconciliation-runs",
    status_code=201,
    response_model=ReconciliationRunOut,
    responses=problem_responses(*AUTH),
)
async def create_reconciliation_run(uow: UnitOfWorkDep, _user: StaffUser) -> ReconciliationRunOut:
    """Check consistency now and keep the report as a run."""
    return _run_out(await uow.run(reconciliation.record_run, trigger="api"))


@router.get(
    "/inventory/reconciliation-runs",
    response_model=Page[ReconciliationRunOut],
    responses=problem_responses(*AUTH, ValidationFailed),
)
async def list_reconciliation_runs(
    uow: UnitOfWorkDep, _user: StaffUser, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ReconciliationRunOut]:
    """Kept reconciliation runs, newest first."""
    runs = await uow.run(reconciliation.list_runs, after=_run_cursor(cursor), limit=limit + 1)
    items, next_cursor = page_of(runs, limit, lambda run: [run.started_at.isoformat(), run.id])
    return Page(items=[_run_out(run) for run in items], next_cursor=next_cursor)


@router.get(
    "/inventory/reconciliation-runs/{run_id}",
    response_model=ReconciliationRunOut,
    responses=problem_responses(*AUTH, NotFound, ValidationFailed),
)
async def get_reconciliation_run(
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)], uow: UnitOfWorkDep, _user: StaffUser
) -> ReconciliationRunOut:
    """One kept reconciliation run with its issues."""
    return _run_out(await uow.run(reconciliation.get_run, run_id))


# --- holds -------------------------------------------------------------------------------


@router.post(
    "/inventory/holds",
    status_code=201,
    response_model=ReservationOut,
    responses={
        **problem_responses(*WRITE_ERRORS),
        200: {"model": ReservationOut, "description": "The existing hold for this client_token."},
    },
)
async def create_hold(
    body: HoldIn,
    response: Response,
    uow: UnitOfWorkDep,
    caller: AccessTokenSubject,
    policy: StockPolicyDep,
    settings: SettingsDep,
) -> ReservationOut:
    """Hold every line or none. The same `client_token` with the same body returns the
    existing hold (200); with another body, 422 `idempotency_key_reused`."""
    ttl_seconds = body.ttl_seconds or settings.default_hold_ttl_seconds
    request = service.ReservationRequest(
        _items(body.items),
        body.client_token,
        _request_fingerprint("hold", body.items, ttl_seconds=ttl_seconds, reference=body.reference),
        body.reference,
        ttl_seconds,
    )
    view = await fast_hold.place_hold(uow, policy, caller, request)
    if not view.created:
        response.status_code = 200
    return _reservation_out(view)


@router.get(
    "/inventory/holds",
    response_model=Page[ReservationOut],
    responses=problem_responses(*AUTH, ValidationFailed),
)
async def list_holds(
    uow: UnitOfWorkDep,
    _user: StaffUser,
    status: ReservationStatus | None = None,
    sku: SkuInQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ReservationOut]:
    """Holds (converted ones included), newest first."""
    return await _reservation_page(
        uow, holds=True, status=status, sku=sku, limit=limit, cursor=cursor
    )


@router.get(
    "/inventory/holds/{hold_id}",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound),
)
async def get_hold(hold_id: uuid.UUID, uow: UnitOfWorkDep, _user: StaffUser) -> ReservationOut:
    """One hold with its lines, whatever its status (held, released, expired; allocated once
    converted)."""
    return _reservation_out(await uow.run(service.get_reservation, hold_id))


async def _reservation_page(
    uow: UnitOfWorkDep,
    *,
    holds: bool,
    status: ReservationStatus | None,
    sku: str | None,
    limit: int,
    cursor: str | None,
) -> Page[ReservationOut]:
    views = await uow.run(
        service.list_reservations,
        holds=holds,
        status=status.value if status else None,
        sku_code=sku,
        after=decode_time_id_cursor(cursor),
        limit=limit + 1,
    )
    items, next_cursor = page_of(views, limit, _reservation_cursor)
    return Page(items=[_reservation_out(view) for view in items], next_cursor=next_cursor)


@router.post(
    "/inventory/holds/{hold_id}/convert",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound, HoldExpired, InvalidTransition, RetryableError),
)
async def convert_hold(hold_id: uuid.UUID, uow: UnitOfWorkDep, user: StaffUser) -> ReservationOut:
    """Held → allocated (same id). Past `expires_at`: 409 `hold_expired`, and the hold's
    stock is returned (that part is committed)."""
    view = await uow.run(service.change_reservation, hold_id, "convert", actor_id=user.id)
    if view.reservation.status == ReservationStatus.EXPIRED:
        raise HoldExpired()
    return _reservation_out(view)


@router.post(
    "/inventory/holds/{hold_id}/release",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound, InvalidTransition, RetryableError),
)
async def release_hold(hold_id: uuid.UUID, uow: UnitOfWorkDep, user: StaffUser) -> ReservationOut:
    """Held → released: the stock is available again."""
    view = await uow.run(service.change_reservation, hold_id, "release", actor_id=user.id)
    return _reservation_out(view)


@router.post(
    "/inventory/holds/{hold_id}/extend",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound, ValidationFailed, HoldExpired, InvalidTransition),
)
async def extend_hold(
    hold_id: uuid.UUID, body: HoldExtendIn, uow: UnitOfWorkDep, _user: StaffUser
) -> ReservationOut:
    """A held hold now expires `ttl_seconds` from now. Past its `expires_at` (swept or
    not): 409 `hold_expired`; any other status: 409 `invalid_transition`."""
    view = await uow.run(service.extend_hold, hold_id, ttl_seconds=body.ttl_seconds)
    return _reservation_out(view)


# --- allocations -------------------------------------------------------------------------


@router.post(
    "/inventory/allocations",
    status_code=201,
    response_model=ReservationOut,
    responses={
        **problem_responses(*WRITE_ERRORS),
        200: {
            "model": ReservationOut,
            "description": "The existing allocation for this client_token.",
        },
    },
)
async def create_allocation(
    body: AllocationIn,
    response: Response,
    uow: UnitOfWorkDep,
    user: StaffUser,
    policy: StockPolicyDep,
) -> ReservationOut:
    """Allocate every line or none (no expiry); idempotent by `client_token` like holds."""
    view = await uow.run(
        service.create_allocation,
        _items(body.items),
        client_token=body.client_token,
        request_fingerprint=_request_fingerprint(
            "allocation", body.items, reference=body.reference
        ),
        reference=body.reference,
        actor_id=user.id,
        policy=policy,
    )
    if not view.created:
        response.status_code = 200
    return _reservation_out(view)


@router.get(
    "/inventory/allocations",
    response_model=Page[ReservationOut],
    responses=problem_responses(*AUTH, ValidationFailed),
)
async def list_allocations(
    uow: UnitOfWorkDep,
    _user: StaffUser,
    status: ReservationStatus | None = None,
    sku: SkuInQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ReservationOut]:
    """Allocations (allocated, fulfilled or cancelled), newest first."""
    return await _reservation_page(
        uow, holds=False, status=status, sku=sku, limit=limit, cursor=cursor
    )


@router.get(
    "/inventory/allocations/{allocation_id}",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound),
)
async def get_allocation(
    allocation_id: uuid.UUID, uow: UnitOfWorkDep, _user: StaffUser
) -> ReservationOut:
    """One allocation with its lines, whatever its status (allocated, fulfilled, cancelled)."""
    return _reservation_out(await uow.run(service.get_reservation, allocation_id))


@router.post(
    "/inventory/allocations/{allocation_id}/fulfil",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound, InvalidTransition, Conflict, RetryableError),
)
async def fulfil_allocation(
    allocation_id: uuid.UUID, uow: UnitOfWorkDep, user: StaffUser
) -> ReservationOut:
    """Allocated → fulfilled: the units leave `on_hand` and `allocated`."""
    view = await uow.run(service.change_reservation, allocation_id, "fulfil", actor_id=user.id)
    return _reservation_out(view)


@router.post(
    "/inventory/allocations/{allocation_id}/cancel",
    response_model=ReservationOut,
    responses=problem_responses(*AUTH, NotFound, InvalidTransition, Conflict, RetryableError),
)
async def cancel_allocation(
    allocation_id: uuid.UUID, uow: UnitOfWorkDep, user: StaffUser
) -> ReservationOut:
    """Allocated → cancelled: the units are available again."""
    view = await uow.run(service.change_reservation, allocation_id, "cancel", actor_id=user.id)
    return _reservation_out(view)


# --- one SKU -----------------------------------------------------------------------------


@router.get(
    "/inventory/{sku}",
    response_model=StockOut,
    responses=problem_responses(*AUTH, NotFound, ValidationFailed),
)
async def stock_of_sku(
    sku: SkuInPath,
    uow: UnitOfWorkDep,
    _user: StaffUser,
    as_of: Annotated[
        AwareDatetime | None,
        Query(
            description="A time with its offset (RFC 3339): the figures as they stood then, "
            "computed from the ledger."
        ),
    ] = None,
) -> StockOut:
    """The SKU's stock in total and per location; with `as_of`, as it stood at that time."""
    if as_of is not None:
        return _stock_out(await uow.run(queries.stock_as_of, sku, as_of))
    (figures,) = await uow.run(queries.stock_by_codes, [sku])
    return _stock_out(figures)


@router.post(
    "/inventory/{sku}/adjustments",
    status_code=201,
    response_model=AdjustmentOut,
    responses=problem_responses(*AUTH, NotFound, ValidationFailed, InsufficientStock),
)
async def adjust_stock(
    sku: SkuInPath,
    body: AdjustmentIn,
    uow: UnitOfWorkDep,
    user: StaffUser,
    policy: StockPolicyDep,
) -> AdjustmentOut:
    """Receive (`delta` > 0) or remove stock; a removal may not take `available` below 0."""
    adjustment = await uow.run(
        stock.adjust_stock,
        sku,
        delta=body.delta,
        reason=body.reason,
        location_code=body.location,
        note=body.note,
        actor_id=user.id,
        policy=policy,
    )
    written, entry, deltas = adjustment.written, adjustment.entry, adjustment.deltas
    return AdjustmentOut(
        movement=MovementOut(
            id=written.movement_id,
            sku=adjustment.sku,
            location=written.location_code,
            kind=entry.kind,
            on_hand_delta=deltas.on_hand,
            reserved_delta=deltas.reserved,
            allocated_delta=deltas.allocated,
            reason=entry.reason,
            reference=entry.reference,
            note=entry.note,
            actor_id=entry.actor_id,
            created_at=entry.created_at,
        ),
        level=LevelOut(
            sku=adjustment.sku,
            location=written.location_code,
            on_hand=written.on_hand,
            reserved=written.reserved,
            allocated=written.allocated,
            available=written.available,
            version=written.version,
        ),
    )


@router.get(
    "/inventory/{sku}/movements",
    response_model=Page[MovementOut],
    responses=problem_responses(*AUTH, NotFound, ValidationFailed),
)
async def movements_of_sku(
    sku: SkuInPath,
    uow: UnitOfWorkDep,
    _user: StaffUser,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[MovementOut]:
    """The SKU's ledger, newest first."""
    rows = await uow.run(
        queries.movements_of_sku,
        sku,
        before_id=decode_id_cursor(cursor, INT64_MAX),
        limit=limit + 1,
    )
    items, next_cursor = page_of(rows, limit, lambda movement: [movement.id])
    return Page(items=[_movement_out(m) for m in items], next_cursor=next_cursor)
