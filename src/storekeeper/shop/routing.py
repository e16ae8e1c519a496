"""The route class of the shop's pages: errors become shop pages (never problem+json), a
page that needs a customer sends the browser to sign in, and every response carries the
shop's headers (a strict CSP without scripts, no caching, no framing)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.responses import Response

from storekeeper.errors import StorekeeperError
from storekeeper.shop.session import SHOP_COOKIES, CustomerSignInRequired
from storekeeper.shop.templating import PAGE_HEADERS, render
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


def _validation_page(request: Request, exc: RequestValidationError) -> Response:
    if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
        return error_page(request, 404, "There is no such page.")
    return error_page(request, 400, "The address of this page is not valid.")


class ShopRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            try:
                response = await handle(request)
            except CustomerSignInRequired as exc:
                response = _sign_in_redirect(request, exc)
            except StorekeeperError as exc:
                response = error_page(request, exc.status_code, exc.detail)
            except RequestValidationError as exc:
                response = _validation_page(request, exc)
            for name, value in PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handle_page
