"""The container's entrypoint (docker/entrypoint.sh), run outside a container against the
local PostgreSQL: on a fresh database it waits, migrates, then serves; while the database
is unreachable it keeps waiting, and gives up with status 1 after its timeout."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from storekeeper import migrate
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BIN = str(Path(sys.executable).parent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        # `storekeeper` as the image has it: on the PATH.
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "STOREKEEPER_DATABASE_URL": database_url,
        "STOREKEEPER_ENV": "test",
        "STOREKEEPER_LOG_FORMAT": "json",
        "STOREKEEPER_RUN_BACKGROUND_TASKS": "false",
        **extra,
    }


async def _admin(statement: str) -> None:
    assert POSTGRES_URL
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty PostgreSQL database (no tables), dropped afterwards."""
    if not POSTGRES_URL:
        reason = "the entrypoint test needs PostgreSQL (STOREKEEPER_TEST_DATABASE_URL)"
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"storekeeper_entry_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await engine.dispose()


@contextmanager
def _forwarder(listen_port: int, target: tuple[str, int]) -> Iterator[None]:
    """A TCP relay from 127.0.0.1:`listen_port` to `target`: the database "comes up" on
    that port when the relay starts."""
    server = socket.create_server(("127.0.0.1", listen_port))
    server.settimeout(0.2)
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def _wait_for_health(port: int, process: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.returncode
        with suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise AssertionError(f"no /health within {seconds} s")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output or ""


def test_on_a_fresh_database_it_migrates_then_serves(fresh_database: str) -> None:
    assert asyncio.run(_check_empty(fresh_database)) == []
    port = _free_port()
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT)],  # no command: `storekeeper serve`, as in the image
        env=_env(fresh_database, STOREKEEPER_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_health(port, process, 180)
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
        assert (ready.status_code, ready.json()["database"]) == (200, "ok")
        assert asyncio.run(_revision(fresh_database)) == migrate.head_revision()
    finally:
        output = _stop(process)
    # `exec`: the server is the entrypoint's process, so SIGTERM reached it and it shut
    # down cleanly (uvicorn then ends by the signal it was sent, as a process should).
    assert process.returncode == -signal.SIGTERM, output
    assert "Application shutdown complete." in output
    assert "The database answers." in output
    assert output.index("The database answers.") < output.index("Application startup complete")


async def _check_empty(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


def test_it_waits_for_a_database_that_comes_up_late(fresh_database: str, tmp_path: Path) -> None:
    upstream = make_url(fresh_database)
    relay_port = _free_port()
    url = upstream.set(host="127.0.0.1", port=relay_port).render_as_string(hide_password=False)
    port = _free_port()
    log = tmp_path / "entrypoint.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT), "storekeeper", "serve"],
            env=_env(url, STOREKEEPER_PORT=str(port), STOREKEEPER_DB_WAIT_SECONDS="120"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        # Nothing listens on the database's port yet: two failed attempts, still waiting,
        # nothing served.
        deadline = time.monotonic() + 120
        while log.read_text().count("Waiting for the database (ConnectionRefusedError") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert process.poll() is None
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        assert asyncio.run(_check_empty(fresh_database)) == []
        with _forwarder(relay_port, (upstream.host or "127.0.0.1", upstream.port or 5432)):
            _wait_for_health(port, process, 180)
            assert asyncio.run(_revision(fresh_database)) == migrate.head_revision()
            _stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert output.index("Waiting for the database (") < output.index("The database answers.")
    assert "Application shutdown complete." in output


def test_it_gives_up_when_the_database_never_answers() -> None:
    dead = f"postgresql+asyncpg://storekeeper@127.0.0.1:{_free_port()}/storekeeper"
    started = time.monotonic()
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "storekeeper", "serve"],
        env=_env(dead, STOREKEEPER_DB_WAIT_SECONDS="3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert 3 <= elapsed < 30
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("The database did not answer within 3 s: ConnectionRefusedError")
    # It neither migrated nor served.
    assert "Application startup" not in result.stdout + result.stderr


def test_other_commands_run_as_given(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "echo", "plain", "command"],
        env=_env("postgresql+asyncpg://nobody@127.0.0.1:1/none"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "plain command\n")
