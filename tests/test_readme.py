"""The README holds to the code: every setting is in its configuration table, every staff
page is listed, no API path is given without its `/api/v1` base, and the five-minute tour's
shell blocks run, as written, against a real `storekeeper serve` on a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from storekeeper.config import Settings
from storekeeper.web.router import router as staff_router
from tests.conftest import POSTGRES_URL
from tests.conftest import _make_postgres as make_postgres
from tests.conftest import _make_sqlite as make_sqlite

README = Path(__file__).resolve().parents[1] / "README.md"
API_PREFIX = "/api/v1"
# The tour signs in with the demo admin `make run` seeds; the test makes that admin the
# bootstrap admin of a fresh database instead (seeding the demo shop would take longer).
TOUR_ADMIN = ("admin@storekeeper.local", "admin-password-123")
# Each call of the tour, in order: its status and method, then the path after /api/v1.
TOUR_CALLS = [
    ("200", "POST", "/auth/token"),
    ("201", "POST", "/auth/register"),
    ("200", "POST", "/auth/token"),
    ("201", "POST", "/locations"),
    ("201", "POST", "/categories"),
    ("201", "POST", "/products"),
    ("201", "POST", "/inventory/TOUR-TEE-M/adjustments"),
    ("201", "POST", "/inventory/holds"),
    ("200", "GET", "/inventory/TOUR-TEE-M"),
    ("200", "POST", "/inventory/holds/{id}/release"),
    ("201", "POST", "/carts/me/items"),
    ("201", "POST", "/carts/me/checkout"),
    ("200", "GET", "/orders/{id}"),
    ("200", "PATCH", "/orders/{id}/status"),
    ("200", "PATCH", "/orders/{id}/status"),
    ("200", "GET", "/inventory/TOUR-TEE-M"),
    ("200", "GET", "/inventory/TOUR-TEE-M/movements"),
]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def section(title: str) -> str:
    """The text of the README's `## title` section, up to the next `## ` heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.S | re.M)


# --- configuration ---------------------------------------------------------------------


def test_configuration_table_names_every_setting_and_nothing_else() -> None:
    rows = [line for line in section("Configuration").splitlines() if line.startswith("| `")]
    documented = [re.match(r"\| `(STOREKEEPER_[A-Z0-9_]+)`", row) for row in rows]
    names = [match.group(1) for match in documented if match]
    settings = {f"STOREKEEPER_{field.upper()}" for field in Settings.model_fields}
    # Read by `storekeeper serve` and the container entrypoint, not by Settings.
    settings |= {
        "STOREKEEPER_HOST",
        "STOREKEEPER_DB_WAIT_SECONDS",
        "STOREKEEPER_MIGRATE_ON_START",
    }
    assert sorted(settings - set(names)) == [], "settings missing from the README table"
    assert sorted(set(names) - settings) == [], "README rows that are no setting"
    assert len(names) == len(set(names)), "a setting is listed twice"


# --- staff pages -----------------------------------------------------------------------


def _staff_pages(routes: list[object], prefix: str = "") -> Iterator[str]:
    """The path of every GET route of the staff pages, included routers walked."""
    for route in routes:
        context = getattr(route, "include_context", None)
        if context is not None:
            yield from _staff_pages(context.included_router.routes, prefix + context.prefix)
        elif isinstance(route, APIRoute) and "GET" in route.methods:
            yield route.path if route.path.startswith("/admin") else prefix + route.path


def test_staff_pages_section_lists_every_page() -> None:
    listed = set(re.findall(r"`(/admin[^`?]*)", section("Staff pages")))
    pages = set(_staff_pages(list(staff_router.routes))) - {"/admin/static/{name}"}
    assert len(pages) >= 20
    assert sorted(pages - listed) == [], "staff pages missing from the README"


# --- API paths -------------------------------------------------------------------------


def test_no_api_path_is_given_without_its_base() -> None:
    # Every first segment of an API path, from the routes themselves.
    from storekeeper.app import create_app

    app = create_app(Settings(secret_key="x" * 40, _env_file=None))  # type: ignore[call-arg]
    first_segments = {
        path.removeprefix(API_PREFIX).split("/")[1]
        for path in app.openapi()["paths"]
        if path.startswith(API_PREFIX)
    }
    assert {"inventory", "orders", "carts", "locations", "auth"} <= first_segments
    bare = re.compile(r"`(?:(?:GET|POST|PUT|PATCH|DELETE) )?/(" + "|".join(first_segments) + r")\b")
    text = README.read_text(encoding="utf-8")
    found = [line for line in text.splitlines() if bare.search(line)]
    assert found == [], "API paths without /api/v1 (a 404 when copied)"


# --- the five-minute tour --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_ready(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"storekeeper serve exited with code {server.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/health/ready").status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("storekeeper serve did not become ready within 60 s")


def test_tour_blocks_are_the_shell_of_the_tour() -> None:
    tour = section("Five-minute tour")
    (start,) = code_blocks(tour, "shell")
    # The blocks sign in as the admin the start block names.
    assert f"STOREKEEPER_BOOTSTRAP_ADMIN_EMAIL={TOUR_ADMIN[0]}" in start
    assert f"STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD={TOUR_ADMIN[1]}" in start
    assert f"sign_in {TOUR_ADMIN[0]} {TOUR_ADMIN[1]}" in "".join(code_blocks(tour, "sh"))
    assert "jq" not in tour


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour needs curl")
async def test_five_minute_tour_runs_against_a_fresh_server(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(code_blocks(section("Five-minute tour"), "sh"))
    # PostgreSQL when the run has one, else a migrated SQLite file: a fresh database either way.
    database = await (make_postgres(POSTGRES_URL) if POSTGRES_URL else make_sqlite(tmp_path))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "STOREKEEPER_DATABASE_URL": database.url,
        "STOREKEEPER_SECRET_KEY": "readme-tour-secret-key-long-enough-for-hs256",
        "STOREKEEPER_ENV": "test",
        "STOREKEEPER_LOG_LEVEL": "WARNING",
        "STOREKEEPER_BOOTSTRAP_ADMIN_EMAIL": TOUR_ADMIN[0],
        "STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD": TOUR_ADMIN[1],
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "storekeeper", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
    )
    try:
        await asyncio.to_thread(_wait_until_ready, base_url, server)
        run = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", script],
            env={**env, "STOREKEEPER_API": f"{base_url}{API_PREFIX}"},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        await database.teardown()
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    calls = [
        (status, method, UUID.sub("{id}", url.removeprefix(f"{base_url}{API_PREFIX}")))
        for status, method, url in (
            line.split(" ", 2) for line in run.stderr.splitlines() if line[:3].isdigit()
        )
    ]
    assert calls == TOUR_CALLS
    # The figures the tour's comments promise.
    printed = run.stdout.splitlines()
    assert "18" in printed  # available while two units are held
    assert "pending" in printed
    assert printed.count("17") == 1  # on hand after shipping three of twenty
    assert "fulfil NORTH -3 0 -3" in printed
    assert "receive NORTH 20 0 0" in printed
