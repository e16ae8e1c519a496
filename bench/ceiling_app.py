"""The service plus one route that exists only in the benchmark: the database's ceiling.

`POST /bench/ceiling-update` runs, as one unit of work of the service's own `Database`
(same engine, pool and driver as every request), nothing but the conditional UPDATE a
hold needs on one hot stock row, the way the service's fastest writes run: one statement
that commits as it ends (`UnitOfWork.run_alone`). No auth, no validation, no ledger:
whatever a real hold costs on top of this is the price of the service's own work.

Served with `uvicorn bench.ceiling_app:app` and the same options `storekeeper serve` uses.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from sqlalchemy import text

from storekeeper.app import create_app
from storekeeper.db import UnitOfWorkDep

HOT_ROW_UPDATE = text(
    "UPDATE stock_levels SET reserved = reserved + 1 "
    "WHERE id = :level_id AND on_hand - reserved - allocated >= 1 RETURNING id"
)


def create_ceiling_app() -> FastAPI:
    application = create_app()

    @application.post("/bench/ceiling-update/{level_id}", include_in_schema=False)
    async def ceiling_update(level_id: int, uow: UnitOfWorkDep) -> Response:
        rows = await uow.run_alone(HOT_ROW_UPDATE, {"level_id": level_id})
        return Response(status_code=200 if rows else 409)

    return application


app = create_ceiling_app()
