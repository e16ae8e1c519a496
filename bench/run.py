"""The benchmark: `python -m bench.run` (`make bench`), or `--quick` (`make bench-quick`).

It creates its own PostgreSQL database, migrates it with `storekeeper db upgrade`, seeds it
in bulk, and for each locking strategy starts the service with its production settings
and drives every scenario against it. After each run it checks correctness in the
database; it prints a table, writes JSON and a PNG chart to bench/results/, and exits
non-zero when anything was oversold, lost or inconsistent (never because of speed). The
database and every process it started are gone when it exits, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import database as seed
from bench import report, scenarios
from bench.database import REPO, STRATEGIES, BenchDatabase
from bench.scenarios import FULL, QUICK, Context, Result
from bench.server import RunningServer, serve

DEFAULT_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS_DIR = REPO / "bench" / "results"
CEILING_APP = "bench.ceiling_app:app"
LEAN_APP = "bench.lean_app:app"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (CI)")
    parser.add_argument(
        "--server-dsn",
        default=os.environ.get("STOREKEEPER_BENCH_SERVER_DSN", DEFAULT_SERVER_DSN),
        help="PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--seconds", type=float, help="override the length of each run")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["ceilings", "holds", "sell-out", "checkout", "expiry", "browse", "check"],
        help="scenario groups to leave out",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("STOREKEEPER_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis for the browse-cached scenario (keys namespaced by this run's database)",
    )
    parser.add_argument("--chart", type=Path, help="also copy the chart to this path")
    parser.add_argument("--json", type=Path, help="also copy the JSON results to this path")
    parser.add_argument(
        "--strict", action="store_true", help="a scenario skipped for a missing route fails"
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> list[Result]:
    sizes = QUICK if args.quick else FULL
    if args.seconds:
        sizes = scenarios.Sizes(**{**sizes.__dict__, "seconds": args.seconds})
    bench_db = BenchDatabase(args.server_dsn, f"storekeeper_bench_{os.getpid()}")
    log_dir = Path(tempfile.mkdtemp(prefix="storekeeper-bench-logs-"))
    ctx = Context(
        db=bench_db,
        sizes=sizes,
        log_dir=log_dir,
        secret_key=secrets.token_urlsafe(48),
        workers=args.workers,
        pool_size=args.pool_size,
    )
    results: list[Result] = []
    skip = set(args.skip)
    completed = False

    def record(result: Result, server: RunningServer | None) -> None:
        if server is not None and (restarts := server.new_worker_restarts()):
            result.warnings.append(f"the server restarted {restarts} missing workers")
        results.append(result)
        state = (
            f"skipped ({result.skipped})"
            if result.skipped
            else ("ok" if result.ok else "FAILED: " + "; ".join(result.failures))
        )
        throughput = f"{result.throughput:,.1f}/s " if result.throughput is not None else ""
        print(f"  {result.scenario:<15} {result.strategy:<12} {throughput}{state}", flush=True)
        for warning in result.warnings:
            print(f"  {'':<15} {'':<12} warning: {warning}", flush=True)

    await bench_db.create()
    try:
        started = time.monotonic()
        print(f"database {bench_db.name}: migrating and seeding", flush=True)
        bench_db.migrate()
        conn = await bench_db.connect()
        try:
            await seed.seed_skus(conn, prefix=seed.HOT_PREFIX, count=1, on_hand=1_000_000_000)
            await seed.seed_skus(conn, prefix=seed.CEILING_PREFIX, count=1, on_hand=1_000_000_000)
            await seed.seed_skus(
                conn,
                prefix=seed.SELLOUT_PREFIX,
                count=len(STRATEGIES),
                on_hand=sizes.sellout_on_hand,
            )
            await seed.seed_skus(
                conn, prefix=seed.SPREAD_PREFIX, count=sizes.spread_skus, on_hand=1_000_000
            )
        finally:
            await conn.close()
        print(f"  seeded in {time.monotonic() - started:.1f} s", flush=True)

        if "ceilings" not in skip:
            with serve(ctx.server_settings(), log_dir, app=CEILING_APP, label="ceiling") as server:
                record(await scenarios.ceiling_update(ctx, server), server)
            await scenarios.reset_ceiling_row(ctx)
            await lean_ceilings(ctx, log_dir, record)

        for strategy in args.strategies:
            print(f"locking strategy {strategy}", flush=True)
            with serve(ctx.server_settings(strategy), log_dir, label=strategy) as server:
                if not ctx.openapi_paths:
                    await scenarios.load_openapi(ctx, server)
                    await scenarios.prepare_accounts(ctx, server)
                    if "ceilings" not in skip:
                        record(await scenarios.ceiling_noop(ctx, server), server)
                else:
                    await scenarios.login(ctx, server)
                if "holds" not in skip:
                    record(await scenarios.hot_hold(ctx, server, strategy), server)
                if "sell-out" not in skip:
                    record(await scenarios.sell_out(ctx, server, strategy), server)
                if "holds" not in skip:
                    record(await scenarios.spread_hold(ctx, server, strategy), server)
                if "checkout" not in skip:
                    record(await scenarios.checkout(ctx, server, strategy), server)
                if "expiry" not in skip:
                    record(await scenarios.expiry(ctx, server, strategy), server)
                if strategy == args.strategies[-1]:
                    # Reading the catalog does not depend on the locking strategy: the last
                    # strategy's server serves it, which saves starting another one.
                    await browse_and_check(ctx, server, skip, record, args.redis_url)
        completed = True
    finally:
        await bench_db.drop()
        if completed and all(result.ok for result in results):
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            print(f"server logs kept in {log_dir}", flush=True)
    return results


async def browse_and_check(
    ctx: Context,
    server: RunningServer,
    skip: set[str],
    record: Callable[[Result, RunningServer | None], None],
    redis_url: str,
) -> None:
    """The large catalog is seeded only now, after the stock scenarios, so that their
    consistency checks do not walk a million levels."""
    if "browse" in skip and "check" in skip:
        return
    print(f"catalog of {ctx.sizes.browse_skus:,} SKUs: seeding", flush=True)
    seeded_at = time.monotonic()
    conn = await ctx.db.connect()
    try:
        await seed.seed_skus(
            conn, prefix=seed.BROWSE_PREFIX, count=ctx.sizes.browse_skus, on_hand=10
        )
    finally:
        await conn.close()
    print(f"  seeded in {time.monotonic() - seeded_at:.1f} s", flush=True)
    if "browse" not in skip:
        for result in await scenarios.browse(ctx, server):
            record(result, server)
        await cached_browse(ctx, record, redis_url)
    if "check" not in skip:
        record(scenarios.check_command(ctx), None)


async def lean_ceilings(
    ctx: Context, log_dir: Path, record: Callable[[Result, RunningServer | None], None]
) -> None:
    """The framework's floor: the bare FastAPI + asyncpg app, started like every server."""
    with serve(ctx.server_settings(), log_dir, app=LEAN_APP, label="lean") as server:
        record(await scenarios.ceiling_lean_noop(ctx, server), server)
        record(await scenarios.ceiling_lean_update(ctx, server), server)
    await scenarios.reset_ceiling_row(ctx)


async def cached_browse(
    ctx: Context,
    record: Callable[[Result, RunningServer | None], None],
    redis_url: str,
) -> None:
    """`browse-cached` and `browse-304` on a server with the Redis catalog cache on (a
    304 is decided by the page's bytes: from Redis, one statement and a hash)."""
    settings = scenarios.cached_settings(ctx, redis_url)
    with serve(settings, ctx.log_dir, label="cached") as cached:
        record(await scenarios.browse_cached(ctx, cached), cached)
        record(await scenarios.browse_304(ctx, cached), cached)


def machine() -> dict[str, Any]:
    model = ""
    lscpu = shutil.which("lscpu")
    if lscpu:
        for line in subprocess.run([lscpu], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A terminated benchmark unwinds like an interrupted one: servers stopped, database
    # dropped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    begun = datetime.now(UTC)
    results = asyncio.run(run(args))
    meta = {
        **machine(),
        "mode": "quick" if args.quick else "full",
        "started_at": begun.isoformat(timespec="seconds"),
        "workers": args.workers,
        "pool_size": args.pool_size,
    }
    print()
    print(report.table(results))
    print()
    for target in report.targets(results):
        print(target.describe())
    print()
    print(report.ratios_table(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = begun.strftime("%Y%m%dT%H%M%SZ")
    json_path = RESULTS_DIR / f"bench-{meta['mode']}-{stamp}.json"
    report.write_json(json_path, results, meta)
    chart_path = RESULTS_DIR / f"bench-{meta['mode']}-{stamp}.png"
    title = (
        f"Storekeeper throughput, {meta['mode']} run {meta['started_at']}: "
        f"{meta['cpus']} cores {meta['cpu_model'] or ''}, {args.workers} workers"
    )
    charted = report.write_chart(chart_path, results, title)
    print(f"\nresults: {json_path}" + (f"\nchart:   {chart_path}" if charted else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(json_path, args.json)
    if charted and args.chart:
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chart_path, args.chart)
    failed = [r for r in results if not r.ok or (args.strict and r.skipped)]
    for result in failed:
        reason = "; ".join(result.failures) or f"skipped: {result.skipped}"
        print(f"FAILED {result.scenario} {result.strategy}: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
