"""Login throttling: failed sign-ins are counted per client address and per account.

Counters live in Redis when `STOREKEEPER_REDIS_URL` is set, so every server process shares
them; otherwise in this process's memory (one process, or development). Only failures are
counted, so people who sign in correctly are never slowed down; a burst of concurrent
failures may overshoot the limit by the number of requests in flight, which does not help
an attacker guess meaningfully faster.
"""

from __future__ import annotations

import hashlib
import math
import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from storekeeper.config import Settings
from storekeeper.errors import RateLimited

log = structlog.get_logger("storekeeper.accounts.throttle")


def _storage_for(settings: Settings) -> Storage:
    if settings.redis_url:
        return RedisStorage(
            settings.redis_url.removeprefix("async+"),
            implementation="redispy",
            key_prefix=settings.rate_limit_key_prefix,
            wrap_exceptions=True,
        )
    return MemoryStorage()


class LoginThrottle:
    """Per-address and per-account budgets of failed sign-ins (`STOREKEEPER_LOGIN_RATE_LIMIT`)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.limit: RateLimitItem = parse(settings.login_rate_limit)
        self.limiter = MovingWindowRateLimiter(_storage_for(settings)) if self.enabled else None

    @staticmethod
    def _keys(client_address: str, username: str) -> list[tuple[str, str]]:
        # Accounts are keyed by a digest so that addresses never sit in the shared store.
        account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
        return [("login-address", client_address), ("login-account", account)]

    async def check(self, client_address: str, username: str) -> None:
        """Refuse with 429 while either budget is spent."""
        if self.limiter is None:
            return
        for kind, identifier in self._keys(client_address, username):
            try:
                allowed = await self.limiter.test(self.limit, kind, identifier)
                if allowed:
                    continue
                stats = await self.limiter.get_window_stats(self.limit, kind, identifier)
            except StorageError as exc:
                # A throttle outage must not lock everybody out; say so loudly instead.
                log.warning("login_throttle_unavailable", error=str(exc))
                return
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(retry_after, "Too many failed sign-ins; retry later.")

    async def record_failure(self, client_address: str, username: str) -> None:
        if self.limiter is None:
            return
        try:
            for kind, identifier in self._keys(client_address, username):
                await self.limiter.hit(self.limit, kind, identifier)
        except StorageError as exc:
            log.warning("login_throttle_unavailable", error=str(exc))
