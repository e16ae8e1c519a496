"""Staff pages under /admin: sign-in, dashboard, and the static files they use.

Handlers are thin: check who is asking (dependencies), run a unit of work that calls the
domain services, render a template. Changes are posted as forms and answered with a
redirect (POST, redirect, GET), so reloading a page never repeats a change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.db import UnitOfWorkDep, utcnow
from storekeeper.errors import NotFound, RateLimited
from storekeeper.inventory import queries as stock_queries
from storekeeper.web import (
    api_key_pages,
    catalog_pages,
    charts,
    dashboard,
    notification_pages,
    order_pages,
    product_pages,
    stock_pages,
    webhook_pages,
)
from storekeeper.web.dependencies import (
    SIGN_IN_PATH,
    SignInForm,
    StaffForm,
    StaffUser,
    is_safe_next,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import SESSION_COOKIE, clear_cookie, set_flash, start_session
from storekeeper.web.sign_in import NOT_STAFF, SignInRefused, end_staff_session, sign_in_staff
from storekeeper.web.templating import STATIC_DIR, render, settings_of

router = APIRouter(prefix="/admin", include_in_schema=False, route_class=WebRoute)
router.include_router(catalog_pages.router)
router.include_router(product_pages.router)
router.include_router(stock_pages.router)
router.include_router(order_pages.router)
router.include_router(notification_pages.router)
router.include_router(webhook_pages.router)
router.include_router(api_key_pages.router)

LOW_STOCK_PATH = "/admin/low-stock"
LOW_STOCK_PAGE_SIZE = 50
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript"}
HOME_PATH = "/admin"


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    if name not in STATIC_FILES:
        raise NotFound("There is no such file.")
    return FileResponse(
        STATIC_DIR / name,
        media_type=STATIC_FILES[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = HOME_PATH) -> Response:
    return render(request, "sign_in.html", {"next": next, "email": "", "errors": {}})


@router.post("/sign-in")
async def sign_in(request: Request, uow: UnitOfWorkDep, form: SignInForm) -> Response:
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    next_path = str(form.get("next") or HOME_PATH)
    errors: dict[str, str] = {}
    status = 400
    shop_link = False
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if not errors:
        throttle: LoginThrottle = request.app.state.login_throttle
        client_address = request.client.host if request.client else "unknown"
        try:
            signed_in = await uow.run(
                sign_in_staff,
                throttle,
                client_address=client_address,
                email=email,
                password=password,
            )
        except SignInRefused as refused:
            errors["form"] = refused.message
            # A customer with the right password: point them at the storefront.
            shop_link = refused.message == NOT_STAFF
        except RateLimited as limited:
            errors["form"] = f"{limited.detail} Wait {limited.retry_after} s."
            status = 429
    if errors:
        context = {"next": next_path, "email": email, "errors": errors, "shop_link": shop_link}
        return render(request, "sign_in.html", context, status_code=status)
    response = see_other(next_path if is_safe_next(next_path) else HOME_PATH)
    start_session(response, settings_of(request), signed_in.user.id, signed_in.sign_in_id)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, uow: UnitOfWorkDep, _form: StaffForm) -> Response:
    # Ends the session in the database: every copy of the cookie stops working.
    await uow.run(end_staff_session, request.state.web_session)
    response = see_other(SIGN_IN_PATH)
    settings = settings_of(request)
    clear_cookie(response, settings, SESSION_COOKIE)
    set_flash(response, settings, "You are signed out.")
    return response


@router.get("")
async def dashboard_page(
    request: Request,
    user: StaffUser,
    uow: UnitOfWorkDep,
    threshold: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
) -> Response:
    # Without a threshold asked for, each SKU is held to its own `low_stock_threshold`.
    board = await uow.run(
        dashboard.dashboard_figures,
        threshold=threshold,
        default_threshold=settings_of(request).low_stock_threshold,
        today=utcnow().date(),
    )
    flow = board.flow
    chart = charts.bar_chart(
        flow.days,
        [
            charts.Series("Received", flow.received, "chart-received"),
            charts.Series("Shipped", flow.shipped, "chart-shipped"),
        ],
        title="Units received and shipped per day, last 30 days",
        description=(
            f"{sum(flow.received):,} units received and {sum(flow.shipped):,} shipped "
            f"between {flow.days[0]:%Y-%m-%d} and {flow.days[-1]:%Y-%m-%d}."
        ),
        chart_id="flow",
    )
    return render(
        request,
        "dashboard.html",
        {
            "figures": board.summary,
            "low_stock": board.low_stock,
            "threshold": threshold,
            "default_threshold": settings_of(request).low_stock_threshold,
            "low_stock_path": LOW_STOCK_PATH,
            "movements": board.movements,
            "flow": flow,
            "chart": chart,
        },
    )


@router.get("/low-stock")
async def low_stock_page(
    request: Request,
    user: StaffUser,
    uow: UnitOfWorkDep,
    threshold: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Every low level, a page at a time: the dashboard shows the first few and links here."""
    default_threshold = settings_of(request).low_stock_threshold
    found = await uow.run(
        stock_queries.low_stock,
        threshold,
        default_threshold=default_threshold,
        limit=LOW_STOCK_PAGE_SIZE,
        offset=(page - 1) * LOW_STOCK_PAGE_SIZE,
    )
    return render(
        request,
        "stock/low.html",
        {
            "section": LOW_STOCK_PATH,
            "low_stock": found,
            "threshold": threshold,
            "default_threshold": default_threshold,
            "page": page,
            "first_row": (page - 1) * LOW_STOCK_PAGE_SIZE + 1,
            "has_next": page * LOW_STOCK_PAGE_SIZE < found.total,
        },
    )
