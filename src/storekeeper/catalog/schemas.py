"""Request and response bodies of the catalog, with the contract's input limits.

Every limit is checked here, before the database sees the value: text must be storable
(no NUL, valid Unicode), `attributes` a JSON object of at most 16 KiB with finite numbers,
ids and prices within the column ranges. Bad input is a 422 and never reaches SQL.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

import orjson
from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# Re-exported: the id limit of every integer id is defined once, in pagination.
from storekeeper.pagination import MAX_ID as MAX_ID
from storekeeper.validation import storable_text as storable_text

MAX_PRICE_CENTS = 100_000_000_000
MAX_ATTRIBUTES_BYTES = 16 * 1024
SKU_CODE_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def _check_json_value(value: Any) -> None:
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)
            _check_json_value(item)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item)


def valid_attributes(value: dict[str, Any]) -> dict[str, Any]:
    _check_json_value(value)
    try:
        size = len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        raise ValueError("must be a JSON object of plain values") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(storable_text),
]
Description = Annotated[str, Field(max_length=5000), AfterValidator(storable_text)]
Attributes = Annotated[dict[str, Any], AfterValidator(valid_attributes)]
CatalogId = Annotated[int, Field(ge=1, le=MAX_ID)]
Version = Annotated[int, Field(ge=1, le=MAX_ID)]
PriceCents = Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$"), AfterValidator(str.upper)]
SkuCode = Annotated[str, Field(pattern=SKU_CODE_PATTERN), AfterValidator(str.upper)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Integer id.")]
SkuCodePath = Annotated[
    str, Path(pattern=SKU_CODE_PATTERN, description="SKU code (case-insensitive).")
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Body):
    """A partial update: only the fields sent change. Fields listed in `required_values`
    may be left out but not set to null."""

    required_values: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for field in self.required_values:
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


# Categories


class CategoryCreate(Body):
    name: Name
    description: Description | None = None
    parent_id: CatalogId | None = None
    attributes: Attributes = Field(default_factory=dict)


class CategoryUpdate(Patch):
    """`parent_id: null` moves the category to the top level."""

    required_values = ("name", "attributes")

    name: Name | None = None
    description: Description | None = None
    parent_id: CatalogId | None = None
    attributes: Attributes | None = None
    version: Version | None = None


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    parent_id: int | None
    path: str
    depth: int
    attributes: dict[str, Any]
    version: int
    is_deleted: bool
    created_at: datetime
    updated_at: datetime


class CategoryTree(CategoryOut):
    children: list[CategoryTree] = Field(default_factory=list)


# SKUs


MAX_LOW_STOCK_THRESHOLD = 1_000_000_000
LowStockThreshold = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_LOW_STOCK_THRESHOLD,
        description="`stock.low` is announced when the SKU's total `available` falls to or "
        "below this from above it. Left out (or null in a PATCH): the "
        "STOREKEEPER_LOW_STOCK_THRESHOLD default.",
    ),
]


MAX_PER_CUSTOMER = 1_000_000
MaxPerCustomer = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_PER_CUSTOMER,
        description="The most units of this SKU one customer may have in orders that are "
        "not cancelled; beyond it a checkout or order is refused with 409 "
        "`purchase_limit_exceeded`. Left out (or null in a PATCH): no limit.",
    ),
]


MAX_FIRST_STOCK = 1_000_000_000
FirstStock = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_FIRST_STOCK,
        description="The SKU's first stock, written as a `receive` adjustment in the same "
        "transaction as the SKU.",
    ),
]
StockLocationCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", to_upper=True),
    Field(description="Where `on_hand` is received; default the highest-priority location."),
]


class SkuFields(Body):
    code: SkuCode
    price_cents: PriceCents
    currency: Currency | None = None
    attributes: Attributes = Field(default_factory=dict)
    low_stock_threshold: LowStockThreshold | None = None
    max_per_customer: MaxPerCustomer | None = None
    on_hand: FirstStock | None = None
    location: StockLocationCode | None = None


class SkuCreate(SkuFields):
    product_id: CatalogId


class SkuUpdate(Patch):
    required_values = ("price_cents", "attributes")
    price_cents: PriceCents | None = None
    attributes: Attributes | None = None
    low_stock_threshold: LowStockThreshold | None = None
    max_per_customer: MaxPerCustomer | None = None
    version: Version | None = None


class SkuOut(BaseModel):
    id: int
    code: str
    product_id: int
    price_cents: int
    currency: str
    attributes: dict[str, Any]
    available: int
    low_stock_threshold: int = Field(
        description="The threshold in force: the SKU's own, else the default."
    )
    max_per_customer: int | None = Field(
        default=None, description="The most units one customer may order; null: no limit."
    )
    version: int
    is_deleted: bool
    created_at: datetime
    updated_at: datetime


# Products


class ProductCreate(Body):
    name: Name
    description: Description | None = None
    category_id: CatalogId
    attributes: Attributes = Field(default_factory=dict)
    skus: list[SkuFields] = Field(default_factory=list, max_length=100)


class ProductUpdate(Patch):
    required_values = ("name", "category_id", "attributes")
    name: Name | None = None
    description: Description | None = None
    category_id: CatalogId | None = None
    attributes: Attributes | None = None
    version: Version | None = None


class ProductOut(BaseModel):
    id: int
    name: str
    description: str | None
    category_id: int
    attributes: dict[str, Any]
    skus: list[SkuOut]
    version: int
    is_deleted: bool
    created_at: datetime
    updated_at: datetime
