"""Prometheus figures of customer emails (added up across worker processes)."""

from __future__ import annotations

from prometheus_client import Counter

EMAIL_ATTEMPTS = Counter(
    "storekeeper_email_attempts_total",
    "Customer email sending attempts, by outcome (sent, failed, dead).",
    ["outcome"],
)
