"""CSV export of levels and CSV import of stock takes and adjustments."""

from __future__ import annotations

import csv
import io
import os
import resource
import time
import tracemalloc
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from storekeeper.accounts.models import User
from storekeeper.db import Database, utcnow
from storekeeper.errors import RetryableError
from storekeeper.inventory import ledger, transfer
from storekeeper.inventory.models import Location, StockMovement
from tests.inventory.conftest import Receiver, SkuFactory, insert_skus

API = "/api/v1/inventory"
CSV = {"Content-Type": "text/csv"}


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def _post(
    client: httpx.AsyncClient, headers: dict[str, str], body: str | bytes, **params: Any
) -> httpx.Response:
    return await client.post(
        f"{API}/import", headers={**headers, **CSV}, content=body, params=params
    )


async def _on_hand(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> list[Any]:
    body = (await client.get(f"{API}/{sku}", headers=headers)).json()
    return [(level["location"], level["on_hand"]) for level in body["locations"]]


async def test_export_streams_every_level_with_formula_cells_neutralised(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await client.post(
        "/api/v1/locations", headers=staff_headers, json={"code": "-EAST", "name": "East"}
    )
    await make_sku("-SUM")
    await make_sku("PLAIN")
    await receive("-SUM", 5)
    await receive("PLAIN", 3, "-EAST")
    response = await client.get(f"{API}/export.csv", headers=staff_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert _rows(response.text) == [
        ["sku", "location", "on_hand", "reserved", "allocated", "available"],
        ["'-SUM", "MAIN", "5", "0", "0", "5"],
        ["PLAIN", "'-EAST", "3", "0", "0", "3"],
    ]
    only = await client.get(f"{API}/export.csv", headers=staff_headers, params={"location": "main"})
    assert _rows(only.text)[1:] == [["'-SUM", "MAIN", "5", "0", "0", "5"]]
    unknown = await client.get(f"{API}/export.csv", headers=staff_headers, params={"location": "X"})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "validation_error"


async def test_stock_take_sets_on_hand_and_reports_each_row(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("T-1")
    await make_sku("T-2")
    await make_sku("T-3")
    await receive("T-1", 10)
    await receive("T-2", 4)
    body = "sku,location,counted\nt-1,MAIN,7\nT-2,,4\nT-3,MAIN,9\n"
    dry = await _post(client, staff_headers, body, dry_run="true")
    assert dry.status_code == 200
    report = dry.json()
    assert (report["applied"], report["unchanged"], report["failed"]) == (2, 1, 0)
    assert report["rows"] == [
        {"row": 1, "sku": "T-1", "location": "MAIN", "status": "applied", "delta": -3},
        {"row": 2, "sku": "T-2", "location": "MAIN", "status": "unchanged", "delta": 0},
        {"row": 3, "sku": "T-3", "location": "MAIN", "status": "applied", "delta": 9},
    ]
    assert await _on_hand(client, staff_headers, "T-1") == [("MAIN", 10)]
    applied = await _post(client, staff_headers, body)
    assert applied.status_code == 200
    assert applied.json() == report
    assert await _on_hand(client, staff_headers, "T-1") == [("MAIN", 7)]
    assert await _on_hand(client, staff_headers, "T-3") == [("MAIN", 9)]
    movements = (await client.get(f"{API}/T-1/movements", headers=staff_headers)).json()["items"]
    assert (movements[0]["kind"], movements[0]["reason"], movements[0]["on_hand_delta"]) == (
        "adjust",
        "count",
        -3,
    )
    consistency = (await client.get(f"{API}/consistency", headers=staff_headers)).json()
    assert consistency["is_consistent"] is True


async def test_one_bad_row_applies_nothing_and_reports_every_failure(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("D-1")
    await make_sku("D-2")
    await receive("D-1", 5)
    hold = await client.post(
        f"{API}/holds",
        headers=staff_headers,
        json={"client_token": "t", "items": [{"sku": "D-1", "quantity": 4}]},
    )
    assert hold.status_code == 201
    body = (
        "sku,location,delta,reason\n"
        "D-2,MAIN,8,receive\n"
        "D-1,MAIN,-2,damage\n"
        "NOPE,MAIN,1,receive\n"
        "D-2,MARS,1,receive\n"
        "D-2,MAIN,0,receive\n"
        "D-2,MAIN,x,receive\n"
        "D-2,MAIN,1,stolen\n"
        "D-2,MAIN,1\n"
    )
    response = await _post(client, staff_headers, body)
    assert response.status_code == 422
    report = response.json()
    assert report["code"] == "validation_error"
    assert (report["applied"], report["failed"]) == (1, 7)
    statuses = [(row["row"], row["status"]) for row in report["rows"]]
    assert statuses == [(1, "applied")] + [(n, "failed") for n in range(2, 9)]
    errors = {row["row"]: row["error"] for row in report["rows"] if row["status"] == "failed"}
    assert "below zero" in errors[2]
    assert "unknown SKU" in errors[3]
    assert "unknown location" in errors[4]
    assert "non-zero" in errors[5] and "non-zero" in errors[6]
    assert "reason" in errors[7]
    assert "4 cells" in errors[8]
    assert [error["loc"] for error in report["errors"]] == [["body", n] for n in range(2, 9)]
    assert await _on_hand(client, staff_headers, "D-2") == []
    # A count below what is reserved and allocated fails too.
    response = await _post(client, staff_headers, "sku,location,counted\nD-1,MAIN,3\n")
    assert response.status_code == 422
    assert "below the 4 units" in response.json()["rows"][0]["error"]
    duplicate = await _post(client, staff_headers, "sku,location,counted\nD-1,,6\nD-1,MAIN,7\n")
    assert duplicate.status_code == 422
    assert "earlier row" in duplicate.json()["rows"][1]["error"]


async def test_file_shape_refusals(
    client: httpx.AsyncClient, staff_headers: dict[str, str], customer_headers: dict[str, str]
) -> None:
    cases: list[tuple[bytes, str]] = [
        ("sku,location,counted\nCAFÉ,MAIN,1\n".encode("latin-1"), "UTF-8"),
        (b"sku,where,counted\nA,MAIN,1\n", "header"),
        (b"", "empty"),
        (b"sku,location,counted\n", "no rows"),
        (
            ("sku,location,counted\n" + "A,MAIN,1\n" * 10_001).encode(),
            "more than 10,000 rows",
        ),
    ]
    for body, words in cases:
        response = await _post(client, staff_headers, body)
        assert response.status_code == 422, words
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "validation_error"
        assert words in response.json()["detail"], response.json()["detail"]
    wrong_type = await client.post(
        f"{API}/import",
        headers={**staff_headers, "Content-Type": "application/json"},
        content=b"{}",
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["code"] == "unsupported_media_type"
    assert (await _post(client, customer_headers, b"sku,location,counted\n")).status_code == 403


async def test_idempotency_key_applies_a_file_once(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("K-1")
    keyed = {**staff_headers, "Idempotency-Key": "take-1"}
    body = "sku,location,delta,reason\nK-1,MAIN,5,receive\n"
    first = await _post(client, keyed, body)
    again = await _post(client, keyed, body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert await _on_hand(client, staff_headers, "K-1") == [("MAIN", 5)]
    other = await _post(client, keyed, "sku,location,delta,reason\nK-1,MAIN,6,receive\n")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # A refused file does not take the key.
    refused_key = {**staff_headers, "Idempotency-Key": "take-2"}
    assert (await _post(client, refused_key, "sku,location,counted\nNOPE,,1\n")).status_code == 422
    assert (await _post(client, refused_key, body)).status_code == 200
    assert await _on_hand(client, staff_headers, "K-1") == [("MAIN", 10)]


async def test_ten_thousand_rows_in_a_few_statements(
    client: httpx.AsyncClient, staff_headers: dict[str, str], db: Database, staff_user: User
) -> None:
    codes = [f"BULK-{n:05d}" for n in range(10_000)]
    async with db.transaction() as session:
        await insert_skus(session, codes)
    body = "sku,location,counted\n" + "".join(
        f"{code},MAIN,{n % 50 + 1}\n" for n, code in enumerate(codes)
    )
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        response = await _post(client, staff_headers, body)
    finally:
        elapsed = time.perf_counter() - started
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert response.status_code == 200, response.text[:500]
    assert response.json()["applied"] == 10_000
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    # One INSERT of the new levels and one of the ledger rows, plus the import's own and the
    # announcement's writes; never a statement per row.
    assert len(writes) <= 6, len(writes)
    assert len(statements) <= 30, len(statements)
    async with db.transaction(write=False) as session:
        ledger_rows = (await session.execute(select(func.count(StockMovement.id)))).scalar_one()
    assert ledger_rows == 10_000
    if os.environ.get("STOREKEEPER_REPORT_IMPORT"):
        print(
            f"\nimport of 10,000 rows: {elapsed:.2f} s, {len(statements)} statements "
            f"({len(writes)} writes), peak RSS {rss_before // 1024} -> {rss_after // 1024} MiB"
        )
    # The same work without the HTTP test client: parse and the unit of work alone.
    deltas = "sku,location,delta,reason\n" + "".join(f"{code},MAIN,1,receive\n" for code in codes)
    tracemalloc.start()
    started = time.perf_counter()
    parsed = transfer.parse_import(deltas.encode())
    async with db.transaction() as session:
        report = await transfer.import_stock(
            session, parsed, dry_run=False, idempotency_key=None, actor_id=staff_user.id
        )
    service_elapsed = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.applied == 10_000
    assert report.write_statements == 2  # one UPDATE of the levels, one INSERT of the ledger
    if os.environ.get("STOREKEEPER_REPORT_IMPORT"):
        print(
            f"service alone (parse + unit of work): {service_elapsed:.2f} s, "
            f"{report.write_statements} write statements, Python heap peak "
            f"{traced_peak / 2**20:.1f} MiB"
        )
    # A bad row among 10,000: nothing applied.
    bad = body.replace("BULK-05000,MAIN", "BULK-XXXXX,MAIN")
    response = await _post(client, staff_headers, bad.replace(",MAIN,", ",MAIN,1"))
    assert response.status_code == 422
    assert response.json()["failed"] == 1
    async with db.transaction(write=False) as session:
        assert (await session.execute(select(func.count(StockMovement.id)))).scalar_one() == 20_000


async def test_a_level_created_meanwhile_makes_the_import_retry(
    db: Database, make_sku: SkuFactory, receive: Receiver, postgres_only: None
) -> None:
    """PostgreSQL: a level the import found missing (so could not lock) but that exists by
    the time it writes means its figures were decided on stale reads: retry, write nothing."""
    sku_id = await make_sku("RACE-1")
    await receive("RACE-1", 2)  # the level exists now; the change below thinks it does not
    async with db.transaction() as session:
        location_id = (
            await session.execute(select(Location.id).where(Location.code == "MAIN"))
        ).scalar_one()
    change = ledger.OnHandChange(sku_id, location_id, None, 5, "adjust", "count")
    with pytest.raises(RetryableError):
        async with db.transaction() as session:
            await ledger.change_on_hand_set(
                session, [change], created_at=utcnow(), reference=None, note=None, actor_id=None
            )
    async with db.transaction(write=False) as session:
        rows = (await session.execute(select(func.count(StockMovement.id)))).scalar_one()
    assert rows == 1  # only the receipt
