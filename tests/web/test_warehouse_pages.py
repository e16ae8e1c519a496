"""Warehouse additions to the stock pages: stock as of a time, kept reconciliation runs."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import update

from storekeeper.accounts.models import User
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import StockLevel
from tests.web.conftest import SignIn, csrf_of
from tests.web.shop import stocked_shop


async def _adjust(client: httpx.AsyncClient, code: str, **data: str) -> httpx.Response:
    page = await client.get(f"/admin/stock/{code}")
    return await client.post(
        f"/admin/stock/{code}/adjustments", data={**data, "csrf_token": csrf_of(page)}
    )


async def test_stock_page_shows_figures_as_of_the_picked_time(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"PICK-1": 0})
    await sign_in("staff@example.com")
    page = (await client.get("/admin/stock/PICK-1")).text
    assert 'type="datetime-local"' in page
    assert (
        await _adjust(client, "PICK-1", delta="5", reason="receive", location="", note="")
    ).status_code == 303
    await asyncio.sleep(1.1)  # the picker has whole seconds
    between = utcnow().replace(microsecond=0)
    await asyncio.sleep(1.1)
    assert (
        await _adjust(client, "PICK-1", delta="7", reason="receive", location="", note="")
    ).status_code == 303
    now = (await client.get("/admin/stock/PICK-1")).text
    assert '<dd data-figure="on-hand">12</dd>' in now
    past = await client.get(
        "/admin/stock/PICK-1", params={"as_of": between.strftime("%Y-%m-%dT%H:%M:%S")}
    )
    assert past.status_code == 200
    assert '<dd data-figure="on-hand">5</dd>' in past.text
    assert "Figures as they stood at" in past.text
    bad = await client.get("/admin/stock/PICK-1", params={"as_of": "yesterday"})
    assert bad.status_code == 422
    assert 'id="as_of-error"' in bad.text


async def test_consistency_page_lists_runs_and_shows_a_runs_issues(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"RUN-1": 4})
    await sign_in("staff@example.com")
    page = await client.get("/admin/consistency")
    assert "No runs recorded yet." in page.text
    recorded = await client.post("/admin/consistency/runs", data={"csrf_token": csrf_of(page)})
    assert recorded.status_code == 303
    first = int(recorded.headers["location"].rsplit("/", 1)[1])
    async with db.transaction() as session:
        await session.execute(update(StockLevel).values(reserved=StockLevel.reserved + 1))
    page = await client.get("/admin/consistency")
    recorded = await client.post("/admin/consistency/runs", data={"csrf_token": csrf_of(page)})
    second = int(recorded.headers["location"].rsplit("/", 1)[1])
    listing = (await client.get("/admin/consistency")).text
    assert re.findall(r'<tr data-run="(\d+)">', listing) == [str(second), str(first)]
    detail = (await client.get(f"/admin/consistency/runs/{second}")).text
    assert "data-run-issues" in detail
    assert "reserved_matches_holds" in detail
    clean = (await client.get(f"/admin/consistency/runs/{first}")).text
    assert 'data-consistent="true"' in clean
    assert (await client.get("/admin/consistency/runs/99999")).status_code == 404
    no_csrf = await client.post("/admin/consistency/runs", data={})
    assert no_csrf.status_code in (400, 403)


async def test_stock_list_exports_and_imports_with_a_preview(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"IMP-1": 3, "IMP-2": 0})
    await sign_in("staff@example.com")
    listing = (await client.get("/admin/stock")).text
    assert 'href="/admin/stock/export.csv"' in listing
    assert 'href="/admin/stock/import"' in listing
    exported = await client.get("/admin/stock/export.csv")
    assert exported.status_code == 200
    assert exported.text.splitlines()[0] == "sku,location,on_hand,reserved,allocated,available"
    assert "IMP-1,MAIN,3,0,0,3" in exported.text

    page = await client.get("/admin/stock/import")
    token = csrf_of(page)
    file = b"sku,location,counted\nIMP-1,MAIN,5\nIMP-2,,0\n"
    preview = await client.post(
        "/admin/stock/import",
        data={"csrf_token": token, "action": "preview"},
        files={"file": ("take.csv", file, "text/csv")},
    )
    assert preview.status_code == 200
    assert re.findall(r'<tr data-status="(\w+)">', preview.text) == ["applied", "unchanged"]
    assert "1 to change, 1 unchanged, 0 failed." in preview.text
    stock = (await client.get("/admin/stock/IMP-1")).text
    assert '<dd data-figure="on-hand">3</dd>' in stock  # the preview changed nothing
    content = re.search(r'<textarea name="content"[^>]*>([^<]*)</textarea>', preview.text)
    assert content is not None
    applied = await client.post(
        "/admin/stock/import",
        data={"csrf_token": token, "action": "apply", "content": content.group(1)},
    )
    assert applied.status_code == 303
    stock = (await client.get("/admin/stock/IMP-1")).text
    assert '<dd data-figure="on-hand">5</dd>' in stock

    refused = await client.post(
        "/admin/stock/import",
        data={"csrf_token": token, "action": "preview"},
        files={"file": ("bad.csv", b"sku,location,counted\nNOPE,MAIN,1\n", "text/csv")},
    )
    assert refused.status_code == 422
    assert "unknown SKU" in refused.text
    assert 'name="content"' not in refused.text
    not_csv = await client.post(
        "/admin/stock/import",
        data={"csrf_token": token, "action": "preview"},
        files={"file": ("x.csv", b"\xff\xfe", "text/csv")},
    )
    assert not_csv.status_code == 422
    assert "data-import-error" in not_csv.text
