"""Request and response bodies of the accounts API, with the input limits of the contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from storekeeper.accounts.models import Role
from storekeeper.pagination import MAX_ID

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
NAME_MAX_LENGTH = 200
POSTAL_CODE_MAX_LENGTH = 20
REFRESH_TOKEN_MAX_LENGTH = 512

# ISO 3166-1 alpha-2 officially assigned codes, plus XK (user-assigned, used by carriers
# and customs for Kosovo).
_ISO_COUNTRY_CODES_TEXT = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK
"""
ISO_COUNTRY_CODES = frozenset(_ISO_COUNTRY_CODES_TEXT.split())


def _without_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps it a 422, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def normalize_email(value: str) -> str:
    """A syntactically valid address with its domain normalised (lower-case, IDNA)."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


def _iso_country(value: str) -> str:
    if value not in ISO_COUNTRY_CODES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code such as DE or US")
    return value


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=EMAIL_MAX_LENGTH),
    AfterValidator(normalize_email),
]
Password = Annotated[
    str, StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_without_nul),
]
PostalCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=POSTAL_CODE_MAX_LENGTH),
    AfterValidator(_without_nul),
]
Country = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, min_length=2, max_length=2),
    AfterValidator(_iso_country),
]
RefreshTokenValue = Annotated[
    str, StringConstraints(min_length=1, max_length=REFRESH_TOKEN_MAX_LENGTH)
]


class RequestBody(BaseModel):
    """Unknown fields are refused so that a misspelt field is a 422, not silently ignored."""

    # A docstring under a field is its description in the OpenAPI document.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RegisterRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "a long passphrase",
                    "full_name": "Ada Lovelace",
                }
            ]
        }
    )

    email: Email
    """Your email, unique; you sign in with it."""
    password: Password
    """8 to 128 characters; not a common password, one repeated character or your email."""
    full_name: Name | None = None
    """Your name."""


class UserCreate(RequestBody):
    email: Email
    """The email, unique."""
    password: Password
    """8 to 128 characters, as for sign-up."""
    role: Role
    """`admin`, `staff` or `customer`."""
    full_name: Name | None = None
    """The person's name."""


class UserUpdate(RequestBody):
    role: Role | None = None
    """The new role."""
    is_active: bool | None = None
    """false: the account can no longer sign in and its sign-ins end."""
    full_name: Name | None = None
    """The new name."""


class MeUpdate(RequestBody):
    full_name: Name | None = None
    """Your new name."""
    password: Password | None = None
    """Your new password (8 to 128 characters)."""
    current_password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX_LENGTH)] | None = (
        None
    )
    """Required with `password`."""

    @model_validator(mode="after")
    def _password_change_names_the_current_one(self) -> MeUpdate:
        if self.password is not None and not self.current_password:
            raise ValueError("current_password is required to change the password")
        return self


class RefreshRequest(RequestBody):
    refresh_token: RefreshTokenValue
    """The refresh token of the sign-in."""


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIs...",
                    "refresh_token": "rt_2hV9...",
                    "token_type": "bearer",
                    "expires_in": 900,
                }
            ]
        },
    )

    access_token: str
    """Send it as `Authorization: Bearer <access_token>`."""
    refresh_token: str
    """Exchange it at `POST /api/v1/auth/refresh` for a new pair (once)."""
    token_type: Literal["bearer"] = "bearer"
    """Always `bearer`."""
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 12,
                    "email": "ada@example.com",
                    "full_name": "Ada Lovelace",
                    "role": "customer",
                    "is_active": True,
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                }
            ]
        },
    )

    id: int
    """The user's id."""
    email: str
    """The email they sign in with."""
    full_name: str | None
    """Their name."""
    role: Role
    """`admin`, `staff` or `customer`."""
    is_active: bool
    """false: deactivated, cannot sign in."""
    created_at: datetime
    """When the account was created (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


class AddressCreate(RequestBody):
    name: Name
    """Recipient."""
    line1: Name
    """Street and number."""
    line2: Name | None = None
    """More of the address."""
    city: Name
    """City."""
    postal_code: PostalCode
    """Postal code, at most 20 characters."""
    country: Country
    """ISO 3166-1 alpha-2 code (`DE`, `US`)."""


class AddressUpdate(RequestBody):
    name: Name | None = None
    """Recipient."""
    line1: Name | None = None
    """Street and number."""
    line2: Name | None = None
    """More of the address."""
    city: Name | None = None
    """City."""
    postal_code: PostalCode | None = None
    """Postal code, at most 20 characters."""
    country: Country | None = None
    """ISO 3166-1 alpha-2 code (`DE`, `US`)."""

    @model_validator(mode="after")
    def _required_fields_stay_set(self) -> AddressUpdate:
        for field in ("name", "line1", "city", "postal_code", "country"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class AddressOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_attribute_docstrings=True)

    id: int
    """The address's id."""
    name: str
    """Recipient."""
    line1: str
    """Street and number."""
    line2: str | None
    """More of the address."""
    city: str
    """City."""
    postal_code: str
    """Postal code, at most 20 characters."""
    country: str
    """ISO 3166-1 alpha-2 code (`DE`, `US`)."""
    created_at: datetime
    """When it was saved (UTC)."""
    updated_at: datetime
    """When it last changed (UTC)."""


# Path parameter of the API-key routes (their bodies are in `api_key_schemas`).
ApiKeyIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="API key id.")]
