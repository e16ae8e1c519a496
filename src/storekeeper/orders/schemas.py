"""Request and response bodies of carts, checkout and orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from storekeeper.catalog.schemas import MAX_ID
from storekeeper.inventory.schemas import Code, Input, Quantity
from storekeeper.orders.models import OrderStatus

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
