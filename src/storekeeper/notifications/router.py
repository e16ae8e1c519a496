"""HTTP routes of the notifications domain: the signed-in user's waitlist.

`POST /skus/{code}/waitlist` joins (201 when newly waiting, 200 when waiting already),
`DELETE /skus/{code}/waitlist` leaves (204, also when not on it), `GET /users/me/waitlist`
lists the caller's entries in id order. Each route runs one service function as one unit
of work and shapes its result.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from storekeeper.accounts.dependencies import CurrentUser
from storekeeper.catalog.schemas import SkuCodePath
from storekeeper.db import UnitOfWorkDep
from storekeeper.errors import NotFound, Unauthorized, ValidationFailed, problem_responses
from storekeeper.notifications import waitlist
from storekeeper.notifications.schemas import WaitlistEntryOut
from storekeeper.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page

router = APIRouter(tags=["waitlist"])


def _entry_out(entry: waitlist.WaitlistEntryView) -> WaitlistEntryOut:
    return WaitlistEntryOut(**vars(entry))


@router.post(
    "/skus/{code}/waitlist",
    status_code=status.HTTP_201_CREATED,
    summary="Wait for a SKU to be back in stock.",
    responses={
        status.HTTP_200_OK: {"model": WaitlistEntryOut, "description": "Waiting already."},
        **problem_responses(Unauthorized, NotFound, ValidationFailed),
    },
)
async def join_waitlist(
    code: SkuCodePath, user: CurrentUser, uow: UnitOfWorkDep, response: Response
) -> WaitlistEntryOut:
    """Join the SKU's waitlist: one email when it is back in stock, then the entry is
    `notified` (joining again renews it). 201 when newly waiting, 200 when waiting already;
    404 for an unknown or deleted SKU."""
    joined = await uow.run(waitlist.join_waitlist, user.id, code)
    if not joined.is_new:
        response.status_code = status.HTTP_200_OK
    return _entry_out(joined.entry)


@router.delete(
    "/skus/{code}/waitlist",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Leave a SKU's waitlist.",
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed),
)
async def leave_waitlist(code: SkuCodePath, user: CurrentUser, uow: UnitOfWorkDep) -> Response:
    """Leave the SKU's waitlist; 204 also when you were not on it, 404 for an unknown SKU."""
    await uow.run(waitlist.leave_waitlist, user.id, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/users/me/waitlist",
    summary="Your waitlist entries.",
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def my_waitlist(
    user: CurrentUser,
    uow: UnitOfWorkDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[WaitlistEntryOut]:
    """Your waitlist entries in id order, waiting and notified."""
    page = await uow.run(waitlist.list_my_waitlist, user.id, limit=limit, cursor=cursor)
    return Page(items=[_entry_out(row) for row in page.rows], next_cursor=page.next_cursor)
