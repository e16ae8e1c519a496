"""Claims: taking units out of `available` under the configured locking strategy.

A claim (hold, allocation, removal) picks a level and lowers its `available` through
`ledger.claim_level`, which writes the level and its ledger row; this module decides which
level and under which locks, following the `StockPolicy`:

- `atomic`: one conditional `UPDATE ... WHERE available >= :q`; the database decides, no
  figures are read first.
- `pessimistic`: the request's candidate levels are locked with `SELECT ... FOR UPDATE` in
  (SKU, location) order, then updated.
- `optimistic`: figures and `version` are read without locks and written with a
  compare-and-set on `version`; a lost race is re-read and retried a bounded number of times
  with jittered backoff, then reported as `RetryableError`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.errors import RetryableError
from storekeeper.inventory import ledger
from storekeeper.inventory.ledger import Claim, ClaimRequest, ClaimTarget, Written
from storekeeper.inventory.metrics import OPTIMISTIC_RETRIES
from storekeeper.inventory.models import available_of, levels, locations


@dataclass(frozen=True)
class Shortage:
    sku_id: int
    requested: int
    available: int


async def claim_all(
    session: AsyncSession, requests: Sequence[ClaimRequest], policy: StockPolicy
) -> list[Written | Shortage]:
    """Apply each claim (the caller orders them by SKU id) or report it short."""
    if policy.locking is LockingStrategy.PESSIMISTIC:
        return await _claim_pessimistic(session, requests)
    results: list[Written | Shortage] = []
    for request in requests:
        if policy.locking is LockingStrategy.OPTIMISTIC:
            results.append(await _claim_optimistic(session, request, policy.optimistic_retries))
        else:
            results.append(await _claim_atomic(session, request))
    return results


def _candidates(claim: Claim) -> Select[Any]:
    """A claim's candidate levels, best first."""
    query = (
        select(
            levels.c.id,
            levels.c.location_id,
            available_of(levels).label("available"),
            levels.c.version,
        )
        .join(locations, locations.c.id == levels.c.location_id)
        .where(levels.c.sku_id == claim.sku_id)
    )
    if claim.location_id is not None:
        return query.where(levels.c.location_id == claim.location_id)
    return query.where(locations.c.is_active).order_by(locations.c.priority.desc(), locations.c.id)


async def _best_available(session: AsyncSession, claim: Claim) -> int:
    """The most a single candidate level could serve now (lines are never split)."""
    best = (
        await session.execute(
            select(func.max(available_of(levels)))
            .select_from(levels.join(locations, locations.c.id == levels.c.location_id))
            .where(
                levels.c.sku_id == claim.sku_id,
                levels.c.location_id == claim.location_id
                if claim.location_id is not None
                else locations.c.is_active,
            )
        )
    ).scalar_one_or_none()
    return max(int(best or 0), 0)


# A conditional update can miss because another transaction changed the chosen level
# between choosing and locking it; a few fresh attempts settle that race.
_ATOMIC_ATTEMPTS = 4


async def _claim_atomic(session: AsyncSession, request: ClaimRequest) -> Written | Shortage:
    claim = request.claim
    target: ClaimTarget = "location" if claim.location_id is not None else "best"
    for _ in range(_ATOMIC_ATTEMPTS):
        written = await ledger.claim_level(session, request, target)
        if written is not None:
            return written
        available = await _best_available(session, claim)
        if available < claim.quantity:
            return Shortage(claim.sku_id, claim.quantity, available)
    raise RetryableError("The stock level kept changing under this request; retry it.")


async def _claim_pessimistic(
    session: AsyncSession, requests: Sequence[ClaimRequest]
) -> list[Written | Shortage]:
    if not requests:
        return []
    sku_ids = sorted({request.claim.sku_id for request in requests})
    locked = (
        await session.execute(
            select(
                levels.c.id,
                levels.c.sku_id,
                levels.c.location_id,
                available_of(levels).label("available"),
                locations.c.is_active,
                locations.c.priority,
            )
            .join(locations, locations.c.id == levels.c.location_id)
            .where(levels.c.sku_id.in_(sku_ids))
            .order_by(levels.c.sku_id, levels.c.location_id)
            .with_for_update(of=levels)
        )
    ).all()
    results: list[Written | Shortage] = []
    for request in requests:
        claim = request.claim
        options = [
            row
            for row in locked
            if row.sku_id == claim.sku_id
            and (row.location_id == claim.location_id if claim.location_id else row.is_active)
        ]
        options.sort(key=lambda row: (-row.priority, row.location_id))
        chosen = next((row for row in options if row.available >= claim.quantity), None)
        if chosen is None:
            best = max((row.available for row in options), default=0)
            results.append(Shortage(claim.sku_id, claim.quantity, max(best, 0)))
            continue
        written = await ledger.claim_level(session, request, "level", level_id=chosen.id)
        if written is None:
            raise AssertionError("a locked level that could serve the claim refused it")
        results.append(written)
    return results


async def _claim_optimistic(
    session: AsyncSession, request: ClaimRequest, max_retries: int
) -> Written | Shortage:
    claim = request.claim
    for attempt in range(max_retries + 1):
        options = (await session.execute(_candidates(claim))).all()
        chosen = next((row for row in options if row.available >= claim.quantity), None)
        if chosen is None:
            best = max((row.available for row in options), default=0)
            return Shortage(claim.sku_id, claim.quantity, max(best, 0))
        written = await ledger.claim_level(
            session, request, "level_version", level_id=chosen.id, level_version=chosen.version
        )
        if written is not None:
            return written
        # Counts lost compare-and-sets as they happen (the unit may still commit): the
        # figure measures contention, not outcomes.
        OPTIMISTIC_RETRIES.inc()
        if 0 < attempt < max_retries:
            # The first re-read goes at once: on PostgreSQL the lost compare-and-set has
            # already locked the row's newest version (READ COMMITTED re-check), so it
            # cannot lose again and sleeping would only keep others waiting. Later
            # losses back off with jitter so racing writers spread out.
            await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
    raise RetryableError("The stock level kept changing under this request; retry it.")
