"""Product and SKU pages over HTTP (no browser): list, search, paging, create with SKUs,
edits with the version check, refusals shown next to their fields."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from storekeeper.accounts.models import User
from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.db import Database
from storekeeper.web import product_pages
from storekeeper.web.forms import STALE_EDIT
from tests.web.conftest import SignIn, csrf_of
from tests.web.shop import stocked_shop

PRODUCTS = "/admin/catalog/products"


async def _post(
    client: httpx.AsyncClient, path: str, data: dict[str, str], page: str = PRODUCTS
) -> httpx.Response:
    form_page = await client.get(page)
    return await client.post(path, data={**data, "csrf_token": csrf_of(form_page)})


async def _product(db: Database, name: str) -> Product:
    async with db.transaction(write=False) as session:
        product = await session.scalar(select(Product).where(Product.name == name))
    assert product is not None
    return product


async def _skus(db: Database, product_id: int) -> list[tuple[str, int, str, int, bool]]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(Sku.code, Sku.price_cents, Sku.currency, Sku.version, Sku.is_deleted)
            .where(Sku.product_id == product_id)
            .order_by(Sku.id)
        )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _new_product(
    category_id: int | str, name: str = "Claw hammer", **fields: str
) -> dict[str, str]:
    return {
        "name": name,
        "category_id": str(category_id),
        "description": "",
        "attributes": "",
        "rows": "2",
        "sku-0-code": "",
        "sku-0-price": "",
        "sku-0-currency": "",
        "sku-1-code": "",
        "sku-1-price": "",
        "sku-1-currency": "",
        **fields,
    }


async def test_create_a_product_with_two_skus_then_edit_them(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"OLD-1": 7})
    await sign_in("staff@example.com")

    form = await client.get(f"{PRODUCTS}/new?category_id={shop.category_id}")
    assert form.status_code == 200
    assert f'<option value="{shop.category_id}" selected>Tools</option>' in form.text
    assert form.text.count('<fieldset class="sku-row">') == 2

    more = await _post(
        client,
        PRODUCTS,
        _new_product(shop.category_id, name="Mallet", action="add-row", **{"sku-0-code": "m-1"}),
    )
    assert more.status_code == 200
    assert more.text.count('<fieldset class="sku-row">') == 3
    assert 'name="sku-0-code" value="m-1"' in more.text
    assert 'value="Mallet"' in more.text

    created = await _post(
        client,
        PRODUCTS,
        _new_product(
            shop.category_id,
            name="Sledge <hammer>",
            description="Heavy.\nTwo sizes.",
            attributes='{"brand": "Acme"}',
            **{
                "sku-0-code": "sledge-s",
                "sku-0-price": "19.99",
                "sku-1-code": "SLEDGE-L",
                "sku-1-price": "1,250.5",
                "sku-1-currency": "eur",
            },
        ),
    )
    assert created.status_code == 303
    product = await _product(db, "Sledge <hammer>")
    assert created.headers["location"] == f"{PRODUCTS}/{product.id}"
    assert (product.category_id, product.description, product.attributes) == (
        shop.category_id,
        "Heavy.\nTwo sizes.",
        {"brand": "Acme"},
    )
    assert await _skus(db, product.id) == [
        ("SLEDGE-S", 1999, "USD", 1, False),
        ("SLEDGE-L", 125050, "EUR", 1, False),
    ]

    page = (await client.get(f"{PRODUCTS}/{product.id}")).text
    assert "Product “Sledge &lt;hammer&gt;” created." in page
    assert "<h1>Sledge &lt;hammer&gt;</h1>" in page
    assert '<td class="num" data-label="Price" data-price="SLEDGE-S">19.99 USD</td>' in page
    assert '<td class="num" data-label="Price" data-price="SLEDGE-L">1,250.50 EUR</td>' in page
    assert '<td class="num" data-label="Available" data-available="SLEDGE-S">0</td>' in page
    assert "<dt>brand</dt><dd>Acme</dd>" in page
    # In the list, prices in different currencies never share one range.
    listed = (await client.get(f"{PRODUCTS}?q=Sledge")).text
    assert '<td class="num" data-label="Price">19.99 USD, 1,250.50 EUR</td>' in listed

    edit = await client.get(f"{PRODUCTS}/{product.id}/edit")
    assert 'name="version" value="1"' in edit.text
    saved = await _post(
        client,
        f"{PRODUCTS}/{product.id}",
        {
            "name": "Sledgehammer",
            "category_id": str(shop.category_id),
            "description": "",
            "attributes": '{"brand": "Acme", "weight_kg": 4}',
            "version": "1",
        },
    )
    assert saved.status_code == 303
    product = await _product(db, "Sledgehammer")
    assert (product.version, product.description, product.attributes) == (
        2,
        None,
        {"brand": "Acme", "weight_kg": 4},
    )

    sku_page = await client.get("/admin/catalog/skus/sledge-s/edit")
    assert 'name="price" inputmode="decimal" maxlength="20" required value="19.99"' in (
        sku_page.text
    )
    repriced = await _post(
        client,
        "/admin/catalog/skus/SLEDGE-S",
        {"price": "21.5", "attributes": '{"size": "S"}', "version": "1"},
    )
    assert repriced.status_code == 303
    assert repriced.headers["location"] == f"{PRODUCTS}/{product.id}"

    added = await _post(
        client,
        f"{PRODUCTS}/{product.id}/skus",
        {"code": "sledge-xl", "price": "30", "currency": ""},
    )
    assert added.status_code == 303
    deleted = await _post(client, "/admin/catalog/skus/SLEDGE-L/delete", {})
    assert deleted.status_code == 303
    assert await _skus(db, product.id) == [
        ("SLEDGE-S", 2150, "USD", 2, False),
        ("SLEDGE-L", 125050, "EUR", 2, True),
        ("SLEDGE-XL", 3000, "USD", 1, False),
    ]
    page = (await client.get(f"{PRODUCTS}/{product.id}")).text
    assert "SKU SLEDGE-L deleted." in page
    assert 'data-price="SLEDGE-L"' not in page
    assert '<td class="wrap" data-label="Attributes">size: S</td>' in page

    gone = await _post(client, f"{PRODUCTS}/{product.id}/delete", {})
    assert gone.status_code == 303
    assert gone.headers["location"] == PRODUCTS
    assert (await client.get(f"{PRODUCTS}/{product.id}")).status_code == 404
    assert [row[4] for row in await _skus(db, product.id)] == [True, True, True]


async def test_create_refusals_are_shown_next_to_the_fields(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"TAKEN-1": 0})
    await sign_in("staff@example.com")

    blank = await _post(client, PRODUCTS, _new_product("", name=" "))
    assert blank.status_code == 422
    assert 'id="name-error">Enter the product&#39;s name.</p>' in blank.text
    assert 'id="category_id-error">Choose a category.</p>' in blank.text

    bad_rows = await _post(
        client,
        PRODUCTS,
        _new_product(
            shop.category_id,
            attributes="[1, 2]",
            **{
                "sku-0-code": "has space",
                "sku-0-price": "12.345",
                "sku-1-code": "OK-1",
                "sku-1-price": "5",
                "sku-1-currency": "EURO",
            },
        ),
    )
    assert bad_rows.status_code == 422
    text = bad_rows.text
    assert 'id="attributes-error">This is a JSON list; attributes are one JSON object' in text
    assert 'id="sku-0-price-error">The price must be an amount such as 19.99.</p>' in text
    assert 'id="sku-0-code-error">String should match pattern' in text
    assert 'id="sku-1-currency-error">String should match pattern' in text
    assert 'name="sku-0-code" value="has space"' in text

    # A blank first row is skipped: the error of the second row stays on the second row.
    taken = await _post(
        client,
        PRODUCTS,
        _new_product(shop.category_id, **{"sku-1-code": "taken-1", "sku-1-price": "1"}),
    )
    assert taken.status_code == 409
    assert f'id="sku-1-code-error">{product_pages.CODE_TAKEN}</p>' in taken.text
    assert "sku-0-code-error" not in taken.text

    twice = await _post(
        client,
        PRODUCTS,
        _new_product(
            shop.category_id,
            **{"sku-0-code": "A-1", "sku-0-price": "1", "sku-1-code": "a-1", "sku-1-price": "2"},
        ),
    )
    assert twice.status_code == 422
    assert "SKU codes in one request must differ." in twice.text

    async with db.transaction(write=False) as session:
        names = (await session.scalars(select(Product.name))).all()
    assert names == ["Claw hammer"]


async def test_a_stale_edit_is_refused_and_shows_the_current_values(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"HAM-1": 0})
    await sign_in("staff@example.com")
    product_path = f"{PRODUCTS}/{shop.product_id}"
    first = {"name": "Renamed", "category_id": str(shop.category_id), "version": "1"}
    assert (await _post(client, product_path, {**first, "description": "first"})).status_code == 303

    stale = await _post(client, product_path, {**first, "name": "Second", "description": "x"})
    assert stale.status_code == 409
    assert STALE_EDIT in stale.text
    assert 'name="version" value="2"' in stale.text
    assert 'id="name" name="name" required maxlength="200" value="Renamed"' in stale.text
    product = await _product(db, "Renamed")
    assert (product.version, product.description) == (2, "first")

    sku_edit = await _post(
        client, "/admin/catalog/skus/HAM-1", {"price": "99", "attributes": "", "version": "7"}
    )
    assert sku_edit.status_code == 409
    assert STALE_EDIT in sku_edit.text
    assert 'required value="12.50"' in sku_edit.text
    assert await _skus(db, shop.product_id) == [("HAM-1", 1250, "USD", 1, False)]

    bad_price = await _post(
        client, "/admin/catalog/skus/HAM-1", {"price": "-3", "attributes": "", "version": "1"}
    )
    assert bad_price.status_code == 422
    assert 'id="price-error">The price must be an amount such as 19.99.</p>' in bad_price.text
    assert 'required value="-3"' in bad_price.text

    moved_nowhere = await _post(
        client,
        product_path,
        {"name": "Renamed", "category_id": "424242", "version": "2"},
    )
    assert moved_nowhere.status_code == 422
    assert 'id="category_id-error">No category with id 424242.</p>' in moved_nowhere.text

    dup = await _post(client, product_path + "/skus", {"code": "ham-1", "price": "1"})
    assert dup.status_code == 409
    assert f'id="code-error">{product_pages.CODE_TAKEN}</p>' in dup.text
    assert 'id="code" name="code" maxlength="64" autocomplete="off" value="ham-1"' in dup.text


async def test_product_list_searches_filters_and_pages(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"HAM-1": 5, "HAM-2": 3})
    async with db.transaction() as session:
        garden = Category(name="Garden " + "very-long-name " * 12, path="/", depth=0)
        session.add(garden)
        await session.flush()
        garden.path = f"/{garden.id}/"
        session.add_all(
            Product(name=f"Rake {number}", category_id=garden.id) for number in range(30)
        )
    await sign_in("staff@example.com")

    first = (await client.get(PRODUCTS)).text
    assert first.count('<th scope="row" class="wrap">') == product_pages.PAGE_SIZE
    assert '<a href="/admin/stock/HAM-1">HAM-1</a>, <a href="/admin/stock/HAM-2">HAM-2</a>' in (
        first
    )
    assert (
        '<td class="num" data-label="Price">12.50 USD</td>\n'
        '      <td class="num" data-label="Available">8</td>'
    ) in first
    next_link = re.search(r'href="(/admin/catalog/products\?[^"]+)" rel="next"', first)
    assert next_link
    second = (await client.get(next_link.group(1).replace("&amp;", "&"))).text
    assert second.count('<th scope="row" class="wrap">') == 31 - product_pages.PAGE_SIZE
    assert "Rake 29" in second
    assert 'rel="next"' not in second
    assert "First page" in second

    in_garden = (await client.get(f"{PRODUCTS}?category_id={garden.id}&q=")).text
    assert in_garden.count('<th scope="row" class="wrap">') == product_pages.PAGE_SIZE
    assert "Claw hammer" not in in_garden

    found = (await client.get(f"{PRODUCTS}?q=claw&category_id=")).text
    assert found.count('<th scope="row" class="wrap">') == 1
    assert f'href="{PRODUCTS}/{shop.product_id}">Claw hammer</a>' in found
    nothing = (await client.get(f"{PRODUCTS}?q=zebra")).text
    assert "No products match." in nothing

    unknown = await client.get(f"{PRODUCTS}?category_id=999999")
    assert unknown.status_code == 422
    assert 'id="category_id-error">No category with id 999999.</p>' in unknown.text
    junk = await client.get(f"{PRODUCTS}?category_id=tools")
    assert junk.status_code == 422
    assert 'id="category_id-error">Choose a category from the list.</p>' in junk.text
    bad_cursor = await client.get(f"{PRODUCTS}?cursor=%%%")
    assert bad_cursor.status_code == 422
    assert "This page link is not valid any more." in bad_cursor.text
    assert (await client.get(f"{PRODUCTS}/0")).status_code == 404
    assert (await client.get(f"{PRODUCTS}/999999")).status_code == 404
    assert (await client.get("/admin/catalog/skus/NOPE/edit")).status_code == 404


async def test_product_forms_need_a_signed_in_staff_member_and_a_csrf_token(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"HAM-1": 0})
    signed_out = await client.get(f"{PRODUCTS}/new")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == (
        "/admin/sign-in?next=%2Fadmin%2Fcatalog%2Fproducts%2Fnew"
    )
    await sign_in("staff@example.com")
    forged = await client.post(
        f"{PRODUCTS}/{shop.product_id}",
        data={"name": "Forged", "category_id": str(shop.category_id), "version": "1"},
    )
    assert forged.status_code == 403
    assert "This form could not be accepted" in forged.text
    assert (await _product(db, "Claw hammer")).version == 1


async def test_adding_a_row_at_the_row_limit_never_creates_the_product(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"OLD-1": 1})
    await sign_in("staff@example.com")
    rows = product_pages.MAX_SKU_ROWS
    fields = {f"sku-{index}-code": f"full-{index}" for index in range(rows)}
    fields.update({f"sku-{index}-price": "1" for index in range(rows)})
    form = {**_new_product(shop.category_id, name="Crowded", action="add-row"), **fields}
    form["rows"] = str(rows)
    response = await _post(client, PRODUCTS, form)
    assert response.status_code == 200
    assert response.text.count('<fieldset class="sku-row">') == rows
    assert 'name="sku-99-code" value="full-99"' in response.text
    async with db.transaction(write=False) as session:
        assert (
            await session.execute(select(Product).where(Product.name == "Crowded"))
        ).scalar_one_or_none() is None


async def test_the_sku_form_sets_and_clears_the_low_stock_threshold(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"PEG-1": 3})
    await sign_in("staff@example.com")

    async def threshold() -> int | None:
        async with db.transaction(write=False) as session:
            value: int | None = await session.scalar(
                select(Sku.low_stock_threshold).where(Sku.code == "PEG-1")
            )
        return value

    page = (await client.get("/admin/catalog/skus/PEG-1/edit")).text
    assert 'name="low_stock_threshold" inputmode="numeric" maxlength="10" value=""' in page
    assert "Blank: the shop's default (5)." in page
    form = {"price": "12.50", "attributes": "", "version": "1"}
    saved = await _post(client, "/admin/catalog/skus/PEG-1", {**form, "low_stock_threshold": "2"})
    assert saved.status_code == 303
    assert await threshold() == 2
    page = (await client.get("/admin/catalog/skus/PEG-1/edit")).text
    assert 'maxlength="10" value="2"' in page

    for typed, message in (("-1", "greater than or equal to 0"), ("lots", "whole number")):
        refused = await _post(
            client,
            "/admin/catalog/skus/PEG-1",
            {**form, "version": "2", "low_stock_threshold": typed},
        )
        assert refused.status_code == 422
        assert 'id="low_stock_threshold-error">' in refused.text
        assert message in refused.text
        assert await threshold() == 2

    cleared = await _post(client, "/admin/catalog/skus/PEG-1", {**form, "version": "2"})
    assert cleared.status_code == 303
    assert await threshold() is None


async def test_the_sku_form_sets_and_clears_the_purchase_limit(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    await stocked_shop(db, {"PEG-2": 3})
    await sign_in("staff@example.com")

    async def limit() -> int | None:
        async with db.transaction(write=False) as session:
            value: int | None = await session.scalar(
                select(Sku.max_per_customer).where(Sku.code == "PEG-2")
            )
        return value

    form = {"price": "12.50", "attributes": "", "version": "1"}
    saved = await _post(client, "/admin/catalog/skus/PEG-2", {**form, "max_per_customer": "2"})
    assert saved.status_code == 303
    assert await limit() == 2
    page = (await client.get("/admin/catalog/skus/PEG-2/edit")).text
    assert 'name="max_per_customer" inputmode="numeric" maxlength="10" value="2"' in page
    refused = await _post(
        client, "/admin/catalog/skus/PEG-2", {**form, "version": "2", "max_per_customer": "0"}
    )
    assert refused.status_code == 422
    assert 'id="max_per_customer-error">' in refused.text
    assert await limit() == 2
    cleared = await _post(client, "/admin/catalog/skus/PEG-2", {**form, "version": "2"})
    assert cleared.status_code == 303
    assert await limit() is None


async def test_attributes_fields_explain_json_and_say_where_it_is_wrong(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, staff_user: User
) -> None:
    shop = await stocked_shop(db, {"HAM-1": 0})
    await sign_in("staff@example.com")
    hint = 'id="attributes-hint"'
    example = (
        "{&#34;colour&#34;: &#34;red&#34;, &#34;size&#34;: &#34;L&#34;, &#34;weight_kg&#34;: 1.5}"
    )
    for path in (
        f"{PRODUCTS}/new",
        f"{PRODUCTS}/{shop.product_id}/edit",
        "/admin/catalog/skus/HAM-1/edit",
    ):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert hint in page.text, path
        assert example in page.text, path
        assert 'aria-describedby="attributes-hint"' in page.text, path

    async def refused(attributes: str) -> str:
        answer = await _post(
            client,
            PRODUCTS,
            _new_product(shop.category_id, attributes=attributes),
            page=f"{PRODUCTS}/new",
        )
        assert answer.status_code == 422
        assert 'aria-describedby="attributes-error attributes-hint"' in answer.text
        match = re.search(r'id="attributes-error">(.*?)</p>', answer.text, re.S)
        assert match, answer.text
        return match.group(1)

    single_quotes = await refused("{'brand': 'Acme'}")
    assert single_quotes.startswith("Not valid JSON at line 1, column 2:")
    assert "names and text go in double quotes" in single_quotes
    trailing_comma = await refused('{\n  "brand": "Acme",\n}')
    assert trailing_comma.startswith("Not valid JSON at line 3, column 1:")
    assert (await refused("[1, 2]")).startswith(
        "This is a JSON list; attributes are one JSON object"
    )
    assert (await refused('"red"')).startswith("This is a JSON text; attributes are one")
