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

from storekeeper import __version__
from storekeeper.accounts import service as accounts_service
from storekeeper.accounts.router import router as accounts_router
from storekeeper.accounts.security import decode_access_token
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.catalog.router import router as catalog_router
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork
from storekeeper.errors import register_error_handlers
from storekeeper.events.delivery import webhook_sender
from storekeeper.events.publisher import publish_all
from storekeeper.events.router import router as events_router
from storekeeper.health import router as health_router
from storekeeper.inventory import queries as inventory_queries
from storekeeper.inventory.expiry import sweep_expired_holds
from storekeeper.inventory.reconciliation import reconcile_on_schedule
from storekeeper.inventory.router import router as inventory_router
from storekeeper.notifications.router import router as notifications_router
from storekeeper.notifications.sender import email_job
from storekeeper.observability import RequestContextMiddleware, configure_logging
from storekeeper.orders.router import router as orders_router
from storekeeper.orders.service import cancel_unpaid_orders
from storekeeper.ratelimit import RateLimitMiddleware, RequestLimiter
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
            await db.dispose()
            log.info("stopped")

    app = FastAPI(
        title="Storekeeper",
        version=__version__,
        description="Inventory, reservations, carts, checkout and orders for online shops.",
        lifespan=lifespan,
        # STOREKEEPER_DOCS_ENABLED=false: no /docs, /redoc or /openapi.json (404).
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle(settings)
    # The catalog shows availability but does not own stock: the inventory provides it.
    app.state.stock_figures = inventory_queries.STOCK_FIGURES
    register_error_handlers(app)

    # Each domain's router sits directly under the app, not under one more router for the
    # prefix: every level of inclusion is matched twice per request. The flash-sale paths
    # (holds, checkout) come first; the domains' paths never overlap, so order is free.
    for domain_router in (
        inventory_router,
        orders_router,
        catalog_router,
        accounts_router,
        events_router,
        notifications_router,
    ):
        app.include_router(domain_router, prefix=API_PREFIX)
    app.include_router(health_router)
    app.include_router(web_router)

    # Middleware added first runs innermost: the rate limits run inside CORS (so a 429
    # carries its headers) and inside the request context (request id, access log).
    app.state.rate_limiter = RequestLimiter(settings)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=app.state.rate_limiter,
        settings=settings,
        token_user=partial(decode_access_token, settings),
        session_user=partial(read_session, settings),
        session_cookie=SESSION_COOKIE,
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
