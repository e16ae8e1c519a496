"""Categories: the materialized-path tree, moves, soft and permanent delete, restore."""

from __future__ import annotations

from typing import Any

import httpx

from storekeeper.db import Database
from tests.catalog.conftest import API, Maker, catalog_row_counts


async def _get(client: httpx.AsyncClient, category_id: int, **params: Any) -> httpx.Response:
    return await client.get(f"{API}/categories/{category_id}", params=params)


async def test_create_builds_path_and_depth(make_category: Maker) -> None:
    clothing = await make_category("Clothing", description="Things to wear", attributes={"a": 1})
    shirts = await make_category("Shirts", clothing["id"])
    polos = await make_category("Polos", shirts["id"])

    assert clothing["path"] == f"/{clothing['id']}/"
    assert clothing["depth"] == 0
    assert clothing["parent_id"] is None
    assert clothing["version"] == 1
    assert clothing["is_deleted"] is False
    assert clothing["attributes"] == {"a": 1}
    assert clothing["description"] == "Things to wear"
    assert shirts["path"] == f"/{clothing['id']}/{shirts['id']}/"
    assert shirts["depth"] == 1
    assert polos["path"] == f"/{clothing['id']}/{shirts['id']}/{polos['id']}/"
    assert polos["depth"] == 2
    assert clothing["created_at"].endswith("Z")


async def test_reads_are_public_and_writes_need_staff(
    client: httpx.AsyncClient,
    make_category: Maker,
    customer_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    root = await make_category("Root")
    assert (await _get(client, root["id"])).status_code == 200

    anonymous = await client.post(f"{API}/categories", json={"name": "X"})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
    customer = await client.post(f"{API}/categories", json={"name": "X"}, headers=customer_headers)
    assert customer.status_code == 403
    assert customer.json()["code"] == "forbidden"
    patch = await client.patch(
        f"{API}/categories/{root['id']}", json={"name": "Y"}, headers=customer_headers
    )
    assert patch.status_code == 403
    delete = await client.delete(f"{API}/categories/{root['id']}", headers=customer_headers)
    assert delete.status_code == 403
    admin = await client.post(f"{API}/categories", json={"name": "X"}, headers=admin_headers)
    assert admin.status_code == 201


async def test_live_sibling_names_are_unique_case_insensitively(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    root = await make_category("Clothing")
    await make_category("Shirts", root["id"])
    other_root = await make_category("Outlet")

    duplicate = await client.post(
        f"{API}/categories", json={"name": "sHIRTS", "parent_id": root["id"]}, headers=staff_headers
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "conflict"
    top_duplicate = await client.post(
        f"{API}/categories", json={"name": "clothing"}, headers=staff_headers
    )
    assert top_duplicate.status_code == 409
    # Same name under another parent is fine.
    await make_category("Shirts", other_root["id"])


async def test_rename_onto_a_sibling_name_is_a_conflict(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    root = await make_category("Root")
    await make_category("A", root["id"])
    b = await make_category("B", root["id"])
    response = await client.patch(
        f"{API}/categories/{b['id']}", json={"name": "a"}, headers=staff_headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert (await _get(client, b["id"])).json()["name"] == "B"


async def test_deleted_sibling_frees_its_name(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    root = await make_category("Root")
    old = await make_category("Shoes", root["id"])
    assert (
        await client.delete(f"{API}/categories/{old['id']}", headers=staff_headers)
    ).status_code == 204
    await make_category("Shoes", root["id"])
    # Restoring the old one would make two live siblings of one name.
    restore = await client.post(f"{API}/categories/{old['id']}/restore", headers=staff_headers)
    assert restore.status_code == 409
    assert restore.json()["code"] == "conflict"


async def test_move_rewrites_the_whole_subtree(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    a = await make_category("A")
    b = await make_category("B", a["id"])
    c = await make_category("C", b["id"])
    d = await make_category("D", c["id"])
    z = await make_category("Z")

    moved = await client.patch(
        f"{API}/categories/{b['id']}", json={"parent_id": z["id"]}, headers=staff_headers
    )
    assert moved.status_code == 200
    body = moved.json()
    assert body["parent_id"] == z["id"]
    assert body["path"] == f"/{z['id']}/{b['id']}/"
    assert body["depth"] == 1
    assert body["version"] == 2
    c_now = (await _get(client, c["id"])).json()
    d_now = (await _get(client, d["id"])).json()
    assert c_now["path"] == f"/{z['id']}/{b['id']}/{c['id']}/"
    assert c_now["depth"] == 2
    assert d_now["path"] == f"/{z['id']}/{b['id']}/{c['id']}/{d['id']}/"
    assert d_now["depth"] == 3
    assert c_now["version"] == 2  # its path changed, so did its version
    assert (await _get(client, a["id"])).json()["version"] == 1

    to_top = await client.patch(
        f"{API}/categories/{c['id']}", json={"parent_id": None}, headers=staff_headers
    )
    assert to_top.status_code == 200
    assert to_top.json()["path"] == f"/{c['id']}/"
    assert to_top.json()["depth"] == 0
    assert to_top.json()["parent_id"] is None
    assert (await _get(client, d["id"])).json()["path"] == f"/{c['id']}/{d['id']}/"


async def test_move_under_itself_or_a_descendant_is_refused(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    a = await make_category("A")
    b = await make_category("B", a["id"])
    c = await make_category("C", b["id"])
    for target in (a, b, c):
        response = await client.patch(
            f"{API}/categories/{a['id']}", json={"parent_id": target["id"]}, headers=staff_headers
        )
        assert response.status_code == 409
        assert response.json()["code"] == "conflict"
    assert (await _get(client, a["id"])).json() == a
    assert (await _get(client, c["id"])).json() == c


async def test_move_to_unknown_or_deleted_parent_is_422(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    a = await make_category("A")
    gone = await make_category("Gone")
    await client.delete(f"{API}/categories/{gone['id']}", headers=staff_headers)
    for parent_id in (999_999, gone["id"]):
        response = await client.patch(
            f"{API}/categories/{a['id']}", json={"parent_id": parent_id}, headers=staff_headers
        )
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert response.json()["errors"][0]["loc"] == ["body", "parent_id"]
    assert (await _get(client, a["id"])).json() == a


async def test_create_under_unknown_parent_is_422(
    client: httpx.AsyncClient, db: Database, staff_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{API}/categories", json={"name": "Orphan", "parent_id": 424242}, headers=staff_headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "parent_id"]
    assert await catalog_row_counts(db) == (0, 0, 0)


async def test_version_is_checked_and_bumped(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    cat = await make_category("Bags")
    url = f"{API}/categories/{cat['id']}"
    first = await client.patch(
        url, json={"name": "Bags & Cases", "version": 1}, headers=staff_headers
    )
    assert first.status_code == 200
    assert first.json()["version"] == 2
    stale = await client.patch(url, json={"name": "Luggage", "version": 1}, headers=staff_headers)
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    assert stale.json()["current_version"] == 2
    now = (await client.get(url)).json()
    assert now["name"] == "Bags & Cases"
    assert now["version"] == 2
    # Without a version the update applies to whatever is current.
    unversioned = await client.patch(url, json={"description": "All bags"}, headers=staff_headers)
    assert unversioned.json()["version"] == 3
    # A no-op changes nothing, not even the version.
    same = await client.patch(url, json={"description": "All bags"}, headers=staff_headers)
    assert same.json()["version"] == 3
    stale_move = await client.patch(
        url, json={"parent_id": None, "version": 2}, headers=staff_headers
    )
    assert stale_move.status_code == 409
    assert stale_move.json()["code"] == "version_conflict"


async def test_deleted_categories_are_visible_only_to_staff_asking_for_them(
    client: httpx.AsyncClient,
    make_category: Maker,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
) -> None:
    keep = await make_category("Keep")
    gone = await make_category("Gone")
    await client.delete(f"{API}/categories/{gone['id']}", headers=staff_headers)

    async def listed(headers: dict[str, str] | None, **params: Any) -> list[int]:
        response = await client.get(f"{API}/categories", params=params, headers=headers)
        return [item["id"] for item in response.json()["items"]]

    assert await listed(None) == [keep["id"]]
    assert await listed(None, include_deleted="true") == [keep["id"]]
    assert await listed(customer_headers, include_deleted="true") == [keep["id"]]
    assert await listed(staff_headers, include_deleted="true") == [keep["id"], gone["id"]]
    assert (await _get(client, gone["id"], include_deleted="true")).status_code == 404
    staff_view = await client.get(
        f"{API}/categories/{gone['id']}", params={"include_deleted": "true"}, headers=staff_headers
    )
    assert staff_view.status_code == 200
    assert staff_view.json()["is_deleted"] is True
    assert staff_view.json()["version"] == 2


async def test_restore(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    parent = await make_category("Parent")
    child = await make_category("Child", parent["id"])
    await client.delete(f"{API}/categories/{child['id']}", headers=staff_headers)
    await client.delete(f"{API}/categories/{parent['id']}", headers=staff_headers)

    refused = await client.post(f"{API}/categories/{child['id']}/restore", headers=staff_headers)
    assert refused.status_code == 409
    restored = await client.post(f"{API}/categories/{parent['id']}/restore", headers=staff_headers)
    assert restored.status_code == 200
    assert restored.json()["is_deleted"] is False
    assert restored.json()["version"] == 3
    again = await client.post(f"{API}/categories/{parent['id']}/restore", headers=staff_headers)
    assert again.json()["version"] == 3
    child_back = await client.post(f"{API}/categories/{child['id']}/restore", headers=staff_headers)
    assert child_back.status_code == 200
    missing = await client.post(f"{API}/categories/999999/restore", headers=staff_headers)
    assert missing.status_code == 404


async def test_soft_delete_refused_while_live_children_or_products(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    parent = await make_category("Parent")
    child = await make_category("Child", parent["id"])
    refused = await client.delete(f"{API}/categories/{parent['id']}", headers=staff_headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "conflict"

    product = await make_product("Thing", child["id"])
    refused = await client.delete(f"{API}/categories/{child['id']}", headers=staff_headers)
    assert refused.status_code == 409
    await client.delete(f"{API}/products/{product['id']}", headers=staff_headers)

    assert (
        await client.delete(f"{API}/categories/{child['id']}", headers=staff_headers)
    ).status_code == 204
    assert (
        await client.delete(f"{API}/categories/{parent['id']}", headers=staff_headers)
    ).status_code == 204
    assert (await _get(client, parent["id"])).status_code == 404


async def test_force_delete(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    parent = await make_category("Parent")
    child = await make_category("Child", parent["id"])
    product = await make_product("Thing", child["id"])
    await client.delete(f"{API}/products/{product['id']}", headers=staff_headers)
    await client.delete(f"{API}/categories/{child['id']}", headers=staff_headers)

    force = {"force": "true"}
    # A deleted child and a deleted product still refer to these categories.
    for category in (parent, child):
        refused = await client.delete(
            f"{API}/categories/{category['id']}", params=force, headers=staff_headers
        )
        assert refused.status_code == 409
        assert refused.json()["code"] == "conflict"
    assert await catalog_row_counts(db) == (2, 1, 0)

    lonely = await make_category("Lonely")
    gone = await client.delete(
        f"{API}/categories/{lonely['id']}", params=force, headers=staff_headers
    )
    assert gone.status_code == 204
    staff_view = await client.get(
        f"{API}/categories/{lonely['id']}",
        params={"include_deleted": "true"},
        headers=staff_headers,
    )
    assert staff_view.status_code == 404
    assert await catalog_row_counts(db) == (2, 1, 0)


async def test_tree_nests_children_by_name(
    client: httpx.AsyncClient, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    root = await make_category("Root")
    zed = await make_category("zed", root["id"])
    alpha = await make_category("Alpha", root["id"])
    leaf = await make_category("Leaf", zed["id"])
    gone = await make_category("Gone", alpha["id"])
    await client.delete(f"{API}/categories/{gone['id']}", headers=staff_headers)
    outside = await make_category("Outside")

    tree = (await client.get(f"{API}/categories/{root['id']}/tree")).json()

    def shape(node: dict[str, Any]) -> Any:
        return (node["id"], [shape(child) for child in node["children"]])

    assert shape(tree) == (root["id"], [(alpha["id"], []), (zed["id"], [(leaf["id"], [])])])
    staff_tree = (
        await client.get(
            f"{API}/categories/{root['id']}/tree",
            params={"include_deleted": "true"},
            headers=staff_headers,
        )
    ).json()
    assert shape(staff_tree) == (
        root["id"],
        [(alpha["id"], [(gone["id"], [])]), (zed["id"], [(leaf["id"], [])])],
    )
    assert f"/{outside['id']}/" not in {node["path"] for node in tree["children"]}
    assert (await client.get(f"{API}/categories/999/tree")).status_code == 404


async def test_list_by_parent(client: httpx.AsyncClient, make_category: Maker) -> None:
    a = await make_category("A")
    b = await make_category("B")
    a1 = await make_category("A1", a["id"])
    a2 = await make_category("A2", a["id"])
    await make_category("B1", b["id"])
    response = await client.get(f"{API}/categories", params={"parent_id": a["id"]})
    assert [item["id"] for item in response.json()["items"]] == [a1["id"], a2["id"]]


INVALID_CREATES: list[dict[str, Any]] = [
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 10_000},
    {"name": "x" * 201},
    {"name": "nul\x00byte"},
    {"name": "ok", "parent_id": 10**30},
    {"name": "ok", "parent_id": "one"},
    {"name": "ok", "description": "d" * 5001},
    {"name": "ok", "attributes": {"blob": "x" * 17_000}},
    {"name": "ok", "attributes": ["not", "an", "object"]},
    {"name": "ok", "attributes": {"k": "nul\x00"}},
    {"name": "ok", "surprise": True},
    {"name": 12},
]
INVALID_UPDATES: list[dict[str, Any]] = [
    {"name": None},
    {"attributes": None},
    {"version": 0},
    {"version": 10**30},
    {"parent_id": 0},
    {"name": "y" * 10_000},
]


async def test_invalid_category_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient, db: Database, make_category: Maker, staff_headers: dict[str, str]
) -> None:
    # One test walks every case: each would otherwise pay for a fresh database.
    for body in INVALID_CREATES:
        response = await client.post(f"{API}/categories", json=body, headers=staff_headers)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error"
    assert await catalog_row_counts(db) == (0, 0, 0)

    cat = await make_category("Stable")
    for body in INVALID_UPDATES:
        url = f"{API}/categories/{cat['id']}"
        response = await client.patch(url, json=body, headers=staff_headers)
        assert response.status_code == 422, body
    assert (await _get(client, cat["id"])).json() == cat

    for path in ("/categories/0", "/categories/abc", f"/categories/{10**30}"):
        response = await client.get(f"{API}{path}")
        assert response.status_code == 422, path
        assert response.json()["code"] == "validation_error"
