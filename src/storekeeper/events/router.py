"""HTTP routes of the events domain: the feed of published events (staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from storekeeper.accounts.dependencies import StaffUser
from storekeeper.db import UnitOfWorkDep
from storekeeper.errors import Forbidden, Unauthorized, ValidationFailed, problem_responses
from storekeeper.events import queries
from storekeeper.events.schemas import EventOut
from storekeeper.pagination import (
    INT64_MAX,
    CursorQuery,
    LimitQuery,
    Page,
    decode_id_cursor,
    page_of,
)

router = APIRouter(tags=["events"])


@router.get(
    "/events",
    response_model=Page[EventOut],
    responses=problem_responses(Unauthorized, Forbidden, ValidationFailed),
)
async def event_feed(
    uow: UnitOfWorkDep,
    _user: StaffUser,
    type: Annotated[str | None, Query(max_length=64, description="Only this type.")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=INT64_MAX, description="The last event id you saw.")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EventOut]:
    """Published events, oldest first. Keep the last `id` you saw and pass it as `after`
    (or follow `next_cursor`): ids are gapless and assigned in the order events became
    visible, so no event is ever missed."""
    after_id = decode_id_cursor(cursor, INT64_MAX) if cursor is not None else after
    rows = await uow.run(queries.event_feed, after_id=after_id, event_type=type, limit=limit + 1)
    items, next_cursor = page_of(rows, limit, lambda event: [event.id])
    return Page(items=[EventOut(**vars(event)) for event in items], next_cursor=next_cursor)
