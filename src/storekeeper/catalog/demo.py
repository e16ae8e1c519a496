"""The demo catalog `storekeeper seed --demo` loads: a three-level category tree, 50
products and 150 SKUs with sizes and colours. Idempotent: what exists is left as it is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog import service
from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.catalog.schemas import CategoryCreate, ProductCreate, SkuCreate, SkuFields

DEMO_CURRENCY = "USD"

# (top level, second level, leaf) -> products in that leaf.
DEMO_PRODUCTS: dict[tuple[str, str, str], list[str]] = {
    ("Clothing", "Tops", "T-shirts"): [
        "Essential crew tee",
        "V-neck tee",
        "Pocket tee",
        "Long-sleeve tee",
        "Graphic tee",
    ],
    ("Clothing", "Tops", "Shirts"): ["Oxford shirt", "Flannel shirt", "Linen shirt", "Denim shirt"],
    ("Clothing", "Tops", "Sweaters"): [
        "Merino crewneck",
        "Cable-knit sweater",
        "Zip cardigan",
        "Fleece pullover",
    ],
    ("Clothing", "Bottoms", "Jeans"): [
        "Slim jeans",
        "Straight jeans",
        "Relaxed jeans",
        "Selvedge jeans",
    ],
    ("Clothing", "Bottoms", "Shorts"): ["Chino shorts", "Running shorts", "Cargo shorts"],
    ("Clothing", "Outerwear", "Jackets"): [
        "Rain jacket",
        "Down jacket",
        "Bomber jacket",
        "Denim jacket",
        "Softshell jacket",
    ],
    ("Footwear", "Sneakers", "Running"): [
        "Road runner",
        "Trail runner",
        "Racing flat",
        "Cushioned trainer",
    ],
    ("Footwear", "Sneakers", "Casual"): ["Canvas low-top", "Leather court sneaker", "Slip-on"],
    ("Footwear", "Boots", "Hiking"): ["Mid hiking boot", "Waterproof trekker", "Light hiker"],
    ("Footwear", "Boots", "Chelsea"): ["Suede chelsea boot", "Leather chelsea boot"],
    ("Accessories", "Bags", "Backpacks"): [
        "Daypack 20 L",
        "Commuter backpack",
        "Roll-top pack",
        "Hiking pack 35 L",
    ],
    ("Accessories", "Bags", "Totes"): ["Canvas tote", "Leather tote", "Market tote"],
    ("Accessories", "Hats", "Caps"): ["Baseball cap", "Trucker cap", "Five-panel cap"],
    ("Accessories", "Hats", "Beanies"): ["Rib beanie", "Merino beanie", "Fisherman beanie"],
}

SIZES = {"Clothing": ["S", "M", "L"], "Footwear": ["40", "42", "44"]}
COLOURS = ["black", "navy", "olive", "grey", "white", "red"]
MATERIALS = {"Clothing": "cotton", "Footwear": "leather", "Accessories": "canvas"}
BASE_PRICE_CENTS = {"Clothing": 2500, "Footwear": 7900, "Accessories": 1900}


@dataclass
class DemoCatalog:
    """The demo rows (found or created) and how many were created by this run."""

    categories: list[Category] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    skus: list[Sku] = field(default_factory=list)
    created: int = 0


def _slug(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "-", name.upper()).strip("-")


def _variants(top: str, name: str, index: int) -> list[SkuFields]:
    """Three SKUs: sizes in one colour for clothing and footwear, three colours for
    accessories."""
    price = BASE_PRICE_CENTS[top] + (index % 7) * 500
    colour = COLOURS[index % len(COLOURS)]
    if top in SIZES:
        variants = [{"size": size, "colour": colour} for size in SIZES[top]]
    else:
        variants = [
            {"size": "one size", "colour": COLOURS[(index + n) % len(COLOURS)]} for n in range(3)
        ]
    return [
        SkuFields(
            code=f"{_slug(name)}-{_slug(v['size'])}-{v['colour'][:3].upper()}",
            price_cents=price + (200 if v["size"] in ("L", "44") else 0),
            currency=DEMO_CURRENCY,
            attributes=v,
        )
        for v in variants
    ]


async def _category(
    session: AsyncSession, demo: DemoCatalog, name: str, parent: Category | None
) -> Category:
    parent_id = parent.id if parent is not None else None
    existing = (
        await session.scalars(
            select(Category).where(
                func.coalesce(Category.parent_id, 0) == (parent_id or 0),
                func.lower(Category.name) == name.lower(),
                Category.is_deleted.is_(False),
            )
        )
    ).first()
    if existing is None:
        existing = await service.create_category(
            session, CategoryCreate(name=name, parent_id=parent_id)
        )
        demo.created += 1
    demo.categories.append(existing)
    return existing


async def _product(
    session: AsyncSession, demo: DemoCatalog, top: str, leaf: Category, name: str, index: int
) -> None:
    variants = _variants(top, name, index)
    codes = [variant.code for variant in variants]
    # The SKU codes are what identifies a demo product for good: staff may have renamed,
    # moved or deleted it since the last seeding.
    product = (
        await session.scalars(
            select(Product)
            .join(Sku, Sku.product_id == Product.id)
            .where(Sku.code.in_(codes))
            .order_by(Product.id)
        )
    ).first()
    if product is None:
        product = (
            await session.scalars(
                select(Product).where(
                    Product.category_id == leaf.id,
                    Product.name == name,
                    Product.is_deleted.is_(False),
                )
            )
        ).first()
    if product is not None and product.is_deleted:
        return  # deleted by staff: it stays deleted
    if product is None:
        data = ProductCreate(
            name=name,
            description=f"{name} in {MATERIALS[top]}, from the {leaf.name.lower()} range.",
            category_id=leaf.id,
            attributes={"brand": "Storekeeper Demo"},
            skus=variants,
        )
        product = await service.create_product(session, data, DEMO_CURRENCY)
        demo.created += 1 + len(variants)
    else:
        present = set((await session.scalars(select(Sku.code).where(Sku.code.in_(codes)))).all())
        for variant in variants:
            if variant.code not in present:
                sku = SkuCreate(product_id=product.id, **variant.model_dump())
                await service.create_sku(session, sku, DEMO_CURRENCY)
                demo.created += 1
    demo.products.append(product)
    demo.skus.extend(
        (
            await session.scalars(
                select(Sku)
                .where(Sku.product_id == product.id, Sku.is_deleted.is_(False))
                .order_by(Sku.id)
            )
        ).all()
    )


async def seed_demo_catalog(session: AsyncSession) -> DemoCatalog:
    """Create whatever part of the demo catalog is missing; return all of it."""
    demo = DemoCatalog()
    seen: dict[tuple[str, ...], Category] = {}
    for index, ((top, middle, leaf_name), names) in enumerate(DEMO_PRODUCTS.items()):
        parent: Category | None = None
        for depth, name in enumerate((top, middle, leaf_name)):
            key = (top, middle, leaf_name)[: depth + 1]
            if key not in seen:
                seen[key] = await _category(session, demo, name, parent)
            parent = seen[key]
        assert parent is not None
        for offset, name in enumerate(names):
            await _product(session, demo, top, parent, name, index * 5 + offset)
    return demo
