"""Request and response bodies of carts, checkout and orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from storekeeper.catalog.schemas import MAX_ID
from storekeeper.inventory.schemas import Code, Input, Quantity
from storekeeper.orders.models import OrderStatus

if TYPE_CHECKING:
    from storekeeper.orders.service import OrderView

MAX_ORDER_LINES = 100

# Integer ids and versions are 32-bit columns: a larger number is refused as input (422)
# rather than reaching the database.
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


class CartItemIn(Input):
    sku: Code
    quantity: Quantity


class CartItemUpdate(Input):
    quantity: Quantity


class CartItemOut(BaseModel):
    id: uuid.UUID
    sku: str
    product_name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int
    currency: str
    available: int
    # A SKU deleted from the catalog after it was put in the cart: the line stays visible
    # but checkout refuses it until it is removed.
    is_deleted: bool


class CartOut(BaseModel):
    id: uuid.UUID
    items: list[CartItemOut]
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime


class CheckoutIn(Input):
    shipping_address_id: Id | None = None


class OrderItemIn(Input):
    sku: Code
    quantity: Quantity


class OrderIn(Input):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    user_id: Id | None = None
    shipping_address_id: Id | None = None


class StatusChangeIn(Input):
    status: OrderStatus
    version: Id | None = None


class OrderLineOut(BaseModel):
    sku: str
    product_name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int


class ShippingAddressOut(BaseModel):
    """The address as it was when the order was placed (later edits do not change it)."""

    name: str
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str


class OrderOut(BaseModel):
    id: uuid.UUID
    user_id: int
    created_by: int
    status: OrderStatus
    items: list[OrderLineOut]
    total_cents: int
    currency: str
    shipping_address: ShippingAddressOut | None
    allocation_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int

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
