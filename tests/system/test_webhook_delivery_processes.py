"""At-least-once webhook delivery across processes.

Two `storekeeper worker` processes and two server processes (background jobs on) publish
events and send webhooks side by side, coordinating through PostgreSQL only, to one real
HTTP receiver in the test process (127.0.0.1, a free port) behind one endpoint subscribed
to every event type. The 1,000 events are written once all four are running, so none
gets a head start.

- With every process alive, each event is delivered exactly once: the receiver gets the
  `webhook-id`s 1..1000 once each, every delivery is `succeeded` after one attempt, and the
  feed's ids are exactly 1..1000.
- With one worker killed (SIGKILL) while it has CONCURRENCY attempts at the receiver,
  none is lost: its leases run out (`webhook_timeout_seconds` + `LEASE_MARGIN_SECONDS`)
  and the others attempt those deliveries again. Exactly those CONCURRENCY deliveries are
  attempted twice and arrive twice, never before the lease has run out; every other one
  arrives once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from storekeeper.accounts.models import Role
from storekeeper.db import Database, UnitOfWork
from storekeeper.events import outbox
from storekeeper.events.delivery import LEASE_MARGIN_SECONDS
from storekeeper.events.models import DeliveryStatus, WebhookDelivery
from tests.system.conftest import SECRET_KEY, Cluster, ServerRunner, make_system_user

EVENTS = 1000
WORKERS = 2
SERVERS = 2
PROCESSES = WORKERS + SERVERS
# STOREKEEPER_WEBHOOK_CONCURRENCY_PER_ENDPOINT: attempts in flight towards one endpoint in
# one process, so at most PROCESSES * CONCURRENCY at once in all.
CONCURRENCY = 8
INTERVAL_SECONDS = 0.2
# STOREKEEPER_WEBHOOK_TIMEOUT_SECONDS. The kill test's is short, so the dead worker's leases
# (timeout + LEASE_MARGIN_SECONDS: 33 s) run out within the test; the other test keeps the
# default, so a busy machine never turns a slow answer into a second attempt.
TIMEOUT_SECONDS = 10.0
KILL_TEST_TIMEOUT_SECONDS = 3.0
# The kill test's receiver answers after this long, so deliveries stay in flight.
SLOW_ANSWER_SECONDS = 0.3
# Deliveries succeeded before a worker is killed.
KILL_AFTER = 100
# How long the receiver may hold its answers back, waiting for every process to have
# CONCURRENCY attempts at it (well within KILL_TEST_TIMEOUT_SECONDS).
HOLD_SECONDS = 0.8
# Generous: the test machine may be busy (the kill test also waits out one lease).
DEADLINE_SECONDS = 60.0
STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class Arrival:
    webhook_id: int
    at: float  # the event loop's clock
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: a tiny HTTP/1.1 server on 127.0.0.1 that keeps every request
    it reads (`arrivals`) and answers 200 once `delay` seconds have passed and `gate` is
    open. `active` counts the requests read and not answered yet."""

    delay: float = 0.0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: list[Arrival] = field(default_factory=list)
    active: int = 0
    most_active: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self.gate.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_active(self, count: int, within: float) -> bool:
        """Whether `count` requests are waiting for their answers within `within` s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within), self._arrived:
                await self._arrived.wait_for(lambda: self.active >= count)
        return self.active >= count

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # a sender that died (the kill test)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not (await reader.readline()).strip():
            return
        headers: dict[str, str] = {}
        while line := (await reader.readline()).decode("latin-1").strip():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        arrived = asyncio.get_running_loop().time()
        self.arrivals.append(Arrival(int(headers["webhook-id"]), arrived, headers, body))
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        async with self._arrived:
            self._arrived.notify_all()
        try:
            await asyncio.sleep(self.delay)
            await self.gate.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        finally:
            self.active -= 1


def _settings(timeout_seconds: float) -> dict[str, Any]:
    """The settings of every process (as `run_servers` takes them: STOREKEEPER_<NAME>)."""
    return {
        "events_interval_seconds": INTERVAL_SECONDS,
        "webhook_allow_private_networks": "true",
        "webhook_timeout_seconds": timeout_seconds,
        "webhook_concurrency_per_endpoint": CONCURRENCY,
        # Four processes on a database server others may share: a modest pool each.
        "db_pool_size": 5,
        "db_max_overflow": 5,
    }


@dataclass
class Fleet:
    cluster: Cluster
    workers: list[subprocess.Popen[bytes]]
    worker_logs: list[Path]
    admin: dict[str, str]

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [*self.workers, *self.cluster.processes]

    def output(self) -> str:
        tails = [log.read_text(errors="replace")[-4000:] for log in self.worker_logs]
        return "\n".join([*tails, self.cluster.output()])


def _start_worker(
    database_url: str, log: Path, settings: dict[str, Any]
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STOREKEEPER_DATABASE_URL": database_url,
        "STOREKEEPER_ENV": "test",
        "STOREKEEPER_SECRET_KEY": SECRET_KEY,
        "STOREKEEPER_LOG_LEVEL": "INFO",
        "STOREKEEPER_LOG_FORMAT": "json",
        "STOREKEEPER_DB_POOL_TIMEOUT_SECONDS": "60",
        **{f"STOREKEEPER_{key.upper()}": str(value) for key, value in settings.items()},
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "storekeeper", "worker"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def _fleet(
    run_servers: ServerRunner, system_db: Database, tmp_path: Path, *, timeout_seconds: float
) -> AsyncIterator[Fleet]:
    """Two workers and two servers, all running the publisher and the sender, every one
    started before the test writes an event (so none gets a head start)."""
    admin = await make_system_user(system_db, Role.ADMIN, "admin@example.com")
    settings = _settings(timeout_seconds)
    logs = [tmp_path / f"worker-{index}.log" for index in range(WORKERS)]
    workers = [_start_worker(system_db.settings.database_url, log, settings) for log in logs]
    try:
        async with run_servers(count=SERVERS, **settings) as cluster:
            fleet = Fleet(cluster, workers, logs, admin)
            deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
            for worker, log in zip(workers, logs, strict=True):
                while '"event": "worker_started"' not in log.read_text(errors="replace"):
                    assert worker.poll() is None, fleet.output()
                    assert asyncio.get_running_loop().time() < deadline, fleet.output()
                    await asyncio.sleep(0.05)
            yield fleet
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


async def _endpoint(fleet: Fleet, url: str) -> str:
    """A webhook endpoint for every event type, made through the admin API (the servers
    allow private networks); returns its secret."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{fleet.cluster.url(0)}/api/v1/webhooks",
            json={"url": url, "event_types": ["*"]},
            headers=fleet.admin,
        )
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


async def _write_events(db: Database, units: int = 4) -> None:
    """EVENTS `stock.low` events, {"n": 1..EVENTS}, in `units` units of work one after the
    other (so event n gets the public id n)."""
    size = EVENTS // units
    for unit in range(units):
        numbers = range(unit * size + 1, (unit + 1) * size + 1)

        async def write(session: AsyncSession, numbers: range = numbers) -> None:
            await outbox.record_many(session, outbox.STOCK_LOW, [{"n": n} for n in numbers])

        await UnitOfWork(db).run(write)


async def _statuses(db: Database) -> Counter[str]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        )
        return Counter(dict(rows.all()))


async def _until_succeeded(
    db: Database, fleet: Fleet, count: int, *, dead: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until `count` deliveries have succeeded; every process but `dead` stays up."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while (statuses := await _statuses(db))[DeliveryStatus.SUCCEEDED] < count:
        for process in fleet.processes():
            assert process is dead or process.poll() is None, fleet.output()
        assert asyncio.get_running_loop().time() < deadline, (statuses, fleet.output())
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Row:
    status: str
    attempts: int
    locked_until: object
    last_status_code: int | None
    last_error: str | None


async def _deliveries(db: Database) -> dict[int, Row]:
    """Every delivery by its event's public id."""
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(
                WebhookDelivery.event_id,
                WebhookDelivery.status,
                WebhookDelivery.attempts,
                WebhookDelivery.locked_until,
                WebhookDelivery.last_status_code,
                WebhookDelivery.last_error,
            )
        )
        return {row[0]: Row(*row[1:]) for row in rows}


async def _feed_ids(fleet: Fleet) -> list[int]:
    """The ids of the events feed, paged through the API of both servers in turn."""
    ids: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        page = 0
        while True:
            after = f"&after={ids[-1]}" if ids else ""
            response = await client.get(
                f"{fleet.cluster.url(page)}/api/v1/events?limit=200{after}", headers=fleet.admin
            )
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            if not items:
                return ids
            assert {item["type"] for item in items} == {outbox.STOCK_LOW}
            ids.extend(item["id"] for item in items)
            page += 1


def _received_ids(receiver: Receiver, secret: str) -> list[int]:
    """The `webhook-id` of every request received, each checked: signed with the
    endpoint's secret, carrying the event of that id (event n is {"n": n})."""
    signer = Webhook(secret)
    for arrival in receiver.arrivals:
        payload = signer.verify(arrival.body, arrival.headers)
        assert payload["id"] == arrival.webhook_id
        assert payload["type"] == outbox.STOCK_LOW and payload["data"] == {"n": arrival.webhook_id}
    return [arrival.webhook_id for arrival in receiver.arrivals]


async def _succeeded_per_server(fleet: Fleet) -> list[int]:
    """The successful attempts each server process counted itself (its own /metrics)."""
    counts = []
    async with httpx.AsyncClient(timeout=30) as client:
        for url in fleet.cluster.urls:
            response = await client.get(f"{url}/metrics")
            assert response.status_code == 200
            samples = [
                sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
                if sample.name == "storekeeper_webhook_delivery_attempts_total"
                and sample.labels == {"outcome": DeliveryStatus.SUCCEEDED}
            ]
            counts.append(int(sum(samples)))
    return counts


async def _kill_with_attempts_in_flight(fleet: Fleet, receiver: Receiver) -> float:
    """SIGKILL the first worker at a moment it has CONCURRENCY attempts at the receiver:
    the receiver holds its answers back until every process has CONCURRENCY attempts
    there (PROCESSES * CONCURRENCY requests read, none answered: one process never has
    more), kills the worker and lets the answers go. Returns when it was killed."""
    victim = fleet.workers[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while loop.time() < deadline:
        receiver.gate.clear()
        try:
            if await receiver.wait_active(PROCESSES * CONCURRENCY, HOLD_SECONDS):
                victim.kill()  # SIGKILL: no clean-up, its leases stay behind
                await asyncio.to_thread(victim.wait)
                return loop.time()
        finally:
            receiver.gate.set()
        await asyncio.sleep(0.5)
    raise AssertionError(f"never {PROCESSES * CONCURRENCY} attempts in flight:\n{fleet.output()}")


@asynccontextmanager
async def _receiver(delay: float = 0.0) -> AsyncIterator[Receiver]:
    receiver = Receiver(delay=delay)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.close()


async def test_every_event_is_delivered_exactly_once_by_processes_side_by_side(
    run_servers: ServerRunner, system_db: Database, tmp_path: Path
) -> None:
    async with (
        _receiver() as receiver,
        _fleet(run_servers, system_db, tmp_path, timeout_seconds=TIMEOUT_SECONDS) as fleet,
    ):
        secret = await _endpoint(fleet, receiver.url)
        await _write_events(system_db)
        await _until_succeeded(system_db, fleet, EVENTS)
        feed = await _feed_ids(fleet)
        by_servers = await _succeeded_per_server(fleet)
        for process in fleet.processes():
            assert process.poll() is None, fleet.output()

    ids = _received_ids(receiver, secret)
    # Every id 1..1000 arrived, and none twice.
    assert sorted(ids) == list(range(1, EVENTS + 1))
    deliveries = await _deliveries(system_db)
    assert sorted(deliveries) == list(range(1, EVENTS + 1))
    assert {row.status for row in deliveries.values()} == {DeliveryStatus.SUCCEEDED}
    assert {row.attempts for row in deliveries.values()} == {1}
    assert {(row.last_status_code, row.last_error) for row in deliveries.values()} == {(200, None)}
    assert {row.locked_until for row in deliveries.values()} == {None}
    assert feed == list(range(1, EVENTS + 1))
    # Side by side: each server made some of the attempts, the workers the rest.
    assert all(count > 0 for count in by_servers), by_servers
    assert sum(by_servers) < EVENTS, by_servers
    # No process had more than CONCURRENCY attempts in flight towards the endpoint.
    assert receiver.most_active <= PROCESSES * CONCURRENCY
    assert "Traceback" not in fleet.output(), fleet.output()


async def test_a_killed_worker_loses_no_delivery_and_repeats_only_its_own(
    run_servers: ServerRunner, system_db: Database, tmp_path: Path
) -> None:
    async with (
        _receiver(delay=SLOW_ANSWER_SECONDS) as receiver,
        _fleet(
            run_servers, system_db, tmp_path, timeout_seconds=KILL_TEST_TIMEOUT_SECONDS
        ) as fleet,
    ):
        secret = await _endpoint(fleet, receiver.url)
        await _write_events(system_db)
        await _until_succeeded(system_db, fleet, KILL_AFTER)
        killed_at = await _kill_with_attempts_in_flight(fleet, receiver)
        await _until_succeeded(system_db, fleet, EVENTS, dead=fleet.workers[0])
        feed = await _feed_ids(fleet)

    ids = _received_ids(receiver, secret)
    deliveries = await _deliveries(system_db)
    # No delivery lost: every id arrived, every delivery succeeded.
    assert set(ids) == set(range(1, EVENTS + 1))
    assert sorted(deliveries) == list(range(1, EVENTS + 1))
    assert {row.status for row in deliveries.values()} == {DeliveryStatus.SUCCEEDED}
    assert {(row.last_status_code, row.last_error) for row in deliveries.values()} == {(200, None)}
    assert {row.locked_until for row in deliveries.values()} == {None}
    assert feed == list(range(1, EVENTS + 1))
    # Every process had exactly CONCURRENCY attempts at the receiver when the worker was
    # killed, and none ever more.
    assert receiver.most_active == PROCESSES * CONCURRENCY

    # The bound: a process has at most CONCURRENCY attempts in flight towards the endpoint,
    # so it holds at most that many leases, and a live process never loses one (its
    # attempt ends within the timeout; the lease lasts LEASE_MARGIN_SECONDS longer). The
    # killed worker had exactly CONCURRENCY attempts in flight, all already received. So
    # exactly CONCURRENCY deliveries were attempted twice, and exactly those ids arrived
    # twice: at most CONCURRENCY * 1 (processes killed) duplicates, here all of them.
    retried = {event_id for event_id, row in deliveries.items() if row.attempts > 1}
    assert {row.attempts for row in deliveries.values()} == {1, 2}
    assert len(retried) == CONCURRENCY, sorted(retried)
    arrivals = Counter(ids)
    duplicated = {event_id for event_id, count in arrivals.items() if count > 1}
    assert duplicated == retried
    assert all(arrivals[event_id] == row.attempts for event_id, row in deliveries.items())
    assert len(ids) == EVENTS + CONCURRENCY
    # Taken over only once the lease had run out: the first arrival came before the kill
    # and within the timeout of the claim, the second after claim + timeout +
    # LEASE_MARGIN_SECONDS, so at least LEASE_MARGIN_SECONDS later.
    for event_id in duplicated:
        first, second = (
            arrival.at for arrival in receiver.arrivals if arrival.webhook_id == event_id
        )
        assert first < killed_at < second, (event_id, first, killed_at, second)
        assert second - first >= LEASE_MARGIN_SECONDS - 0.5, (event_id, second - first)
    assert "Traceback" not in fleet.output(), fleet.output()
