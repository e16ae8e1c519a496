"""Server processes under test, started with the production settings the README documents,
and the CPU time they (and the database backends serving them) spend during a run."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.database import REPO, STOREKEEPER
from storekeeper.cli import WORKER_HEALTHCHECK_SECONDS

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ServerSettings:
    """What an operator sets for production, per README "Running on PostgreSQL"."""

    database_url: str
    locking: str = "atomic"
    workers: int = 2
    pool_size: int = 10
    max_overflow: int = 0
    expiry_interval_seconds: float = 1.0
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    # More STOREKEEPER_* settings for one scenario's server (Redis for `browse-cached`).
    extra: tuple[tuple[str, str], ...] = ()

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "STOREKEEPER_ENV": "production",
            "STOREKEEPER_SECRET_KEY": self.secret_key,
            "STOREKEEPER_DATABASE_URL": self.database_url,
            "STOREKEEPER_LOCKING": self.locking,
            "STOREKEEPER_DB_POOL_SIZE": str(self.pool_size),
            "STOREKEEPER_DB_MAX_OVERFLOW": str(self.max_overflow),
            "STOREKEEPER_LOG_LEVEL": "WARNING",
            "STOREKEEPER_RATE_LIMIT_ENABLED": "false",
            "STOREKEEPER_EXPIRY_INTERVAL_SECONDS": str(self.expiry_interval_seconds),
            **dict(self.extra),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    workers: int
    restarts_seen: int = 0

    def new_worker_restarts(self) -> int:
        """Workers the supervisor replaced since the last call, because they exited or
        missed its health check (a worker starved of CPU looks hung to it)."""
        try:
            restarts = self.log_path.read_text(errors="replace").count("] died")
        except OSError:
            return 0
        new, self.restarts_seen = restarts - self.restarts_seen, restarts
        return new

    def process_ids(self) -> list[int]:
        """The server's own process and its workers."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            pids.extend(int(pid) for pid in children.read_text().split())
        return pids


def _command(app: str, port: int, workers: int) -> list[str]:
    if app == "service":
        return [
            str(STOREKEEPER),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    # The ceiling app, with the options `storekeeper serve` passes to uvicorn.
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
        "--timeout-worker-healthcheck",
        str(WORKER_HEALTHCHECK_SECONDS),
    ]


@contextlib.contextmanager
def serve(
    settings: ServerSettings, log_dir: Path, *, app: str = "service", label: str = "server"
) -> Iterator[RunningServer]:
    """A server on a free port, ready to answer; stopped (and its workers with it) on exit,
    whatever happens inside."""
    port = free_port()
    log_path = log_dir / f"{label}-{port}.log"
    env = settings.environment()
    if app != "service" and settings.workers > 1:
        # What `storekeeper serve` does for several workers: metrics shared through files.
        env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tempfile.mkdtemp(dir=log_dir)))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _command(app, port, settings.workers),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(process, f"http://127.0.0.1:{port}", log_path, settings.workers)
    try:
        _wait_ready(server)
        server.new_worker_restarts()
        yield server
    finally:
        _stop(process)


def _wait_ready(server: RunningServer, within_seconds: float = 120.0) -> None:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}; log: {server.log_path}\n"
                + server.log_path.read_text()[-2000:]
            )
        with contextlib.suppress(httpx.HTTPError):
            answered = httpx.get(f"{server.base_url}/health/ready", timeout=2).status_code
            # With several workers, wait until they exist, not only the first to answer.
            workers_up = server.workers == 1 or len(server.process_ids()) > server.workers
            if answered == 200 and workers_up:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not become ready; log: {server.log_path}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the given processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds over all cores, elapsed wall seconds times cores) from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS
