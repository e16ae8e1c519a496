"""Jinja2 templates of the staff pages and the one function that renders them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from storekeeper.config import Settings
from storekeeper.web.security import (
    FLASH_COOKIE,
    SIGN_IN_NONCE_COOKIE,
    clear_cookie,
    csrf_token,
    keep_sign_in_nonce,
    new_sign_in_nonce,
    read_flash,
)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def format_money(cents: int, currency: str = "") -> str:
    """`1999, "USD"` → `19.99 USD`, exact (integer arithmetic, no floats)."""
    sign = "-" if cents < 0 else ""
    units, minor = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{minor:02d} {currency}".rstrip()


def format_number(value: int) -> str:
    return f"{value:,}"


def query_string(params: dict[str, object]) -> str:
    """`{"q": "saw", "cursor": None}` → `q=saw`: a link's query without its empty values,
    which a page would refuse (an empty id is not a number)."""
    return urlencode({name: value for name, value in params.items() if value not in (None, "")})


def format_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["money"] = format_money
environment.filters["number"] = format_number
environment.filters["time"] = format_time
environment.filters["query"] = query_string
environment.globals["nav"] = [
    ("/admin", "Dashboard"),
    ("/admin/catalog/products", "Products"),
    ("/admin/catalog/categories", "Categories"),
    ("/admin/stock", "Stock"),
    ("/admin/holds", "Holds"),
    ("/admin/orders", "Orders"),
    ("/admin/notifications", "Notifications"),
    ("/admin/consistency", "Consistency"),
]
# Shown to admins only: the pages behind these links answer other staff with 403.
environment.globals["admin_nav"] = [
    ("/admin/webhooks", "Webhooks"),
    ("/admin/api-keys", "API keys"),
]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with what every page needs: the signed-in user, the CSRF token of its
    forms, and the flash message left by the previous request (shown once)."""
    settings = settings_of(request)
    web_session = getattr(request.state, "web_session", None)
    fresh_nonce: str | None = None
    if web_session is not None:
        binding = web_session.session_id
    else:
        binding = request.cookies.get(SIGN_IN_NONCE_COOKIE) or ""
        if not binding:
            binding = fresh_nonce = new_sign_in_nonce()
    flash = read_flash(settings, request.cookies.get(FLASH_COOKIE))
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
        keep_sign_in_nonce(response, settings, fresh_nonce)
    if flash is not None:
        clear_cookie(response, settings, FLASH_COOKIE)
    return response
