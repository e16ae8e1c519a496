"""The benchmark harness's own logic: deep cursors, target verdicts, the table, the client."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
from bench.loadgen import FlowClient, ensure_wrk, percentile
from bench.report import table, targets
from bench.scenarios import Result, deep_cursor

from bench import loadgen, report
from storekeeper.pagination import decode_cursor, encode_cursor


def test_deep_cursor_puts_the_deep_items_key_where_the_last_items_was() -> None:
    first_page = {
        "items": [{"id": 7, "name": "A"}, {"id": 9, "name": "B"}],
        "next_cursor": encode_cursor(["B", 9]),
    }
    cursor = deep_cursor(first_page, {"id": 999_000, "name": "Deep"})
    assert cursor is not None
    assert decode_cursor(cursor, arity=2) == ["Deep", 999_000]


def test_deep_cursor_gives_up_on_a_key_it_cannot_trace_to_a_field() -> None:
    first_page = {"items": [{"id": 9}], "next_cursor": encode_cursor(["2026-11-23", 9])}
    assert deep_cursor(first_page, {"id": 1}) is None
    assert deep_cursor({"items": [], "next_cursor": None}, {"id": 1}) is None


def _result(scenario: str, strategy: str = "-", **fields: object) -> Result:
    return Result(scenario, strategy, **fields)  # type: ignore[arg-type]


def test_targets_are_ratios_within_one_run() -> None:
    results = [
        _result("ceiling-noop", throughput=1000.0),
        _result("ceiling-update", throughput=200.0),
        _result("hot-hold", "atomic", throughput=170.0, p99_ms=150.0),
        _result("spread-hold", "atomic", throughput=400.0),
        _result("browse-first", p50_ms=10.0),
        _result("browse-deep", p50_ms=12.0),
        _result("expiry", "atomic", seconds=4.0),
        _result("expiry", "optimistic", seconds=11.0),
    ]
    verdicts = {
        target.name: (round(target.value or 0, 2), target.met) for target in targets(results)
    }
    assert verdicts == {
        "hot-hold(atomic) / ceiling-update": (0.85, True),
        "spread-hold(atomic) / ceiling-noop": (0.4, False),
        "hot-hold(atomic) p99": (150.0, False),
        "browse deep p50 / first p50": (1.2, True),
        "expiry cleared (slowest strategy)": (11.0, False),
    }


def test_unmeasured_targets_have_no_verdict() -> None:
    assert {target.met for target in targets([])} == {None}


def test_table_lists_skipped_scenarios_with_their_reason() -> None:
    rendered = table(
        [
            _result("ceiling-noop", throughput=1234.5, p50_ms=1.0, p99_ms=2.0, requests=10),
            _result("checkout", "atomic", skipped="service has no /api/v1/carts/me/checkout"),
        ]
    )
    lines = rendered.splitlines()
    assert lines[0].startswith("| scenario")
    assert "1,234.5" in lines[2]
    assert (
        lines[3] == "| checkout     | atomic   | skipped: service has no /api/v1/carts/me/checkout"
    )


def test_ensure_wrk_updates_the_package_lists_before_installing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands: list[list[str]] = []
    installed = False

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        nonlocal installed
        commands.append(command)
        installed = installed or command[1] == "install"
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(loadgen.shutil, "which", lambda name: "/usr/bin/wrk" if installed else None)
    monkeypatch.setattr(loadgen.subprocess, "run", run)
    assert ensure_wrk() == "/usr/bin/wrk"
    assert commands == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "wrk"],
    ]


def test_percentile_picks_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) == 0.0


async def test_flow_client_reads_sized_and_chunked_bodies_on_one_connection() -> None:
    answers = [
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    ]
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            requests.append(head + await reader.readexactly(length))
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = FlowClient(f"http://127.0.0.1:{port}")
    try:
        assert await client.request("POST", "/a", json_body={"x": 1}) == (201, b"ok")
        assert await client.request("GET", "/b", headers={"X-Test": "1"}) == (200, b"abcde")
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    assert requests[0].startswith(b"POST /a HTTP/1.1\r\n")
    assert requests[0].endswith(b'\r\n\r\n{"x":1}')
    assert b"X-Test: 1\r\n" in requests[1]


def test_ratios_are_against_the_lean_floor_within_one_run() -> None:
    results = [
        _result("ceiling-lean-noop", throughput=10_000.0),
        _result("ceiling-lean-update", throughput=2_000.0),
        _result("ceiling-noop", throughput=7_500.0),
        _result("hot-hold", "atomic", throughput=900.0, p99_ms=120.0),
        _result("browse-first", throughput=1_000.0),
        _result("browse-cached", throughput=5_000.0),
        _result("checkout", "atomic", throughput=200.0),
    ]
    verdicts = {
        ratio.name: (round(ratio.value or 0, 3), ratio.met) for ratio in report.ratios(results)
    }
    assert verdicts == {
        "/health / lean noop": (0.75, True),
        "hot-hold(atomic) / lean update": (0.45, False),
        "browse-first (50 products) / lean noop": (0.1, False),
        "browse-cached (Redis) / lean noop": (0.5, True),
        "checkout flows(atomic) / hot-hold(atomic)": (0.222, False),
        "hot-hold(atomic) p99 at 64 clients": (120.0, True),
    }
    shown = report.ratios_table(results).splitlines()
    assert shown[2] == "| /health / lean noop | 0.75 | ≥ 0.7 | met |"
    assert {ratio.met for ratio in report.ratios([])} == {None}
