"""The route class of the shop's pages: errors become shop pages (never problem+json), a
page that needs a customer sends the browser to sign in, and every response carries the
shop's headers (a strict CSP without scripts, no caching, no framing)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from storekeeper.shop.session import SHOP_COOKIES, CustomerSignInRequired
from storekeeper.shop.templating import PAGE_HEADERS, render
from storekeeper.web.routing import page_route_class
from storekeeper.web.security import clear_cookie, set_flash
from storekeeper.web.templating import settings_of


def see_other(path: str) -> RedirectResponse:
    """The answer to a successful form post (POST, redirect, GET)."""
    return RedirectResponse(path, status_code=303)


def flash_to(request: Request, path: str, message: str) -> RedirectResponse:
    response = see_other(path)
    set_flash(response, settings_of(request), message, SHOP_COOKIES)
    return response


def error_page(request: Request, status: int, detail: str) -> Response:
    return render(
        request,
        "error.html",
        {"status": status, "title": HTTPStatus(status).phrase, "detail": detail},
        status_code=status,
    )


def _sign_in_redirect(request: Request, exc: CustomerSignInRequired) -> Response:
    response = RedirectResponse(exc.location(), status_code=303)
    if exc.message:
        settings = settings_of(request)
        set_flash(response, settings, exc.message, SHOP_COOKIES)
        clear_cookie(response, settings, SHOP_COOKIES.session, SHOP_COOKIES.path)
    return response


ShopRoute = page_route_class(CustomerSignInRequired, _sign_in_redirect, error_page, PAGE_HEADERS)
