"""Prometheus figures of the events domain (added up across worker processes)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_WRITTEN = Counter(
    "storekeeper_events_written_total", "Events written (committed), by type.", ["type"]
)
EVENTS_PUBLISHED = Counter(
    "storekeeper_events_published_total", "Events given their public id by the publisher."
)
WEBHOOK_DELIVERY_ATTEMPTS = Counter(
    "storekeeper_webhook_delivery_attempts_total",
    "Webhook delivery attempts, by outcome (succeeded, failed, dead).",
    ["outcome"],
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "storekeeper_webhook_delivery_seconds",
    "Time from an attempt's start to the receiver's answer (or the failure).",
)
WEBHOOK_DELIVERIES_DUE = Gauge(
    "storekeeper_webhook_deliveries_due",
    "Deliveries due for an attempt and not in flight, as a sender last counted them.",
    multiprocess_mode="livemax",
)
