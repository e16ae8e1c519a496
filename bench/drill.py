"""The multi-host and failover drill (`make drill`): Storekeeper deployed as a shop would
deploy it, on this machine, with real components.

- A PostgreSQL 15 primary (cluster `drill_primary`, port 5442) with a synchronous standby
  (`drill_standby`, port 5443, made by pg_basebackup; `synchronous_standby_names` and
  `synchronous_commit = on` on the primary, so a commit is acknowledged only once the
  standby has it).
- One PgBouncer (port 6442, transaction mode) in front of the primary.
- Three app hosts: network namespaces `skdrill1..3`, each joined to the root namespace by a
  veth pair (10.77.N.1 here, 10.77.N.2 there), each running `storekeeper serve` with 2
  workers and `STOREKEEPER_DB_PGBOUNCER=true`, reaching PgBouncer at 10.77.N.1:6442.
- The load generator drives the three hosts at once: holds of one unit on one hot SKU
  (staff) and checkouts of one random SKU (one customer per client), logging the id of
  every acknowledged (2xx) hold and order.

Phase 1 measures throughput per host. Phase 2 runs the same load, stops the primary hard
(`pg_ctlcluster ... stop -m immediate`), promotes the standby and repoints PgBouncer (its
ini rewritten, RELOAD on its admin console; the app hosts keep one address and change
nothing); it measures the outage the clients saw. After each phase: 0 units oversold,
every acknowledged id stored in the database that is now the primary, `storekeeper
check` clean. Everything it creates (clusters, PgBouncer, namespaces, servers) is removed
on the way out, whatever happens. Run as root; it installs pgbouncer and iproute2 with apt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import database as seed

REPO = Path(__file__).resolve().parent.parent
STOREKEEPER = Path(sys.executable).with_name("storekeeper")
PG_VERSION = "15"
PRIMARY, STANDBY = "drill_primary", "drill_standby"
PRIMARY_PORT, STANDBY_PORT = 5442, 5443
PGBOUNCER_PORT = 6442
DATABASE = "storekeeper_drill"
HOSTS = 3
APP_PORT = 8000
API = "/api/v1"
PASSWORD = "drill-password-long-enough"
STAFF_EMAIL = "drill-staff@example.com"
SECRET = "drill-secret-key-" + "x" * 40
HOT_SKU = "DRILL-HOT-1"
SHOP_PREFIX = "DRILL-SHOP-"
SHOP_SKUS = 50


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(*command: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, text=True, capture_output=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout}")
    if not quiet and result.stdout.strip() and os.environ.get("DRILL_VERBOSE"):
        print(result.stdout.strip())
    return result


def namespace(number: int) -> str:
    return f"skdrill{number}"


def host_address(number: int) -> str:
    """The app host's address (inside its namespace)."""
    return f"10.77.{number}.2"


def gateway_address(number: int) -> str:
    """The root namespace's end of the host's veth pair: where it reaches PgBouncer."""
    return f"10.77.{number}.1"


@dataclass
class Drill:
    """What the drill created, so that `cleanup` removes exactly that."""

    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="skdrill-")))
    clusters: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pgbouncer: subprocess.Popen[bytes] | None = None

    # -- setup ------------------------------------------------------------------------------

    def install(self) -> None:
        missing = [
            package
            for package, binary in (
                ("pgbouncer", "/usr/sbin/pgbouncer"),
                ("iproute2", "/usr/sbin/ip"),
            )
            if not Path(binary).exists() and not shutil.which(Path(binary).name)
        ]
        if missing:
            log(f"apt-get install {' '.join(missing)}")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(
                ["apt-get", "install", "-y", *missing],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )

    def create_clusters(self) -> None:
        for name in (PRIMARY, STANDBY):
            sh("pg_dropcluster", "--stop", PG_VERSION, name, check=False)
        sh("pg_createcluster", PG_VERSION, PRIMARY, "-p", str(PRIMARY_PORT))
        self.clusters.append(PRIMARY)
        conf = Path(f"/etc/postgresql/{PG_VERSION}/{PRIMARY}")
        (conf / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            "local replication all trust\nhost replication all 127.0.0.1/32 trust\n"
        )
        (conf / "conf.d" / "drill.conf").write_text(
            "listen_addresses = '127.0.0.1'\nmax_connections = 100\n"
            f"synchronous_standby_names = '{STANDBY}'\nsynchronous_commit = on\n"
            "wal_level = replica\nmax_wal_senders = 5\nfsync = on\n"
        )
        sh("pg_ctlcluster", PG_VERSION, PRIMARY, "start")
        # The standby: a base backup of the primary that streams from it by name.
        sh("pg_createcluster", PG_VERSION, STANDBY, "-p", str(STANDBY_PORT))
        self.clusters.append(STANDBY)
        data = Path(f"/var/lib/postgresql/{PG_VERSION}/{STANDBY}")
        for child in data.iterdir():  # the directory stays: it is the cluster's, 0700
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        sh(
            "runuser",
            "-u",
            "postgres",
            "--",
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(PRIMARY_PORT),
            "-U",
            "postgres",
            "-D",
            str(data),
            "-R",
            "-X",
            "stream",
        )
        with (data / "postgresql.auto.conf").open("a") as auto:
            auto.write(
                "primary_conninfo = 'host=127.0.0.1 port=5442 user=postgres "
                f"application_name={STANDBY}'\n"
            )
        sconf = Path(f"/etc/postgresql/{PG_VERSION}/{STANDBY}")
        shutil.copy(conf / "pg_hba.conf", sconf / "pg_hba.conf")
        # Once promoted it has no standby of its own: it must not wait for one.
        (sconf / "conf.d" / "drill.conf").write_text(
            "listen_addresses = '127.0.0.1'\nmax_connections = 100\nhot_standby = on\n"
        )
        sh("pg_ctlcluster", PG_VERSION, STANDBY, "start")

    def start_pgbouncer(self, port: int) -> None:
        (self.home / "users.txt").write_text('"postgres" ""\n')
        self.write_pgbouncer_ini(port)
        self.home.chmod(0o777)
        for child in self.home.iterdir():
            child.chmod(0o666)
        self.pgbouncer = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "pgbouncer", str(self.home / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", PGBOUNCER_PORT)

    def write_pgbouncer_ini(self, server_port: int) -> None:
        listen = ",".join(["127.0.0.1", *(gateway_address(n) for n in range(1, HOSTS + 1))])
        (self.home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{DATABASE} = host=127.0.0.1 port={server_port} dbname={DATABASE}\n"
            "[pgbouncer]\n"
            f"listen_addr = {listen}\nlisten_port = {PGBOUNCER_PORT}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.home}/users.txt\nadmin_users = postgres\n"
            "pool_mode = transaction\ndefault_pool_size = 20\nmax_client_conn = 500\n"
            "server_reset_query =\n"
            # A failover must show as quick errors (503 to the client), not as requests
            # queued for minutes: give up on a server after a few seconds, retry soon.
            "query_wait_timeout = 5\nserver_connect_timeout = 2\nserver_login_retry = 1\n"
            f"logfile = {self.home}/pgbouncer.log\npidfile = {self.home}/pgbouncer.pid\n"
        )
        (self.home / "pgbouncer.ini").chmod(0o666)

    def repoint_pgbouncer(self, server_port: int) -> None:
        self.write_pgbouncer_ini(server_port)
        sh(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(PGBOUNCER_PORT),
            "-U",
            "postgres",
            "-d",
            "pgbouncer",
            "-c",
            "RELOAD",
        )

    def create_namespaces(self) -> None:
        for number in range(1, HOSTS + 1):
            ns, outer, inner = namespace(number), f"skd{number}h", f"skd{number}n"
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "link", "del", outer, check=False)
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "addr", "add", f"{gateway_address(number)}/24", "dev", outer)
            sh("ip", "link", "set", outer, "up")
            sh(
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                f"{host_address(number)}/24",
                "dev",
                inner,
            )
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def app_environment(self, database_url: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STOREKEEPER_DATABASE_URL": database_url,
            "STOREKEEPER_ENV": "production",
            "STOREKEEPER_SECRET_KEY": SECRET,
            "STOREKEEPER_RATE_LIMIT_ENABLED": "false",
            "STOREKEEPER_LOG_LEVEL": "WARNING",
            "STOREKEEPER_DOCS_ENABLED": "false",
            **extra,
        }

    def start_hosts(self) -> None:
        for number in range(1, HOSTS + 1):
            url = f"postgresql+asyncpg://postgres@{gateway_address(number)}:{PGBOUNCER_PORT}/{DATABASE}"
            env = self.app_environment(
                url,
                STOREKEEPER_DB_PGBOUNCER="true",
                STOREKEEPER_DB_POOL_SIZE="5",
                STOREKEEPER_DB_MAX_OVERFLOW="5",
                STOREKEEPER_DB_POOL_TIMEOUT_SECONDS="5",
            )
            logfile = (self.home / f"host{number}.log").open("wb")
            process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    namespace(number),
                    str(STOREKEEPER),
                    "serve",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    str(APP_PORT),
                    "--workers",
                    "2",
                ],
                env=env,
                cwd=REPO,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.processes.append(process)
        for number in range(1, HOSTS + 1):
            wait_for_http(f"http://{host_address(number)}:{APP_PORT}/health/ready")

    # -- cleanup ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if self.pgbouncer is not None and self.pgbouncer.poll() is None:
            self.pgbouncer.terminate()
            self.pgbouncer.wait(timeout=10)
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        for number in range(1, HOSTS + 1):
            sh("ip", "link", "del", f"skd{number}h", check=False)
        for name in reversed(self.clusters):
            sh("pg_dropcluster", "--stop", PG_VERSION, name, check=False)
        if not os.environ.get("DRILL_KEEP_LOGS"):
            shutil.rmtree(self.home, ignore_errors=True)


def wait_for_port(host: str, port: int, within: float = 20) -> None:
    import socket

    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host}:{port} does not answer") from None
            time.sleep(0.1)


def wait_for_http(url: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} is not ready")
        time.sleep(0.3)


# -- load ------------------------------------------------------------------------------------


@dataclass
class HostLoad:
    number: int
    acknowledged: int = 0
    refused: int = 0  # 409: out of stock, an answer
    unavailable: int = 0  # 503 with Retry-After
    other: list[str] = field(default_factory=list)
    retry_after_missing: int = 0


@dataclass
class Load:
    hosts: dict[int, HostLoad]
    holds: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    failures_at: list[float] = field(default_factory=list)
    successes_at: list[float] = field(default_factory=list)


async def drive(
    tokens: dict[str, Any],
    seconds: float,
    clients_per_host: int,
    ack_log: Path,
    during: Any = None,
) -> tuple[Load, float]:
    """Holds and checkouts against every host at once for `seconds`."""
    load = Load({n: HostLoad(n) for n in range(1, HOSTS + 1)})
    stop_at = time.monotonic() + seconds
    journal = ack_log.open("a")
    started = time.monotonic()

    def record(host: HostLoad, response: httpx.Response | None, error: str | None) -> bool:
        now = time.monotonic() - started
        if response is not None and 200 <= response.status_code < 300:
            host.acknowledged += 1
            load.successes_at.append(now)
            return True
        if response is not None and response.status_code == 409:
            host.refused += 1
            load.successes_at.append(now)
            return False
        load.failures_at.append(now)
        if response is not None and response.status_code == 503:
            host.unavailable += 1
            if "retry-after" not in response.headers:
                host.retry_after_missing += 1
        else:
            host.other.append(error or f"{response.status_code if response else '?'}")
        return False

    async def holder(host: HostLoad, http: httpx.AsyncClient) -> None:
        headers = {"Authorization": f"Bearer {tokens['staff']}"}
        while time.monotonic() < stop_at:
            body = {
                "client_token": uuid.uuid4().hex,
                "ttl_seconds": 3600,
                "items": [{"sku": HOT_SKU, "quantity": 1}],
            }
            try:
                response = await http.post(f"{API}/inventory/holds", json=body, headers=headers)
            except httpx.HTTPError as exc:
                record(host, None, type(exc).__name__)
                await asyncio.sleep(0.2)
                continue
            if record(host, response, None):
                hold_id = response.json()["id"]
                load.holds.append(hold_id)
                journal.write(json.dumps({"kind": "hold", "id": hold_id}) + "\n")
            elif response.status_code == 503:
                await asyncio.sleep(0.2)

    async def shopper(host: HostLoad, http: httpx.AsyncClient, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < stop_at:
            sku = f"{SHOP_PREFIX}{random.randint(1, SHOP_SKUS)}"
            try:
                added = await http.post(
                    f"{API}/carts/me/items", headers=headers, json={"sku": sku, "quantity": 1}
                )
                if added.status_code not in (200, 201):
                    record(host, added, None)
                    await asyncio.sleep(0.2)
                    continue
                response = await http.post(
                    f"{API}/carts/me/checkout",
                    json={},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
            except httpx.HTTPError as exc:
                record(host, None, type(exc).__name__)
                await asyncio.sleep(0.2)
                continue
            if record(host, response, None):
                order_id = response.json()["id"]
                load.orders.append(str(order_id))
                journal.write(json.dumps({"kind": "order", "id": order_id}) + "\n")
            elif response.status_code == 503:
                await asyncio.sleep(0.2)

    tasks = []
    clients = []
    customers = iter(tokens["customers"])
    for number, host in load.hosts.items():
        http = httpx.AsyncClient(
            base_url=f"http://{host_address(number)}:{APP_PORT}",
            timeout=30,
            limits=httpx.Limits(max_connections=clients_per_host * 2),
        )
        clients.append(http)
        for index in range(clients_per_host):
            if index % 2 == 0:
                tasks.append(asyncio.create_task(holder(host, http)))
            else:
                tasks.append(asyncio.create_task(shopper(host, http, next(customers))))
    if during is not None:
        tasks.append(asyncio.create_task(during(started)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    for http in clients:
        await http.aclose()
    journal.close()
    return load, elapsed


async def hot_holds(base_url: str, token: str, seconds: float, clients: int) -> dict[str, Any]:
    """Holds of one unit on the hot SKU by `clients` concurrent clients: rate and latency."""
    latencies: list[float] = []
    errors: list[int] = []
    stop_at = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def one() -> None:
            while time.monotonic() < stop_at:
                body = {
                    "client_token": uuid.uuid4().hex,
                    "ttl_seconds": 3600,
                    "items": [{"sku": HOT_SKU, "quantity": 1}],
                }
                started = time.perf_counter()
                response = await http.post(f"{API}/inventory/holds", json=body, headers=headers)
                if response.status_code == 201:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors.append(response.status_code)

        began = time.monotonic()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "holds_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 1) if latencies else None,
        "holds": len(latencies),
        "not_201": len(errors),
    }


async def compare_direct_and_pgbouncer(
    drill: Drill, token: str, seconds: float, clients: int
) -> dict[str, Any]:
    """The hot hold through one server process (root namespace, 2 workers) straight to the
    primary, then through PgBouncer: the same load, one after the other."""
    results = {}
    for name, url, pgbouncer in (
        ("direct", f"postgresql+asyncpg://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}", "false"),
        (
            "pgbouncer",
            f"postgresql+asyncpg://postgres@127.0.0.1:{PGBOUNCER_PORT}/{DATABASE}",
            "true",
        ),
    ):
        env = drill.app_environment(url, STOREKEEPER_DB_PGBOUNCER=pgbouncer)
        logfile = (drill.home / f"compare-{name}.log").open("wb")
        process = subprocess.Popen(
            [str(STOREKEEPER), "serve", "--host", "127.0.0.1", "--port", "8142", "--workers", "2"],
            env=env,
            cwd=REPO,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        drill.processes.append(process)
        try:
            wait_for_http("http://127.0.0.1:8142/health/ready")
            results[name] = await hot_holds("http://127.0.0.1:8142", token, seconds, clients)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log(f"   hot hold {name}: {results[name]}")
    return results


async def accounts(drill: Drill, customers: int) -> dict[str, Any]:
    direct = f"postgresql+asyncpg://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
    sh(
        str(STOREKEEPER),
        "users",
        "create",
        "--email",
        STAFF_EMAIL,
        "--password",
        PASSWORD,
        "--role",
        "staff",
        quiet=True,
    )
    _ = direct
    base = f"http://{host_address(1)}:{APP_PORT}{API}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def token(email: str) -> str:
            response = await http.post(
                "/auth/token", data={"username": email, "password": PASSWORD}
            )
            response.raise_for_status()
            value: str = response.json()["access_token"]
            return value

        emails = [f"drill-customer-{n}@example.com" for n in range(customers)]
        for email in emails:
            response = await http.post(
                "/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Drill"}
            )
            if response.status_code != 201:
                raise RuntimeError(f"register: {response.status_code} {response.text}")
        return {"staff": await token(STAFF_EMAIL), "customers": [await token(e) for e in emails]}


async def verify(port: int, load: Load) -> dict[str, Any]:
    """Every acknowledged id stored; units oversold; `storekeeper check`."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}")
    try:
        holds = {str(r[0]) for r in await conn.fetch("SELECT id FROM reservations")}
        orders = {str(r[0]) for r in await conn.fetch("SELECT id FROM orders")}
        oversold = await seed.oversold_units(conn)
        hot = await conn.fetchrow(
            "SELECT l.on_hand, l.reserved, l.allocated FROM stock_levels AS l "
            "JOIN skus AS s ON s.id = l.sku_id WHERE s.code = $1",
            HOT_SKU,
        )
    finally:
        await conn.close()
    lost_holds = [h for h in load.holds if h not in holds]
    lost_orders = [o for o in load.orders if o not in orders]
    env = Drill.app_environment(
        Drill.__new__(Drill), f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{DATABASE}"
    )
    check = subprocess.run(
        [str(STOREKEEPER), "check"], env=env, cwd=REPO, capture_output=True, text=True
    )
    report = json.loads(check.stdout) if check.stdout.strip().startswith("{") else {}
    return {
        "acknowledged_holds": len(load.holds),
        "acknowledged_orders": len(load.orders),
        "lost_holds": len(lost_holds),
        "lost_orders": len(lost_orders),
        "oversold_units": oversold,
        "hot_sku": dict(hot) if hot else None,
        "consistency_exit_code": check.returncode,
        "consistency_issues": len(report.get("issues", [])) if report else None,
    }


def summarize(title: str, load: Load, elapsed: float, checks: dict[str, Any]) -> dict[str, Any]:
    log(f"== {title}: {elapsed:.1f} s of load on {HOSTS} hosts")
    per_host = {}
    for number, host in load.hosts.items():
        rate = (host.acknowledged + host.refused) / elapsed
        per_host[f"host{number}"] = {
            "address": host_address(number),
            "2xx": host.acknowledged,
            "409": host.refused,
            "503": host.unavailable,
            "503_without_retry_after": host.retry_after_missing,
            "other": len(host.other),
            "answered_per_second": round(rate, 1),
        }
        log(
            f"   host{number} {host_address(number)}: {host.acknowledged} 2xx, {host.refused} 409, "
            f"{host.unavailable} 503, {len(host.other)} other {host.other[:3]} "
            f"-> {rate:.1f} answered/s"
        )
    total = sum(h.acknowledged + h.refused for h in load.hosts.values()) / elapsed
    log(f"   all hosts: {total:.1f} answered/s")
    for key, value in checks.items():
        log(f"   {key}: {value}")
    return {
        "title": title,
        "seconds": round(elapsed, 1),
        "hosts": per_host,
        "answered_per_second": round(total, 1),
        **checks,
    }


async def main_async(args: argparse.Namespace, drill: Drill) -> int:
    drill.install()
    log("clusters: primary 5442 + synchronous standby 5443")
    drill.create_clusters()
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{PRIMARY_PORT}/postgres")
    await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    await conn.execute(f"ALTER DATABASE \"{DATABASE}\" SET statement_timeout = '15s'")
    sync = await conn.fetchval(
        "SELECT string_agg(application_name || ':' || sync_state, ',') FROM pg_stat_replication"
    )
    await conn.close()
    log(f"replication: {sync}")
    direct = f"postgresql+asyncpg://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}"
    os.environ.update(drill.app_environment(direct))
    sh(str(STOREKEEPER), "db", "upgrade", quiet=True)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{PRIMARY_PORT}/{DATABASE}")
    await seed.seed_skus(conn, prefix="DRILL-HOT-", count=1, on_hand=args.hot_stock)
    await seed.seed_skus(conn, prefix=SHOP_PREFIX, count=SHOP_SKUS, on_hand=100_000)
    await conn.close()
    log(f"namespaces skdrill1..{HOSTS}, storekeeper serve --workers 2 in each")
    drill.create_namespaces()
    log(f"pgbouncer on {PGBOUNCER_PORT} (transaction mode) -> primary")
    drill.start_pgbouncer(PRIMARY_PORT)
    drill.start_hosts()
    customers = args.clients * HOSTS // 2 + HOSTS
    tokens = await accounts(drill, customers)
    ack_log = drill.home / "acknowledged.jsonl"
    results = []

    if args.compare_seconds:
        log(
            f"== hot hold, direct vs through PgBouncer ({args.compare_seconds:.0f} s each, "
            f"{args.clients * 2} clients, one server of 2 workers)"
        )
        comparison = await compare_direct_and_pgbouncer(
            drill, tokens["staff"], args.compare_seconds, args.clients * 2
        )
        results.append({"title": "hot-hold direct vs pgbouncer", **comparison})

    load, elapsed = await drive(tokens, args.seconds, args.clients, ack_log)
    results.append(summarize("multi-host", load, elapsed, await verify(PRIMARY_PORT, load)))

    if args.failover:
        timeline: dict[str, float] = {}

        async def failover(started: float) -> None:
            await asyncio.sleep(args.seconds / 3)
            timeline["primary_stopped"] = time.monotonic() - started
            await asyncio.to_thread(
                sh, "pg_ctlcluster", PG_VERSION, PRIMARY, "stop", "-m", "immediate"
            )
            await asyncio.to_thread(sh, "pg_ctlcluster", PG_VERSION, STANDBY, "promote")
            timeline["standby_promoted"] = time.monotonic() - started
            await asyncio.to_thread(drill.repoint_pgbouncer, STANDBY_PORT)
            timeline["pgbouncer_repointed"] = time.monotonic() - started

        load2, elapsed2 = await drive(tokens, args.seconds, args.clients, ack_log, failover)
        stopped = timeline["primary_stopped"]
        after = [t for t in load2.failures_at if t >= stopped]
        last_failure = max(after) if after else stopped
        first_failure = min(after) if after else stopped
        recovered = min((t for t in load2.successes_at if t > last_failure), default=None)
        outage = {
            "primary_stopped_at_s": round(stopped, 2),
            "standby_promoted_at_s": round(timeline["standby_promoted"], 2),
            "pgbouncer_repointed_at_s": round(timeline["pgbouncer_repointed"], 2),
            "first_failed_request_at_s": round(first_failure, 2),
            "last_failed_request_at_s": round(last_failure, 2),
            "outage_seconds": round((recovered or last_failure) - stopped, 2),
        }
        both = Load(load2.hosts, load.holds + load2.holds, load.orders + load2.orders)
        checks = await verify(STANDBY_PORT, both)
        results.append(summarize("failover", load2, elapsed2, {**outage, **checks}))

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    bad = [r["title"] for r in results if "lost_holds" in r and _failed(r)]
    log("RESULT: " + (f"FAILED: {bad}" if bad else "all checks passed"))
    return 1 if bad else 0


def _failed(result: dict[str, Any]) -> bool:
    return bool(
        result["lost_holds"]
        or result["lost_orders"]
        or result["oversold_units"]
        or result["consistency_exit_code"]
        or any(h["other"] or h["503_without_retry_after"] for h in result["hosts"].values())
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients per host")
    parser.add_argument("--hot-stock", type=int, default=6000)
    parser.add_argument(
        "--compare-seconds",
        type=float,
        default=10,
        help="hot hold direct vs through PgBouncer, seconds each (0: skip)",
    )
    parser.add_argument("--no-failover", dest="failover", action="store_false")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the drill needs root (namespaces, clusters, apt)", file=sys.stderr)
        return 2
    drill = Drill()

    def _terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return asyncio.run(main_async(args, drill))
    finally:
        log("cleanup: servers, pgbouncer, namespaces, clusters")
        drill.cleanup()


if __name__ == "__main__":
    sys.exit(main())
