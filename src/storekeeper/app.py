"""The application factory: routers, middleware, error handlers and the lifespan.

It is the composition root: it may import every domain, and it wires in what one domain
provides to another that may not import it (the inventory's stock figures, which the
catalog shows, as `app.state.stock_figures`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import disable_created_metrics
from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper import __version__
from storekeeper.accounts import service as accounts_service
from storekeeper.accounts.router import router as accounts_router
from storekeeper.accounts.security import decode_access_token
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.apidocs import docs_router, landing_router
from storekeeper.catalog.cache import CatalogCache
from storekeeper.catalog.router import router as catalog_router
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.errors import register_error_handlers
from storekeeper.events import queries as events_queries
from storekeeper.events.delivery import webhook_sender
from storekeeper.events.publisher import publish_all
from storekeeper.events.router import router as events_router
from storekeeper.health import router as health_router
from storekeeper.inventory import queries as inventory_queries
from storekeeper.inventory.expiry import sweep_expired_holds
from storekeeper.inventory.reconciliation import reconcile_on_schedule
from storekeeper.inventory.router import router as inventory_router
from storekeeper.notifications import queries as notifications_queries
from storekeeper.notifications.router import router as notifications_router
from storekeeper.notifications.sender import email_job
from storekeeper.observability import RequestContextMiddleware, configure_logging
from storekeeper.openapi import install_openapi, operation_id
from storekeeper.orders.router import router as orders_router
from storekeeper.orders.service import cancel_unpaid_orders
from storekeeper.ratelimit import RateLimitMiddleware, RequestLimiter
from storekeeper.shop.router import router as shop_router
from storekeeper.shop.session import SHOP_COOKIES
from storekeeper.tasks import BackgroundRunner, PeriodicJob
from storekeeper.web.router import router as web_router
from storekeeper.web.security import SESSION_COOKIE, read_session

log = structlog.get_logger("storekeeper.app")

API_PREFIX = "/api/v1"


def periodic_jobs(settings: Settings) -> list[PeriodicJob]:
    """The background jobs every server process (and `storekeeper worker`) runs."""
    jobs = [
        PeriodicJob(
            "expire-holds",
            settings.expiry_interval_seconds,
            partial(sweep_expired_holds, batch_size=settings.expiry_batch_size),
        ),
        PeriodicJob("publish-events", settings.events_interval_seconds, publish_all),
        # Runs until the process stops, with one HTTP client, claiming due deliveries
        # every `events_interval_seconds` (the period here only paces a restart).
        PeriodicJob("deliver-webhooks", settings.events_interval_seconds, webhook_sender(settings)),
        # Customer emails: made from newly published events, then sent through SMTP.
        PeriodicJob("send-emails", settings.events_interval_seconds, email_job(settings)),
    ]
    if settings.order_payment_timeout_seconds > 0:
        # Unpaid orders give their stock back: checked every tenth of the timeout (at least
        # as often as the expiry sweep runs, at most every minute).
        jobs.append(
            PeriodicJob(
                "cancel-unpaid-orders",
                max(
                    settings.expiry_interval_seconds,
                    min(60.0, settings.order_payment_timeout_seconds / 10),
                ),
                partial(
                    cancel_unpaid_orders, timeout_seconds=settings.order_payment_timeout_seconds
                ),
            )
        )
    if settings.reconcile_interval_seconds > 0:
        # Every process tries each period; the database lets one of them record the run.
        jobs.append(
            PeriodicJob(
                "reconcile",
                settings.reconcile_interval_seconds,
                partial(
                    reconcile_on_schedule, interval_seconds=settings.reconcile_interval_seconds
                ),
            )
        )
    return jobs


async def business_figures(session: AsyncSession, settings: Settings) -> dict[str, int]:
    """The business gauges of a metrics scrape, read in one statement: each domain gives
    its figures as a one-row subquery (stock, holds, the outbox backlog, emails), joined
    side by side."""
    parts = [
        inventory_queries.gauge_figures(
            default_low_threshold=settings.low_stock_threshold, now=utcnow()
        ),
        events_queries.gauge_figures(),
        notifications_queries.gauge_figures(),
    ]
    statement = select(*(column for part in parts for column in part.c)).select_from(parts[0])
    for part in parts[1:]:
        statement = statement.join(part, true())
    row = (await session.execute(statement)).one()
    return {key: int(value or 0) for key, value in row._mapping.items()}


async def on_startup(db: Database, settings: Settings) -> None:
    """One-off start-up work; safe when several processes start at once. Without a
    bootstrap admin to ensure it does not touch the database, so a process starts while the
    database is down (and reports that on /health/ready)."""
    admin = accounts_service.bootstrap_admin_of(settings)
    if admin is not None:
        await UnitOfWork(db).run(accounts_service.ensure_bootstrap_admin, admin)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.effective_log_format, settings.log_level)
    # No `<counter>_created` series: they double the exposition and no dashboard reads them.
    disable_created_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        app.state.db = db
        runner = BackgroundRunner(db)
        try:
            await on_startup(db, settings)
            if settings.run_background_tasks:
                runner.start(periodic_jobs(settings))
            log.info("started", env=settings.env.value, locking=settings.locking.value)
            yield
        finally:
            await runner.stop()
            await app.state.catalog_cache.close()
            await db.dispose()
            log.info("stopped")

    app = FastAPI(
        title="Storekeeper",
        version=__version__,
        generate_unique_id_function=operation_id,
        description="Inventory, reservations, carts, checkout and orders for online shops.",
        lifespan=lifespan,
        # STOREKEEPER_DOCS_ENABLED=false: no /docs, /redoc or /openapi.json (404). The
        # documentation pages are storekeeper.apidocs's, which load nothing from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle(settings)
    # The catalog shows availability but does not own stock: the inventory provides it.
    app.state.stock_figures = inventory_queries.STOCK_FIGURES
    # /metrics reports the domains' business gauges, which the platform module serving it
    # may not import: read at each scrape with this.
    app.state.business_figures = partial(business_figures, settings=settings)
    app.state.catalog_cache = CatalogCache(settings)
    register_error_handlers(app)
    install_openapi(app)

    # Each domain's router sits directly under the app, not under one more router for the
    # prefix: every level of inclusion is matched twice per request, and every route in
    # front of the one a request is for is tried first. The probes (/health, a handful of
    # routes polled by load balancers many times a second) come first, then the flash-sale
    # paths (holds, checkout); the domains' paths never overlap, so order is free.
    app.include_router(health_router)
    for domain_router in (
        inventory_router,
        orders_router,
        catalog_router,
        accounts_router,
        events_router,
        notifications_router,
    ):
        app.include_router(domain_router, prefix=API_PREFIX)
    app.include_router(web_router)
    app.include_router(shop_router)
    if settings.docs_enabled:
        app.include_router(docs_router(app))
    app.include_router(landing_router)

    # Middleware added first runs innermost: the rate limits run inside CORS (so a 429
    # carries its headers) and inside the request context (request id, access log).
    app.state.rate_limiter = RequestLimiter(settings)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=app.state.rate_limiter,
        settings=settings,
        token_user=partial(decode_access_token, settings),
        sessions={
            SESSION_COOKIE: partial(read_session, settings),
            SHOP_COOKIES.session: partial(
                read_session, settings, token_type=SHOP_COOKIES.session_type
            ),
        },
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
        )
    app.add_middleware(RequestContextMiddleware)
    return app
