"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from storekeeper.db import get_database
from storekeeper.observability import metrics_payload

router = APIRouter(tags=["operations"])


# HEAD too (kept out of the schema): load balancers and uptime checkers often probe with it.
@router.get("/health", summary="Liveness: the process answers (no database).")
@router.head("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: the database answers.",
    responses={503: {"description": "The database does not answer."}},
)
@router.head("/health/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    db = get_database(request)
    try:
        await db.ping(within_seconds=2.0)
    except Exception as exc:
        reason = f"database unavailable: {type(exc).__name__}"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", summary="Prometheus metrics.", include_in_schema=False)
async def metrics() -> Response:
    payload, content_type = metrics_payload()
    return Response(payload, media_type=content_type)
