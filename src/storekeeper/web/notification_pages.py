"""Notification pages (staff and admins): the customer emails newest first, by status and
kind (`queries.KINDS`: the order emails and back-in-stock emails) with cursor paging, and a
Retry button on each failed or dead one.

Reads go through `storekeeper.notifications.queries` and a retry through
`storekeeper.notifications.retry.retry_email`, which makes the email due again now the way
a webhook delivery is retried; the senders attempt it on their next run. Without an SMTP
server (`STOREKEEPER_SMTP_URL` unset) the page says that emails are kept as `skipped`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from storekeeper.db import UnitOfWork, UnitOfWorkDep
from storekeeper.errors import ValidationFailed
from storekeeper.notifications import queries
from storekeeper.notifications.retry import RETRYABLE, retry_email
from storekeeper.pagination import INT64_MAX, CursorQuery
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import FORM_ERROR, Refusal, attempt, refusal_errors, text
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import query_string, render, settings_of

router = APIRouter(route_class=WebRoute)

NOTIFICATIONS_PATH = "/admin/notifications"
PAGE_SIZE = 50
CHOOSE_STATUS = "Choose a status from the list."
CHOOSE_KIND = "Choose a kind from the list."

EmailIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="Email id.")]
FilterQuery = Annotated[str | None, Query(max_length=32)]


def _filters(status: str | None, kind: str | None) -> tuple[str | None, str | None, dict[str, str]]:
    """The known status and kind asked for, and a message for each that is not known."""
    errors: dict[str, str] = {}
    wanted_status = status if status in queries.STATUSES else None
    if status and wanted_status is None:
        errors["status"] = CHOOSE_STATUS
    wanted_kind = kind if kind in queries.KINDS else None
    if kind and wanted_kind is None:
        errors["kind"] = CHOOSE_KIND
    return wanted_status, wanted_kind, errors


async def _list_page(
    request: Request,
    uow: UnitOfWork,
    *,
    status: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    wanted_status, wanted_kind, filter_errors = _filters(status, kind)
    errors = {**(errors or {}), **filter_errors}
    page = queries.EmailPage([], None)
    if not filter_errors:
        try:
            page = await uow.run(
                queries.list_emails,
                status=wanted_status,
                kind=wanted_kind,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
        except ValidationFailed as refused:
            errors.update(refusal_errors(refused))
    if errors.keys() & {"status", "kind", "cursor"}:
        status_code = 422
    return render(
        request,
        "notifications/list.html",
        {
            "section": NOTIFICATIONS_PATH,
            "emails": page.rows,
            "status": wanted_status or "",
            "kind": wanted_kind or "",
            "statuses": queries.STATUSES,
            "kinds": queries.KINDS,
            "retryable": RETRYABLE,
            "cursor": cursor,
            "next_cursor": page.next_cursor,
            "smtp_configured": settings_of(request).smtp_url is not None,
            "errors": errors,
        },
        status_code=status_code,
    )


@router.get("/notifications")
async def notifications_page(
    request: Request,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    status: FilterQuery = None,
    kind: FilterQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    return await _list_page(request, uow, status=status, kind=kind, cursor=cursor)


def _back_to(form: FormData) -> str:
    """The list with the filters the Retry button was pressed under (unknown ones
    dropped)."""
    status, kind, _ = _filters(text(form, "status") or None, text(form, "kind") or None)
    query = query_string({"status": status, "kind": kind})
    return f"{NOTIFICATIONS_PATH}?{query}" if query else NOTIFICATIONS_PATH


@router.post("/notifications/{email_id}/retry")
async def retry_notification(
    request: Request,
    email_id: EmailIdPath,
    _user: StaffUser,
    uow: UnitOfWorkDep,
    form: StaffForm,
) -> Response:
    outcome: queries.EmailView | Refusal = await attempt(uow, retry_email, email_id)
    if isinstance(outcome, Refusal):
        # The list with why nothing happened (404 for an unknown email, 409 otherwise).
        errors = {FORM_ERROR: next(iter(outcome.errors.values()))}
        return await _list_page(request, uow, errors=errors, status_code=outcome.status)
    settings = settings_of(request)
    when = "shortly" if settings.smtp_url is not None else "once an SMTP server is configured"
    response = see_other(_back_to(form))
    set_flash(
        response,
        settings,
        f"Email {email_id} to {outcome.to_address} is due again: it is sent {when}.",
    )
    return response
