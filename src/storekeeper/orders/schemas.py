"""Request and response bodies of carts, checkout and orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field

from storekeeper.catalog.schemas import MAX_ID
from storekeeper.inventory.schemas import Code, Input, Output, Quantity
from storekeeper.orders.models import OrderStatus

if TYPE_CHECKING:
    from storekeeper.orders.service import OrderView

MAX_ORDER_LINES = 100

# Integer ids and versions are 32-bit columns: a larger number is refused as input (422)
# rather than reaching the database.
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


class CartItemIn(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"sku": "TEE-RED-M", "quantity": 2}]})

    sku: Code
    """The SKU code (any case) of a live SKU."""
    quantity: Quantity
    """Units to add, 1 to 1,000,000."""


class CartItemUpdate(Input):
    quantity: Quantity
    """The line's new quantity, 1 to 1,000,000."""


class CartItemOut(Output):
    id: uuid.UUID
    """The line's id."""
    sku: str
    """The SKU code."""
    product_name: str
    """The product's name."""
    quantity: int
    """Units."""
    unit_price_cents: int
    """The SKU's current price of one unit."""
    line_total_cents: int
    """`quantity * unit_price_cents`."""
    currency: str
    """ISO 4217 code."""
    available: int
    """Units of the SKU available now."""
    # A SKU deleted from the catalog after it was put in the cart: the line stays visible
    # but checkout refuses it until it is removed.
    is_deleted: bool
    """The SKU was deleted from the catalog: checkout refuses the cart until the line is removed."""


class CartOut(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5b0d8c1e-2f0a-4b7e-9a55-3c4d2e1f0a99",
                    "items": [
                        {
                            "id": "9c1e7f3a-6b2d-4e8f-a1c3-5d7e9f0b2a4c",
                            "sku": "TEE-RED-M",
                            "product_name": "Organic cotton tee",
                            "quantity": 2,
                            "unit_price_cents": 1999,
                            "line_total_cents": 3998,
                            "currency": "EUR",
                            "available": 42,
                            "is_deleted": False,
                        }
                    ],
                    "total_cents": 3998,
                    "currency": "EUR",
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:31:00Z",
                }
            ]
        }
    )

    id: uuid.UUID
    """The cart's id."""
    items: list[CartItemOut]
    """Its lines, one per SKU."""
    total_cents: int
    """The sum of the lines at current prices."""
    currency: str
    """ISO 4217 code."""
    created_at: datetime
    """When it was created (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


class CheckoutIn(Input):
    shipping_address_id: Id | None = None
    """One of your addresses, copied into the order."""


class OrderItemIn(Input):
    sku: Code
    """The SKU code (any case) of a live SKU."""
    quantity: Quantity
    """Units, 1 to 1,000,000."""


class OrderIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [{"sku": "TEE-RED-M", "quantity": 2}], "shipping_address_id": 1}]
        }
    )

    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    """1 to 100 lines; all are allocated or none."""
    user_id: Id | None = None
    """Staff only: the customer to order for; left out: yourself."""
    shipping_address_id: Id | None = None
    """One of the customer's addresses, copied into the order."""


class StatusChangeIn(Input):
    status: OrderStatus
    """The status to move to."""
    version: Id | None = None
    """The version you read; a stale one is 409 `version_conflict`."""


class OrderLineOut(Output):
    sku: str
    """The SKU code."""
    product_name: str
    """The product's name."""
    quantity: int
    """Units."""
    unit_price_cents: int
    """The price of one unit when the order was placed."""
    line_total_cents: int
    """`quantity * unit_price_cents`."""


class ShippingAddressOut(Output):
    """The address as it was when the order was placed (later edits do not change it)."""

    name: str
    """Recipient."""
    line1: str
    """Street and number."""
    line2: str | None
    """More of the address."""
    city: str
    """City."""
    postal_code: str
    """Postal code."""
    country: str
    """ISO 3166-1 alpha-2 code."""


class OrderOut(Output):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3e5f7a9b-1c2d-4e6f-8a0b-2c4d6e8f0a1b",
                    "user_id": 12,
                    "created_by": 12,
                    "status": "pending",
                    "items": [
                        {
                            "sku": "TEE-RED-M",
                            "product_name": "Organic cotton tee",
                            "quantity": 2,
                            "unit_price_cents": 1999,
                            "line_total_cents": 3998,
                        }
                    ],
                    "total_cents": 3998,
                    "currency": "EUR",
                    "shipping_address": {
                        "name": "Ada Lovelace",
                        "line1": "1 Example Street",
                        "line2": None,
                        "city": "Springfield",
                        "postal_code": "12345",
                        "country": "DE",
                    },
                    "allocation_id": "7a9b1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d",
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                    "version": 1,
                }
            ]
        }
    )

    id: uuid.UUID
    """The order's id."""
    user_id: int
    """The customer it is for."""
    created_by: int
    """Who placed it (the customer, or staff for them)."""
    status: OrderStatus
    """`pending`, `paid`, `shipped` or `cancelled` (the last two are final)."""
    items: list[OrderLineOut]
    """Its lines at the prices it was placed at."""
    total_cents: int
    """The sum of the lines."""
    currency: str
    """ISO 4217 code."""
    shipping_address: ShippingAddressOut | None
    """The address as it was when the order was placed."""
    allocation_id: uuid.UUID
    """The stock allocation it owns (fulfilled on shipping, cancelled with the order)."""
    created_at: datetime
    """When it was placed (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""
    version: int
    """Increases on every change; send it with a status change to refuse a stale one."""

    @classmethod
    def from_view(cls, view: OrderView) -> OrderOut:
        """The order as the API shows it (responses and the `order.*` events alike)."""
        order = view.order
        return cls(
            id=order.id,
            user_id=order.user_id,
            created_by=order.created_by,
            status=OrderStatus(order.status),
            items=[
                OrderLineOut(
                    sku=line.sku_code,
                    product_name=line.product_name,
                    quantity=line.quantity,
                    unit_price_cents=line.unit_price_cents,
                    line_total_cents=line.line_total_cents,
                )
                for line in view.lines
            ],
            total_cents=order.total_cents,
            currency=order.currency,
            shipping_address=(
                ShippingAddressOut.model_validate(order.shipping_address)
                if order.shipping_address is not None
                else None
            ),
            allocation_id=order.allocation_id,
            created_at=order.created_at,
            updated_at=order.updated_at,
            version=order.version,
        )
