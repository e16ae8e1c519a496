"""Behind PgBouncer in transaction mode (STOREKEEPER_DB_PGBOUNCER=true): holds (the
one-statement hold and the unit-of-work hold), checkout and event publication work through a
real PgBouncer whose few server connections are shared by more client connections, so a
statement prepared on one server connection and run on another would fail.

PostgreSQL only; skipped when the `pgbouncer` binary is not installed (`make drill`
installs it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from storekeeper.config import Environment, LockingStrategy, Settings
from storekeeper.db import Database
from storekeeper.events.publisher import publish_all
from tests.conftest import POSTGRES_URL, TestDatabase
from tests.orders.conftest import SkuMaker, add_to_cart, consistency_issues
from tests.orders.test_checkout import CHECKOUT, _add_address

HOLDS = "/api/v1/inventory/holds"
PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
# Fewer server connections than the application's pool: client connections take turns.
SERVER_POOL = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pgbouncer_port() -> Iterator[int]:
    """A PgBouncer in transaction mode in front of the test PostgreSQL server."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; make drill does)")
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests skipped: STOREKEEPER_TEST_DATABASE_URL is not set")
    server = make_url(POSTGRES_URL)
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="skpgb-"))
    home.chmod(0o777)  # PgBouncer refuses to run as root: it runs as `postgres` when we are
    (home / "users.txt").write_text(f'"{server.username}" "{server.password or ""}"\n')
    (home / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {home}/users.txt\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {SERVER_POOL}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
        "max_client_conn = 200\nserver_reset_query =\n"
        f"logfile = {home}/pgbouncer.log\npidfile = {home}/pgbouncer.pid\n"
    )
    for child in home.iterdir():
        child.chmod(0o666)
    command = [PGBOUNCER, str(home / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (home / "pgbouncer.log").read_text()
                        if (home / "pgbouncer.log").exists()
                        else ""
                    )
                    pytest.fail(f"pgbouncer did not start: {log[-2000:]}")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def settings(test_database: TestDatabase, request: pytest.FixtureRequest) -> Settings:
    if test_database.backend != "postgresql":
        pytest.skip("PgBouncer fronts PostgreSQL only")
    port: int = request.getfixturevalue("pgbouncer_port")
    url = make_url(test_database.url).set(host="127.0.0.1", port=port)
    return Settings(
        database_url=url.render_as_string(hide_password=False),
        db_pgbouncer=True,
        db_pool_size=12,
        env=Environment.TEST,
        locking=LockingStrategy.ATOMIC,
        run_background_tasks=False,
        rate_limit_enabled=False,
        log_format="console",
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_holds_checkout_and_publication_through_pgbouncer(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    assert db.settings.db_pgbouncer
    await make_sku("HOT", stock=30)

    async def hold(n: int) -> int:
        body = {"client_token": f"t{n}", "items": [{"sku": "HOT", "quantity": 1}]}
        response = await client.post(HOLDS, headers=staff_headers, json=body)
        assert response.status_code in (201, 409), response.text
        return response.status_code

    # 40 racing holds of 1 on 30 units: the first ones by the one-statement hold, the
    # last ones (at the low-stock threshold) by the unit of work; exactly 30 succeed.
    statuses = await asyncio.gather(*(hold(n) for n in range(40)))
    assert statuses.count(201) == 30
    assert statuses.count(409) == 10
    # A replayed client token is answered from the stored hold.
    replay = await client.post(
        HOLDS,
        headers=staff_headers,
        json={"client_token": "t0", "items": [{"sku": "HOT", "quantity": 1}]},
    )
    assert replay.status_code in (200, 201, 409)

    await make_sku("TEA", price_cents=450, stock=5)
    await add_to_cart(client, customer_headers, "TEA", 2)
    address = await _add_address(client, customer_headers)
    order = await client.post(
        CHECKOUT, headers=customer_headers, json={"shipping_address_id": address["id"]}
    )
    assert order.status_code == 201, order.text
    assert order.json()["total_cents"] == 900

    # Stock events (HOT went low and out) and the order's are published once.
    assert await publish_all(db) > 0
    assert await publish_all(db) == 0

    assert await consistency_issues(client, staff_headers) == []
