"""HTTP bodies of API keys. Every limit is checked here: a name of 1 to 100 storable
characters, one to six known scopes without repeats, an expiry in the future with a time
zone, a per-minute limit of 1 to 1,000,000."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from storekeeper.accounts.scopes import SCOPE_DESCRIPTIONS, SCOPES
from storekeeper.validation import storable_text

MAX_RATE_LIMIT_PER_MINUTE = 1_000_000

KeyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(storable_text),
]


def _known_scopes(value: list[str]) -> list[str]:
    unknown = [scope for scope in value if scope not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; known: {', '.join(SCOPES)}")
    if len(set(value)) != len(value):
        raise ValueError("scopes must not repeat")
    return value


def _in_the_future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2027-01-01T00:00:00Z")
    if value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


_SCOPES_HELP = "; ".join(f"`{scope}`: {text}" for scope, text in SCOPE_DESCRIPTIONS.items())


class ApiKeyCreate(BaseModel):
    # A docstring under a field is its description in the OpenAPI document.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: KeyName = Field(examples=["Storefront checkout"])
    """A name for people: what the key is for (1 to 100 characters)."""
    scopes: Annotated[
        list[str], Field(min_length=1, max_length=len(SCOPES)), AfterValidator(_known_scopes)
    ] = Field(description=f"What the key may do. {_SCOPES_HELP}.")
    expires_at: Annotated[datetime | None, AfterValidator(_in_the_future)] = Field(
        default=None, description="After this the key is refused (401); none: never."
    )
    rate_limit_per_minute: Annotated[int | None, Field(ge=1, le=MAX_RATE_LIMIT_PER_MINUTE)] = Field(
        default=None,
        description="Requests per minute past which the key gets 429, always enforced.",
    )


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_attribute_docstrings=True)

    id: int
    """The key's id."""
    name: str
    """What the key is for."""
    scopes: list[str]
    """What the key may do."""
    prefix: str = Field(description="The key's first 10 characters, to recognise it by.")
    actor_id: int = Field(
        description="The account the key acts through: the `actor_id` of the ledger rows "
        "and the creator of the reservations and orders it makes."
    )
    created_at: datetime
    """When it was created (UTC)."""
    expires_at: datetime | None
    """After this the key is refused (401); null: never."""
    last_used_at: datetime | None = Field(description="Kept to the minute.")
    rate_limit_per_minute: int | None
    """Requests per minute past which the key gets 429; null: only the general rate limits apply."""


class ApiKeyWithSecret(ApiKeyOut):
    key: str = Field(description="The key itself: shown in this answer only, never again.")
