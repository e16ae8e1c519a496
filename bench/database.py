"""The benchmark's own PostgreSQL database: create, migrate, seed in bulk, inspect, drop.

Seeding goes straight to the tables with set-based `INSERT ... SELECT generate_series(...)`
statements over asyncpg: a million rows are written by the server in seconds, without a
million round trips or a million ORM objects. Every seeded stock level comes with the
`receive` ledger row that explains it, and every seeded hold with its `hold` movement, so
the consistency check is clean before the load starts. The seeding transactions run with
`session_replication_role = replica`, which skips the per-row foreign-key triggers (the
rows are generated consistent by construction); constraints, indexes and CHECKs still apply.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parent.parent
STOREKEEPER = Path(sys.executable).with_name("storekeeper")

HOT_PREFIX = "HOT-"
HOT_SKU = "HOT-1"
CEILING_PREFIX = "CEILING-"
CEILING_SKU = "CEILING-1"
SELLOUT_PREFIX = "SELLOUT-"
SPREAD_PREFIX = "SPREAD-"
BROWSE_PREFIX = "BROWSE-"
STRATEGIES = ("atomic", "pessimistic", "optimistic")
SKIP_FOREIGN_KEY_TRIGGERS = "SET LOCAL session_replication_role = replica"


def spread_code(index: int) -> str:
    """The code of the index-th spread SKU (1-based), as the load scripts compute it."""
    return f"{SPREAD_PREFIX}{index}"


def sellout_code(strategy: str) -> str:
    """Each locking strategy sells out its own SKU."""
    return f"{SELLOUT_PREFIX}{STRATEGIES.index(strategy) + 1}"


@dataclass
class BenchDatabase:
    """One throwaway database on the server at `server_dsn`."""

    server_dsn: str
    name: str

    @property
    def dsn(self) -> str:
        base, _, _ = self.server_dsn.rpartition("/")
        return f"{base}/{self.name}"

    @property
    def sqlalchemy_url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def create(self) -> None:
        conn = await asyncpg.connect(self.server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()

    async def drop(self) -> None:
        conn = await asyncpg.connect(self.server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()

    def migrate(self) -> None:
        """`storekeeper db upgrade`, exactly as an operator runs it."""
        env = {**os.environ, "STOREKEEPER_DATABASE_URL": self.sqlalchemy_url}
        subprocess.run(
            [str(STOREKEEPER), "db", "upgrade"],
            env=env,
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)


async def main_location_id(conn: asyncpg.Connection) -> int:
    location_id: int = await conn.fetchval("SELECT id FROM locations WHERE code = 'MAIN'")
    return location_id


async def ensure_category(conn: asyncpg.Connection) -> int:
    existing = await conn.fetchval("SELECT id FROM categories WHERE name = 'Bench'")
    if existing is not None:
        return int(existing)
    category_id: int = await conn.fetchval(
        """
        INSERT INTO categories (name, description, parent_id, path, depth, attributes,
                                version, is_deleted, created_at, updated_at)
        VALUES ('Bench', NULL, NULL, '', 0, '{}'::jsonb, 1, false, now(), now())
        RETURNING id
        """
    )
    await conn.execute("UPDATE categories SET path = '/' || id || '/' WHERE id = $1", category_id)
    return category_id


async def seed_skus(
    conn: asyncpg.Connection,
    *,
    prefix: str,
    count: int,
    on_hand: int,
    price_cents: int = 1999,
    product_name: str = "Bench product",
) -> None:
    """`count` products of one SKU each (`{prefix}1` … `{prefix}{count}`), each with
    `on_hand` units at MAIN received through the ledger. Set-based, so a million rows take
    seconds."""
    category_id = await ensure_category(conn)
    location_id = await main_location_id(conn)
    async with conn.transaction():
        await conn.execute(SKIP_FOREIGN_KEY_TRIGGERS)
        await conn.execute(
            """
            WITH inserted AS (
                INSERT INTO products (name, description, category_id, attributes, version,
                                      is_deleted, created_at, updated_at)
                SELECT $1 || ' ' || g, NULL, $2, '{}'::jsonb, 1, false, now(), now()
                FROM generate_series(1, $3::int) AS g
                RETURNING id
            )
            INSERT INTO skus (code, product_id, price_cents, currency, attributes, version,
                              is_deleted, created_at, updated_at)
            SELECT $4 || row_number() OVER (ORDER BY id), id, $5, 'USD', '{}'::jsonb, 1,
                   false, now(), now()
            FROM inserted
            """,
            product_name,
            category_id,
            count,
            prefix,
            price_cents,
        )
        if on_hand > 0:
            await conn.execute(
                """
                INSERT INTO stock_levels (sku_id, location_id, on_hand, reserved, allocated,
                                          version, updated_at)
                SELECT s.id, $2, $3, 0, 0, 1, now()
                FROM skus AS s WHERE s.code LIKE $1 || '%'
                """,
                prefix,
                location_id,
                on_hand,
            )
            await conn.execute(
                """
                INSERT INTO stock_movements (sku_id, location_id, kind, on_hand_delta,
                                             reserved_delta, allocated_delta, reason,
                                             reference, note, actor_id, created_at)
                SELECT s.id, $2, 'receive', $3, 0, 0, 'receive', 'bench seed', NULL, NULL, now()
                FROM skus AS s WHERE s.code LIKE $1 || '%'
                """,
                prefix,
                location_id,
                on_hand,
            )
    await conn.execute("ANALYZE products; ANALYZE skus; ANALYZE stock_levels")


async def seed_expiring_holds(
    conn: asyncpg.Connection, *, prefix: str, holds: int, token_prefix: str
) -> None:
    """`holds` live one-unit holds spread round-robin over the SKUs named `{prefix}N`, with
    their reservations, lines, `hold` movements and reserved counts, all expiring in a day
    (the scenario then moves `expires_at` to now for all of them at once)."""
    location_id = await main_location_id(conn)
    async with conn.transaction():
        await conn.execute(SKIP_FOREIGN_KEY_TRIGGERS)
        await conn.execute(
            """
            CREATE TEMP TABLE bench_skus ON COMMIT DROP AS
            SELECT id, row_number() OVER (ORDER BY id) - 1 AS slot
            FROM skus WHERE code LIKE $1 || '%'
            """,
            prefix,
        )
        sku_count = await conn.fetchval("SELECT count(*) FROM bench_skus")
        await conn.execute(
            """
            CREATE TEMP TABLE bench_holds ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, g AS n, s.id AS sku_id
            FROM generate_series(1, $1::int) AS g
            JOIN bench_skus AS s ON s.slot = (g - 1) % $2
            """,
            holds,
            sku_count,
        )
        await conn.execute(
            """
            INSERT INTO reservations (id, client_token, request_fingerprint, status,
                                      expires_at, reference, created_by, created_at,
                                      updated_at)
            SELECT id, $1 || n, repeat('0', 64), 'held',
                   now() + interval '1 day', 'bench', NULL, now(), now()
            FROM bench_holds
            """,
            token_prefix,
        )
        await conn.execute(
            """
            INSERT INTO reservation_lines (reservation_id, sku_id, location_id, quantity)
            SELECT id, sku_id, $1, 1 FROM bench_holds
            """,
            location_id,
        )
        await conn.execute(
            """
            INSERT INTO stock_movements (sku_id, location_id, kind, on_hand_delta,
                                         reserved_delta, allocated_delta, reason, reference,
                                         note, actor_id, created_at)
            SELECT sku_id, $1, 'hold', 0, 1, 0, NULL, id::text, NULL, NULL, now()
            FROM bench_holds
            """,
            location_id,
        )
        await conn.execute(
            """
            UPDATE stock_levels AS l SET reserved = l.reserved + h.units
            FROM (SELECT sku_id, count(*) AS units FROM bench_holds GROUP BY sku_id) AS h
            WHERE l.sku_id = h.sku_id AND l.location_id = $1
            """,
            location_id,
        )
    await conn.execute("ANALYZE reservations; ANALYZE reservation_lines; ANALYZE stock_levels")


async def level_id(conn: asyncpg.Connection, code: str) -> int:
    found = await conn.fetchval(
        "SELECT l.id FROM stock_levels AS l JOIN skus AS s ON s.id = l.sku_id WHERE s.code = $1",
        code,
    )
    if found is None:
        raise LookupError(f"no stock level for SKU {code}")
    return int(found)


async def oversold_units(conn: asyncpg.Connection) -> int:
    """Units promised beyond what was ever received, over every SKU, computed from the
    reservations themselves rather than the counters under test: for each SKU, live and
    fulfilled reserved/allocated units minus units received through the ledger."""
    value = await conn.fetchval(
        """
        WITH promised AS (
            SELECT l.sku_id, sum(l.quantity) AS units
            FROM reservation_lines AS l JOIN reservations AS r ON r.id = l.reservation_id
            WHERE r.status IN ('held', 'allocated', 'fulfilled')
              AND (r.status <> 'held' OR r.expires_at > now())
            GROUP BY l.sku_id
        ), received AS (
            SELECT sku_id, sum(on_hand_delta) FILTER (WHERE on_hand_delta > 0) AS units
            FROM stock_movements GROUP BY sku_id
        )
        SELECT coalesce(sum(greatest(p.units - coalesce(r.units, 0), 0)), 0)
        FROM promised AS p LEFT JOIN received AS r ON r.sku_id = p.sku_id
        """
    )
    return int(value)


async def backend_pids(conn: asyncpg.Connection, database: str) -> list[int]:
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    return [int(row["pid"]) for row in rows]
