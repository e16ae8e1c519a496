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
    # A docstring under a field is its description in the OpenAPI document.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


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
    """Unique among the live categories under the same parent."""
    description: Description | None = None
    """Free text for people."""
    parent_id: CatalogId | None = None
    """The parent category; left out: a top-level category."""
    attributes: Attributes = Field(default_factory=dict)
    """Any JSON object (at most 16 KiB)."""


class CategoryUpdate(Patch):
    """`parent_id: null` moves the category to the top level."""

    required_values = ("name", "attributes")

    name: Name | None = None
    """The new name."""
    description: Description | None = None
    """The new description (null clears it)."""
    parent_id: CatalogId | None = None
    """The new parent; null: the top level."""
    attributes: Attributes | None = None
    """Replaces the attributes (a JSON object of at most 16 KiB)."""
    version: Version | None = None
    """The version you read; a stale one is 409 `version_conflict`."""


class CategoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_attribute_docstrings=True)

    id: int
    """The category's id."""
    name: str
    """The category's name."""
    description: str | None
    """Free text for people."""
    parent_id: int | None
    """The parent category; null at the top level."""
    path: str
    """The ids from the root down to this one, `/`-separated (`/1/4/`)."""
    depth: int
    """0 at the top level, 1 below it, and so on."""
    attributes: dict[str, Any]
    """Any JSON object."""
    version: int
    """Increases on every change; send it back in a PATCH to refuse a stale edit (409
    `version_conflict`)."""
    is_deleted: bool
    """Soft-deleted (seen only by staff with `include_deleted=true`)."""
    created_at: datetime
    """When it was created (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


class CategoryTree(CategoryOut):
    children: list[CategoryTree] = Field(default_factory=list)
    """The subcategories, each with its own `children`, by name."""


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
    """Letters, digits, `.`, `_` and `-`, at most 64; stored upper-case and unique for good (deleted
    SKUs keep theirs)."""
    price_cents: PriceCents
    """The price in the currency's minor unit (1999 = 19.99)."""
    currency: Currency | None = None
    """ISO 4217 code; left out: STOREKEEPER_DEFAULT_CURRENCY."""
    attributes: Attributes = Field(default_factory=dict)
    """Any JSON object (at most 16 KiB): colour, size, ..."""
    low_stock_threshold: LowStockThreshold | None = None
    """`stock.low` is announced when the SKU's total `available` falls to or below this; left out:
    the STOREKEEPER_LOW_STOCK_THRESHOLD default."""
    max_per_customer: MaxPerCustomer | None = None
    """The most units one customer may have in orders not cancelled (beyond it 409
    `purchase_limit_exceeded`); left out: no limit."""
    on_hand: FirstStock | None = None
    """The SKU's first stock (0 to 1,000,000,000), received as a `receive` adjustment in the
    transaction that creates the SKU; left out or 0: no stock yet."""
    location: StockLocationCode | None = None
    """Where `on_hand` is received; left out: the highest-priority location."""


class SkuCreate(SkuFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"product_id": 3, "code": "TEE-RED-S", "price_cents": 1999}]
        }
    )

    product_id: CatalogId
    """The live product the SKU belongs to."""


class SkuUpdate(Patch):
    required_values = ("price_cents", "attributes")
    price_cents: PriceCents | None = None
    """The new price; orders keep the price they were placed at."""
    attributes: Attributes | None = None
    """Replaces the attributes (a JSON object of at most 16 KiB)."""
    low_stock_threshold: LowStockThreshold | None = None
    """`stock.low` is announced when the SKU's total `available` falls to or below this; left out:
    the STOREKEEPER_LOW_STOCK_THRESHOLD default."""
    max_per_customer: MaxPerCustomer | None = None
    """The most units one customer may have in orders not cancelled (beyond it 409
    `purchase_limit_exceeded`); left out: no limit."""
    version: Version | None = None
    """The version you read; a stale one is 409 `version_conflict`."""


class SkuOut(BaseModel):
    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "code": "TEE-RED-M",
                    "product_id": 3,
                    "price_cents": 1999,
                    "currency": "EUR",
                    "attributes": {"colour": "red", "size": "M"},
                    "available": 42,
                    "low_stock_threshold": 5,
                    "max_per_customer": None,
                    "version": 1,
                    "is_deleted": False,
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                }
            ]
        },
    )

    id: int
    """The SKU's id."""
    code: str
    """The SKU code (upper-case)."""
    product_id: int
    """The product it belongs to."""
    price_cents: int
    """The current price in the currency's minor unit."""
    currency: str
    """ISO 4217 code."""
    attributes: dict[str, Any]
    """Any JSON object."""
    available: int
    """Units that can be held or ordered now, over every location."""
    low_stock_threshold: int = Field(
        description="The threshold in force: the SKU's own, else the default."
    )
    max_per_customer: int | None = Field(
        default=None, description="The most units one customer may order; null: no limit."
    )
    version: int
    """Increases on every change; send it back in a PATCH to refuse a stale edit (409
    `version_conflict`)."""
    is_deleted: bool
    """Soft-deleted (seen only by staff with `include_deleted=true`)."""
    created_at: datetime
    """When it was created (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


# Products


class ProductCreate(Body):
    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "Organic cotton tee",
                    "description": "Heavyweight, garment dyed.",
                    "category_id": 2,
                    "attributes": {"material": "cotton"},
                    "skus": [
                        {"code": "TEE-RED-M", "price_cents": 1999, "attributes": {"size": "M"}},
                        {"code": "TEE-RED-L", "price_cents": 1999, "attributes": {"size": "L"}},
                    ],
                }
            ]
        },
    )

    name: Name
    """The product's name."""
    description: Description | None = None
    """Free text for people; searched by `q`."""
    category_id: CatalogId
    """The live category it belongs to."""
    attributes: Attributes = Field(default_factory=dict)
    """Any JSON object (at most 16 KiB)."""
    skus: list[SkuFields] = Field(default_factory=list, max_length=100)
    """SKUs created with the product (all or nothing), at most 100."""


class ProductUpdate(Patch):
    required_values = ("name", "category_id", "attributes")
    name: Name | None = None
    """The new name."""
    description: Description | None = None
    """The new description (null clears it)."""
    category_id: CatalogId | None = None
    """The new category."""
    attributes: Attributes | None = None
    """Replaces the attributes (a JSON object of at most 16 KiB)."""
    version: Version | None = None
    """The version you read; a stale one is 409 `version_conflict`."""


class ProductOut(BaseModel):
    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "Organic cotton tee",
                    "description": "Heavyweight, garment dyed.",
                    "category_id": 2,
                    "attributes": {"material": "cotton"},
                    "skus": [
                        {
                            "id": 7,
                            "code": "TEE-RED-M",
                            "product_id": 3,
                            "price_cents": 1999,
                            "currency": "EUR",
                            "attributes": {"colour": "red", "size": "M"},
                            "available": 42,
                            "low_stock_threshold": 5,
                            "max_per_customer": None,
                            "version": 1,
                            "is_deleted": False,
                            "created_at": "2026-12-01T09:30:00Z",
                            "updated_at": "2026-12-01T09:30:00Z",
                        }
                    ],
                    "version": 1,
                    "is_deleted": False,
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                }
            ]
        },
    )

    id: int
    """The product's id."""
    name: str
    """The product's name."""
    description: str | None
    """Free text for people."""
    category_id: int
    """The category it belongs to."""
    attributes: dict[str, Any]
    """Any JSON object."""
    skus: list[SkuOut]
    """Its live SKUs (deleted ones too for staff with `include_deleted=true`)."""
    version: int
    """Increases on every change; send it back in a PATCH to refuse a stale edit (409
    `version_conflict`)."""
    is_deleted: bool
    """Soft-deleted (seen only by staff with `include_deleted=true`)."""
    created_at: datetime
    """When it was created (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""
