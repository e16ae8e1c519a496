"""Prometheus counters of the inventory domain (added up across worker processes)."""

from __future__ import annotations

from prometheus_client import Counter

HOLDS_CREATED = Counter("storekeeper_holds_created_total", "Holds created.")
HOLDS_CONVERTED = Counter("storekeeper_holds_converted_total", "Holds converted to allocations.")
HOLDS_RELEASED = Counter("storekeeper_holds_released_total", "Holds released by a client.")
HOLDS_EXPIRED = Counter(
    "storekeeper_holds_expired_total", "Holds expired (by the sweeper or reclaimed inline)."
)
ALLOCATIONS_CREATED = Counter(
    "storekeeper_allocations_created_total", "Allocations created directly (not by converting)."
)
INSUFFICIENT_STOCK = Counter(
    "storekeeper_insufficient_stock_total",
    "Holds, allocations and removals refused for insufficient stock.",
)
OPTIMISTIC_RETRIES = Counter(
    "storekeeper_optimistic_retries_total",
    "Compare-and-set writes of a stock level that lost a race and were retried.",
)
