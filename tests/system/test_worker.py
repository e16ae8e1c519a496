"""`storekeeper worker` as a real process: the periodic jobs without HTTP, stopped by a
signal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from storekeeper import cli
from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events import outbox
from storekeeper.events.models import Event
from storekeeper.inventory import service
from storekeeper.inventory.models import Reservation, StockLevel
from tests.system.conftest import SECRET_KEY
from tests.system.test_inventory_concurrency import stock_up

INTERVAL_SECONDS = 0.2
# Generous: the test machine may be busy; the jobs themselves run every INTERVAL_SECONDS.
DEADLINE_SECONDS = 15.0
STOP_SECONDS = 5.0


def _start_worker(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STOREKEEPER_DATABASE_URL": database_url,
        "STOREKEEPER_ENV": "test",
        "STOREKEEPER_SECRET_KEY": SECRET_KEY,
        "STOREKEEPER_EXPIRY_INTERVAL_SECONDS": str(INTERVAL_SECONDS),
        "STOREKEEPER_EVENTS_INTERVAL_SECONDS": str(INTERVAL_SECONDS),
        "STOREKEEPER_LOG_LEVEL": "INFO",
        "STOREKEEPER_LOG_FORMAT": "json",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "storekeeper", "worker"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def _due_holds(db: Database, tokens: list[str], sku: str) -> None:
    """Holds of 2 units each whose expiry has already passed."""
    for token in tokens:
        async with db.transaction() as session:
            await service.create_hold(
                session,
                [(sku, 2, None)],
                ttl_seconds=60,
                client_token=token,
                request_fingerprint=token,
                policy=StockPolicy(LockingStrategy.ATOMIC),
            )
    async with db.transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.client_token.in_(tokens))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def _write_event(db: Database, number: int) -> None:
    async def write(session: Any) -> None:
        await outbox.record(session, outbox.STOCK_LOW, {"n": number})

    await UnitOfWork(db).run(write)


async def _state(db: Database) -> tuple[dict[str, str], int, list[tuple[int | None, str]]]:
    """(status by client token, reserved units, (public id, type) of every event)."""
    async with db.transaction(write=False) as session:
        statuses = dict(
            (await session.execute(select(Reservation.client_token, Reservation.status))).all()
        )
        reserved = sum((await session.scalars(select(StockLevel.reserved))).all())
        events = [
            (row.id, row.type)
            for row in await session.execute(select(Event.id, Event.type).order_by(Event.seq))
        ]
    return statuses, reserved, events


State = tuple[dict[str, str], int, list[tuple[int | None, str]]]


async def _until(
    db: Database, reached: Callable[[State], bool], process: subprocess.Popen[bytes], log: Path
) -> State:
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while not reached(state := await _state(db)):
        assert process.poll() is None, log.read_text(errors="replace")
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.1)
    return state


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_the_worker_expires_holds_publishes_events_and_stops_on_a_signal(
    system_db: Database, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    await stock_up(system_db, {"W": 20})
    await _due_holds(system_db, ["a", "b", "c"], "W")
    await _write_event(system_db, 1)
    log = tmp_path / "worker.log"
    worker = _start_worker(system_db.settings.database_url, log)
    try:
        # The sweep expires the three holds (one hold.expired each), the publisher gives
        # every event its public id in write order (the receipt's back in stock first).
        first = [
            (1, "stock.back_in_stock"),
            (2, "stock.low"),
            (3, "hold.expired"),
            (4, "hold.expired"),
            (5, "hold.expired"),
        ]
        expired = {"a": "expired", "b": "expired", "c": "expired"}
        await _until(system_db, lambda state: state == (expired, 0, first), worker, log)

        # Still at work: what comes later is expired and published too (the two new
        # events in whichever order they committed).
        await _due_holds(system_db, ["d"], "W")
        await _write_event(system_db, 2)
        _, _, events = await _until(
            system_db,
            lambda state: (
                state[:2] == ({**expired, "d": "expired"}, 0)
                and [event_id for event_id, _ in state[2]] == [1, 2, 3, 4, 5, 6, 7]
            ),
            worker,
            log,
        )
        assert events[:5] == first
        assert sorted(event_type for _, event_type in events[5:]) == ["hold.expired", "stock.low"]

        worker.send_signal(stop_signal)
        code = await asyncio.to_thread(worker.wait, STOP_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = log.read_text(errors="replace")
    assert code == 0, output
    assert '"event": "worker_started"' in output and '"event": "worker_stopped"' in output
    assert "Traceback" not in output, output


def test_the_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.app,
        ["worker"],
        env={"STOREKEEPER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"},
    )
    assert result.exit_code == 2
    assert "storekeeper db upgrade" in result.output
