"""Rendering customer emails: a subject, a plain-text body and an HTML body per kind.

The bodies are Jinja2 templates in `templates/` (`{kind}.txt` and `{kind}.html`); the HTML
environment escapes every value, the text one does not. `render` takes the kind and its
context, which the subject is formatted from too; each kind's context is made by its own
function:

- `order_confirmation`, `order_shipped`, `order_cancelled`: `order_context`, with `order`
  (the event's `data`: the order as the API shows it) and `name` (the customer's);
- `back_in_stock`: `back_in_stock_context`, with `sku` (its code), `product_name` and
  `name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from storekeeper.notifications.models import EmailKind

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Formatted with the kind's context (`str.format_map`).
SUBJECTS = {
    EmailKind.ORDER_CONFIRMATION: "Your order {order[id]} is confirmed",
    EmailKind.ORDER_SHIPPED: "Your order {order[id]} has shipped",
    EmailKind.ORDER_CANCELLED: "Your order {order[id]} has been cancelled",
    EmailKind.BACK_IN_STOCK: "{sku} is back in stock",
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


def order_context(order: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The context of an order email: the order as the API shows it, and the customer's
    name."""
    return {"order": order, "name": name}


def back_in_stock_context(sku: str, product_name: str | None, name: str) -> dict[str, Any]:
    """The context of a back-in-stock email: the SKU's code, its product's name (None when
    unknown) and the customer's name."""
    return {"sku": sku, "product_name": product_name, "name": name}


def render(kind: str, context: Mapping[str, Any]) -> Rendered:
    """The subject and both bodies of an email of `kind` from its context."""
    return Rendered(
        subject=SUBJECTS[kind].format_map(context),
        body_text=_TEXT.get_template(f"{kind}.txt").render(context),
        body_html=_HTML.get_template(f"{kind}.html").render(context),
    )
