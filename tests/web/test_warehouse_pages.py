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
