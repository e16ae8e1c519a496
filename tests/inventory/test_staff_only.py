"""Every inventory endpoint is for staff: without a token 401, as a customer 403, and
nothing changes either way."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.inventory.conftest import Receiver, SkuFactory

API = "/api/v1"
HOLD = {"client_token": "h", "items": [{"sku": "A", "quantity": 1}]}
ALLOCATION = {"client_token": "a", "items": [{"sku": "A", "quantity": 1}]}

# (method, path, body); "{hold}" and "{allocation}" stand for existing ids.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/locations", None),
    ("POST", "/locations", {"code": "WEST", "name": "West"}),
    ("GET", "/inventory/A", None),
    ("GET", "/inventory/availability", None),
    ("POST", "/inventory/A/adjustments", {"delta": 5, "reason": "receive"}),
    ("GET", "/inventory/A/movements", None),
    ("GET", "/inventory/movements", None),
    ("GET", "/inventory/consistency", None),
    ("POST", "/inventory/holds", {**HOLD, "client_token": "new-hold"}),
    ("GET", "/inventory/holds", None),
    ("GET", "/inventory/holds/{hold}", None),
    ("POST", "/inventory/holds/{hold}/convert", None),
    ("POST", "/inventory/holds/{hold}/release", None),
    ("POST", "/inventory/allocations", {**ALLOCATION, "client_token": "new-allocation"}),
    ("GET", "/inventory/allocations", None),
    ("GET", "/inventory/allocations/{allocation}", None),
    ("POST", "/inventory/allocations/{allocation}/fulfil", None),
    ("POST", "/inventory/allocations/{allocation}/cancel", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_inventory_endpoints_refuse_anonymous_and_customer_callers(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await make_sku("A")
    await receive("A", 10)
    hold = (await client.post(f"{API}/inventory/holds", headers=staff_headers, json=HOLD)).json()
    allocation = (
        await client.post(f"{API}/inventory/allocations", headers=staff_headers, json=ALLOCATION)
    ).json()
    url = API + path.format(hold=hold["id"], allocation=allocation["id"])
    before = (await client.get(f"{API}/inventory/A", headers=staff_headers)).json()

    anonymous = await client.request(method, url, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
    customer = await client.request(method, url, headers=customer_headers, json=body)
    assert customer.status_code == 403
    assert customer.json()["code"] == "forbidden"

    assert (await client.get(f"{API}/inventory/A", headers=staff_headers)).json() == before
    assert (await client.get(f"{API}/inventory/holds/{hold['id']}", headers=staff_headers)).json()[
        "status"
    ] == "held"
    locations = (await client.get(f"{API}/locations", headers=staff_headers)).json()
    assert [location["code"] for location in locations["items"]] == ["MAIN"]
