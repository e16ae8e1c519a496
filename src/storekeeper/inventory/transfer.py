"""Stock by spreadsheet: the CSV export of levels and the CSV import of stock takes and
adjustments.

Export reads levels in keyset batches (by level id), so a million levels stream in
constant memory; text cells that a spreadsheet would run as a formula (starting with `=`,
`+`, `-` or `@`) are prefixed with `'` (CSV injection).

Import takes a whole file or nothing. `parse_import` checks the file's shape (UTF-8, the
header, at most `MAX_IMPORT_ROWS` rows) before any database work; `import_stock` resolves
every row in a few set-based reads (SKUs, locations, the levels concerned, locked on
PostgreSQL), decides each row (`applied`, `unchanged`, `failed`), and only when no row
failed and it is not a dry run writes every change through `ledger.change_on_hand_set`
(a few multi-row statements, each change with its ledger row). Under an Idempotency-Key the
applied report is kept (`stock_imports`) and returned for the same key and file again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import UnitOfWork, dialect_insert, is_postgres, utcnow
from storekeeper.errors import IdempotencyKeyReused, StorekeeperError, ValidationFailed
from storekeeper.idempotency import fingerprint
from storekeeper.inventory import ledger
from storekeeper.inventory.lines import resolve_location, skus
from storekeeper.inventory.models import MovementKind, StockImport, levels, locations
from storekeeper.inventory.schemas import AdjustmentReason
from storekeeper.inventory.stock import RECEIVING_REASONS, default_location_id

EXPORT_HEADER = ("sku", "location", "on_hand", "reserved", "allocated", "available")
EXPORT_BATCH = 5000
MAX_IMPORT_ROWS = 10_000
COUNT_HEADER = ("sku", "location", "counted")
DELTA_HEADER = ("sku", "location", "delta", "reason")
MAX_COUNTED = 1_000_000_000
MAX_DELTA = 1_000_000_000
REASONS = frozenset(get_args(AdjustmentReason))
_FORMULA_STARTS = ("=", "+", "-", "@")


# --- export ------------------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """A text cell a spreadsheet would run as a formula, made plain text."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


@dataclass(frozen=True)
class ExportBatch:
    rows: list[tuple[int, str, str, int, int, int]]
    location_id: int | None

    @property
    def last_id(self) -> int | None:
        return self.rows[-1][0] if self.rows else None


async def export_batch(
    session: AsyncSession,
    *,
    location_code: str | None = None,
    location_id: int | None = None,
    after_id: int | None,
    limit: int = EXPORT_BATCH,
) -> ExportBatch:
    """Up to `limit` levels by id after `after_id`: (level id, SKU code, location code,
    on hand, reserved, allocated). A `location_code` is resolved (422 when unknown) and the
    batch carries its id for the next batches."""
    if location_code is not None:
        location_id = await resolve_location(session, location_code, ["query", "location"])
    query = (
        select(
            levels.c.id,
            skus.c.code,
            locations.c.code,
            levels.c.on_hand,
            levels.c.reserved,
            levels.c.allocated,
        )
        .join(skus, skus.c.id == levels.c.sku_id)
        .join(locations, locations.c.id == levels.c.location_id)
        .order_by(levels.c.id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(levels.c.id > after_id)
    if location_id is not None:
        query = query.where(levels.c.location_id == location_id)
    rows = [tuple(row) for row in (await session.execute(query)).all()]
    return ExportBatch(rows, location_id)


async def export_csv(uow: UnitOfWork, location_code: str | None) -> AsyncIterator[str]:
    """The CSV export as text pieces, for a streamed answer: the first batch is read now
    (an unknown location is refused before anything is sent), each later one in a unit of
    work of its own while the answer streams, so memory stays flat."""
    first = await uow.run(
        export_batch, location_code=location_code, after_id=None, limit=EXPORT_BATCH
    )

    async def lines() -> AsyncIterator[str]:
        batch = first
        yield csv_lines(batch.rows, header=True)
        while len(batch.rows) == EXPORT_BATCH:
            batch = await uow.run(
                export_batch,
                location_id=batch.location_id,
                after_id=batch.last_id,
                limit=EXPORT_BATCH,
            )
            yield csv_lines(batch.rows, header=False)

    return lines()


def csv_lines(rows: Sequence[tuple[int, str, str, int, int, int]], *, header: bool) -> str:
    """The CSV text of a batch (with the header line first when asked)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(EXPORT_HEADER)
    for _id, sku, location, on_hand, reserved, allocated in rows:
        writer.writerow(
            (
                neutralise(sku),
                neutralise(location),
                on_hand,
                reserved,
                allocated,
                on_hand - reserved - allocated,
            )
        )
    return buffer.getvalue()


# --- import ------------------------------------------------------------------------------

ImportMode = Literal["count", "delta"]
RowStatus = Literal["applied", "unchanged", "failed"]


@dataclass
class ImportRow:
    row: int
    sku: str
    location: str
    status: RowStatus = "applied"
    delta: int | None = None
    error: str | None = None

    def body(self) -> dict[str, Any]:
        """The row as the API reports it (`delta` and `error` only when there are some)."""
        body: dict[str, Any] = {
            "row": self.row,
            "sku": self.sku,
            "location": self.location,
            "status": self.status,
        }
        if self.delta is not None:
            body["delta"] = self.delta
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class ParsedRow:
    row: int
    sku: str
    location: str
    # counted (stock take) or delta; None when the cell is not a number in range.
    number: int | None
    reason: str | None
    error: str | None


@dataclass(frozen=True)
class ParsedImport:
    mode: ImportMode
    rows: list[ParsedRow]
    fingerprint: str


@dataclass
class ImportReport:
    applied: int = 0
    unchanged: int = 0
    failed: int = 0
    rows: list[ImportRow] = field(default_factory=list)
    # Statements the writes took (0 for a dry run or a refusal): for the measurements.
    write_statements: int = 0
    replayed: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "rows": [row.body() for row in self.rows],
        }


class ImportRefused(StorekeeperError):
    """A file with at least one failed row: 422 with the whole report, nothing applied."""

    status_code = 422
    code = "validation_error"
    default_detail = "At least one row cannot be applied; nothing was changed."

    def __init__(self, report: ImportReport) -> None:
        body = report.body()
        errors = [
            {"loc": ["body", row["row"]], "msg": row["error"]}
            for row in body["rows"]
            if row["status"] == "failed"
        ]
        super().__init__(None, errors=errors, **body)


def _problem(msg: str) -> ValidationFailed:
    return ValidationFailed.field(["body"], msg)


def _integer(cell: str, low: int, high: int) -> int | None:
    text = cell.strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 12:
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_import(body: bytes) -> ParsedImport:
    """The file's mode and rows; a file that is not UTF-8, has another header or more than
    `MAX_IMPORT_ROWS` rows is refused as a whole (422 on `body`)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _problem(f"the file is not UTF-8 (byte {exc.start} is not valid)") from None
    if "\x00" in text:
        raise _problem("the file contains a NUL character")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise _problem(
                "the file is empty: the first line must be sku,location,counted "
                "or sku,location,delta,reason"
            )
        columns = tuple(cell.strip().lower() for cell in header)
        if columns == COUNT_HEADER:
            mode: ImportMode = "count"
        elif columns == DELTA_HEADER:
            mode = "delta"
        else:
            raise _problem(
                f"the header is {','.join(header)!r}: it must be sku,location,counted "
                "or sku,location,delta,reason"
            )
        rows: list[ParsedRow] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are not rows
            if len(rows) == MAX_IMPORT_ROWS:
                raise _problem(f"the file has more than {MAX_IMPORT_ROWS:,} rows")
            rows.append(_parse_row(mode, len(rows) + 1, cells))
    except csv.Error as exc:
        raise _problem(f"the file is not valid CSV: {exc}") from None
    if not rows:
        raise _problem("the file has a header but no rows")
    return ParsedImport(mode, rows, fingerprint({"mode": mode, "body": text}))


def _parse_row(mode: ImportMode, number: int, cells: list[str]) -> ParsedRow:
    width = len(COUNT_HEADER if mode == "count" else DELTA_HEADER)
    sku = cells[0].strip().upper()[:64] if cells else ""
    location = cells[1].strip().upper()[:64] if len(cells) > 1 else ""
    if len(cells) != width:
        return ParsedRow(number, sku, location, None, None, f"expected {width} cells")
    if not sku:
        return ParsedRow(number, sku, location, None, None, "sku is empty")
    error: str | None
    if mode == "count":
        counted = _integer(cells[2], 0, MAX_COUNTED)
        error = None if counted is not None else f"counted must be 0 to {MAX_COUNTED:,}"
        return ParsedRow(number, sku, location, counted, None, error)
    delta = _integer(cells[2], -MAX_DELTA, MAX_DELTA)
    reason = cells[3].strip().lower()
    if delta is None or delta == 0:
        error = f"delta must be a non-zero integer of at most {MAX_DELTA:,}"
    elif reason not in REASONS:
        error = f"reason must be one of {', '.join(sorted(REASONS))}"
    else:
        error = None
    return ParsedRow(number, sku, location, delta, reason, error)


async def import_stock(
    session: AsyncSession,
    parsed: ParsedImport,
    *,
    dry_run: bool,
    idempotency_key: str | None,
    actor_id: int,
) -> ImportReport:
    """Decide every row and, when none failed and it is not a dry run, apply them all.
    One failed row raises ImportRefused with the report (the unit of work rolls back)."""
    record: int | None = None
    if idempotency_key is not None and not dry_run:
        replayed, record = await _claim_key(session, parsed, idempotency_key, actor_id)
        if replayed is not None:
            return replayed
    report, changes = await _decide(session, parsed)
    if report.failed:
        raise ImportRefused(report)
    if dry_run or not changes:
        return report
    report.write_statements = await ledger.change_on_hand_set(
        session,
        changes,
        created_at=utcnow(),
        reference=f"import:{idempotency_key}" if idempotency_key else "import",
        note=None,
        actor_id=actor_id,
    )
    if record is not None:
        stored = await session.get(StockImport, record)
        if stored is not None:
            stored.report = report.body()
            await session.flush()
    return report


async def _claim_key(
    session: AsyncSession, parsed: ParsedImport, key: str, actor_id: int
) -> tuple[ImportReport | None, int | None]:
    """Take the caller's key for this import (insert, or find the import that has it: on
    PostgreSQL a concurrent twin waits here for the first to commit or roll back). The
    stored report when the same file came with it before; another file: 422."""
    inserted = (
        await session.execute(
            dialect_insert(session, StockImport)
            .values(
                created_by=actor_id,
                idempotency_key=key,
                request_fingerprint=parsed.fingerprint,
                report=None,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["created_by", "idempotency_key"])
            .returning(StockImport.id)
        )
    ).scalar_one_or_none()
    if inserted is not None:
        return None, inserted
    existing = (
        await session.execute(
            select(StockImport.request_fingerprint, StockImport.report).where(
                StockImport.created_by == actor_id, StockImport.idempotency_key == key
            )
        )
    ).one()
    if existing.request_fingerprint != parsed.fingerprint:
        raise IdempotencyKeyReused()
    stored = existing.report or {"applied": 0, "unchanged": 0, "failed": 0, "rows": []}
    report = ImportReport(
        applied=stored["applied"],
        unchanged=stored["unchanged"],
        failed=stored["failed"],
        rows=[ImportRow(**row) for row in stored["rows"]],
        replayed=True,
    )
    return report, None


async def _decide(
    session: AsyncSession, parsed: ParsedImport
) -> tuple[ImportReport, list[ledger.OnHandChange]]:
    """Each row's outcome and the changes to write, from three set-based reads."""
    codes = sorted({row.sku for row in parsed.rows if row.error is None})
    sku_ids: dict[str, int] = {}
    if codes:
        found = await session.execute(select(skus.c.code, skus.c.id).where(skus.c.code.in_(codes)))
        sku_ids = {str(row[0]): int(row[1]) for row in found}
    location_rows = await session.execute(select(locations.c.code, locations.c.id))
    location_ids = {str(row[0]): int(row[1]) for row in location_rows}
    default_location: int | None = None
    if any(not row.location for row in parsed.rows):
        default_location = await default_location_id(session)
    current = await _levels(session, sorted(set(sku_ids.values())))

    report = ImportReport()
    changes: list[ledger.OnHandChange] = []
    seen: set[tuple[int, int]] = set()
    names = {location_id: code for code, location_id in location_ids.items()}
    for row in parsed.rows:
        location_id = location_ids.get(row.location) if row.location else default_location
        location = names.get(location_id, row.location) if location_id else row.location
        outcome = ImportRow(row.row, row.sku, location)
        report.rows.append(outcome)
        error = row.error
        if error is None and row.sku not in sku_ids:
            error = f"unknown SKU {row.sku!r}"
        if error is None and location_id is None:
            error = f"unknown location {row.location!r}"
        if error is None and location_id is not None:
            key = (sku_ids[row.sku], location_id)
            if key in seen:
                error = "this SKU and location appear in an earlier row"
            else:
                seen.add(key)
                level_id, on_hand, committed = current.get(key, (None, 0, 0))
                error = _row_change(parsed.mode, row, on_hand, committed, outcome)
                if error is None and outcome.delta:
                    kind = (
                        MovementKind.RECEIVE
                        if parsed.mode == "delta"
                        and row.reason in RECEIVING_REASONS
                        and outcome.delta > 0
                        else MovementKind.ADJUST
                    )
                    changes.append(
                        ledger.OnHandChange(
                            key[0],
                            key[1],
                            level_id,
                            outcome.delta,
                            kind.value,
                            "count" if parsed.mode == "count" else str(row.reason),
                        )
                    )
        if error is not None:
            outcome.status, outcome.error, outcome.delta = "failed", error, None
            report.failed += 1
        elif outcome.status == "unchanged":
            report.unchanged += 1
        else:
            report.applied += 1
    return report, changes


def _row_change(
    mode: ImportMode, row: ParsedRow, on_hand: int, committed: int, outcome: ImportRow
) -> str | None:
    """Fill in the row's delta and status; the reason it fails, if it does."""
    assert row.number is not None
    if mode == "count":
        if row.number < committed:
            return f"counted {row.number:,} is below the {committed:,} units reserved and allocated"
        outcome.delta = row.number - on_hand
    else:
        if on_hand + row.number < committed:
            return f"the removal would take available stock below zero ({on_hand - committed:,})"
        outcome.delta = row.number
    if outcome.delta == 0:
        outcome.status = "unchanged"
    return None


async def _levels(
    session: AsyncSession, sku_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[int | None, int, int]]:
    """(level id, on hand, reserved + allocated) of every level of these SKUs, locked on PostgreSQL
    in (SKU, location) order, the order every writer locks levels in."""
    found: dict[tuple[int, int], tuple[int | None, int, int]] = {}
    if not sku_ids:
        return found
    query = (
        select(
            levels.c.id,
            levels.c.sku_id,
            levels.c.location_id,
            levels.c.on_hand,
            levels.c.reserved + levels.c.allocated,
        )
        .where(levels.c.sku_id.in_(sku_ids))
        .order_by(levels.c.sku_id, levels.c.location_id)
    )
    if is_postgres(session):
        query = query.with_for_update()
    for level_id, sku_id, location_id, on_hand, committed in await session.execute(query):
        found[(sku_id, location_id)] = (level_id, on_hand, committed)
    return found
