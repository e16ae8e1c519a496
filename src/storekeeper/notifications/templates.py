"""Rendering customer emails: a subject, a plain-text body and an HTML body per kind.

The bodies are Jinja2 templates in `templates/` (`{kind}.txt` and `{kind}.html`); the HTML
environment escapes every value, the text one does not. Each template gets `order` (the
event's `data`: the order as the API shows it) and `name` (the customer's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from storekeeper.notifications.models import EmailKind

TEMPLATES = Path(__file__).resolve().parent / "templates"

SUBJECTS = {
    EmailKind.ORDER_CONFIRMATION: "Your order {order_id} is confirmed",
    EmailKind.ORDER_SHIPPED: "Your order {order_id} has shipped",
    EmailKind.ORDER_CANCELLED: "Your order {order_id} has been cancelled",
}


def money(cents: int, currency: str) -> str:
    """`1250, "USD"` → `12.50 USD`."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d} {currency}"


def _environment(autoescape: bool) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["money"] = money
    return environment


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body_text: str
    body_html: str


def render(kind: str, order: dict[str, Any], name: str) -> Rendered:
    context = {"order": order, "name": name}
    return Rendered(
        subject=SUBJECTS[kind].format(order_id=order["id"]),
        body_text=_TEXT.get_template(f"{kind}.txt").render(context),
        body_html=_HTML.get_template(f"{kind}.html").render(context),
    )
