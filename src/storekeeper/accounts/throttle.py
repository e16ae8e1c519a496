"""Login throttling: failed sign-ins are counted per client address, per (account, address)
and per account.

The first two budgets are `STOREKEEPER_LOGIN_RATE_LIMIT` (10/minute): they stop one address
from guessing. The account alone has a much higher budget,
`STOREKEEPER_LOGIN_ACCOUNT_RATE_LIMIT` (100/hour), which stops a slow guess from many
addresses but cannot be spent by a handful of wrong passwords: nobody can lock a chosen
account out, and its owner, from another address, still signs in.

Counters live in Redis when `STOREKEEPER_REDIS_URL` is set, so every server process shares
them; otherwise in this process's memory (one process, or development). When Redis fails,
the counting goes on in this process's memory (logged, never silently open) until it
answers again. Only failures are counted, so people who sign in correctly are never slowed
down; a burst of concurrent failures may overshoot the limit by the number of requests in
flight, which does not help an attacker guess meaningfully faster.
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
    """Budgets of failed sign-ins per address, per (account, address) and per account."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.limit: RateLimitItem = parse(settings.login_rate_limit)
        self.account_limit: RateLimitItem = parse(settings.login_account_rate_limit)
        self.limiter = MovingWindowRateLimiter(_storage_for(settings)) if self.enabled else None
        # Counts in this process while the shared store does not answer.
        self.fallback = MovingWindowRateLimiter(MemoryStorage()) if self.enabled else None

    def _budgets(self, client_address: str, username: str) -> list[tuple[RateLimitItem, str, str]]:
        # Accounts are keyed by a digest so that emails never sit in the shared store.
        account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
        return [
            (self.limit, "login-address", client_address),
            (self.limit, "login-account-address", f"{account}:{client_address}"),
            (self.account_limit, "login-account", account),
        ]

    async def check(self, client_address: str, username: str) -> None:
        """Refuse with 429 while any budget is spent."""
        if self.limiter is None or self.fallback is None:
            return
        budgets = self._budgets(client_address, username)
        try:
            await self._check(self.limiter, budgets)
        except StorageError as exc:
            log.warning("login_throttle_unavailable", error=str(exc), fallback="process")
            await self._check(self.fallback, budgets)

    @staticmethod
    async def _check(
        limiter: MovingWindowRateLimiter, budgets: list[tuple[RateLimitItem, str, str]]
    ) -> None:
        for limit, kind, identifier in budgets:
            if await limiter.test(limit, kind, identifier):
                continue
            stats = await limiter.get_window_stats(limit, kind, identifier)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(retry_after, "Too many failed sign-ins; retry later.")

    async def record_failure(self, client_address: str, username: str) -> None:
        if self.limiter is None or self.fallback is None:
            return
        budgets = self._budgets(client_address, username)
        try:
            for limit, kind, identifier in budgets:
                await self.limiter.hit(limit, kind, identifier)
        except StorageError as exc:
            log.warning("login_throttle_unavailable", error=str(exc), fallback="process")
            for limit, kind, identifier in budgets:
                await self.fallback.hit(limit, kind, identifier)
