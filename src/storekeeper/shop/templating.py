"""The shop's Jinja2 templates, the page headers every shop response carries, and the one
function that renders a page (with the customer, the CSRF token and the flash message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from storekeeper.shop.session import SHOP_COOKIES
from storekeeper.web.security import (
    clear_cookie,
    csrf_token,
    keep_sign_in_nonce,
    new_sign_in_nonce,
    read_flash,
)
from storekeeper.web.templating import format_money, format_time, query_string, settings_of

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# No script at all: every flow is a link or a form.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# "Only 3 left" up to this many units; more reads "In stock".
FEW_LEFT = 5


def availability(available: int) -> str:
    """How a SKU's stock reads to a customer."""
    if available <= 0:
        return "Sold out"
    if available <= FEW_LEFT:
        return f"Only {available} left"
    return "In stock"


environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["money"] = format_money
environment.filters["time"] = format_time
environment.filters["query"] = query_string
environment.filters["availability"] = availability
environment.globals["few_left"] = FEW_LEFT


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    settings = settings_of(request)
    web_session = getattr(request.state, "web_session", None)
    fresh_nonce: str | None = None
    if web_session is not None:
        binding = web_session.session_id
    else:
        binding = request.cookies.get(SHOP_COOKIES.nonce) or ""
        if not binding:
            binding = fresh_nonce = new_sign_in_nonce()
    flash = read_flash(settings, request.cookies.get(SHOP_COOKIES.flash))
    page = {
        "request": request,
        "user": getattr(request.state, "user", None),
        "flash": flash,
        "section": "",
        "csrf_token": csrf_token(settings, binding),
        **(context or {}),
    }
    response = HTMLResponse(environment.get_template(template).render(page), status_code)
    if fresh_nonce is not None:
        keep_sign_in_nonce(response, settings, fresh_nonce, SHOP_COOKIES)
    if flash is not None:
        clear_cookie(response, settings, SHOP_COOKIES.flash, SHOP_COOKIES.path)
    return response
