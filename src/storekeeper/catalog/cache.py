"""Caching of public catalog reads: the catalog version, ETags, Cache-Control and the
Redis cache-aside store.

The `ETag` is strong: a hash of the page's bytes, so `If-None-Match` gets a `304` exactly
when the caller has what it would be sent now (also after its max-age ran out, when
nothing changed).

What a cached page may be behind by, and why:
- Catalog edits (categories, products, SKUs: names, prices, deletions) are never served
  stale. Every unit of work that changes one adds one to the single `catalog_versions`
  row in its own transaction (`_note_catalog_changes`, an ORM flush hook, and
  `touch_catalog` for the few bulk UPDATEs); Redis keys carry that number, so the first
  read after the commit misses the cache.
- Availability (the `available` of each SKU) is not in the version: bumping one row on
  every hold, release and checkout would make that row the hottest of the database and
  serialise every hold behind it. Instead Redis keys also carry the number of the
  `max_age`-second time window the page was read in (`window_of`), and
  `Cache-Control: max-age` is the time left in that window: a page read at time t is
  served from Redis, or reused by a browser or CDN, only until the window it was read in
  ends, so availability in a cached page is at most `max_age` seconds old. The hold and
  checkout paths never read through this cache.

Redis (`STOREKEEPER_REDIS_URL`) is an optimisation only: with it down, or slow, reads
are computed from the database like without it (never an error), and it is not tried
again for `REDIS_RETRY_SECONDS`. One recompute per key at a time: a miss takes a short
`SET NX` lock; the others wait briefly for the value and compute it themselves only if
it does not appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storekeeper.catalog.models import CatalogVersion, Category, Product, Sku
from storekeeper.config import Settings

log = structlog.get_logger("storekeeper.catalog.cache")

CATALOG_CACHE = Counter(
    "storekeeper_catalog_cache_total",
    "Catalog reads by Redis cache outcome: hit, miss, error (Redis down) or off (no Redis).",
    ["outcome"],
)
REDIS_RETRY_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 0.25
LOCK_MILLISECONDS = 2_000
WAIT_STEPS = 20
WAIT_STEP_SECONDS = 0.01
_BUMPED = "storekeeper.catalog_version_bumped"
_CATALOG_TYPES = (Category, Product, Sku)

# The wall clock (seconds since the epoch): windows are the same in every process.
clock: Callable[[], float] = time.time


# -- the version -----------------------------------------------------------------------------


_BUMP_VERSION = (
    update(CatalogVersion).where(CatalogVersion.id == 1).values(version=CatalogVersion.version + 1)
)


async def touch_catalog(session: AsyncSession) -> None:
    """This unit of work changes the catalog (by a bulk UPDATE the ORM does not see): one
    more on its version, once per transaction however often it is called."""
    if not session.info.get(_BUMPED):
        session.info[_BUMPED] = True
        await session.execute(_BUMP_VERSION)


@event.listens_for(Session, "after_flush")
def _note_catalog_changes(session: Session, _context: Any) -> None:
    """Every flush that writes a category, product or SKU through the ORM bumps the
    version in the same transaction (no service can forget to). The statement runs within
    the flush (the asyncio session drives sync events on its own connection), so a flush
    at commit time counts too. The version row stays locked from here to the commit:
    catalog edits, which are rare, take turns on it; holds and checkouts never touch it."""
    if session.info.get(_BUMPED):
        return
    for instance in (*session.new, *session.dirty, *session.deleted):
        if isinstance(instance, _CATALOG_TYPES) and (
            instance in session.new
            or instance in session.deleted
            or session.is_modified(instance, include_collections=False)
        ):
            session.info[_BUMPED] = True
            session.connection().execute(_BUMP_VERSION)
            return


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _transaction_over(session: Session, *_args: Any) -> None:
    session.info.pop(_BUMPED, None)


async def catalog_version(session: AsyncSession) -> int:
    version = await session.scalar(select(CatalogVersion.version).where(CatalogVersion.id == 1))
    return int(version or 0)


# -- tags and windows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    """The window a page is read in and how long it may be reused."""

    max_age: int
    window: int

    @property
    def cache_control(self) -> str:
        return f"public, max-age={self.max_age}"


def window_of(now: float, max_age: int) -> int:
    return math.floor(now / max_age)


def freshness(max_age: int) -> Freshness:
    now = clock()
    window = window_of(now, max_age)
    left = max(0, math.floor((window + 1) * max_age - now))
    return Freshness(max_age=left, window=window)


def etag_of(body: bytes) -> str:
    """A strong tag: the same bytes, and only they, have it."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(etag: str, if_none_match: str | None) -> bool:
    """`If-None-Match` names this tag (or is `*`)."""
    if not if_none_match:
        return False
    candidates = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


# -- Redis -----------------------------------------------------------------------------------


class CatalogCache:
    """The Redis store of rendered catalog pages, or nothing without STOREKEEPER_REDIS_URL."""

    def __init__(self, settings: Settings) -> None:
        self.max_age = settings.catalog_cache_max_age_seconds
        self.prefix = settings.cache_key_prefix
        self._redis: Any = None
        if settings.redis_url:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        self._down_until = 0.0

    @property
    def enabled(self) -> bool:
        return self._redis is not None

    def _usable(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("catalog cache unavailable", error=type(exc).__name__)
        self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
        CATALOG_CACHE.labels("error").inc()

    async def fetch(
        self, name: str, fresh: Freshness, version: int, compute: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The page `name` of this version and window: from Redis, or computed (and stored
        for the others, once per key at a time)."""
        if not self._usable():
            CATALOG_CACHE.labels("error" if self._redis is not None else "off").inc()
            return await compute()
        key = f"{self.prefix}:v{version}:w{fresh.window}:{name}"
        try:
            cached = await self._redis.get(key)
            if cached is not None:
                CATALOG_CACHE.labels("hit").inc()
                return bytes(cached)
            locked = await self._redis.set(f"{key}:lock", b"1", nx=True, px=LOCK_MILLISECONDS)
            if not locked:
                for _ in range(WAIT_STEPS):
                    await asyncio.sleep(WAIT_STEP_SECONDS)
                    cached = await self._redis.get(key)
                    if cached is not None:
                        CATALOG_CACHE.labels("hit").inc()
                        return bytes(cached)
        except Exception as exc:  # Redis down or slow: read without it.
            self._failed(exc)
            return await compute()
        CATALOG_CACHE.labels("miss").inc()
        body = await compute()
        try:
            # The key names its window: the TTL only frees memory once the window is over.
            await self._redis.set(key, body, ex=2 * self.max_age)
            if locked:
                await self._redis.delete(f"{key}:lock")
        except Exception as exc:
            self._failed(exc)
        return body

    async def close(self) -> None:
        if self._redis is not None:
            # Closing the connections to a Redis that is gone raises; nothing to do then.
            with contextlib.suppress(Exception):
                await self._redis.aclose()


@dataclass(frozen=True)
class CachedRead:
    """A catalog page as the service hands it to the router: its tag and freshness, and
    its rendered body unless the caller's copy is the same (`not_modified`)."""

    etag: str
    fresh: Freshness
    body: bytes | None

    @property
    def not_modified(self) -> bool:
        return self.body is None


async def cached_read(
    session: AsyncSession,
    cache: CatalogCache,
    name: str,
    if_none_match: str | None,
    compute: Callable[[], Awaitable[bytes]],
) -> CachedRead:
    """The page from the cache (under the catalog version, one statement) or `compute`;
    "not modified" when the caller already has these bytes."""
    version = await catalog_version(session)
    fresh = freshness(cache.max_age)
    body = await cache.fetch(name, fresh, version, compute)
    etag = etag_of(body)
    if matches(etag, if_none_match):
        return CachedRead(etag, fresh, None)
    return CachedRead(etag, fresh, body)
