"""The structure the README's Architecture section promises, held against the code: imports
between domains run one way, only the ledger writes stock, and routes reach the database
only through the unit of work."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "storekeeper"

# Each domain may import only the domains after it (and the platform modules).
LAYERS = ["shop", "web", "notifications", "orders", "inventory", "catalog", "events", "accounts"]
COMPOSITION_ROOT = {"app", "cli", "seed", "worker", "main", "__main__", "migrations"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _domain_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "storekeeper" or len(parts) < 2:
        return None
    return parts[1]


def _edges() -> set[tuple[str, str, str]]:
    edges = set()
    for path in SRC.rglob("*.py"):
        source = path.relative_to(SRC).parts[0].removesuffix(".py")
        for module in _imports(path):
            target = _domain_of(module)
            if target is not None and target != source:
                edges.add((source, target, str(path.relative_to(SRC))))
    return edges


def test_domains_import_only_the_domains_below_them() -> None:
    wrong = [
        f"{where}: {source} imports {target}"
        for source, target, where in _edges()
        if source in LAYERS and target in LAYERS and LAYERS.index(target) <= LAYERS.index(source)
    ]
    assert wrong == []


def test_no_domain_and_no_platform_module_imports_the_composition_root() -> None:
    wrong = [
        f"{where}: {source} imports {target}"
        for source, target, where in _edges()
        if source not in COMPOSITION_ROOT and target in COMPOSITION_ROOT
    ]
    assert wrong == []


_STOCK_WRITE = re.compile(
    r"update\(levels\)|UPDATE stock_levels|INSERT INTO stock_movements|movements\.insert\(|"
    r"insert\(levels\)|dialect_insert\(session, levels\)"
)


def test_only_the_ledger_writes_stock_levels_and_ledger_rows() -> None:
    writers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "migrations" not in path.parts and _STOCK_WRITE.search(path.read_text())
    )
    assert writers == ["inventory/ledger.py"]


@pytest.mark.parametrize(
    "domain", ["accounts", "catalog", "inventory", "orders", "events", "notifications"]
)
def test_routes_reach_the_database_only_through_the_unit_of_work(domain: str) -> None:
    router = (SRC / domain / "router.py").read_text()
    for forbidden in ("AsyncSession", "db.run(", "db.transaction(", "DatabaseDep"):
        assert forbidden not in router, f"{domain}/router.py uses {forbidden}"
    # Work is a service function, never a closure built in the route.
    assert re.search(r"\.run\(\s*lambda", router) is None
    assert re.search(r"^\s+async def \w+\(session", router, re.MULTILINE) is None


def test_services_do_not_depend_on_the_web_framework() -> None:
    offenders = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.parent.name in LAYERS
        and path.name not in {"router.py", "dependencies.py", "schemas.py"}
        and path.parent.name not in {"web", "shop"}
        and any(module.startswith("fastapi") for module in _imports(path))
    )
    assert offenders == []
