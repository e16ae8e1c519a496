"""Property: the level read `as_of` a time equals the figures the level had at that time,
at several points of a randomised history of receipts, removals, holds, releases,
converts, fulfilments and cancellations (both backends)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storekeeper.config import Settings
from storekeeper.db import Database, utcnow
from storekeeper.errors import InsufficientStock, InvalidTransition, StorekeeperError
from storekeeper.inventory import queries, service, stock
from tests.inventory.conftest import insert_skus

# ("receive"|"remove", quantity, location index) | ("hold"|"allocate", quantity, location
# index) | (action, reservation index, 0) for release, convert, fulfil, cancel.
operation = st.one_of(
    st.tuples(st.sampled_from(["receive", "remove"]), st.integers(1, 20), st.integers(0, 1)),
    st.tuples(st.sampled_from(["hold", "allocate"]), st.integers(1, 8), st.integers(0, 1)),
    st.tuples(
        st.sampled_from(["release", "convert", "fulfil", "cancel"]), st.integers(0, 20), st.just(0)
    ),
)
histories = st.lists(operation, min_size=3, max_size=16)


def _figures(figures: queries.SkuStock) -> list[tuple[str, int, int, int]]:
    return [(f.location, f.on_hand, f.reserved, f.allocated) for f in figures.locations]


async def _apply(
    db: Database, code: str, locations: list[str], op: tuple[Any, ...], held: list[uuid.UUID]
) -> None:
    action, amount, where = op
    async with db.transaction() as session:
        if action in ("receive", "remove"):
            await stock.adjust_stock(
                session,
                code,
                delta=amount if action == "receive" else -amount,
                reason="receive" if action == "receive" else "damage",
                location_code=locations[where],
            )
        elif action in ("hold", "allocate"):
            make = service.create_hold if action == "hold" else service.create_allocation
            extra: dict[str, Any] = {"ttl_seconds": 3600} if action == "hold" else {}
            view = await make(
                session,
                [(code, amount, locations[where])],
                client_token=uuid.uuid4().hex,
                request_fingerprint="f",
                **extra,
            )
            held.append(view.reservation.id)
        elif held:
            await service.change_reservation(
                session, held[amount % len(held)], action, actor_id=None
            )


async def _run(app_settings: Settings, ops: list[tuple[Any, ...]]) -> None:
    db = Database(app_settings)
    suffix = uuid.uuid4().hex[:8].upper()
    code = f"ASOF-{suffix}"
    locations = ["MAIN", f"AUX{suffix}"]
    try:
        async with db.transaction() as session:
            await insert_skus(session, [code])
            await stock.create_location(session, code=locations[1], name="Aux", priority=1)
        held: list[uuid.UUID] = []
        points: list[tuple[Any, list[tuple[str, int, int, int]]]] = []
        async with db.transaction(write=False) as session:
            before = _figures((await queries.stock_by_codes(session, [code]))[0])
        points.append((utcnow(), before))
        for op in ops:
            await asyncio.sleep(0.002)  # keep the moments read apart from the writes
            try:
                await _apply(db, code, locations, op, held)
            except (InsufficientStock, InvalidTransition):
                pass  # refused: nothing written
            except StorekeeperError as exc:  # pragma: no cover - shows what went wrong
                raise AssertionError(f"{op}: {exc!r}") from exc
            async with db.transaction(write=False) as session:
                now_figures = _figures((await queries.stock_by_codes(session, [code]))[0])
            points.append((utcnow(), now_figures))
            await asyncio.sleep(0.002)
        async with db.transaction(write=False) as session:
            for moment, expected in points:
                replayed = await queries.stock_as_of(session, code, moment)
                assert _figures(replayed) == expected, moment
    finally:
        await db.dispose()


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=histories)
def test_as_of_equals_the_figures_at_each_point_of_a_random_history(
    settings: Settings, ops: list[tuple[Any, ...]]
) -> None:
    asyncio.run(_run(settings, ops))
