"""Catalog pages over HTTP (no browser): the category tree's changes and refusals."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from storekeeper.accounts.models import User
from storekeeper.catalog.models import Category
from storekeeper.db import Database
from storekeeper.web.forms import STALE_EDIT
from tests.web.conftest import SignIn, csrf_of

CATEGORIES = "/admin/catalog/categories"


async def _post(client: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    page = await client.get(CATEGORIES)
    return await client.post(path, data={**data, "csrf_token": csrf_of(page)})


async def _category(db: Database, name: str) -> Category:
    async with db.transaction(write=False) as session:
        category = await session.scalar(select(Category).where(Category.name == name))
    assert category is not None
    return category


async def test_category_tree_create_rename_move_delete_restore(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await sign_in("staff@example.com")
    created = await _post(client, CATEGORIES, name="Tools", parent_id="", description="")
    assert created.status_code == 303
    assert created.headers["location"] == CATEGORIES
    tools = await _category(db, "Tools")
    await _post(client, CATEGORIES, name="Hammers", parent_id=str(tools.id))
    await _post(client, CATEGORIES, name="Garden", parent_id="")
    hammers, garden = await _category(db, "Hammers"), await _category(db, "Garden")
    assert hammers.path == f"/{tools.id}/{hammers.id}/"

    page = await client.get(CATEGORIES)
    assert "Category “Garden” created." in page.text
    assert re.search(r'<option value="\d+">Tools / Hammers</option>', page.text)

    moved = await _post(
        client,
        f"{CATEGORIES}/{hammers.id}",
        name="Mallets",
        parent_id=str(garden.id),
        version=str(hammers.version),
    )
    assert moved.status_code == 303
    mallets = await _category(db, "Mallets")
    assert (mallets.parent_id, mallets.path) == (garden.id, f"/{garden.id}/{hammers.id}/")

    refused = await _post(client, f"{CATEGORIES}/{garden.id}/delete")
    assert refused.status_code == 409
    assert "still has live subcategories or products" in refused.text

    assert (await _post(client, f"{CATEGORIES}/{mallets.id}/delete")).status_code == 303
    assert "Mallets" not in (await client.get(CATEGORIES)).text
    with_deleted = await client.get(f"{CATEGORIES}?deleted=true")
    assert '<span class="name deleted">Mallets</span>' in with_deleted.text
    restored = await _post(client, f"{CATEGORIES}/{mallets.id}/restore")
    assert restored.status_code == 303
    assert (await _category(db, "Mallets")).is_deleted is False


async def test_category_refusals_are_shown_next_to_the_form(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await sign_in("staff@example.com")
    await _post(client, CATEGORIES, name="Tools", parent_id="")
    tools = await _category(db, "Tools")
    await _post(client, CATEGORIES, name="Hammers", parent_id=str(tools.id))
    hammers = await _category(db, "Hammers")

    empty = await _post(client, CATEGORIES, name="   ", parent_id="")
    assert empty.status_code == 422
    assert 'id="name-error">String should have at least 1 character.' in empty.text

    duplicate = await _post(client, CATEGORIES, name="tools", parent_id="")
    assert duplicate.status_code == 409
    assert "A category with this name already exists under the same parent." in duplicate.text

    unknown_parent = await _post(client, CATEGORIES, name="X", parent_id="999999")
    assert unknown_parent.status_code == 422
    assert 'id="parent_id-error">No category with id 999999.' in unknown_parent.text

    not_a_number = await _post(client, CATEGORIES, name="X", parent_id="ten")
    assert not_a_number.status_code == 422
    assert 'id="parent_id-error">' in not_a_number.text

    under_itself = await _post(
        client,
        f"{CATEGORIES}/{tools.id}",
        name="Tools",
        parent_id=str(hammers.id),
        version=str(tools.version),
    )
    assert under_itself.status_code == 409
    assert "cannot be moved under itself or one of its descendants" in under_itself.text

    stale = await _post(
        client, f"{CATEGORIES}/{tools.id}", name="Renamed", parent_id="", version="0"
    )
    assert stale.status_code == 422
    stale = await _post(
        client,
        f"{CATEGORIES}/{hammers.id}",
        name="Renamed",
        parent_id=str(tools.id),
        version=str(hammers.version + 5),
    )
    assert stale.status_code == 409
    assert STALE_EDIT in stale.text
    assert (await _category(db, "Hammers")).version == hammers.version

    missing = await _post(client, f"{CATEGORIES}/424242/delete")
    assert missing.status_code == 404
    assert (await client.get(f"{CATEGORIES}/0/delete")).status_code == 405
