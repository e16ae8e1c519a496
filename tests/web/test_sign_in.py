"""Sign-in, sign-out, redirects, role refusal and CSRF on the staff pages (no browser)."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update
from starlette.responses import Response

from storekeeper.accounts.models import Role, User
from storekeeper.config import Environment, Settings
from storekeeper.db import Database
from storekeeper.web.security import SESSION_COOKIE, read_session, start_session
from storekeeper.web.sign_in import NOT_STAFF, WRONG_CREDENTIALS
from tests.conftest import bearer
from tests.web.conftest import SignIn, csrf_of


def _session_cookie_header(response: httpx.Response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)]
    assert len(headers) == 1
    return headers[0]


async def test_pages_redirect_to_sign_in_when_signed_out(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin?threshold=3")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/sign-in?next=%2Fadmin%3Fthreshold%3D3"


async def test_staff_signs_in_and_sees_the_dashboard(
    client: httpx.AsyncClient, sign_in: SignIn, staff_user: User
) -> None:
    response = await sign_in("STAFF@example.com")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = _session_cookie_header(response).lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/admin" in cookie
    assert "secure" not in cookie

    page = await client.get("/admin")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Dashboard</h1>" in page.text
    assert "staff@example.com" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


async def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(
    client: httpx.AsyncClient, sign_in: SignIn, admin_user: User
) -> None:
    response = await sign_in("admin@example.com", next_path="/admin?threshold=2")
    assert response.headers["location"] == "/admin?threshold=2"
    client.cookies.clear()
    response = await sign_in("admin@example.com", next_path="//evil.example/admin")
    assert response.headers["location"] == "/admin"


async def test_customer_is_refused_with_a_clear_message(
    client: httpx.AsyncClient, sign_in: SignIn, customer_user: User
) -> None:
    response = await sign_in("customer@example.com")
    assert response.status_code == 400
    assert NOT_STAFF in response.text
    assert SESSION_COOKIE not in response.cookies
    assert (await client.get("/admin")).status_code == 303


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    sign_in: SignIn, staff_user: User
) -> None:
    wrong = await sign_in("staff@example.com", password="not the password")
    unknown = await sign_in("nobody@example.com")
    assert wrong.status_code == unknown.status_code == 400
    assert WRONG_CREDENTIALS in wrong.text
    assert WRONG_CREDENTIALS in unknown.text


async def test_empty_fields_are_named_next_to_the_fields(client: httpx.AsyncClient) -> None:
    form_page = await client.get("/admin/sign-in")
    response = await client.post(
        "/admin/sign-in",
        data={"email": "", "password": "", "csrf_token": csrf_of(form_page)},
    )
    assert response.status_code == 400
    assert 'id="email-error">Enter your email address.' in response.text
    assert 'id="password-error">Enter your password.' in response.text


async def test_oversized_input_is_refused_without_an_error(
    client: httpx.AsyncClient, staff_user: User
) -> None:
    form_page = await client.get("/admin/sign-in")
    response = await client.post(
        "/admin/sign-in",
        data={
            "email": "staff@example.com" + "x" * 10_000,
            "password": "p" * 100_000,
            "csrf_token": csrf_of(form_page),
        },
    )
    assert response.status_code == 400
    assert WRONG_CREDENTIALS in response.text


async def test_sign_in_post_without_csrf_token_is_refused(
    client: httpx.AsyncClient, staff_user: User
) -> None:
    await client.get("/admin/sign-in")
    response = await client.post(
        "/admin/sign-in", data={"email": "staff@example.com", "password": "x" * 10}
    )
    assert response.status_code == 403
    assert "did not come from these pages" in response.text
    assert SESSION_COOKIE not in response.cookies


async def test_form_post_without_or_with_a_wrong_csrf_token_is_refused(
    client: httpx.AsyncClient, sign_in: SignIn, staff_user: User
) -> None:
    await sign_in("staff@example.com")
    missing = await client.post("/admin/sign-out", data={})
    assert missing.status_code == 403
    forged = await client.post("/admin/sign-out", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    assert (await client.get("/admin")).status_code == 200


async def test_csrf_token_of_one_session_is_useless_in_another(
    app: object, client: httpx.AsyncClient, sign_in: SignIn, staff_user: User, admin_user: User
) -> None:
    await sign_in("admin@example.com")
    admins_token = csrf_of(await client.get("/admin"))
    client.cookies.clear()
    await sign_in("staff@example.com")
    response = await client.post("/admin/sign-out", data={"csrf_token": admins_token})
    assert response.status_code == 403


async def test_sign_out_ends_the_session(
    client: httpx.AsyncClient, sign_in: SignIn, staff_user: User
) -> None:
    await sign_in("staff@example.com")
    page = await client.get("/admin")
    response = await client.post("/admin/sign-out", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/sign-in"
    assert 'storekeeper_session=""' in _session_cookie_header(response)
    assert (await client.get("/admin")).status_code == 303
    assert "You are signed out." in (await client.get("/admin/sign-in")).text


async def test_deactivation_and_role_change_take_effect_on_the_next_request(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await sign_in("staff@example.com")
    assert (await client.get("/admin")).status_code == 200
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == staff_user.id).values(role=Role.CUSTOMER.value)
        )
    response = await client.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/sign-in"
    assert "These pages are for staff" in (await client.get("/admin/sign-in")).text

    async with db.transaction() as session:
        await session.execute(
            update(User)
            .where(User.id == staff_user.id)
            .values(role=Role.STAFF.value, is_active=False)
        )
    await sign_in("staff@example.com")
    assert (await client.get("/admin")).status_code == 303


async def test_an_api_access_token_is_no_session_cookie(
    client: httpx.AsyncClient, settings: Settings, staff_user: User
) -> None:
    access_token = bearer(settings, staff_user)["Authorization"].removeprefix("Bearer ")
    client.cookies.set(SESSION_COOKIE, access_token, path="/admin")
    assert (await client.get("/admin")).status_code == 303
    client.cookies.clear()
    response = await client.get("/admin", headers=bearer(settings, staff_user))
    assert response.status_code == 303


def test_session_cookie_is_secure_in_production() -> None:
    settings = Settings(
        env=Environment.PRODUCTION,
        secret_key="k" * 40,
        _env_file=None,  # type: ignore[call-arg]
    )
    response = Response()
    start_session(response, settings, user_id=7, sign_in_id=uuid.uuid4())
    header = response.headers["set-cookie"]
    assert "; secure" in header.lower()
    token = header.split(";")[0].split("=", 1)[1]
    session = read_session(settings, token)
    assert session is not None
    assert session.user_id == 7
