"""FastAPI dependencies of the catalog domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from storekeeper.catalog.cache import CatalogCache
from storekeeper.catalog.stock import StockFigures


async def get_stock_figures(request: Request) -> StockFigures:
    """The stock figures the application wired in (`app.state.stock_figures`, set by
    `create_app`). A coroutine, so FastAPI calls it on the event loop (a plain `def`
    dependency would cost a thread hand-off per request)."""
    figures: StockFigures = request.app.state.stock_figures
    return figures


StockFiguresDep = Annotated[StockFigures, Depends(get_stock_figures)]


async def get_catalog_cache(request: Request) -> CatalogCache:
    """The catalog read cache of the application (`app.state.catalog_cache`)."""
    cache: CatalogCache = request.app.state.catalog_cache
    return cache


CatalogCacheDep = Annotated[CatalogCache, Depends(get_catalog_cache)]
