"""The benchmark's scenarios: what each one loads, how it drives it, and what it verifies.

Every scenario returns `Result` rows: throughput, latency, errors, and the correctness
verdict taken from the database after the run (oversold units, acknowledged holds that do
not exist, the service's own consistency report).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import database as seed
from bench.database import REPO, STOREKEEPER, BenchDatabase
from bench.loadgen import FlowClient, HttpError, LoadResult, run_flow, run_wrk
from bench.server import RunningServer, ServerSettings, cpu_seconds, machine_busy_seconds

API = "/api/v1"
CONNECTIONS = 64
HOLD_BODY = (
    '{"client_token": "{n}", "items": [{"sku": "{sku}", "quantity": 1}], "ttl_seconds": 3600}'
)
STAFF_EMAIL = "bench-staff@example.com"
# Access tokens live 15 minutes by default: a token at most 5 minutes old leaves one
# server 10 minutes for its scenarios.
TOKEN_REUSE_SECONDS = 300
CHECKOUT_PATHS = (f"{API}/carts/me/items", f"{API}/carts/me/checkout")
BENCH_PASSWORD = "bench-password-long-enough"


@dataclass(frozen=True)
class Sizes:
    seconds: float
    warmup_seconds: float
    spread_skus: int
    browse_skus: int
    expiry_holds: int
    sellout_on_hand: int
    sellout_attempts: int
    customers: int
    expiry_timeout_seconds: float


FULL = Sizes(
    seconds=15,
    warmup_seconds=3,
    spread_skus=10_000,
    browse_skus=1_000_000,
    expiry_holds=100_000,
    sellout_on_hand=1_000,
    sellout_attempts=5_000,
    customers=32,
    expiry_timeout_seconds=120,
)
# Quick runs check correctness, not speed: no warm-ups.
QUICK = Sizes(
    seconds=2,
    warmup_seconds=0,
    spread_skus=1_000,
    browse_skus=20_000,
    expiry_holds=2_000,
    sellout_on_hand=30,
    sellout_attempts=150,
    customers=4,
    expiry_timeout_seconds=30,
)


@dataclass
class Result:
    scenario: str
    strategy: str
    throughput: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    errors: int = 0
    oversold: int | None = None
    consistent: bool | None = None
    seconds: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    cpu_cores: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Context:
    """Everything scenarios share within one benchmark run."""

    db: BenchDatabase
    sizes: Sizes
    log_dir: Path
    secret_key: str
    workers: int
    pool_size: int
    staff_token: str = ""
    customer_emails: list[str] = field(default_factory=list)
    customer_tokens: list[str] = field(default_factory=list)
    tokens_at: float = 0.0
    openapi_paths: set[str] = field(default_factory=set)

    def server_settings(self, locking: str = "atomic") -> ServerSettings:
        return ServerSettings(
            database_url=self.db.sqlalchemy_url,
            locking=locking,
            workers=self.workers,
            pool_size=self.pool_size,
            secret_key=self.secret_key,
        )

    def missing(self, *paths: str) -> str | None:
        """Why a scenario cannot run yet: the routes it needs that the service lacks
        (every scenario that touches stock also needs a staff login)."""
        absent = [path for path in paths if path not in self.openapi_paths]
        if absent:
            return f"service has no {', '.join(absent)}"
        if not self.staff_token and any("/inventory/" in path for path in paths):
            return "no staff token (no `storekeeper users create` or /auth/token)"
        return None

    @property
    def staff(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.staff_token}"}


class CpuMeter:
    """CPU used during one load run by the server processes, by the database backends
    serving this benchmark's database, and by the whole machine (other users included)."""

    def __init__(self, server: RunningServer, pg_pids: list[int]) -> None:
        self.server = server
        self.pg_pids = pg_pids

    def __enter__(self) -> CpuMeter:
        self.server_before = cpu_seconds(self.server.process_ids())
        self.pg_before = {pid: cpu_seconds([pid]) for pid in self.pg_pids}
        self.machine_before = machine_busy_seconds()
        self.wall_before = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.monotonic() - self.wall_before
        self.server_used = cpu_seconds(self.server.process_ids()) - self.server_before
        # A backend that exited during the run (pool recycling, a killed worker's
        # connections) no longer shows its CPU: count it as nothing rather than negative.
        self.pg_used = sum(
            max(cpu_seconds([pid]) - before, 0.0) for pid, before in self.pg_before.items()
        )
        busy_after, _total = machine_busy_seconds()
        self.machine_used = busy_after - self.machine_before[0]

    def cores(self, generator_cpu_seconds: float) -> dict[str, float]:
        wall = max(self.wall, 1e-9)
        server = self.server_used / wall
        postgres = self.pg_used / wall
        generator = generator_cpu_seconds / wall
        machine = self.machine_used / wall
        return {
            "server": round(server, 2),
            "postgres": round(postgres, 2),
            "generator": round(generator, 2),
            "other": round(max(machine - server - postgres - generator, 0.0), 2),
        }


async def postgres_pids(ctx: Context) -> list[int]:
    conn = await asyncpg.connect(ctx.db.server_dsn)
    try:
        return await seed.backend_pids(conn, ctx.db.name)
    finally:
        await conn.close()


async def measured(
    ctx: Context, server: RunningServer, load: Any, *args: Any, **kwargs: Any
) -> tuple[LoadResult, dict[str, float]]:
    """Run one load (a wrk call or a flow coroutine function) under a CPU meter."""
    with CpuMeter(server, await postgres_pids(ctx)) as meter:
        if asyncio.iscoroutinefunction(load):
            outcome: LoadResult = await load(*args, **kwargs)
        else:
            outcome = load(*args, **kwargs)
    return outcome, meter.cores(outcome.generator_cpu_seconds)


def result_from_load(
    scenario: str, strategy: str, load: LoadResult, cores: dict[str, float], *ok: int
) -> Result:
    """A result row: throughput counts the responses with an expected status (`ok`);
    anything else, transport failures included, is an error."""
    successes = load.count(*ok)
    result = Result(
        scenario=scenario,
        strategy=strategy,
        throughput=round(successes / load.seconds, 1) if load.seconds else 0.0,
        p50_ms=round(load.p50_ms, 2),
        p99_ms=round(load.p99_ms, 2),
        requests=load.requests,
        errors=load.requests - successes + load.transport_errors,
        seconds=round(load.seconds, 2),
        statuses=load.statuses,
        cpu_cores=cores,
    )
    if load.requests:
        # CPU per request hardly depends on how busy the machine is, unlike throughput.
        for part in ("server", "postgres"):
            per_request = cores.get(part, 0.0) * load.seconds / load.requests * 1000
            result.details[f"{part}_cpu_ms_per_request"] = round(per_request, 2)
    unexpected = {status: count for status, count in load.statuses.items() if int(status) >= 500}
    if unexpected:
        # Overload (pool timeouts, a restarted worker) is a speed problem, reported but not
        # failed on; what the failed requests left behind is checked like everything else.
        result.warnings.append(f"server errors: {unexpected}")
    if load.transport_errors:
        result.warnings.append(f"{load.transport_errors} broken connections or timeouts")
    if not load.requests:
        result.warnings.append("no request completed within the run")
    return result


# -- accounts ------------------------------------------------------------------------------


async def prepare_accounts(ctx: Context, server: RunningServer) -> None:
    """A staff user made with the CLI and, when the service can check out, customers
    registered through the API; then tokens for all of them (`login`). Nothing when the
    service has no token endpoint yet."""
    if ctx.missing(f"{API}/auth/token", f"{API}/auth/register"):
        return
    env = ctx.server_settings().environment()
    subprocess.run(
        [
            str(STOREKEEPER),
            "users",
            "create",
            "--email",
            STAFF_EMAIL,
            "--password",
            BENCH_PASSWORD,
            "--role",
            "staff",
        ],
        env=env,
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if ctx.missing(*CHECKOUT_PATHS):
        ctx.customer_emails = []
    else:
        ctx.customer_emails = [
            f"bench-customer-{number}@example.com" for number in range(1, ctx.sizes.customers + 1)
        ]
    async with httpx.AsyncClient(base_url=server.base_url + API, timeout=30) as http:
        for email in ctx.customer_emails:
            response = await http.post(
                "/auth/register",
                json={"email": email, "password": BENCH_PASSWORD, "full_name": "Bench"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"register {email}: {response.status_code} {response.text}")
    await login(ctx, server)


async def login(ctx: Context, server: RunningServer) -> None:
    """Fresh access tokens for the staff user and the customers (valid on every server of
    this run: they share the signing key). A full run outlasts one token's lifetime, so
    every server of the run calls this when it starts; tokens younger than
    `TOKEN_REUSE_SECONDS` are kept (each login hashes a password, seconds on a busy
    machine)."""
    if ctx.missing(f"{API}/auth/token"):
        return
    if ctx.tokens_at and time.monotonic() - ctx.tokens_at < TOKEN_REUSE_SECONDS:
        return
    async with httpx.AsyncClient(base_url=server.base_url + API, timeout=30) as http:
        ctx.staff_token = await _login(http, STAFF_EMAIL)
        ctx.customer_tokens = [await _login(http, email) for email in ctx.customer_emails]
    ctx.tokens_at = time.monotonic()


async def _login(http: httpx.AsyncClient, email: str) -> str:
    response = await http.post("/auth/token", data={"username": email, "password": BENCH_PASSWORD})
    if response.status_code != 200:
        raise RuntimeError(f"login {email}: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


async def load_openapi(ctx: Context, server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        document = (await http.get("/openapi.json")).json()
    ctx.openapi_paths = set(document.get("paths", {}))


# -- correctness -----------------------------------------------------------------------------


async def wait_until_quiet(ctx: Context, within_seconds: float = 60.0) -> None:
    """Wait for the requests a load generator abandoned at the end of its run (the server
    still finishes them) so that what is verified is the final state."""
    conn = await asyncpg.connect(ctx.db.server_dsn)
    try:
        deadline = time.monotonic() + within_seconds
        quiet_polls = 0
        while time.monotonic() < deadline and quiet_polls < 3:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                "AND application_name = 'storekeeper' AND state <> 'idle'",
                ctx.db.name,
            )
            quiet_polls = quiet_polls + 1 if busy == 0 else 0
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def verify(
    ctx: Context,
    server: RunningServer,
    result: Result,
    *,
    acknowledged: int | None = None,
    token_prefix: str | None = None,
) -> Result:
    """Oversold units, lost acknowledgements and the consistency report, after a run.

    Every acknowledged hold must exist; more may exist than were acknowledged (requests the
    generator abandoned when its time was up, which the server still completed)."""
    await wait_until_quiet(ctx)
    conn = await ctx.db.connect()
    try:
        result.oversold = await seed.oversold_units(conn)
        if acknowledged is not None and token_prefix is not None:
            stored = await conn.fetchval(
                "SELECT count(*) FROM reservations WHERE client_token LIKE $1 || '%'",
                token_prefix,
            )
            result.details["acknowledged"] = acknowledged
            result.details["stored"] = int(stored)
            if stored < acknowledged:
                result.failures.append(f"{acknowledged} holds acknowledged, {stored} stored")
    finally:
        await conn.close()
    if result.oversold:
        result.failures.append(f"{result.oversold} units oversold")
    report = await consistency(ctx, server)
    result.consistent = bool(report.get("is_consistent"))
    if not result.consistent:
        issues = report.get("issues", [])
        result.failures.append(f"inconsistent: {len(issues)} issues, e.g. {issues[:3]}")
    return result


async def consistency(ctx: Context, server: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url + API, timeout=300) as http:
        response = await http.get("/inventory/consistency", headers=ctx.staff)
    if response.status_code != 200:
        return {"is_consistent": False, "issues": [f"HTTP {response.status_code}"]}
    report: dict[str, Any] = response.json()
    return report


# -- ceilings --------------------------------------------------------------------------------


async def _constant_load(ctx: Context, server: RunningServer, path: str, name: str) -> Result:
    """`GET path` (an answer that does no work) under the scenario's load."""
    if ctx.sizes.warmup_seconds:
        run_wrk(server.base_url, method="GET", path=path, seconds=ctx.sizes.warmup_seconds)
    load, cores = await measured(
        ctx,
        server,
        run_wrk,
        server.base_url,
        method="GET",
        path=path,
        connections=CONNECTIONS,
        seconds=ctx.sizes.seconds,
    )
    return result_from_load(name, "-", load, cores, 200)


async def _hot_update_load(
    ctx: Context, server: RunningServer, path_prefix: str, name: str
) -> Result:
    """`POST path_prefix/<the ceiling SKU's level>` (the bare conditional UPDATE of one hot
    row) under the scenario's load."""
    conn = await ctx.db.connect()
    try:
        hot_level = await seed.level_id(conn, seed.CEILING_SKU)
    finally:
        await conn.close()
    path = f"{path_prefix}/{hot_level}"
    if ctx.sizes.warmup_seconds:
        run_wrk(server.base_url, method="POST", path=path, seconds=ctx.sizes.warmup_seconds)
        await wait_until_quiet(ctx)
    load, cores = await measured(
        ctx,
        server,
        run_wrk,
        server.base_url,
        method="POST",
        path=path,
        connections=CONNECTIONS,
        seconds=ctx.sizes.seconds,
    )
    return result_from_load(name, "-", load, cores, 200)


async def ceiling_noop(ctx: Context, server: RunningServer) -> Result:
    return await _constant_load(ctx, server, "/health", "ceiling-noop")


async def ceiling_update(ctx: Context, server: RunningServer) -> Result:
    return await _hot_update_load(ctx, server, "/bench/ceiling-update", "ceiling-update")


async def reset_ceiling_row(ctx: Context) -> None:
    """The bare UPDATE writes no reservation and no ledger row by design: once its server
    has stopped, put the row back so that the consistency reports that follow are about
    the service alone."""
    conn = await ctx.db.connect()
    try:
        await conn.execute(
            "UPDATE stock_levels SET reserved = 0 WHERE id = $1",
            await seed.level_id(conn, seed.CEILING_SKU),
        )
    finally:
        await conn.close()


# -- holds -----------------------------------------------------------------------------------


async def hold_load(
    ctx: Context,
    server: RunningServer,
    strategy: str,
    *,
    scenario: str,
    sku_prefix: str,
    sku_count: int,
) -> Result:
    if reason := ctx.missing(f"{API}/inventory/holds", f"{API}/inventory/consistency"):
        return Result(scenario, strategy, skipped=reason)
    common: dict[str, Any] = {
        "method": "POST",
        "path": f"{API}/inventory/holds",
        "body": HOLD_BODY,
        "token": ctx.staff_token,
        "sku_prefix": sku_prefix,
        "sku_count": sku_count,
        "connections": CONNECTIONS,
    }
    if ctx.sizes.warmup_seconds:
        run_wrk(
            server.base_url,
            seconds=ctx.sizes.warmup_seconds,
            run_id=f"warm-{scenario}-{strategy}-{uuid.uuid4().hex[:8]}",
            **common,
        )
        await wait_until_quiet(ctx)
    run_id = f"{scenario}-{strategy}-{uuid.uuid4().hex[:8]}"
    load, cores = await measured(
        ctx, server, run_wrk, server.base_url, seconds=ctx.sizes.seconds, run_id=run_id, **common
    )
    result = result_from_load(scenario, strategy, load, cores, 201)
    return await verify(
        ctx, server, result, acknowledged=load.count(201), token_prefix=f"{run_id}-"
    )


async def hot_hold(ctx: Context, server: RunningServer, strategy: str) -> Result:
    return await hold_load(
        ctx, server, strategy, scenario="hot-hold", sku_prefix=seed.HOT_SKU, sku_count=0
    )


async def spread_hold(ctx: Context, server: RunningServer, strategy: str) -> Result:
    return await hold_load(
        ctx,
        server,
        strategy,
        scenario="spread-hold",
        sku_prefix=seed.SPREAD_PREFIX,
        sku_count=ctx.sizes.spread_skus,
    )


@dataclass(frozen=True)
class Attempt:
    """One sell-out attempt: when its first request was sent (seconds on the generator's
    clock), how long it waited for its final answer, and that answer's status."""

    sent: float
    wait_ms: float
    status: int

    @property
    def won(self) -> bool:
        return self.status in (200, 201)


def _spread(values: list[float]) -> dict[str, float] | None:
    """min / p50 / p90 / max of `values` (ms), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)

    return {
        "min": round(ordered[0], 2),
        "p50": at(0.5),
        "p90": at(0.9),
        "max": round(ordered[-1], 2),
    }


def fairness(attempts: list[Attempt], units: int) -> dict[str, Any]:
    """How first-come-first-served a sell-out was: `fairness` is the share of the `units`
    that went to the first `units` attempts by send time (1.0: strictly in order of
    arrival; the share a random draw would give is about units / attempts), with the wait
    times of winners and losers."""
    by_send = sorted(attempts, key=lambda attempt: attempt.sent)
    first = by_send[:units]
    won_by_first = sum(1 for attempt in first if attempt.won)
    winners = [attempt.wait_ms for attempt in attempts if attempt.won]
    losers = [attempt.wait_ms for attempt in attempts if not attempt.won]
    return {
        "fairness": round(won_by_first / units, 3) if units else None,
        "random_draw_fairness": round(units / len(attempts), 3) if attempts else None,
        "winner_wait_ms": _spread(winners),
        "loser_wait_ms": _spread(losers),
    }


async def sell_out(ctx: Context, server: RunningServer, strategy: str) -> Result:
    """`sellout_attempts` one-unit holds from 64 clients on a SKU with `sellout_on_hand`
    units: exactly `sellout_on_hand` must succeed, every other attempt must be refused with
    409, and the level must end with nothing available."""
    if reason := ctx.missing(f"{API}/inventory/holds", f"{API}/inventory/consistency"):
        return Result("sell-out", strategy, skipped=reason)
    sku = seed.sellout_code(strategy)
    token_prefix = f"sellout-{strategy}-{uuid.uuid4().hex[:8]}-"
    headers = ctx.staff
    attempts: list[Attempt] = []

    async def attempt(client: FlowClient, number: int) -> tuple[int, float]:
        body = {"client_token": f"{token_prefix}{number}", "items": [{"sku": sku, "quantity": 1}]}
        started = time.perf_counter()
        # A broken connection leaves the outcome unknown: ask again with the same client
        # token, which returns the hold if it was made (200) and makes it if not.
        for retry in range(3):
            try:
                status, _ = await client.request(
                    "POST", f"{API}/inventory/holds", json_body=body, headers=headers
                )
                break
            except HttpError:
                if retry == 2:
                    raise
        wait_ms = (time.perf_counter() - started) * 1000
        attempts.append(Attempt(started, wait_ms, status))
        return status, wait_ms

    load, cores = await measured(
        ctx,
        server,
        run_flow,
        server.base_url,
        attempt,
        clients=CONNECTIONS,
        attempts=ctx.sizes.sellout_attempts,
    )
    held, refused = load.count(201, 200), load.count(409)
    result = result_from_load("sell-out", strategy, load, cores, 201, 200, 409)
    result.throughput = round(load.requests / load.seconds, 1) if load.seconds else 0.0
    result.details.update(held=held, refused=refused, on_hand=ctx.sizes.sellout_on_hand)
    result.details.update(fairness(attempts, ctx.sizes.sellout_on_hand))
    expected = ctx.sizes.sellout_on_hand
    if held != expected:
        result.failures.append(f"{held} held, {refused} refused; expected exactly {expected} held")
    conn = await ctx.db.connect()
    try:
        level = await conn.fetchrow(
            "SELECT l.on_hand, l.reserved, l.allocated FROM stock_levels AS l "
            "JOIN skus AS s ON s.id = l.sku_id WHERE s.code = $1",
            sku,
        )
    finally:
        await conn.close()
    result.details["level"] = dict(level)
    if level["reserved"] != expected or level["on_hand"] - level["reserved"] != 0:
        result.failures.append(f"level after sell-out: {dict(level)}")
    return await verify(ctx, server, result, acknowledged=held, token_prefix=token_prefix)


# -- checkout --------------------------------------------------------------------------------


async def checkout(ctx: Context, server: RunningServer, strategy: str) -> Result:
    """Each customer, on its own connection, puts 1-3 random spread SKUs in the cart and
    checks out; latency and throughput are those of the checkout request. Every tenth
    checkout is sent a second time with its Idempotency-Key, which must answer 200 with
    the same order. Verified besides oversell and consistency: every acknowledged order
    stored once, each order's lines allocated exactly once (its allocation holds the same
    units per SKU, and is still `allocated`)."""
    if reason := ctx.missing(*CHECKOUT_PATHS, f"{API}/inventory/consistency"):
        return Result("checkout", strategy, skipped=reason)
    if not ctx.customer_tokens:
        return Result("checkout", strategy, skipped="no customers")
    rng = random.Random(strategy)
    spread = ctx.sizes.spread_skus
    add_failures: list[int] = []
    replay_failures: list[str] = []
    replays: list[int] = []
    customer_of: dict[int, int] = {}
    key_prefix = ""

    async def shop(client: FlowClient, number: int) -> tuple[int, float]:
        # Each connection is one customer, so no customer has two checkouts in flight.
        customer = customer_of.setdefault(id(client), len(customer_of))
        headers = {"Authorization": f"Bearer {ctx.customer_tokens[customer]}"}
        for sku_number in rng.sample(range(1, spread + 1), rng.randint(1, 3)):
            status, _ = await client.request(
                "POST",
                f"{API}/carts/me/items",
                json_body={"sku": seed.spread_code(sku_number), "quantity": 1},
                headers=headers,
            )
            if status != 201:
                add_failures.append(status)
        checkout_headers = {**headers, "Idempotency-Key": f"{key_prefix}{number}"}
        started = time.perf_counter()
        status, body = await client.request(
            "POST", f"{API}/carts/me/checkout", json_body={}, headers=checkout_headers
        )
        latency_ms = (time.perf_counter() - started) * 1000
        if status == 201 and number % 10 == 0:
            again, replayed = await client.request(
                "POST", f"{API}/carts/me/checkout", json_body={}, headers=checkout_headers
            )
            replays.append(number)
            first_id = orjson.loads(body).get("id")
            if again != 200 or orjson.loads(replayed).get("id") != first_id:
                replay_failures.append(f"{again} {replayed[:120]!r}")
        return status, latency_ms

    clients = len(ctx.customer_tokens)
    if ctx.sizes.warmup_seconds:
        key_prefix = f"bench-warm-{strategy}-{uuid.uuid4().hex[:8]}-"
        await run_flow(server.base_url, shop, clients=clients, seconds=ctx.sizes.warmup_seconds)
        await wait_until_quiet(ctx)
    customer_of.clear()
    key_prefix = f"bench-checkout-{strategy}-{uuid.uuid4().hex[:8]}-"
    load, cores = await measured(
        ctx, server, run_flow, server.base_url, shop, clients=clients, seconds=ctx.sizes.seconds
    )
    result = result_from_load("checkout", strategy, load, cores, 201)
    if add_failures:
        result.failures.append(f"{len(add_failures)} cart additions failed: {add_failures[:5]}")
    if replay_failures:
        result.failures.append(
            f"{len(replay_failures)} replayed checkouts did not return their order: "
            f"{replay_failures[:3]}"
        )
    await wait_until_quiet(ctx)
    conn = await ctx.db.connect()
    try:
        stored, mismatched, not_allocated = await conn.fetchrow(
            """
            WITH placed AS (
                SELECT id, allocation_id FROM orders WHERE idempotency_key LIKE $1 || '%'
            ), ordered AS (
                SELECT p.id, l.sku_id, sum(l.quantity) AS units
                FROM placed AS p JOIN order_lines AS l ON l.order_id = p.id
                GROUP BY p.id, l.sku_id
            ), allocated AS (
                SELECT p.id, l.sku_id, sum(l.quantity) AS units
                FROM placed AS p JOIN reservation_lines AS l ON l.reservation_id = p.allocation_id
                GROUP BY p.id, l.sku_id
            )
            SELECT
                (SELECT count(*) FROM placed),
                (SELECT count(*) FROM ordered AS o FULL JOIN allocated AS a
                     ON a.id = o.id AND a.sku_id = o.sku_id
                 WHERE o.units IS DISTINCT FROM a.units),
                (SELECT count(*) FROM placed AS p JOIN reservations AS r ON r.id = p.allocation_id
                 WHERE r.status <> 'allocated')
            """,
            key_prefix,
        )
    finally:
        await conn.close()
    acknowledged = load.count(201)
    result.details.update(acknowledged=acknowledged, stored=int(stored), replays=len(replays))
    if stored < acknowledged:
        result.failures.append(f"{acknowledged} orders acknowledged, {stored} stored")
    if mismatched:
        result.failures.append(f"{mismatched} order lines not allocated exactly once")
    if not_allocated:
        result.failures.append(f"{not_allocated} orders whose allocation is not 'allocated'")
    return await verify(ctx, server, result)


# -- expiry ----------------------------------------------------------------------------------


async def expiry(ctx: Context, server: RunningServer, strategy: str) -> Result:
    """`expiry_holds` live holds all reach `expires_at` at one instant; measured: the time
    until every one of them reads `expired` and the consistency report is clean."""
    if reason := ctx.missing(f"{API}/inventory/holds", f"{API}/inventory/consistency"):
        return Result("expiry", strategy, skipped=reason)
    token_prefix = f"bench-expiry-{strategy}-"
    holds = ctx.sizes.expiry_holds
    conn = await ctx.db.connect()
    try:
        await seed.seed_expiring_holds(
            conn, prefix=seed.SPREAD_PREFIX, holds=holds, token_prefix=token_prefix
        )
        pg_pids = await postgres_pids(ctx)
        # The holds fall due together when this update commits; the clock starts then
        # (the update itself, 100,000 rows, is the benchmark's setup, not the sweeper's work).
        update_started = time.monotonic()
        due_at = await conn.fetchval("SELECT now()")
        await conn.execute(
            "UPDATE reservations SET expires_at = $2 "
            "WHERE client_token LIKE $1 || '%' AND status = 'held'",
            token_prefix,
            due_at,
        )
        update_seconds = time.monotonic() - update_started
        with CpuMeter(server, pg_pids) as meter:
            started = time.monotonic()
            deadline = started + ctx.sizes.expiry_timeout_seconds
            remaining = holds
            while time.monotonic() < deadline:
                # Through the partial index of live holds: polling must not compete with
                # the sweepers by scanning the whole table (no other hold is due by then).
                remaining = await conn.fetchval(
                    "SELECT count(*) FROM reservations WHERE status = 'held' AND expires_at <= $1",
                    due_at,
                )
                if remaining == 0:
                    break
                await asyncio.sleep(0.05)
            swept = time.monotonic() - started
            report = await consistency(ctx, server)
            clean = time.monotonic() - started
        sample = await conn.fetch(
            "SELECT id FROM reservations WHERE client_token LIKE $1 || '%' LIMIT 5", token_prefix
        )
    finally:
        await conn.close()
    result = Result(
        "expiry",
        strategy,
        throughput=round(holds / swept, 1),
        requests=holds,
        seconds=round(clean, 2),
        consistent=bool(report.get("is_consistent")),
        cpu_cores=meter.cores(0.0),
        details={
            "holds": holds,
            "swept_seconds": round(swept, 2),
            "remaining": remaining,
            "due_update_seconds": round(update_seconds, 2),
        },
    )
    if remaining:
        result.failures.append(f"{remaining} holds still held after {swept:.1f} s")
    if not result.consistent:
        result.failures.append(f"inconsistent after expiry: {report.get('issues', [])[:3]}")
    async with httpx.AsyncClient(base_url=server.base_url + API, timeout=30) as http:
        for row in sample:
            response = await http.get(f"/inventory/holds/{row['id']}", headers=ctx.staff)
            status = response.json().get("status") if response.status_code == 200 else None
            if status != "expired":
                result.failures.append(f"hold {row['id']} reads {status!r}, not 'expired'")
    conn = await ctx.db.connect()
    try:
        result.oversold = await seed.oversold_units(conn)
    finally:
        await conn.close()
    return result


# -- browse and check ------------------------------------------------------------------------


def deep_cursor(first_page: dict[str, Any], deep_item: dict[str, Any]) -> str | None:
    """A cursor pointing after `deep_item`, built like the service builds one from the last
    item of a page: find which fields of that last item the first page's cursor holds,
    and put the deep item's values for the same fields in their place."""
    cursor = first_page.get("next_cursor")
    items = first_page.get("items") or []
    if not cursor or not items:
        return None
    key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    last = items[-1]
    fields = []
    for value in key:
        matching = [name for name, field_value in last.items() if field_value == value]
        if not matching:
            return None
        fields.append(matching[0])
    deep_key = [deep_item[name] for name in fields]
    return base64.urlsafe_b64encode(orjson.dumps(deep_key)).decode().rstrip("=")


async def browse(ctx: Context, server: RunningServer) -> list[Result]:
    if reason := ctx.missing(f"{API}/products", f"{API}/products/{{product_id}}"):
        return [
            Result("browse-first", "-", skipped=reason),
            Result("browse-deep", "-", skipped=reason),
        ]
    conn = await ctx.db.connect()
    try:
        # A product 99.9 % of the way into the bench catalog, in id order.
        deep_id = await conn.fetchval(
            "SELECT id FROM products ORDER BY id OFFSET $1 LIMIT 1",
            int(ctx.sizes.browse_skus * 0.999),
        )
        total = await conn.fetchval("SELECT count(*) FROM products")
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=server.base_url + API, timeout=60) as http:
        first = (await http.get("/products", params={"limit": 50})).json()
        deep_item = (await http.get(f"/products/{deep_id}")).json()
    cursor = deep_cursor(first, deep_item)
    if cursor is None:
        reason = f"cannot build a deep cursor from {first.get('next_cursor')!r}"
        return [
            Result("browse-first", "-", skipped=reason),
            Result("browse-deep", "-", skipped=reason),
        ]
    results = []
    for scenario, path in (
        ("browse-first", f"{API}/products?limit=50"),
        ("browse-deep", f"{API}/products?limit=50&cursor={cursor}"),
    ):
        if ctx.sizes.warmup_seconds:
            run_wrk(
                server.base_url,
                method="GET",
                path=path,
                connections=16,
                seconds=1,
            )
        load, cores = await measured(
            ctx,
            server,
            run_wrk,
            server.base_url,
            method="GET",
            path=path,
            connections=16,
            seconds=ctx.sizes.seconds,
        )
        result = result_from_load(scenario, "-", load, cores, 200)
        result.details.update(products=int(total), deep_product_id=int(deep_id))
        results.append(result)
    return results


def check_command(ctx: Context) -> Result:
    """`storekeeper check` over every level of the database (the browse catalog included)."""
    env = {**ctx.server_settings().environment()}
    started = time.monotonic()
    completed = subprocess.run(
        [str(STOREKEEPER), "check"], env=env, cwd=REPO, capture_output=True, text=True
    )
    elapsed = time.monotonic() - started
    if completed.returncode == 2 and "No such command" in completed.stderr:
        return Result("check", "-", skipped="no `storekeeper check` command")
    result = Result(
        "check",
        "-",
        seconds=round(elapsed, 2),
        consistent=completed.returncode == 0,
        details={"output": completed.stdout[-500:]},
    )
    if completed.returncode != 0:
        result.failures.append(
            f"`storekeeper check` exit {completed.returncode}: "
            f"{(completed.stdout + completed.stderr)[-500:]}"
        )
    return result


# -- the framework's floor and cached reads --------------------------------------------------


async def ceiling_lean_noop(ctx: Context, server: RunningServer) -> Result:
    """The bare FastAPI app's constant answer (bench/lean_app.py): the floor `/health`
    is compared with."""
    return await _constant_load(ctx, server, "/lean/noop", "ceiling-lean-noop")


async def ceiling_lean_update(ctx: Context, server: RunningServer) -> Result:
    """The bare FastAPI app's conditional hot-row UPDATE on a plain asyncpg pool: the
    floor a hot hold is compared with."""
    return await _hot_update_load(ctx, server, "/lean/update", "ceiling-lean-update")


def cached_settings(ctx: Context, redis_url: str) -> ServerSettings:
    """The service with the Redis catalog cache on, its keys in a namespace of this run's
    own (a cache filled by an earlier run of another database must not answer)."""
    return dataclasses.replace(
        ctx.server_settings(),
        extra=(
            ("STOREKEEPER_REDIS_URL", redis_url),
            ("STOREKEEPER_CACHE_KEY_PREFIX", f"{ctx.db.name}:catalog"),
        ),
    )


FIRST_PAGE = f"{API}/products?limit=50"


async def browse_cached(ctx: Context, server: RunningServer) -> Result:
    """`browse-first` on a server with the Redis catalog cache: after the first request
    fills it, every page comes from Redis. The cached page must be the uncached one."""
    if reason := ctx.missing(f"{API}/products"):
        return Result("browse-cached", "-", skipped=reason)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        first = await http.get(FIRST_PAGE)
        again = await http.get(FIRST_PAGE)
    if ctx.sizes.warmup_seconds:
        run_wrk(server.base_url, method="GET", path=FIRST_PAGE, connections=16, seconds=1)
    load, cores = await measured(
        ctx,
        server,
        run_wrk,
        server.base_url,
        method="GET",
        path=FIRST_PAGE,
        connections=16,
        seconds=ctx.sizes.seconds,
    )
    result = result_from_load("browse-cached", "-", load, cores, 200)
    if first.status_code != 200 or again.content != first.content:
        result.failures.append("the cached first page differs from the uncached one")
    return result


async def browse_304(ctx: Context, server: RunningServer) -> Result:
    """The first page asked again with the `ETag` it was served with: `304`, no body."""
    if reason := ctx.missing(f"{API}/products"):
        return Result("browse-304", "-", skipped=reason)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        etag = (await http.get(FIRST_PAGE)).headers.get("etag")
    if not etag:
        return Result("browse-304", "-", skipped="no ETag on the product list")
    header = f"If-None-Match: {etag}"
    if ctx.sizes.warmup_seconds:
        run_wrk(
            server.base_url,
            method="GET",
            path=FIRST_PAGE,
            connections=16,
            seconds=1,
            header=header,
        )
    load, cores = await measured(
        ctx,
        server,
        run_wrk,
        server.base_url,
        method="GET",
        path=FIRST_PAGE,
        connections=16,
        seconds=ctx.sizes.seconds,
        header=header,
    )
    result = result_from_load("browse-304", "-", load, cores, 304)
    result.details["etag"] = etag
    return result
