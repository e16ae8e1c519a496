"""The route class of the staff pages: errors become HTML pages, never problem+json, and
every response carries the headers a page needs (CSP, no caching, no framing)."""

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
from storekeeper.web.dependencies import SignInRequired
from storekeeper.web.security import SESSION_COOKIE, clear_cookie, set_flash
from storekeeper.web.templating import render, settings_of

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def see_other(path: str) -> RedirectResponse:
    """The answer to a successful form post: the browser GETs `path` next, so reloading
    that page never repeats the change."""
    return RedirectResponse(path, status_code=303)


def error_page(request: Request, status: int, detail: str) -> Response:
    return render(
        request,
        "error.html",
        {"status": status, "title": HTTPStatus(status).phrase, "detail": detail},
        status_code=status,
    )


def _sign_in_redirect(request: Request, exc: SignInRequired) -> Response:
    response = RedirectResponse(exc.location(), status_code=303)
    if exc.message:
        settings = settings_of(request)
        set_flash(response, settings, exc.message)
        clear_cookie(response, settings, SESSION_COOKIE)
    return response


ErrorPage = Callable[[Request, int, str], Response]


def page_route_class(
    sign_in_required: type[Exception],
    sign_in_redirect: Callable[[Request, Any], Response],
    render_error: ErrorPage,
    headers: dict[str, str],
) -> type[APIRoute]:
    """A route class for pages drawn for people (the staff pages, the shop): the page's
    sign-in error sends the browser to sign in, a domain error or invalid address becomes
    an HTML page drawn by `render_error` (never problem+json), and every response carries
    `headers`."""

    def validation_page(request: Request, exc: RequestValidationError) -> Response:
        if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
            return render_error(request, 404, "There is no such page.")
        return render_error(request, 400, "The address of this page is not valid.")

    class PageRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def handle_page(request: Request) -> Response:
                try:
                    response = await handle(request)
                except sign_in_required as exc:
                    response = sign_in_redirect(request, exc)
                except StorekeeperError as exc:
                    response = render_error(request, exc.status_code, exc.detail)
                except RequestValidationError as exc:
                    response = validation_page(request, exc)
                for name, value in headers.items():
                    response.headers.setdefault(name, value)
                return response

            return handle_page

    return PageRoute


WebRoute = page_route_class(SignInRequired, _sign_in_redirect, error_page, PAGE_HEADERS)
