"""What an API key may reach: the scopes, and the one rule that maps an operation to its.

Every API operation is in one of three classes for a key:

- public (the catalog's reads): any valid key, like anyone;
- scoped: the key needs the operation's one scope, else 403 `forbidden` naming it
  (`required_scope`);
- closed: never with a key, whatever its scopes (accounts, API keys, webhooks, carts,
  waitlists: people's and administrators' business), 403 `forbidden` whose
  `required_scope` names what it takes instead, which no key can be given: `admin` (users,
  API keys, webhooks: an administrator signed in) or `user` (sign-in, one's own profile,
  cart and waitlist: the person themselves).

The rule is by path, in one place, and closed is the default: an operation added later is
out of every key's reach until it is given a scope here (tests/accounts/test_api_keys.py
holds every route of the application to one of the three classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CATALOG_WRITE = "catalog:write"
INVENTORY_READ = "inventory:read"
INVENTORY_WRITE = "inventory:write"
RESERVATIONS_WRITE = "reservations:write"
ORDERS_READ = "orders:read"
ORDERS_WRITE = "orders:write"

SCOPES = (
    CATALOG_WRITE,
    INVENTORY_READ,
    INVENTORY_WRITE,
    RESERVATIONS_WRITE,
    ORDERS_READ,
    ORDERS_WRITE,
)

SCOPE_DESCRIPTIONS = {
    CATALOG_WRITE: "create, change and delete categories, products and SKUs",
    INVENTORY_READ: "read levels, availability, movements, holds, allocations and events",
    INVENTORY_WRITE: "locations, adjustments and imports",
    RESERVATIONS_WRITE: "holds and allocations: create, convert, release, extend, fulfil, cancel",
    ORDERS_READ: "read orders",
    ORDERS_WRITE: "place orders and change their status",
}


@dataclass(frozen=True)
class Access:
    kind: Literal["public", "scoped", "closed"]
    scope: str | None = None


PUBLIC = Access("public")
# What a closed operation takes instead of a scope (never grantable to a key).
ADMIN_ONLY = "admin"
PERSONAL = "user"
CLOSED_TO_ADMINS = Access("closed", ADMIN_ONLY)
CLOSED_TO_PEOPLE = Access("closed", PERSONAL)
_ADMINISTRATION = ("/users", "/api-keys", "/webhooks")

_RESERVATIONS = ("/inventory/holds", "/inventory/allocations")
_CATALOG = ("/categories", "/products", "/skus")


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def access_of(method: str, path: str) -> Access:
    """How a key may reach the operation `method path` (the route's path template under
    /api/v1, e.g. `/inventory/holds/{hold_id}/convert`)."""
    reading = method in ("GET", "HEAD")
    if _under(path, _RESERVATIONS):
        return Access("scoped", INVENTORY_READ if reading else RESERVATIONS_WRITE)
    if _under(path, ("/inventory", "/locations")):
        return Access("scoped", INVENTORY_READ if reading else INVENTORY_WRITE)
    if _under(path, ("/events",)) and reading:
        return Access("scoped", INVENTORY_READ)
    if _under(path, ("/orders",)):
        return Access("scoped", ORDERS_READ if reading else ORDERS_WRITE)
    if _under(path, _CATALOG) and not path.endswith("/waitlist"):
        return PUBLIC if reading else Access("scoped", CATALOG_WRITE)
    if _under(path, _ADMINISTRATION) and not _under(path, ("/users/me",)):
        return CLOSED_TO_ADMINS
    return CLOSED_TO_PEOPLE
