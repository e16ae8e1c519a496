"""General request rate limits: a budget per principal, enforced by a pure ASGI middleware.

Every request except `/health*`, `/metrics` and the staff pages' static files counts
against its principal: the API key (`Authorization: Bearer sk_...`, known by a digest of
the key, without a database read), else the signed-in user (a valid access token, or the
staff pages' session cookie), else the client address. Keys and users get
`STOREKEEPER_RATE_LIMIT_DEFAULT`, addresses `STOREKEEPER_RATE_LIMIT_ANONYMOUS`.

Windows are fixed and cost one counter increment per request: one Redis round trip when
`STOREKEEPER_REDIS_URL` is set (every process shares the count), a dict update otherwise.
Each counter's window is aligned to the clock with an offset of its own (a digest of its
key), so the reset time is known without asking the store and principals do not all start
a new window in the same second. When Redis fails, counting continues in the process (one
warning per outage) and Redis is tried again after `REDIS_RETRY_SECONDS`.

This is a platform module: it imports no domain. What it needs from the accounts (reading
an access token) and the staff pages (reading their session cookie) the composition root
hands over as plain functions.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from http.cookies import SimpleCookie
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storekeeper.config import Settings
from storekeeper.errors import RateLimited, problem_response

log = structlog.get_logger("storekeeper.ratelimit")
audit_log = structlog.get_logger("storekeeper.audit")

RATE_LIMITED = Counter(
    "storekeeper_rate_limited_total",
    "Requests refused with 429 by the general rate limits, by principal kind.",
    ["principal"],
)

# After a failed Redis call, count in the process this long before trying Redis again.
REDIS_RETRY_SECONDS = 5.0
# A Redis that does not answer within this long is treated as down (a request must not
# wait on its rate limit's store).
REDIS_TIMEOUT_SECONDS = 0.25
# Paths never counted: probes, the metrics scraper, and the static files of staff pages.
EXEMPT_PREFIXES = ("/health", "/metrics", "/admin/static/", "/shop/static/")
API_KEY_PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class LimitState:
    """The outcome of one hit: whether it was allowed, and the figures for the headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def retry_after(self) -> int:
        return max(1, self.reset_seconds)

    def headers(self) -> dict[str, str]:
        """`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
        ]

    def error(self, detail: str | None = None) -> RateLimited:
        return RateLimited(self.retry_after, detail)


@lru_cache(maxsize=256)
def _parse_limit(limit: str) -> RateLimitItem:
    return parse(limit)


def _window(key: str, period: int, now: float) -> tuple[int, float]:
    """(index, end time) of the fixed window of `key` that holds `now`: windows of `period`
    seconds, shifted by an offset drawn from the key."""
    offset = zlib.crc32(key.encode()) % period
    index = int((now + offset) // period)
    return index, (index + 1) * period - offset


class _LocalCounters:
    """Fixed-window counters in this process's memory; stale windows are pruned now and then."""

    PRUNE_EVERY_SECONDS = 10.0

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int, float]] = {}  # key -> (window, count, end)
        self._next_prune = 0.0

    def incr(self, key: str, window: int, end: float, cost: int, now: float) -> int:
        if now >= self._next_prune:
            self._prune(now)
        entry = self._counts.get(key)
        count = cost if entry is None or entry[0] != window else entry[1] + cost
        self._counts[key] = (window, count, end)
        return count

    def _prune(self, now: float) -> None:
        self._next_prune = now + self.PRUNE_EVERY_SECONDS
        stale = [key for key, (_, _, end) in self._counts.items() if end <= now]
        for key in stale:
            del self._counts[key]


class RequestLimiter:
    """Fixed-window budgets, shared through Redis when it is configured and answers, else
    counted in this process. Kept on `app.state.rate_limiter`; `hit` serves any budget
    (the middleware's, and an API key's own `rate_limit_per_minute`)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled  # the general limits; `hit` always counts
        self.default_limit = _parse_limit(settings.rate_limit_default)
        self.anonymous_limit = _parse_limit(settings.rate_limit_anonymous)
        self._local = _LocalCounters()
        self._redis: RedisStorage | None = None
        if settings.redis_url:
            self._redis = RedisStorage(
                settings.redis_url,
                implementation="redispy",
                key_prefix=settings.rate_limit_key_prefix,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        # While Redis is down: when to try it again (0: it is not down).
        self._redis_down_until = 0.0
        self._redis_error: str | None = None

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    @property
    def store(self) -> str:
        """`redis`, `memory` (no Redis configured) or `memory-fallback` (Redis is down)."""
        if self._redis is None:
            return "memory"
        return "memory-fallback" if self._redis_error is not None else "redis"

    async def hit(self, limit: RateLimitItem | str, *identifiers: str, cost: int = 1) -> LimitState:
        """Count `cost` against the budget `limit` of `identifiers` and say whether it fits."""
        item = _parse_limit(limit) if isinstance(limit, str) else limit
        period = item.get_expiry()
        key = item.key_for(*identifiers)
        now = time.time()
        window, end = _window(key, period, now)
        count = await self._incr(key, window, end, period, cost, now)
        return LimitState(
            allowed=count <= item.amount,
            limit=item.amount,
            remaining=max(0, item.amount - count),
            reset_seconds=max(1, math.ceil(end - now)),
        )

    async def _incr(
        self, key: str, window: int, end: float, period: int, cost: int, now: float
    ) -> int:
        if self._redis is not None and now >= self._redis_down_until:
            try:
                count = await self._redis.incr(f"{key}/{window}", period + 1, amount=cost)
            except Exception as exc:  # any failure of the store: count here instead
                self._redis_failed(exc, now)
            else:
                if self._redis_error is not None:
                    self._redis_recovered()
                return int(count)
        return self._local.incr(key, window, end, cost, now)

    def _redis_failed(self, exc: BaseException, now: float) -> None:
        self._redis_down_until = now + REDIS_RETRY_SECONDS
        if self._redis_error is None:
            # Once per outage, not once per request.
            log.warning(
                "rate_limit_store_unavailable",
                error=f"{type(exc).__name__}: {exc}",
                fallback="per-process counters",
                retry_seconds=REDIS_RETRY_SECONDS,
            )
        self._redis_error = type(exc).__name__

    def _redis_recovered(self) -> None:
        log.info("rate_limit_store_recovered", store="redis")
        self._redis_error = None
        self._redis_down_until = 0.0

    async def readiness(self) -> dict[str, Any]:
        """The store's state for `/health/ready`; asks Redis when it is configured."""
        if self._redis is not None:
            now = time.time()
            try:
                ok = await self._redis.check()
            except Exception as exc:
                self._redis_failed(exc, now)
            else:
                if ok:
                    if self._redis_error is not None:
                        self._redis_recovered()
                else:
                    self._redis_failed(ConnectionError("Redis did not answer"), now)
        details: dict[str, Any] = {"enabled": self.enabled, "store": self.store}
        if self._redis_error is not None:
            details["redis"] = f"unavailable: {self._redis_error}"
        return details


def user_id_of(decoded: object) -> str:
    """The user id in what `accounts.security.decode_access_token` returns: the id itself,
    or a (user id, sign-in id) pair, or a record with a `user_id`."""
    if isinstance(decoded, tuple):
        decoded = decoded[0]
    return str(getattr(decoded, "user_id", decoded))


@lru_cache(maxsize=4096)
def _address_key(address: str) -> str:
    """IPv4 addresses as they are; IPv6 ones by their /64, which one client holds whole."""
    if ":" not in address:
        return address
    try:
        network = ipaddress.ip_network(f"{address}/64", strict=False)
    except ValueError:
        return address
    return str(network)


def _first_forwarded(value: str) -> str | None:
    first = value.split(",", 1)[0].strip()
    if first.startswith("[") and "]" in first:  # "[2001:db8::1]:443"
        first = first[1 : first.index("]")]
    elif first.count(":") == 1:  # "192.0.2.1:443"
        first = first.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return None


class RateLimitMiddleware:
    """Counts each request against its principal's budget; 429 `rate_limited` past it.

    `token_user(token)` returns the user of a valid access token (raising otherwise);
    `session_user(cookie)` the user of a valid staff session cookie, or None.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RequestLimiter,
        settings: Settings,
        token_user: Callable[[str], object] | None = None,
        sessions: Mapping[str, Callable[[str], object]] | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.enabled = settings.rate_limit_enabled
        self.token_user = token_user
        # Cookie name -> reader of the user in it: the staff pages' and the shop's sessions.
        self.sessions = dict(sessions or {})
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self._trusted = lru_cache(maxsize=1024)(self._is_trusted_proxy)
        # Addresses refused for made-up API keys: address -> (until, monotonic clock; state).
        self._refused_addresses: dict[str, tuple[float, LimitState]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return

        kind, principal, forwarded = self._principal(scope)
        if kind == "key" and self._refused_addresses:
            # A key is known by its digest only, so made-up keys would each get a budget
            # of their own: an address whose made-up keys spent its anonymous budget is
            # refused until that budget's window ends, whatever key it sends.
            address = f"address:{self._client_address(scope, forwarded)}"
            refused = self._refused_until(address)
            if refused is not None:
                await self._refuse(scope, receive, send, "address", address, refused)
                return
        limit = self.limiter.anonymous_limit if kind == "address" else self.limiter.default_limit
        state = await self.limiter.hit(limit, "requests", principal)
        if not state.allowed:
            await self._refuse(scope, receive, send, kind, principal, state)
            return

        extra = state.raw_headers()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
        if kind == "key" and status == 401:
            await self._count_refused_key(scope, forwarded)

    async def _count_refused_key(self, scope: Scope, forwarded: bytes | None) -> None:
        """A request with an unknown, expired or revoked key also spends its address's
        anonymous budget."""
        address = f"address:{self._client_address(scope, forwarded)}"
        state = await self.limiter.hit(self.limiter.anonymous_limit, "requests", address)
        if state.remaining == 0:
            now = time.monotonic()
            if len(self._refused_addresses) > 10_000:
                self._refused_addresses = {
                    a: (until, s)
                    for a, (until, s) in self._refused_addresses.items()
                    if until > now
                }
            self._refused_addresses[address] = (now + state.reset_seconds, state)

    def _refused_until(self, address: str) -> LimitState | None:
        entry = self._refused_addresses.get(address)
        if entry is None:
            return None
        until, state = entry
        now = time.monotonic()
        if until <= now:
            del self._refused_addresses[address]
            return None
        return LimitState(False, state.limit, 0, max(1, math.ceil(until - now)))

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        kind: str,
        principal: str,
        state: LimitState,
    ) -> None:
        RATE_LIMITED.labels(kind).inc()
        audit_log.warning(
            "rate_limited",
            principal=principal,
            principal_kind=kind,
            limit=state.limit,
            retry_after=state.retry_after,
            method=scope.get("method"),
            path=scope.get("path"),
        )
        response = problem_response(state.error(), scope.get("path"))
        response.headers.update(state.headers())
        await response(scope, receive, send)

    def _principal(self, scope: Scope) -> tuple[str, str, bytes | None]:
        """(kind, identifier, X-Forwarded-For): kind is `key`, `user` or `address`."""
        authorization = cookie = forwarded = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
            elif name == b"x-forwarded-for":
                forwarded = value if forwarded is None else forwarded + b"," + value
        if authorization is not None:
            scheme, _, token = authorization.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                if token.startswith(API_KEY_PREFIX):
                    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
                    return "key", f"key:{digest}", forwarded
                user = self._token_user(token)
                if user is not None:
                    return "user", f"user:{user}", forwarded
        if cookie is not None and self.sessions:
            user = self._session_user(cookie)
            if user is not None:
                return "user", f"user:{user}", forwarded
        return "address", f"address:{self._client_address(scope, forwarded)}", forwarded

    def _token_user(self, token: str) -> str | None:
        if self.token_user is None:
            return None
        try:
            return user_id_of(self.token_user(token))
        except Exception:  # expired, forged or malformed: the request is anonymous
            return None

    def _session_user(self, cookie_header: bytes) -> str | None:
        """The user of the first session cookie that names one (None: anonymous)."""
        present = [name for name in self.sessions if name.encode() in cookie_header]
        if not present:
            return None
        try:
            cookies = SimpleCookie(cookie_header.decode("latin-1"))
        except Exception:
            return None
        for name in present:
            morsel = cookies.get(name)
            try:
                session = self.sessions[name](morsel.value) if morsel is not None else None
            except Exception:
                session = None
            if session is not None:
                return user_id_of(session)
        return None

    def _client_address(self, scope: Scope, forwarded: bytes | None) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if forwarded is not None and self._proxies and self._trusted(peer):
            first = _first_forwarded(forwarded.decode("latin-1"))
            if first is not None:
                return _address_key(first)
        return _address_key(peer)

    def _is_trusted_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)
