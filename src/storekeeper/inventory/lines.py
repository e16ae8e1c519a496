"""Resolving requested stock lines: SKUs and locations by code (the API) or by id (other
domains), validated against the catalog and the locations in one place.

A request's lines are checked for shape (1 to `MAX_LINES` lines, quantities of 1 to
`MAX_QUANTITY`, no SKU twice), then each SKU must exist and be live and each named location
must exist. The result is in SKU-id order, the order every claim locks its rows in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog.models import Sku
from storekeeper.errors import ValidationFailed
from storekeeper.inventory.models import locations

MAX_LINES = 100
MAX_QUANTITY = 1_000_000

skus = cast(Table, Sku.__table__)

# A SKU or location named by code (str) or by id (int).
Key = str | int
# `(sku, quantity, location)` as a request gives it.
RequestedLine = tuple[Key, int, Key | None]


@dataclass(frozen=True)
class StockLine:
    """One line of an allocation requested by another domain, by ids."""

    sku_id: int
    quantity: int
    location_id: int | None = None


@dataclass(frozen=True)
class ResolvedLine:
    """A validated line: the SKU exists and is live, the location exists."""

    sku_id: int
    sku: str
    quantity: int
    location_id: int | None


def requested(lines: Iterable[StockLine]) -> list[RequestedLine]:
    return [(line.sku_id, line.quantity, line.location_id) for line in lines]


def _normal(key: Key) -> Key:
    return key.upper() if isinstance(key, str) else key


def _label(key: Key) -> str:
    return repr(key) if isinstance(key, str) else str(key)


def check_quantity(quantity: int, loc: Sequence[str | int]) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationFailed.field(loc, f"quantity must be 1 to {MAX_QUANTITY}")


def check_shape(
    count: int,
    quantities: Sequence[int],
    sku_keys: Sequence[object],
    *,
    loc: Sequence[str | int] = (),
    per: str = "request",
) -> None:
    """The shape every set of lines must have: 1 to `MAX_LINES` lines, quantities of 1 to
    `MAX_QUANTITY`, no SKU twice. `loc` prefixes the field paths of the errors; `per`
    names what the lines belong to in the messages."""
    items = [*loc, "items"]
    if count == 0:
        raise ValidationFailed.field(items, "at least one line is required")
    if count > MAX_LINES:
        raise ValidationFailed.field(items, f"at most {MAX_LINES} lines per {per}")
    for index, quantity in enumerate(quantities):
        check_quantity(quantity, [*items, index, "quantity"])
    seen: set[object] = set()
    for index, key in enumerate(sku_keys):
        if key in seen:
            raise ValidationFailed.field(
                [*items, index, "sku"], f"the same SKU appears twice in one {per}"
            )
        seen.add(key)


# Built once: every hold and allocation runs them, and building and cache-keying a
# statement costs more CPU than running it.
_SKUS_BY_CODE = select(skus.c.code, skus.c.id, skus.c.is_deleted).where(
    skus.c.code.in_(bindparam("keys", expanding=True))
)
_SKUS_BY_ID = select(skus.c.code, skus.c.id, skus.c.is_deleted).where(
    skus.c.id.in_(bindparam("keys", expanding=True))
)
# Locations are never deleted: their third column is a constant false.
_LOCATIONS_BY_CODE = select(locations.c.code, locations.c.id, false()).where(
    locations.c.code.in_(bindparam("keys", expanding=True))
)
_LOCATIONS_BY_ID = select(locations.c.code, locations.c.id, false()).where(
    locations.c.id.in_(bindparam("keys", expanding=True))
)


async def _found(
    session: AsyncSession, keys: set[Key], by_code: object, by_id: object
) -> dict[Key, tuple[str, int, bool]]:
    """Rows (code, id, deleted) of the named keys, under both their code and their id."""
    found: dict[Key, tuple[str, int, bool]] = {}
    for statement, wanted in (
        (by_code, [key for key in keys if isinstance(key, str)]),
        (by_id, [key for key in keys if isinstance(key, int)]),
    ):
        if not wanted:
            continue
        for row in await session.execute(statement, {"keys": wanted}):  # type: ignore[call-overload]
            found[row.code] = found[row.id] = (row.code, row.id, bool(row[2]))
    return found


async def resolve_lines(
    session: AsyncSession, lines: Sequence[RequestedLine]
) -> list[ResolvedLine]:
    """Validate `(sku, quantity, location)` lines (codes or ids); the result is in SKU-id
    order."""
    keys = [_normal(sku) for sku, _, _ in lines]
    check_shape(len(lines), [quantity for _, quantity, _ in lines], keys)
    found_skus = await _found(session, set(keys), _SKUS_BY_CODE, _SKUS_BY_ID)
    location_keys = {_normal(location) for _, _, location in lines if location is not None}
    found_locations = (
        await _found(session, location_keys, _LOCATIONS_BY_CODE, _LOCATIONS_BY_ID)
        if location_keys
        else {}
    )
    resolved = []
    for index, ((_, quantity, location), key) in enumerate(zip(lines, keys, strict=True)):
        sku = found_skus.get(key)
        if sku is None or sku[2]:
            state = "deleted" if sku is not None else "unknown"
            raise ValidationFailed.field(["items", index, "sku"], f"{state} SKU {_label(key)}")
        location_id = None
        if location is not None:
            found_location = found_locations.get(_normal(location))
            if found_location is None:
                raise ValidationFailed.field(
                    ["items", index, "location"], f"unknown location {_label(_normal(location))}"
                )
            location_id = found_location[1]
        resolved.append(ResolvedLine(sku[1], sku[0], quantity, location_id))
    return sorted(resolved, key=lambda line: line.sku_id)


async def resolve_location(session: AsyncSession, code: str, loc: Sequence[str | int]) -> int:
    """The id of the location `code`, or a 422 on the field at `loc`."""
    found = await _found(session, {code.upper()}, _LOCATIONS_BY_CODE, _LOCATIONS_BY_ID)
    if code.upper() not in found:
        raise ValidationFailed.field(loc, f"unknown location {code.upper()!r}")
    return found[code.upper()][1]
