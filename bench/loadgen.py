"""Load generators: wrk for open-ended throughput runs, a lean asyncio client for flows.

wrk (C, epoll, Lua-scripted requests) drives every scenario that is one request repeated:
it costs a few percent of one core at the rates this service reaches, so on a 2-core
machine it leaves the server and PostgreSQL nearly all of the CPU. Scenarios that are
sequences (a fixed number of sell-out attempts, customers filling carts and checking out)
use `FlowClient`, a keep-alive HTTP/1.1 client on raw asyncio streams (no per-request
object churn of a general-purpose client). Both report the CPU they used, so every result
shows whether the generator could have been the limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

LUA_SCRIPT = Path(__file__).with_name("lua") / "load.lua"
_RESULT_LINE = re.compile(r"^BENCH-JSON (.*)$", re.MULTILINE)


@dataclass
class LoadResult:
    """What one load run measured."""

    requests: int
    seconds: float
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    transport_errors: int
    generator_cpu_seconds: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(str(status), 0) for status in statuses)


def ensure_wrk() -> str:
    """The wrk binary, installed from the distribution's package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    # A fresh machine has empty package lists: install fails without an update first.
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed with apt-get")
    return found


def run_wrk(
    base_url: str,
    *,
    method: str,
    path: str,
    body: str | None = None,
    token: str | None = None,
    sku_prefix: str = "",
    sku_count: int = 0,
    connections: int = 64,
    threads: int = 2,
    seconds: float = 10.0,
    run_id: str = "run",
    header: str | None = None,
) -> LoadResult:
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        method,
        path,
        body or "-",
        token or "-",
        sku_prefix,
        str(sku_count),
        run_id,
        header or "-",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # wait4 hands back the child's own resource usage: the generator's CPU time.
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stdout is not None and process.stderr is not None
    output = process.stdout.read().decode()
    errors = process.stderr.read().decode()
    match = _RESULT_LINE.search(output)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {errors or output}")
    report = json.loads(match.group(1))
    return LoadResult(
        requests=report["requests"],
        seconds=report["duration_us"] / 1e6,
        statuses=report["statuses"],
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        transport_errors=report["socket_errors"] + report["timeouts"],
        generator_cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


class HttpError(Exception):
    """The connection broke or the server answered something that is not HTTP/1.1."""


class FlowClient:
    """One keep-alive HTTP/1.1 connection; requests on it are strictly sequential."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        form: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        reader, writer = await self._connect()
        body = b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if json_body is not None:
            body = orjson.dumps(json_body)
            lines.append("Content-Type: application/json")
        elif form is not None:
            body = form.encode()
            lines.append("Content-Type: application/x-www-form-urlencoded")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            length = None
            chunked = False
            for line in header_lines:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered == "content-length":
                    length = int(value)
                elif lowered == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked:
                payload = await self._read_chunked(reader)
            else:
                payload = await reader.readexactly(length or 0)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError) as exc:
            await self.close()
            raise HttpError(str(exc)) from exc
        return status, payload

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None


Step = Callable[[FlowClient, int], Awaitable[tuple[int, float]]]


async def run_flow(
    base_url: str,
    step: Step,
    *,
    clients: int,
    attempts: int | None = None,
    seconds: float | None = None,
) -> LoadResult:
    """`clients` connections each calling `step(client, attempt_number)` until `attempts`
    steps have been started in total or `seconds` have passed. A step returns the status
    that decides it and the latency in milliseconds of the request being measured."""
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    transport_errors = 0
    started = 0
    deadline = time.monotonic() + seconds if seconds is not None else None

    async def worker() -> None:
        nonlocal started, transport_errors
        client = FlowClient(base_url)
        try:
            while True:
                if attempts is not None and started >= attempts:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                started += 1
                try:
                    status, latency_ms = await step(client, started)
                except HttpError:
                    transport_errors += 1
                    continue
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                latencies.append(latency_ms)
        finally:
            await client.close()

    cpu_before = _own_cpu_seconds()
    wall_before = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.monotonic() - wall_before
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        statuses=statuses,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        transport_errors=transport_errors,
        generator_cpu_seconds=_own_cpu_seconds() - cpu_before,
        latencies_ms=latencies,
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
