"""A stateful property test: random adjustments, holds, allocations, converts, releases,
fulfils, cancels, expiries and sweeps, under random locking strategies, against a model.

After every step the service's figures and statuses must equal the model's and the
consistency report must be clean.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, update

from storekeeper.catalog.models import Sku
from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database, utcnow
from storekeeper.errors import HoldExpired, InsufficientStock, InvalidTransition
from storekeeper.inventory import service, stock
from storekeeper.inventory.consistency import check_consistency
from storekeeper.inventory.expiry import sweep_expired_holds
from storekeeper.inventory.models import Location, Reservation, StockLevel
from tests.inventory.conftest import insert_skus

T = TypeVar("T")

AUX = "AUX"
LOCATIONS = ("MAIN", AUX)  # priority 100 and 50: MAIN is drawn from first
SKUS_PER_EXAMPLE = 3
STRATEGIES = st.sampled_from(list(LockingStrategy))
_examples = itertools.count()


class Runner:
    """An event loop and a database of its own, for the synchronous state machine."""

    def __init__(self, database: Database) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = Database(database.settings)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def close(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()


@dataclass
class ModelReservation:
    id: uuid.UUID
    lines: list[tuple[str, str, int]]  # (sku, location, quantity)
    status: str
    due: bool = False  # expires_at has passed


@dataclass
class Model:
    levels: dict[tuple[str, str], list[int]] = field(
        default_factory=dict
    )  # on_hand, reserved, allocated
    reservations: list[ModelReservation] = field(default_factory=list)

    def available(self, sku: str, location: str) -> int:
        on_hand, reserved, allocated = self.levels[(sku, location)]
        return on_hand - reserved - allocated

    def choose(self, sku: str, quantity: int, location: str | None) -> str | None:
        for candidate in (location,) if location else LOCATIONS:
            if self.available(sku, candidate) >= quantity:
                return candidate
        return None

    def best(self, sku: str, location: str | None) -> int:
        return max(0, *(self.available(sku, c) for c in ((location,) if location else LOCATIONS)))

    def give_back(self, reservation: ModelReservation, bucket: int) -> None:
        for sku, location, quantity in reservation.lines:
            self.levels[(sku, location)][bucket] -= quantity


def claim(
    model: Model, lines: list[tuple[str, int, str | None]], bucket: int
) -> tuple[Model, list[str] | list[dict[str, Any]]]:
    """What the service does: try every line; reclaim due holds on the short SKUs and retry
    those; on any remaining shortage nothing changes. Returns (new model, chosen locations)
    or (old model, shortages)."""
    trial = copy.deepcopy(model)
    chosen: list[str | None] = []

    def apply(index: int) -> None:
        sku, quantity, location = lines[index]
        picked = trial.choose(sku, quantity, location)
        if picked is not None:
            level = trial.levels[(sku, picked)]
            if bucket == 0:
                level[0] -= quantity
            else:
                level[bucket] += quantity
        chosen[index] = picked

    chosen.extend([None] * len(lines))
    for index in range(len(lines)):
        apply(index)
    short = [i for i, picked in enumerate(chosen) if picked is None]
    if short:
        short_skus = {lines[i][0] for i in short}
        due = [
            r
            for r in trial.reservations
            if r.status == "held" and r.due and any(line[0] in short_skus for line in r.lines)
        ]
        if due:
            for reservation in due:
                reservation.status = "expired"
                trial.give_back(reservation, 1)
            for index in short:
                apply(index)
    shortages = [
        {
            "sku": lines[i][0],
            "requested": lines[i][1],
            "available": trial.best(lines[i][0], lines[i][2]),
        }
        for i, picked in enumerate(chosen)
        if picked is None
    ]
    if shortages:
        return model, shortages
    return trial, [picked for picked in chosen if picked is not None]


class InventoryMachine(RuleBasedStateMachine):
    runner: ClassVar[Runner]

    def __init__(self) -> None:
        super().__init__()
        example = next(_examples)
        self.skus = [f"SM{example}-{index}" for index in range(SKUS_PER_EXAMPLE)]
        self.model = Model(levels={(s, loc): [0, 0, 0] for s in self.skus for loc in LOCATIONS})

        async def create() -> None:
            async with self.runner.db.transaction() as session:
                await insert_skus(session, self.skus)
            # Holds an earlier example left due are no concern of this one.
            await sweep_expired_holds(self.runner.db, batch_size=100)

        self.run(create())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(work)

    # --- rules ---------------------------------------------------------------------------

    @rule(
        sku=st.integers(0, SKUS_PER_EXAMPLE - 1),
        delta=st.integers(-8, 12).filter(bool),
        location=st.sampled_from([None, "MAIN", AUX]),
        locking=STRATEGIES,
    )
    def adjust(self, sku: int, delta: int, location: str | None, locking: LockingStrategy) -> None:
        code = self.skus[sku]
        if delta > 0:
            self.model.levels[(code, location or "MAIN")][0] += delta
            expected: list[Any] | None = None
        else:
            self.model, outcome = claim(self.model, [(code, -delta, location)], 0)
            expected = outcome if outcome and isinstance(outcome[0], dict) else None

        async def work() -> list[Any] | None:
            try:
                async with self.runner.db.transaction() as session:
                    await stock.adjust_stock(
                        session,
                        code,
                        delta=delta,
                        reason="correction",
                        location_code=location,
                        policy=StockPolicy(locking),
                    )
            except InsufficientStock as short:
                return short.shortages
            return None

        assert self.run(work()) == expected

    @rule(
        picks=st.lists(
            st.tuples(
                st.integers(0, SKUS_PER_EXAMPLE - 1),
                st.integers(1, 6),
                st.sampled_from([None, None, "MAIN", AUX]),
            ),
            min_size=1,
            max_size=SKUS_PER_EXAMPLE,
            unique_by=lambda pick: pick[0],
        ),
        as_hold=st.booleans(),
        locking=STRATEGIES,
    )
    def reserve(
        self, picks: list[tuple[int, int, str | None]], as_hold: bool, locking: LockingStrategy
    ) -> None:
        lines = [
            (self.skus[index], quantity, location) for index, quantity, location in sorted(picks)
        ]
        token = uuid.uuid4().hex

        async def work() -> service.ReservationView | list[dict[str, Any]]:
            try:
                async with self.runner.db.transaction() as session:
                    if as_hold:
                        return await service.create_hold(
                            session,
                            lines,
                            ttl_seconds=600,
                            policy=StockPolicy(locking),
                            client_token=token,
                            request_fingerprint=token,
                        )
                    return await service.create_allocation(
                        session,
                        lines,
                        policy=StockPolicy(locking),
                        client_token=token,
                        request_fingerprint=token,
                    )
            except InsufficientStock as short:
                return short.shortages

        result = self.run(work())
        self.model, outcome = claim(self.model, lines, 1 if as_hold else 2)
        if outcome and isinstance(outcome[0], dict):
            assert result == outcome
            return
        assert isinstance(result, service.ReservationView)
        assert [line.location for line in result.lines] == outcome
        self.model.reservations.append(
            ModelReservation(
                result.reservation.id,
                [(sku, loc, q) for (sku, q, _), loc in zip(lines, outcome, strict=True)],
                "held" if as_hold else "allocated",
            )
        )

    def _pick(self, index: int) -> ModelReservation:
        return self.model.reservations[index % len(self.model.reservations)]

    @precondition(
        lambda self: any(r.status == "held" and not r.due for r in self.model.reservations)
    )
    @rule(index=st.integers(0, 1000))
    def time_passes(self, index: int) -> None:
        live = [r for r in self.model.reservations if r.status == "held" and not r.due]
        reservation = live[index % len(live)]
        reservation.due = True

        async def work() -> None:
            async with self.runner.db.transaction() as session:
                await session.execute(
                    update(Reservation)
                    .where(Reservation.id == reservation.id)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )

        self.run(work())

    @rule(batch_size=st.integers(1, 4))
    def sweep(self, batch_size: int) -> None:
        due = [r for r in self.model.reservations if r.status == "held" and r.due]
        expired = self.run(sweep_expired_holds(self.runner.db, batch_size=batch_size))
        assert expired == len(due)
        for reservation in due:
            reservation.status = "expired"
            self.model.give_back(reservation, 1)

    def _change(self, reservation: ModelReservation, action: str, locking: LockingStrategy) -> str:
        async def work() -> str:
            try:
                async with self.runner.db.transaction() as session:
                    if action == "convert":
                        changed = await service.convert_hold(session, reservation.id)
                    elif action == "release":
                        changed = await service.release_hold(session, reservation.id)
                    elif action == "fulfil":
                        changed = await service.fulfil_allocation(session, reservation.id)
                    else:
                        changed = await service.cancel_allocation(session, reservation.id)
                    return changed.status
            except (InvalidTransition, HoldExpired) as refused:
                return refused.code

        return self.run(work())

    @precondition(lambda self: self.model.reservations)
    @rule(
        index=st.integers(0, 1000),
        action=st.sampled_from(["convert", "release", "fulfil", "cancel"]),
        locking=STRATEGIES,
    )
    def change_status(self, index: int, action: str, locking: LockingStrategy) -> None:
        reservation = self._pick(index)
        before = reservation.status
        done = {
            "convert": "allocated",
            "release": "released",
            "fulfil": "fulfilled",
            "cancel": "cancelled",
        }
        moves = {
            ("convert", "held"): ("allocated", 1, 2),
            ("release", "held"): ("released", 1, None),
            ("fulfil", "allocated"): ("fulfilled", 2, 0),
            ("cancel", "allocated"): ("cancelled", 2, None),
        }
        result = self._change(reservation, action, locking)
        if action == "convert" and before == "held" and reservation.due:
            reservation.status = "expired"
            self.model.give_back(reservation, 1)
            assert result == "expired"
        elif (action, before) in moves:
            target, source_bucket, target_bucket = moves[(action, before)]
            self.model.give_back(reservation, source_bucket)
            if target_bucket == 2:
                for sku, location, quantity in reservation.lines:
                    self.model.levels[(sku, location)][2] += quantity
            elif target_bucket == 0:
                self.model.give_back(reservation, 0)
            reservation.status = target
            assert result == target
        elif done[action] == before or (action == "convert" and before == "expired"):
            assert result == before
        else:
            assert result == "invalid_transition"

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def figures_statuses_and_ledger_agree(self) -> None:
        async def read() -> tuple[dict[tuple[str, str], list[int]], dict[uuid.UUID, str], bool]:
            async with self.runner.db.transaction(write=False) as session:
                rows = await session.execute(
                    select(
                        Sku.code,
                        Location.code,
                        StockLevel.on_hand,
                        StockLevel.reserved,
                        StockLevel.allocated,
                    )
                    .join(Sku, Sku.id == StockLevel.sku_id)
                    .join(Location, Location.id == StockLevel.location_id)
                    .where(Sku.code.in_(self.skus))
                )
                levels = {
                    (sku, loc): [on_hand, reserved, allocated]
                    for sku, loc, on_hand, reserved, allocated in rows
                }
                statuses = dict(
                    (
                        await session.execute(
                            select(Reservation.id, Reservation.status).where(
                                Reservation.id.in_([r.id for r in self.model.reservations])
                            )
                        )
                    ).all()
                )
                report = await check_consistency(session)
            return levels, statuses, report.is_consistent

        levels, statuses, consistent = self.run(read())
        for key, figures in self.model.levels.items():
            assert levels.get(key, [0, 0, 0]) == figures, key
        assert statuses == {r.id: r.status for r in self.model.reservations}
        assert consistent


async def test_service_matches_model(db: Database) -> None:
    def run() -> None:
        runner = Runner(db)
        try:

            async def add_aux_location() -> None:
                async with runner.db.transaction() as session:
                    await stock.create_location(session, code=AUX, name="Auxiliary", priority=50)

            runner.run(add_aux_location())
            InventoryMachine.runner = runner
            run_state_machine_as_test(
                InventoryMachine,
                settings=settings(
                    max_examples=8,
                    stateful_step_count=20,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            runner.close()

    await asyncio.to_thread(run)
