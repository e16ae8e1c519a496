"""The dashboard's figures, low-stock list, recent movements and chart (no browser)."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from storekeeper.accounts.models import User
from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import (
    Location,
    Reservation,
    ReservationStatus,
    StockLevel,
    StockMovement,
)
from storekeeper.web import charts, dashboard, router
from storekeeper.web.dashboard import chart_days
from tests.catalog.conftest import StatementCounter
from tests.web.conftest import SignIn, count_statements


async def _shop_with_ledger(db: Database) -> None:
    """Two SKUs at MAIN with ledger rows written as the inventory service writes them."""
    now = utcnow()
    async with db.transaction() as session:
        main = await session.scalar(select(Location).where(Location.code == "MAIN"))
        assert main is not None
        category = Category(name="Tools", path="/", depth=0)
        session.add(category)
        await session.flush()
        category.path = f"/{category.id}/"
        product = Product(name="Hammer", category_id=category.id)
        session.add(product)
        await session.flush()
        plenty = Sku(code="HAMMER-L", product_id=product.id, price_cents=1999, currency="USD")
        scarce = Sku(code="HAMMER-S", product_id=product.id, price_cents=999, currency="USD")
        session.add_all([plenty, scarce])
        await session.flush()
        session.add_all(
            [
                StockLevel(sku_id=plenty.id, location_id=main.id, on_hand=12, allocated=0),
                StockLevel(sku_id=scarce.id, location_id=main.id, on_hand=3, reserved=1),
            ]
        )
        ledger = [
            (plenty.id, "receive", 5, 0, 0, "receive", now - timedelta(days=2)),
            (plenty.id, "receive", 10, 0, 0, "receive", now),
            (plenty.id, "allocate", 0, 0, 3, None, now),
            (plenty.id, "fulfil", -3, 0, -3, None, now),
            (scarce.id, "receive", 4, 0, 0, "receive", now),
            (scarce.id, "adjust", -1, 0, 0, "damage", now),
            (scarce.id, "hold", 0, 1, 0, None, now),
            (plenty.id, "receive", 7, 0, 0, "receive", now - timedelta(days=45)),
            (plenty.id, "adjust", -7, 0, 0, "loss", now - timedelta(days=44)),
        ]
        session.add_all(
            StockMovement(
                sku_id=sku_id,
                location_id=main.id,
                kind=kind,
                on_hand_delta=on_hand,
                reserved_delta=reserved,
                allocated_delta=allocated,
                reason=reason,
                created_at=at,
            )
            for sku_id, kind, on_hand, reserved, allocated, reason, at in ledger
        )
        session.add_all(
            Reservation(
                client_token=token,
                request_fingerprint="0" * 64,
                status=ReservationStatus.HELD.value,
                expires_at=expires_at,
            )
            for token, expires_at in (
                (uuid.uuid4().hex, now + timedelta(minutes=10)),
                (uuid.uuid4().hex, now - timedelta(minutes=1)),
            )
        )


async def test_dashboard_shows_figures_low_stock_movements_and_chart(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await _shop_with_ledger(db)
    await sign_in("staff@example.com")
    page = (await client.get("/admin")).text

    assert '<dd data-figure="skus">2</dd>' in page
    assert '<dd data-figure="units-on-hand">15</dd>' in page
    # The expired hold no longer counts.
    assert '<dd data-figure="active-holds">1</dd>' in page
    assert '<dd data-figure="orders-pending">0</dd>' in page
    # Low stock at the default threshold (5): only HAMMER-S, with 2 available.
    assert 'href="/admin/stock/HAMMER-S">HAMMER-S</a></td><td>MAIN</td>' in page
    assert 'href="/admin/stock/HAMMER-L">HAMMER-L</a></td><td>MAIN</td>' not in page
    # The chart covers 30 days: received 5 + 10 + 4, shipped 3; the 45-day-old row is out.
    today = utcnow().date()
    assert f"<title>Received {today:%Y-%m-%d}: 14</title>" in page
    assert f"<title>Received {today - timedelta(days=2):%Y-%m-%d}: 5</title>" in page
    assert f"<title>Shipped {today:%Y-%m-%d}: 3</title>" in page
    assert "19 units received and 3 shipped" in page
    assert page.count('<td class="nowrap">') == 9

    wider = (await client.get("/admin?threshold=20")).text
    assert 'href="/admin/stock/HAMMER-L">HAMMER-L</a></td><td>MAIN</td>' in wider


async def test_dashboard_threshold_out_of_range_is_a_clear_page(
    client: httpx.AsyncClient, sign_in: SignIn, staff_user: User
) -> None:
    await sign_in("staff@example.com")
    for value in ("-1", "10" * 30, "many"):
        response = await client.get(f"/admin?threshold={value}")
        assert response.status_code == 400
        assert "The address of this page is not valid." in response.text


def test_chart_days_end_today_and_cover_thirty_days() -> None:
    days = chart_days(date(2026, 3, 1))
    assert len(days) == 30
    assert days[0] == date(2026, 1, 31)
    assert days[-1] == date(2026, 3, 1)


def test_nice_ceiling_gives_round_axis_tops() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 1, 3, 7, 11, 24, 26, 999, 10**12 + 1)] == [
        1,
        1,
        5,
        10,
        20,
        25,
        50,
        1000,
        2 * 10**12,
    ]


def test_chart_escapes_labels_and_draws_no_bar_for_zero() -> None:
    svg = charts.bar_chart(
        [date(2026, 1, 1), date(2026, 1, 2)],
        [charts.Series("<script>", [0, 4], "chart-received")],
        title="A & B",
        description="d",
        chart_id="c",
    )
    assert "<script>" not in svg
    assert "&lt;script&gt; 2026-01-02: 4" in svg
    assert "A &amp; B" in svg
    assert svg.count('<rect class="chart-received"') == 1


def test_chart_has_a_tooltip_for_every_day_value_labels_and_visible_small_bars() -> None:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(30)]
    received = [0] * 30
    shipped = [0] * 30
    received[-1], shipped[-1], shipped[-2] = 4_000, 3, 1
    svg = str(
        charts.bar_chart(
            days,
            [
                charts.Series("Received", received, "chart-received"),
                charts.Series("Shipped", shipped, "chart-shipped"),
            ],
            title="t",
            description="d",
            chart_id="c",
        )
    )
    # Every day, bars or not, answers a hover with all its figures.
    tooltips = re.findall(r'<rect class="chart-hit"[^>]*><title>([^<]*)</title>', svg)
    assert len(tooltips) == 30
    assert tooltips[0] == "2026-01-01: Received 0, Shipped 0"
    assert tooltips[-1] == "2026-01-30: Received 4,000, Shipped 3"
    # Few bars: each carries its figure.
    values = re.findall(r'<text class="chart-value"[^>]*>([^<]*)</text>', svg)
    assert values == ["4,000", "1", "3"]
    # One shipped unit beside 4,000 received is still a bar one can see and point at.
    heights = [
        float(h) for h in re.findall(r'<rect class="chart-shipped"[^>]*height="([\d.]+)"', svg)
    ]
    assert len(heights) == 2
    assert min(heights) >= charts.MIN_BAR_HEIGHT == 3
    assert '<text class="chart-axis"' in svg
    assert ">units</text>" in svg


def test_chart_with_many_bars_leaves_the_figures_to_the_tooltips() -> None:
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(30)]
    svg = str(
        charts.bar_chart(
            days,
            [charts.Series("Received", list(range(1, 31)), "chart-received")],
            title="t",
            description="d",
            chart_id="c",
        )
    )
    assert svg.count('<rect class="chart-received"') == 30
    assert 'class="chart-value"' not in svg


async def _low_shop(db: Database) -> None:
    """KEEN (8 on hand, its own threshold 10), LAX (3 on hand, its own threshold 1) and 23
    SKUs without stock or a threshold of their own, all at MAIN."""
    async with db.transaction() as session:
        main = await session.scalar(select(Location).where(Location.code == "MAIN"))
        assert main is not None
        category = Category(name="Tools", path="/", depth=0)
        session.add(category)
        await session.flush()
        category.path = f"/{category.id}/"
        product = Product(name="Hammer", category_id=category.id)
        session.add(product)
        await session.flush()
        stocked = [("KEEN", 8, 10), ("LAX", 3, 1)] + [
            (f"EMPTY-{n:02d}", 0, None) for n in range(23)
        ]
        for code, on_hand, threshold in stocked:
            sku = Sku(
                code=code,
                product_id=product.id,
                price_cents=100,
                currency="USD",
                low_stock_threshold=threshold,
            )
            session.add(sku)
            await session.flush()
            session.add(StockLevel(sku_id=sku.id, location_id=main.id, on_hand=on_hand))


def _low_rows(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-low="([A-Z0-9-]+)">', page.text)


async def test_low_stock_uses_each_skus_threshold_counts_all_and_links_the_full_list(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    db: Database,
    staff_user: User,
    statement_counter: StatementCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _low_shop(db)
    await sign_in("staff@example.com")

    board = await client.get("/admin")
    rows = _low_rows(board)
    # KEEN is low by its own threshold (8 <= 10), LAX is not (3 > 1) though the default is 5.
    assert len(rows) == dashboard.LOW_STOCK_ROWS == 20
    assert rows[:3] == ["EMPTY-00", "EMPTY-01", "EMPTY-02"]
    assert "LAX" not in rows
    assert 'data-low-count="24">24 levels at or below their low-stock threshold' in board.text
    assert '<a href="/admin/low-stock">See all 24</a>' in board.text

    asked = await client.get("/admin?threshold=3")
    assert 'data-low-count="24">24 levels with at most 3 units available' in asked.text
    assert '<a href="/admin/low-stock?threshold=3">See all 24</a>' in asked.text

    monkeypatch.setattr(router, "LOW_STOCK_PAGE_SIZE", 10)
    first_cost, first = await count_statements(statement_counter, client, "/admin/low-stock")
    assert len(_low_rows(first)) == 10
    assert 'href="/admin/low-stock?page=2" rel="next"' in first.text
    last_cost, last = await count_statements(statement_counter, client, "/admin/low-stock?page=3")
    assert _low_rows(last) == ["EMPTY-20", "EMPTY-21", "EMPTY-22", "KEEN"]
    assert "rows 21\N{EN DASH}24." in last.text
    assert 'rel="next"' not in last.text
    # One statement for the rows and their count, whatever the page holds.
    assert first_cost == last_cost
    everything = await client.get("/admin/low-stock?threshold=8")
    assert 'data-low-count="25"' in everything.text
    assert (await client.get("/admin/low-stock?page=0")).status_code == 400


def test_step_chart_has_a_tooltip_for_every_day() -> None:
    days = [date(2026, 1, 1), date(2026, 1, 2)]
    svg = str(charts.step_chart(days, [0, 1_200], title="t", description="d", chart_id="c"))
    assert re.findall(r'<rect class="chart-hit"[^>]*><title>([^<]*)</title>', svg) == [
        "2026-01-01: 0 on hand",
        "2026-01-02: 1,200 on hand",
    ]
