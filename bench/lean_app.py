"""The framework's floor: a bare FastAPI app on asyncpg, none of the service's code.

`GET /lean/noop` answers a constant; `POST /lean/update/{level_id}` runs, on a plain asyncpg
pool, nothing but the conditional UPDATE a hold needs on one hot stock row. No middleware,
no logging, no metrics, no SQLAlchemy: every ratio the benchmark reports against these two
is the price of the service's own request path and work over what FastAPI and the driver
cost by themselves. `GET /health/ready` exists so that the benchmark waits for it like for
every other server.

Served with `uvicorn bench.lean_app:app` and the options `storekeeper serve` uses; it
reads the database and pool size from the same STOREKEEPER_* variables as the service.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request, Response

HOT_ROW_UPDATE = (
    "UPDATE stock_levels SET reserved = reserved + 1 "
    "WHERE id = $1 AND on_hand - reserved - allocated >= 1 RETURNING id"
)
NOOP_BODY = b'{"status":"ok"}'


def _dsn() -> str:
    url = os.environ["STOREKEEPER_DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def lifespan(application: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("STOREKEEPER_DB_POOL_SIZE", "10"))
    pool = await asyncpg.create_pool(_dsn(), min_size=1, max_size=size)
    application.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


# The same handler as the service's `/health`: what is measured apart is what surrounds it.
@app.get("/lean/noop")
async def lean_noop() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/health/ready")
async def lean_ready() -> Response:
    return Response(NOOP_BODY, media_type="application/json")


@app.post("/lean/update/{level_id}")
async def lean_update(level_id: int, request: Request) -> Response:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        row = await conn.fetchval(HOT_ROW_UPDATE, level_id)
    return Response(status_code=200 if row is not None else 409)
