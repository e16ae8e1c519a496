"""Keyset pagination shared by every list endpoint.

A cursor is an opaque, URL-safe encoding of the sort key of the last row of a page; the next
page is "rows after that key", so a page deep in a large table costs what the first costs.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import QueryableAttribute

from storekeeper.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(use_attribute_docstrings=True)

    items: list[T]
    """This page's items."""
    next_cursor: str | None
    """Pass it as `cursor` for the next page; null on the last page."""


LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1-200).")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=512, description="Opaque cursor from the previous page's next_cursor."),
]


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int = 1) -> list[Any] | None:
    """The sort key inside a cursor, or None for the first page; a malformed cursor is a
    422 rather than a silent restart from the first page."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor") from None
    if not isinstance(key, list) or len(key) != arity:
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor")
    if not all(isinstance(part, str | int) and not isinstance(part, bool) for part in key):
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor")
    return key


# The largest id of an integer primary key (32-bit on PostgreSQL): ids in paths, bodies and
# cursors beyond it are refused as input, never sent to the database to overflow there.
MAX_ID = 2_147_483_647
# The largest id of a bigint primary key (the stock ledger).
INT64_MAX = 9_223_372_036_854_775_807


def decode_id_cursor(cursor: str | None, maximum: int = MAX_ID) -> int | None:
    """The id inside a one-id cursor, or None for the first page. An id outside the range
    of the id column (`maximum`) is a malformed cursor (422), never an overflow in the
    database."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    value = key[0]
    if not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor")
    return value


def decode_time_id_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The (created_at, id) key inside a cursor of a list ordered by time and UUID, or None
    for the first page. Our cursors always carry the time's offset: a naive time, an
    unparseable id, or a time at the edge of the calendar whose UTC form does not exist
    (year 1 at +14:00) is a malformed cursor (422), never an overflow while binding it."""
    key = decode_cursor(cursor, arity=2)
    if key is None:
        return None
    try:
        created_at = datetime.fromisoformat(str(key[0]))
        row_id = uuid.UUID(str(key[1]))
        if created_at.tzinfo is None:
            raise ValueError("a cursor time carries its offset")
        created_at = created_at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor") from None
    return created_at, row_id


def newest_first(
    query: Select[T],
    created_at: QueryableAttribute[datetime],
    row_id: QueryableAttribute[uuid.UUID],
    after: tuple[datetime, uuid.UUID] | None,
) -> Select[T]:
    """`query` ordered newest first by (time, id), starting after the key of a
    `decode_time_id_cursor` cursor when there is one."""
    if after is not None:
        time, key = after
        query = query.where(or_(created_at < time, and_(created_at == time, row_id < key)))
    return query.order_by(created_at.desc(), row_id.desc())


def page_of(rows: Sequence[T], limit: int, key: Any) -> tuple[list[T], str | None]:
    """Split `limit + 1` fetched rows into the page and the cursor for the next one.

    `key(row)` returns the row's sort key as a sequence of JSON-safe values.
    """
    items = list(rows[:limit])
    if len(rows) > limit and items:
        return items, encode_cursor(key(items[-1]))
    return items, None
