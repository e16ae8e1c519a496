"""Liveness, readiness and metrics endpoints, and the business gauges /metrics computes at
each scrape (from `app.state.business_figures`, which the composition root provides)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator, Mapping

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storekeeper.db import UnitOfWork, get_database
from storekeeper.errors import Unauthorized
from storekeeper.observability import metrics_payload

router = APIRouter(tags=["operations"])
log = structlog.get_logger("storekeeper.health")


# HEAD too (kept out of the schema): load balancers and uptime checkers often probe with it.
@router.get("/health", summary="Liveness: the process answers (no database).")
@router.head("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    """`{"status": "ok"}` while the process answers; touches no database (for liveness
    probes and the container's HEALTHCHECK)."""
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: the database answers.",
    responses={503: {"description": "The database does not answer."}},
)
@router.head("/health/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    """200 when the database answers within two seconds, else 503 with the reason (for
    readiness probes and load balancers). With Redis configured, the rate limits' store is
    reported too, never a reason for 503."""
    db = get_database(request)
    # With Redis configured, the rate limits' store is reported, never a reason for 503:
    # while Redis is down they are counted per process ("store": "memory-fallback").
    details: dict[str, object] = {}
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None and limiter.uses_redis:
        details["rate_limits"] = await limiter.readiness()
    try:
        await db.ping(within_seconds=2.0)
    except Exception as exc:
        reason = f"database unavailable: {type(exc).__name__}"
        return JSONResponse({"status": "unavailable", "reason": reason, **details}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", **details})


@router.get("/metrics", summary="Prometheus metrics.", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # With STOREKEEPER_METRICS_TOKEN set, only `Authorization: Bearer <that token>`.
    expected = request.app.state.settings.metrics_token
    if expected:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            raise Unauthorized("The metrics need the metrics token.")
    payload, content_type = metrics_payload()
    figures = await _business_figures(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessGauges(figures))
    return Response(payload + generate_latest(registry), media_type=content_type)


# A scrape waits this long for the business figures, then answers without them.
BUSINESS_FIGURES_TIMEOUT_SECONDS = 2.0


async def _business_figures(request: Request) -> Mapping[str, int] | None:
    """The figures of `app.state.business_figures`, read in one read-only unit of work; None
    when the database does not answer in time (the scrape still succeeds)."""
    read = getattr(request.app.state, "business_figures", None)
    if read is None:
        return None
    try:
        async with asyncio.timeout(BUSINESS_FIGURES_TIMEOUT_SECONDS):
            figures: Mapping[str, int] = await UnitOfWork(get_database(request), write=False).run(
                read
            )
            return figures
    except Exception as exc:
        log.warning("business_figures_unavailable", error=type(exc).__name__)
        return None


class BusinessGauges(Collector):
    """Gauges of the business, computed at scrape time from one statement's figures:
    stock levels out and low, live holds, and the outbox backlog."""

    def __init__(self, figures: Mapping[str, int] | None) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "storekeeper_business_figures_up",
            "1 when this scrape read the business figures from the database, else 0.",
        )
        up.add_metric([], 0 if self.figures is None else 1)
        yield up
        if self.figures is None:
            return
        figures = self.figures
        levels = GaugeMetricFamily(
            "storekeeper_stock_levels",
            "Stock levels of live SKUs at active locations: out (nothing available) and low "
            "(available, at most the low-stock threshold).",
            labels=["state"],
        )
        levels.add_metric(["out"], figures["stock_out"])
        levels.add_metric(["low"], figures["stock_low"])
        yield levels
        holds = GaugeMetricFamily("storekeeper_holds_live", "Holds held and not expired.")
        holds.add_metric([], figures["holds_live"])
        yield holds
        backlog = GaugeMetricFamily(
            "storekeeper_outbox_backlog",
            "Work waiting to go out: events not yet published, webhook deliveries and emails "
            "pending or waiting for a retry.",
            labels=["queue"],
        )
        backlog.add_metric(["events"], figures["events_unpublished"])
        backlog.add_metric(["webhook_deliveries"], figures["webhook_deliveries_pending"])
        backlog.add_metric(["emails"], figures["emails_pending"])
        yield backlog
