"""Settings: every knob of the service, read from `STOREKEEPER_*` variables and `.env`."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./storekeeper.db"
SECRET_KEY_FILE = Path(".storekeeper-secret")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LockingStrategy(StrEnum):
    ATOMIC = "atomic"
    PESSIMISTIC = "pessimistic"
    OPTIMISTIC = "optimistic"


@dataclass(frozen=True)
class StockPolicy:
    """How claims on stock take their rows: the locking strategy, and how many times an
    optimistic claim that lost its compare-and-set re-reads before it reports a conflict."""

    locking: LockingStrategy = LockingStrategy.ATOMIC
    optimistic_retries: int = 8


@cache
def _stock_policy(locking: LockingStrategy, optimistic_retries: int) -> StockPolicy:
    # Built once per distinct pair of settings; the figures are read on every request.
    return StockPolicy(locking, optimistic_retries)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STOREKEEPER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = None
    env: Environment = Environment.DEVELOPMENT
    locking: LockingStrategy = LockingStrategy.ATOMIC
    expiry_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    # A reconciliation run is recorded on this period by one process at a time; 0: off.
    reconcile_interval_seconds: float = Field(default=0.0, ge=0, le=7 * 86_400)
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: str | None = None
    redis_url: str | None = None
    # Public catalog reads (product lists and products): Cache-Control max-age, the most
    # availability in a cached page may lag behind (README "Caching"), and the namespace of
    # their Redis keys.
    catalog_cache_max_age_seconds: int = Field(default=5, ge=1, le=3600)
    cache_key_prefix: str = "storekeeper:catalog"
    rate_limit_enabled: bool = True
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_format: Literal["console", "json"] | None = None
    log_level: str = "INFO"

    # Database pool (PostgreSQL only; SQLite uses one connection per session).
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    db_echo: bool = False
    # The database URL points at PgBouncer in transaction pooling mode (1.18 keeps no
    # prepared statements there): no prepared statement is cached or reused across
    # transactions, each gets a unique name, and the one-statement hold is sent without
    # a named statement. `statement_timeout` is then not a startup parameter (PgBouncer
    # refuses unknown ones): set it on the role or database (ALTER ROLE ... SET).
    db_pgbouncer: bool = False

    # Tokens.
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=60)

    # Business defaults.
    default_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    default_hold_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    optimistic_max_retries: int = Field(default=8, ge=1, le=100)
    expiry_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Failed sign-ins per client address, and per (account, address).
    login_rate_limit: str = "10/minute"
    # Failed sign-ins of one account from all addresses together: much higher, so nobody
    # can lock a chosen account out from many addresses.
    login_account_rate_limit: str = "100/hour"
    # Requests per principal: an API key or a signed-in user; and per client address for
    # anonymous requests (STOREKEEPER_RATE_LIMIT_ENABLED turns both off).
    rate_limit_default: str = "1200/minute"
    rate_limit_anonymous: str = "300/minute"
    # Peers whose X-Forwarded-For is believed (addresses or networks, comma-separated).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Namespace of the shared rate-limit counters in Redis.
    rate_limit_key_prefix: str = "storekeeper"
    low_stock_threshold: int = Field(default=5, ge=0)

    # A `pending` order older than this is cancelled by the background sweep; 0: never.
    order_payment_timeout_seconds: int = Field(default=0, ge=0, le=365 * 86_400)

    # Operations endpoints: `/metrics` asks for `Authorization: Bearer <metrics_token>`
    # when it is set; `docs_enabled=false` serves no `/docs`, `/redoc` or `/openapi.json`.
    metrics_token: str | None = None
    docs_enabled: bool = True

    # Start the background jobs (expiry sweep, event publication, webhook deliveries)
    # inside each server process; `storekeeper worker` runs them without HTTP.
    run_background_tasks: bool = True

    # Events and webhooks.
    events_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Seconds to wait before each retry: len + 1 attempts in all, then `dead`.
    webhook_retry_schedule: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [5, 30, 120, 600, 1800, 3600, 7200]
    )
    # None: allowed in development only.
    webhook_allow_private_networks: bool | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Attempts in flight at once towards one endpoint, per process.
    webhook_concurrency_per_endpoint: int = Field(default=4, ge=1, le=100)

    # Customer emails (notifications): SMTP `smtp://[user:pass@]host:port`, `smtps://` for
    # implicit TLS, `?starttls=true` to upgrade; None keeps every email as `skipped`.
    smtp_url: str | None = None
    mail_from: str = "storekeeper@localhost"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value

    @field_validator(
        "login_rate_limit", "login_account_rate_limit", "rate_limit_default", "rate_limit_anonymous"
    )
    @classmethod
    def _limit_is_parsable(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError("must be a rate such as 300/minute") from None
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(item) for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_is_sane(cls, value: list[int]) -> list[int]:
        if len(value) > 50 or any(not 0 <= delay <= 7 * 86_400 for delay in value):
            raise ValueError("at most 50 delays, each 0 to 604800 seconds")
        return value

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _smtp_url_is_usable(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            parts = urlsplit(value.strip())
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("must be smtp://[user:pass@]host[:port] or smtps://...")
            _ = parts.port  # raises ValueError on a port that is not a number in range
            return value.strip()
        return value

    @property
    def webhooks_may_target_private_networks(self) -> bool:
        if self.webhook_allow_private_networks is not None:
            return self.webhook_allow_private_networks
        return self.env is Environment.DEVELOPMENT

    @model_validator(mode="after")
    def _production_is_safe(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if not self.secret_key or len(self.secret_key) < 32:
                raise ValueError(
                    "STOREKEEPER_SECRET_KEY must be set to at least 32 characters "
                    "when STOREKEEPER_ENV=production"
                )
            if (
                self.bootstrap_admin_password is not None
                and len(self.bootstrap_admin_password) < 12
            ):
                raise ValueError(
                    "STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD must be at least 12 characters "
                    "in production"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_log_format(self) -> str:
        if self.log_format:
            return self.log_format
        return "console" if self.env is Environment.DEVELOPMENT else "json"

    @property
    def stock_policy(self) -> StockPolicy:
        return _stock_policy(self.locking, self.optimistic_max_retries)

    @cached_property
    def signing_key(self) -> str:
        """The key that signs tokens and cookies.

        Development keeps a generated key in a git-ignored file so tokens survive restarts;
        production has been validated to carry an explicit one.
        """
        if self.secret_key:
            return self.secret_key
        if self.env is Environment.TEST:
            return "test-secret-key-that-is-long-enough-for-hs256"
        if SECRET_KEY_FILE.exists():
            stored = SECRET_KEY_FILE.read_text().strip()
            if stored:
                return stored
        generated = secrets.token_urlsafe(48)
        SECRET_KEY_FILE.write_text(generated + "\n")
        SECRET_KEY_FILE.chmod(0o600)
        return generated
