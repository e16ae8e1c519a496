"""Staff web sessions are recorded server-side: signing out ends the session for every copy
of its cookie, and a password change, a deactivation or a role change ends them all."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from structlog.testing import capture_logs

from storekeeper.accounts.models import User
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.inventory.models import StockLevel
from storekeeper.web.security import SESSION_COOKIE
from tests.conftest import TEST_PASSWORD, bearer
from tests.web.conftest import SignIn, csrf_of
from tests.web.shop import stocked_shop


def _session_cookie(client: httpx.AsyncClient) -> str:
    cookie = client.cookies.get(SESSION_COOKIE, path="/admin")
    assert cookie
    return cookie


async def _on_hand(db: Database) -> int:
    async with db.transaction(write=False) as session:
        return int((await session.scalars(select(StockLevel.on_hand))).one())


async def test_a_cookie_replayed_after_sign_out_reaches_nothing(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"HAM-1": 5})
    await sign_in(staff_user.email)
    stolen = _session_cookie(client)
    page = await client.get("/admin/stock/HAM-1")
    token = csrf_of(page)
    with capture_logs() as logs:
        signed_out = await client.post("/admin/sign-out", data={"csrf_token": token})
    assert signed_out.status_code == 303
    assert [e["event"] for e in logs if e["event"] == "signed_out"] == ["signed_out"]

    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, stolen, path="/admin")
    replayed = await client.get("/admin")
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/admin/sign-in")
    change = await client.post(
        "/admin/stock/HAM-1/adjustments",
        data={
            "delta": "50",
            "reason": "receive",
            "location": "",
            "note": "",
            "csrf_token": token,
        },
    )
    assert change.status_code == 303
    assert change.headers["location"].startswith("/admin/sign-in")
    assert await _on_hand(db) == 5


async def test_a_sign_in_is_recorded_and_its_csrf_tokens_work(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"HAM-1": 5})
    from storekeeper.accounts.models import SignIn as SignInRow

    assert (await sign_in(staff_user.email)).status_code == 303
    async with db.transaction(write=False) as session:
        rows = (await session.scalars(select(SignInRow))).all()
    assert [(row.user_id, row.kind, row.ended_at) for row in rows] == [(staff_user.id, "web", None)]
    page = await client.get("/admin/stock/HAM-1")
    adjusted = await client.post(
        "/admin/stock/HAM-1/adjustments",
        data={
            "delta": "3",
            "reason": "receive",
            "location": "",
            "note": "",
            "csrf_token": csrf_of(page),
        },
    )
    assert adjusted.status_code == 303
    assert adjusted.headers["location"] == "/admin/stock/HAM-1"
    assert await _on_hand(db) == 8


async def test_a_password_change_ends_the_web_sessions(
    client: httpx.AsyncClient, sign_in: SignIn, settings: Settings, staff_user: User
) -> None:
    await sign_in(staff_user.email)
    assert (await client.get("/admin")).status_code == 200
    changed = await client.patch(
        "/api/v1/users/me",
        headers=bearer(settings, staff_user),
        json={"password": "a fresh and long passphrase 42", "current_password": TEST_PASSWORD},
    )
    assert changed.status_code == 200
    assert (await client.get("/admin")).status_code == 303


async def test_a_role_change_ends_the_web_sessions(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    settings: Settings,
    admin_user: User,
    staff_user: User,
    admin_headers: dict[str, str],
) -> None:
    await sign_in(admin_user.email)
    assert (await client.get("/admin")).status_code == 200
    # The new role, staff, is still let into the pages: only the ended session sends the
    # browser back to the sign-in page. (Another admin must exist for this one to step down.)
    promoted = await client.patch(
        f"/api/v1/users/{staff_user.id}", headers=admin_headers, json={"role": "admin"}
    )
    assert promoted.status_code == 200
    demoted = await client.patch(
        f"/api/v1/users/{admin_user.id}",
        headers=bearer(settings, staff_user),
        json={"role": "staff"},
    )
    assert demoted.status_code == 200, demoted.text
    assert (await client.get("/admin")).status_code == 303


async def test_a_csrf_refusal_is_audited_with_the_acting_user(
    client: httpx.AsyncClient, sign_in: SignIn, staff_user: User
) -> None:
    await sign_in(staff_user.email)
    with capture_logs() as logs:
        refused = await client.post("/admin/sign-out", data={"csrf_token": "0" * 64})
    assert refused.status_code == 403
    audited = [e for e in logs if e["event"] == "csrf_refused"]
    assert len(audited) == 1
    assert audited[0]["actor_id"] == staff_user.id
    assert audited[0]["path"] == "/admin/sign-out"
