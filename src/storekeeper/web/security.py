"""The staff pages' session cookie, CSRF tokens and one-shot flash messages.

The session cookie holds a signed JWT whose `typ` differs from API access tokens, so
neither kind of token is accepted in place of the other. It names the user and carries the
session's id (`sid`): the id of its `sign_ins` row (a random UUID), which every request
checks, so signing out, a password change, a deactivation or a role change ends the session
for every copy of the cookie at once. The CSRF token of every form is an HMAC of that id,
so it is bound to the session and useless to anyone who does not hold the cookie. Before
sign-in the binding is a random nonce kept in its own cookie.

The storefront at /shop uses the same machinery with cookies of its own (`CookieSet`): other
names, the path /shop and another token type, so a staff cookie is never a shop session and
the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from starlette.responses import Response

from storekeeper.accounts.security import JWT_ALGORITHM
from storekeeper.config import Environment, Settings
from storekeeper.db import utcnow

SESSION_COOKIE = "storekeeper_session"
SIGN_IN_NONCE_COOKIE = "storekeeper_sign_in"
FLASH_COOKIE = "storekeeper_flash"
COOKIE_PATH = "/admin"

SESSION_TOKEN_TYPE = "web_session"
FLASH_TOKEN_TYPE = "web_flash"
SESSION_TTL = timedelta(hours=12)
FLASH_TTL = timedelta(minutes=5)

CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class CookieSet:
    """The cookies of one set of pages: its session, its pre-sign-in nonce and its flash
    message, all under `path`; `session_type` is the `typ` of its session tokens."""

    session: str
    nonce: str
    flash: str
    path: str
    session_type: str


STAFF_COOKIES = CookieSet(
    SESSION_COOKIE, SIGN_IN_NONCE_COOKIE, FLASH_COOKIE, COOKIE_PATH, SESSION_TOKEN_TYPE
)


@dataclass(frozen=True)
class WebSession:
    user_id: int
    # The sign-in's id as the cookie carries it (the CSRF binding); `sign_in_id` parsed.
    session_id: str

    @property
    def sign_in_id(self) -> uuid.UUID:
        return uuid.UUID(self.session_id)


def _set_cookie(
    response: Response, settings: Settings, name: str, value: str, ttl: int, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=ttl,
        path=path,
        httponly=True,
        samesite="lax",
        secure=settings.env is Environment.PRODUCTION,
    )


def clear_cookie(
    response: Response, settings: Settings, name: str, path: str = COOKIE_PATH
) -> None:
    response.delete_cookie(
        name,
        path=path,
        httponly=True,
        samesite="lax",
        secure=settings.env is Environment.PRODUCTION,
    )


def _encode(settings: Settings, claims: dict[str, Any], ttl: timedelta) -> str:
    now = utcnow()
    claims = {**claims, "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, settings.signing_key, algorithm=JWT_ALGORITHM)


def _decode(settings: Settings, token: str, token_type: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "typ"]},
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != token_type:
        return None
    return claims


def start_session(
    response: Response,
    settings: Settings,
    user_id: int,
    sign_in_id: uuid.UUID,
    cookies: CookieSet = STAFF_COOKIES,
) -> None:
    """Set the cookie of the web sign-in `sign_in_id` (recorded by the caller, live for
    `SESSION_TTL`)."""
    token = _encode(
        settings,
        {"sub": str(user_id), "typ": cookies.session_type, "sid": str(sign_in_id)},
        SESSION_TTL,
    )
    ttl = int(SESSION_TTL.total_seconds())
    _set_cookie(response, settings, cookies.session, token, ttl, cookies.path)
    clear_cookie(response, settings, cookies.nonce, cookies.path)


def read_session(
    settings: Settings, cookie: str | None, token_type: str = SESSION_TOKEN_TYPE
) -> WebSession | None:
    """The session inside a cookie, or None when it is missing, forged or expired."""
    if not cookie:
        return None
    claims = _decode(settings, cookie, token_type)
    if claims is None:
        return None
    subject, session_id = claims.get("sub"), claims.get("sid")
    if not isinstance(subject, str) or not subject.isdecimal() or not isinstance(session_id, str):
        return None
    try:
        uuid.UUID(session_id)
    except ValueError:
        # A cookie from before sessions were recorded: no session to find.
        return None
    return WebSession(user_id=int(subject), session_id=session_id)


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)


def keep_sign_in_nonce(
    response: Response, settings: Settings, nonce: str, cookies: CookieSet = STAFF_COOKIES
) -> None:
    ttl = int(SESSION_TTL.total_seconds())
    _set_cookie(response, settings, cookies.nonce, nonce, ttl, cookies.path)


def csrf_token(settings: Settings, binding: str) -> str:
    """The form token for a session id (or a pre-sign-in nonce)."""
    return hmac.new(
        settings.signing_key.encode(), f"csrf:{binding}".encode(), hashlib.sha256
    ).hexdigest()


def csrf_token_is_valid(settings: Settings, binding: str | None, submitted: object) -> bool:
    if not binding or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(csrf_token(settings, binding).encode(), submitted.encode())


def set_flash(
    response: Response, settings: Settings, message: str, cookies: CookieSet = STAFF_COOKIES
) -> None:
    """A message shown once on the next page, e.g. after a redirect that follows a POST."""
    token = _encode(settings, {"typ": FLASH_TOKEN_TYPE, "msg": message}, FLASH_TTL)
    ttl = int(FLASH_TTL.total_seconds())
    _set_cookie(response, settings, cookies.flash, token, ttl, cookies.path)


def read_flash(settings: Settings, cookie: str | None) -> str | None:
    if not cookie:
        return None
    claims = _decode(settings, cookie, FLASH_TOKEN_TYPE)
    message = claims.get("msg") if claims else None
    return message if isinstance(message, str) else None
