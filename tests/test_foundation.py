"""The platform: problem+json errors, request ids, health, metrics, settings, CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import Body
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool
from structlog.testing import LogCapture
from typer.testing import CliRunner

from storekeeper import cli, migrate
from storekeeper.app import create_app
from storekeeper.config import Environment, Settings
from storekeeper.db import Database, create_engine
from storekeeper.errors import is_database_unavailable
from storekeeper.tasks import BackgroundRunner, PeriodicJob

PROBLEM = "application/problem+json"


def _add_probe_routes(app: Any) -> None:
    @app.post("/probe/echo")
    async def echo(payload: dict[str, int] = Body(...)) -> dict[str, int]:
        return payload

    @app.get("/probe/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404
    assert body["code"] == "not_found"
    assert body["title"] == "Not Found"
    assert body["type"] == "urn:storekeeper:problem:not_found"


async def test_wrong_method_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"


async def test_malformed_json_is_validation_problem(app: Any, client: httpx.AsyncClient) -> None:
    _add_probe_routes(app)
    response = await client.post(
        "/probe/echo", content=b'{"a": 1', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"][0] == "body"


async def test_wrong_type_lists_errors(app: Any, client: httpx.AsyncClient) -> None:
    _add_probe_routes(app)
    response = await client.post("/probe/echo", json={"a": "not a number"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "a"]


async def test_unexpected_exception_is_opaque_500(app: Any, client: httpx.AsyncClient) -> None:
    _add_probe_routes(app)
    response = await client.get("/probe/boom", headers={"X-Request-ID": "req-boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == "req-boom-1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


async def test_request_id_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    hostile = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


async def test_body_over_one_mebibyte_is_413(app: Any, client: httpx.AsyncClient) -> None:
    _add_probe_routes(app)
    big = b'{"a": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post(
        "/probe/echo", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    for path in ("/health", "/health/ready"):
        probed = await client.head(path)
        assert probed.status_code == 200, path
        assert probed.content == b""


async def test_ready_is_503_when_database_unreachable() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        env=Environment.TEST,
        run_background_tasks=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/health")).status_code == 200
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["reason"].startswith("database unavailable")
            # An API call that needs the database is a retryable 503, not a 500.
            categories = await client.get("/api/v1/categories")
            assert categories.status_code == 503
            assert categories.headers["retry-after"] == "1"
            assert categories.headers["content-type"] == "application/problem+json"
            assert categories.json()["code"] == "service_unavailable"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/api/v1/nothing-here/42")
    await client.get("/api/v1/categories/424242")
    text = (await client.get("/metrics")).text
    assert 'storekeeper_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert (
        'storekeeper_http_requests_total{method="GET",'
        'route="/api/v1/categories/{category_id}",status="404"}'
    ) in text
    assert 'route="<unmatched>",status="404"' in text
    assert "storekeeper_http_request_duration_seconds_bucket" in text


async def test_openapi_and_docs_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Storekeeper"
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200


def test_production_requires_a_real_secret() -> None:
    with pytest.raises(ValidationError, match="STOREKEEPER_SECRET_KEY"):
        Settings(env=Environment.PRODUCTION, _env_file=None)  # type: ignore[call-arg]
    ok = Settings(env=Environment.PRODUCTION, secret_key="k" * 40, _env_file=None)  # type: ignore[call-arg]
    assert ok.signing_key == "k" * 40


def test_development_secret_is_generated_once(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    first = Settings(_env_file=None).signing_key  # type: ignore[call-arg]
    second = Settings(_env_file=None).signing_key  # type: ignore[call-arg]
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / ".storekeeper-secret").stat().st_mode & 0o777 == 0o600


def test_settings_read_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("STOREKEEPER_LOCKING", "optimistic")
    monkeypatch.setenv("STOREKEEPER_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("STOREKEEPER_EXPIRY_INTERVAL_SECONDS", "2.5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.locking.value == "optimistic"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.expiry_interval_seconds == 2.5


def test_serve_refuses_unmigrated_database(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "STOREKEEPER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "storekeeper", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "storekeeper db upgrade" in result.stderr


def test_serve_gives_busy_workers_time_to_answer_the_health_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: dict[str, Any] = {}

    async def schema_is_current(_settings: Settings) -> bool:
        return True

    monkeypatch.setattr(cli.migrate, "schema_is_current", schema_is_current)
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **options: served.update(options))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-metrics-dir")
    runner = CliRunner()
    assert runner.invoke(cli.app, ["serve", "--workers", "2"]).exit_code == 0
    assert served["workers"] == 2
    assert served["timeout_worker_healthcheck"] == 30
    result = runner.invoke(cli.app, ["serve", "--worker-healthcheck-seconds", "90"])
    assert result.exit_code == 0
    assert served["timeout_worker_healthcheck"] == 90


class _DriverError(Exception):
    def __init__(self, sqlstate: str, message: str = "driver error") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "message", "unavailable"),
    [
        ("53300", "sorry, too many clients already", True),
        ("08006", "connection failure", True),
        ("57P01", "terminating connection due to administrator command", True),
        ("", "database is locked", True),
        ("23505", "duplicate key value violates unique constraint", False),
        ("42P01", "relation does not exist", False),
    ],
)
def test_database_unavailable_is_told_apart_from_failed_work(
    sqlstate: str, message: str, unavailable: bool
) -> None:
    error = DBAPIError("SELECT 1", None, _DriverError(sqlstate, message))
    assert is_database_unavailable(error) is unavailable


async def test_access_log_line_per_request(settings: Settings, test_database: Any) -> None:
    await test_database.reset()
    app = create_app(settings.model_copy(update={"log_level": "INFO"}))
    capture = LogCapture()
    previous = structlog.get_config()
    # Only the processors are swapped: the level filter configured by create_app stays.
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await client.get("/api/v1/categories/424242", headers={"X-Request-ID": "log-1"})
    finally:
        structlog.configure(**previous)
    [line] = [entry for entry in capture.entries if entry["event"] == "request"]
    duration = line.pop("duration_ms")
    assert isinstance(duration, float)
    assert duration >= 0
    assert line == {
        "event": "request",
        "log_level": "info",
        "method": "GET",
        "route": "/api/v1/categories/{category_id}",
        "path": "/api/v1/categories/424242",
        "status": 404,
        "request_id": "log-1",
    }


async def test_ready_recovers_by_itself_when_the_database_returns(tmp_path: Path) -> None:
    home = tmp_path / "data"
    home.mkdir()
    url = f"sqlite+aiosqlite:///{home / 'storekeeper.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    away = tmp_path / "away"
    # With its directory gone SQLite cannot open the file: the database does not answer.
    home.rename(away)
    settings = Settings(
        database_url=url,
        env=Environment.TEST,
        run_background_tasks=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            down = await client.get("/health/ready")
            assert down.status_code == 503
            assert down.json() == {
                "status": "unavailable",
                "reason": "database unavailable: OperationalError",
            }
            assert (await client.get("/health")).status_code == 200
            away.rename(home)
            up = await client.get("/health/ready")
            assert up.status_code == 200
            assert up.json() == {"status": "ok", "database": "ok"}
            categories = await client.get("/api/v1/categories")
            assert categories.status_code == 200
            assert categories.json() == {"items": [], "next_cursor": None}


async def _read_then_write(db: Database, name: str, *, write: bool, barrier: Any) -> None:
    async with db.transaction(write=write) as session:
        await session.execute(text("SELECT count(*) FROM categories"))
        await barrier()
        await session.execute(
            text(
                "INSERT INTO categories (name, path, depth, attributes, version, is_deleted, "
                "created_at, updated_at) VALUES (:name, '/', 0, '{}', 1, 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"name": name},
        )


async def test_sqlite_writers_queue_instead_of_failing(backend: str, db: Database) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite locking")
    writers = 8

    async def pause() -> None:
        await asyncio.sleep(0.01)

    # Writers start with BEGIN IMMEDIATE: each waits for the write lock up front, so a unit
    # that reads before it writes never has to upgrade a read snapshot and all succeed.
    await asyncio.gather(
        *(_read_then_write(db, f"queued-{n}", write=True, barrier=pause) for n in range(writers))
    )
    async with db.transaction(write=False) as session:
        names = (await session.scalars(text("SELECT name FROM categories ORDER BY name"))).all()
    assert names == [f"queued-{n}" for n in range(writers)]

    # The control: plain BEGIN, every unit has read before any writes; all but one fail
    # with "database is locked" (their snapshots went stale), which is why writers need
    # BEGIN IMMEDIATE.
    everyone_read = asyncio.Barrier(2)
    outcomes = await asyncio.gather(
        *(
            _read_then_write(db, f"deferred-{n}", write=False, barrier=everyone_read.wait)
            for n in range(2)
        ),
        return_exceptions=True,
    )
    failures = [outcome for outcome in outcomes if outcome is not None]
    assert len(failures) == 1
    assert "database is locked" in str(failures[0])


def test_postgresql_pool_follows_settings() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        env=Environment.TEST,
        db_pool_size=3,
        db_max_overflow=2,
        db_pool_timeout_seconds=7,
        _env_file=None,  # type: ignore[call-arg]
    )
    pool = create_engine(settings).sync_engine.pool
    assert isinstance(pool, QueuePool)
    # QueuePool has no public reader for its overflow limit.
    assert (pool.size(), pool._max_overflow, pool.timeout()) == (3, 2, 7)


async def test_background_jobs_outlive_failures_and_stop_cleanly(db: Database) -> None:
    runs: list[int] = []

    async def job(_db: Database) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the first run fails")

    runner = BackgroundRunner(db)
    runner.start([PeriodicJob("probe", 0.01, job)])
    for _ in range(500):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.01)
    await runner.stop()
    # The failure did not end the loop, and stop() leaves nothing running.
    assert len(runs) >= 3
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "job:probe"]
    stopped_at = len(runs)
    await asyncio.sleep(0.05)
    assert len(runs) == stopped_at


async def test_connections_the_database_dropped_cost_one_request_then_the_pool_recovers(
    client: httpx.AsyncClient, db: Database, postgres_only: None
) -> None:
    # The pool does not ping on checkout; a dropped connection fails its first statement.
    assert db.engine.pool._pre_ping is False  # type: ignore[attr-defined]
    assert (await client.get("/api/v1/categories")).status_code == 200
    # The backends behind every idle connection of the application's pool (not those of
    # the test harness, which has its own).
    pooled = [await db.engine.connect() for _ in range(db.engine.pool.checkedin())]  # type: ignore[attr-defined]
    pids = [(await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() for conn in pooled]
    for conn in pooled:
        await conn.close()
    killer = Database(db.settings)
    try:
        async with killer.transaction() as session:
            terminated = (
                await session.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) "
                        "FROM unnest(CAST(:pids AS INTEGER[])) AS pid"
                    ),
                    {"pids": pids},
                )
            ).scalar_one()
    finally:
        await killer.dispose()
    assert terminated >= 1
    dropped = await client.get("/api/v1/categories")
    assert dropped.status_code == 503
    assert dropped.json()["code"] == "service_unavailable"
    assert dropped.headers["retry-after"]
    recovered = await client.get("/api/v1/categories")
    assert recovered.status_code == 200
    assert recovered.json() == {"items": [], "next_cursor": None}


async def _read_only(db: Database, on: bool) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION READ WRITE"))
        name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        setting = "on" if on else "off"
        await conn.execute(
            text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {setting}')
        )
        await conn.commit()
    # New connections take the database's setting.
    await db.engine.dispose()


async def test_a_write_refused_by_a_read_only_standby_is_a_retryable_503(
    backend: str, db: Database, client: httpx.AsyncClient, staff_headers: dict[str, str]
) -> None:
    """During a failover a write can reach a server that is (still) a standby: SQLSTATE
    25006. That is the database being unavailable for a moment, not a failed request."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
    await _read_only(db, True)
    try:
        response = await client.post(
            "/api/v1/categories", headers=staff_headers, json={"name": "Read only"}
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "service_unavailable"
        assert (await client.get("/health")).status_code == 200
    finally:
        await _read_only(db, False)
    recovered = await client.post(
        "/api/v1/categories", headers=staff_headers, json={"name": "Writable again"}
    )
    assert recovered.status_code == 201, recovered.text
