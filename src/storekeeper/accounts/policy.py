"""Who may do what: the role rules every domain and page asks, defined once.

Services ask these (never a FastAPI dependency module); the one-statement hold, which
checks the caller inside its SQL, builds its condition from `STAFF_ROLES` and
`live_sign_in_sql` here.
"""

from __future__ import annotations

from storekeeper.accounts.models import Role, User
from storekeeper.errors import Forbidden

STAFF_ROLES = frozenset({Role.ADMIN.value, Role.STAFF.value})


def is_staff(user: User | None) -> bool:
    """Staff and admins run the shop: they hold, allocate, adjust stock and see every
    order."""
    return user is not None and user.role in STAFF_ROLES


def require_staff(user: User) -> User:
    if not is_staff(user):
        raise Forbidden("Your role does not allow this.")
    return user


def require_role(user: User, allowed: frozenset[str]) -> User:
    if user.role not in allowed:
        raise Forbidden("Your role does not allow this.")
    return user


def staff_role_sql(role_column: str) -> str:
    """`role_column IN (<staff roles>)` as SQL text, for a raw statement that checks the
    caller itself. The roles are this module's constants, never input."""
    roles = ", ".join(f"'{role}'" for role in sorted(STAFF_ROLES))
    return f"{role_column} IN ({roles})"


def live_sign_in_sql(sign_in_id: str, user_id: str, now: str) -> str:
    """SQL text true when the sign-in `sign_in_id` of user `user_id` has neither ended nor
    expired at `now` (all three SQL expressions of the caller's statement, never input):
    the check `accounts.service.get_signed_in_user` makes, for a raw statement that checks
    its caller itself."""
    return (
        f"EXISTS (SELECT 1 FROM sign_ins WHERE sign_ins.id = {sign_in_id} "
        f"AND sign_ins.user_id = {user_id} AND sign_ins.ended_at IS NULL "
        f"AND sign_ins.expires_at > {now})"
    )
