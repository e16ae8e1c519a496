"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from storekeeper.db import get_database
from storekeeper.errors import Unauthorized
from storekeeper.observability import metrics_payload

router = APIRouter(tags=["operations"])


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
    return Response(payload, media_type=content_type)
