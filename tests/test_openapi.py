"""The OpenAPI document, walked as a client generator reads it (`/openapi.json`).

Every operation is described, every error body is `application/problem+json` with the one
Problem schema (FastAPI's HTTPValidationError appears nowhere), the Problem schema names what
the service sends, operationIds are the route functions' names and unique, public catalog
reads declare no security, and the document validates. The rules walk whatever routes exist,
so an operation added later is held to them as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from openapi_spec_validator import validate

from storekeeper.accounts.scopes import access_of
from storekeeper.app import create_app
from storekeeper.config import Environment, Settings
from storekeeper.errors import PROBLEM_CONTENT_TYPE

API = "/api/v1"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PROBLEM_REF = "#/components/schemas/Problem"
# The readiness probe answers 503 with its own report (`{"status": "unavailable", ...}`),
# which load balancers and the tests read; it is the probe's answer, not an API error.
READINESS_OPERATION = "ready"

Operation = tuple[str, str, dict[str, Any]]


def _settings() -> Settings:
    return Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        env=Environment.TEST,
        run_background_tasks=False,
        rate_limit_enabled=False,
        log_format="console",
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(scope="module")
def application() -> Any:
    return create_app(_settings())


@pytest.fixture(scope="module")
async def document(application: Any) -> dict[str, Any]:
    # The document needs no database: the app is served without its lifespan.
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# --- walking the document ---------------------------------------------------------------


def operations(doc: dict[str, Any]) -> Iterator[Operation]:
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def undescribed_operations(doc: dict[str, Any]) -> list[str]:
    return [
        f"{method.upper()} {path}"
        for path, method, op in operations(doc)
        if not (op.get("description") or "").strip()
    ]


def unsummarised_operations(doc: dict[str, Any]) -> list[str]:
    return [
        f"{method.upper()} {path}"
        for path, method, op in operations(doc)
        if not (op.get("summary") or "").strip()
    ]


def schema_fields(doc: dict[str, Any]) -> tuple[int, int]:
    """(described, total) properties over every component schema."""
    described = total = 0
    for schema in doc.get("components", {}).get("schemas", {}).values():
        for prop in schema.get("properties", {}).values():
            total += 1
            described += bool((prop.get("description") or "").strip())
    return described, total


def error_responses(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, method, op in operations(doc):
        for status, response in op.get("responses", {}).items():
            if status[0] in "45":
                yield op.get("operationId", f"{method} {path}"), status, response


def json_error_bodies(doc: dict[str, Any]) -> list[str]:
    """Error responses declaring a content type other than problem+json."""
    return [
        f"{operation_id} {status} {media}"
        for operation_id, status, response in error_responses(doc)
        for media in response.get("content", {})
        if media != PROBLEM_CONTENT_TYPE
        and not (operation_id == READINESS_OPERATION and status == "503")
    ]


def validation_error_uses(doc: dict[str, Any]) -> int:
    """References to FastAPI's own 422 schemas, and the schemas themselves."""
    text = json.dumps(doc)
    refs = text.count('"#/components/schemas/HTTPValidationError"')
    refs += text.count('"#/components/schemas/ValidationError"')
    schemas = doc.get("components", {}).get("schemas", {})
    return refs + sum(name in schemas for name in ("HTTPValidationError", "ValidationError"))


def public_operations(doc: dict[str, Any]) -> list[Operation]:
    """The catalog's reads: open to anyone, with or without a token."""
    return [
        (path, method, op)
        for path, method, op in operations(doc)
        if path.startswith(API)
        and access_of(method.upper(), path.removeprefix(API)).kind == "public"
    ]


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    described, total = schema_fields(doc)
    public = public_operations(doc)
    return {
        "operations": sum(1 for _ in operations(doc)),
        "operations_without_description": len(undescribed_operations(doc)),
        "schema_fields_described": f"{described}/{total}",
        "error_responses": sum(1 for _ in error_responses(doc)),
        "error_responses_with_other_media": len(json_error_bodies(doc)),
        "http_validation_error_uses": validation_error_uses(doc),
        "public_reads": len(public),
        "public_reads_secured": sum("security" in op for _, _, op in public),
        "public_reads_listing_401": sum("401" in op["responses"] for _, _, op in public),
    }


# --- the rules --------------------------------------------------------------------------


def test_figures(document: dict[str, Any]) -> None:
    """The document's figures (printed with `pytest -s` for the record)."""
    counted = figures(document)
    print("\nopenapi figures:", json.dumps(counted))
    assert counted["operations"] > 0
    assert counted["operations_without_description"] == 0
    assert counted["error_responses_with_other_media"] == 0
    assert counted["http_validation_error_uses"] == 0
    assert counted["public_reads"] > 0
    assert counted["public_reads_secured"] == 0
    assert counted["public_reads_listing_401"] == 0


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    assert undescribed_operations(document) == []
    assert unsummarised_operations(document) == []


def test_every_error_body_is_the_problem_schema(document: dict[str, Any]) -> None:
    assert json_error_bodies(document) == []
    wrong = [
        f"{operation_id} {status}"
        for operation_id, status, response in error_responses(document)
        if not (operation_id == READINESS_OPERATION and status == "503")
        and response.get("content", {}).get(PROBLEM_CONTENT_TYPE, {}).get("schema")
        != {"$ref": PROBLEM_REF}
    ]
    assert wrong == []


def test_no_operation_declares_fastapis_validation_error(document: dict[str, Any]) -> None:
    assert validation_error_uses(document) == 0
    # The six hold and allocation operations whose only input is a path id had FastAPI's.
    paths = document["paths"]
    for path, method in [
        ("/inventory/holds/{hold_id}", "get"),
        ("/inventory/holds/{hold_id}/convert", "post"),
        ("/inventory/holds/{hold_id}/release", "post"),
        ("/inventory/allocations/{allocation_id}", "get"),
        ("/inventory/allocations/{allocation_id}/fulfil", "post"),
        ("/inventory/allocations/{allocation_id}/cancel", "post"),
    ]:
        unprocessable = paths[API + path][method]["responses"]["422"]
        assert unprocessable["content"] == {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
        assert "validation_error" in unprocessable["description"]


def test_an_operation_without_input_declares_no_422(document: dict[str, Any]) -> None:
    assert "422" not in document["paths"]["/health"]["get"]["responses"]
    assert "422" not in document["paths"][f"{API}/users/me"]["get"]["responses"]


def test_the_problem_schema_names_every_member_the_service_sends(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    members = set(problem["properties"])
    assert {"type", "title", "status", "detail", "instance", "code"} <= members
    assert {
        "errors",
        "shortages",
        "current_version",
        "current_status",
        "allowed",
        "required_scope",
        "codes",
        "sku",
        "limit",
        "already_ordered",
        "requested",
        "request_id",
    } <= members
    assert all(prop.get("description") for prop in problem["properties"].values())
    assert problem["examples"]
    field_error = _resolved(document, problem["properties"]["errors"])
    assert set(field_error["required"]) == {"loc", "msg"}
    shortage = _resolved(document, problem["properties"]["shortages"])
    assert set(shortage["required"]) == {"sku", "requested", "available"}


def _resolved(doc: dict[str, Any], array_property: dict[str, Any]) -> dict[str, Any]:
    """The item schema of an array property (optional members are never null)."""
    assert array_property["type"] == "array"
    name = array_property["items"]["$ref"].rsplit("/", 1)[-1]
    resolved: dict[str, Any] = doc["components"]["schemas"][name]
    return resolved


def test_operation_ids_are_the_route_function_names_and_unique(
    application: Any, document: dict[str, Any]
) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    by_operation = {(method, path): op["operationId"] for path, method, op in operations(document)}
    expected = {
        (method.lower(), route.path_format): route.endpoint.__name__
        for route in iter_route_contexts(application.routes)
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    assert by_operation == expected
    assert by_operation[("post", f"{API}/inventory/holds")] == "create_hold"


def test_public_reads_declare_no_security_and_no_401(document: dict[str, Any]) -> None:
    public = public_operations(document)
    assert {(method, path) for path, method, _ in public} >= {
        ("get", f"{API}/products"),
        ("get", f"{API}/products/{{product_id}}"),
        ("get", f"{API}/skus/{{code}}"),
        ("get", f"{API}/categories/{{category_id}}/tree"),
    }
    assert [path for path, _, op in public if "security" in op or "401" in op["responses"]] == []


def test_operations_that_need_a_caller_declare_the_bearer_scheme(
    document: dict[str, Any],
) -> None:
    scheme = next(iter(document["components"]["securitySchemes"]))
    unsecured = [
        f"{method.upper()} {path}"
        for path, method, op in operations(document)
        if path.startswith(API)
        and not path.startswith(f"{API}/auth/")
        and access_of(method.upper(), path.removeprefix(API)).kind != "public"
        and ({scheme: []} not in op.get("security", []) or "401" not in op["responses"])
    ]
    assert unsecured == []


def test_idempotent_replays_have_their_schema(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path in ("/inventory/holds", "/inventory/allocations", "/carts/me/checkout", "/orders"):
        responses = paths[API + path]["post"]["responses"]
        assert (
            responses["200"]["content"]["application/json"]["schema"]
            == (responses["201"]["content"]["application/json"]["schema"])
        ), path
    # Every 200 next to a 201 (a replay, or "already there") says what it answers.
    missing = [
        op["operationId"]
        for _, _, op in operations(document)
        if "201" in op["responses"]
        and "200" in op["responses"]
        and "content" not in op["responses"]["200"]
    ]
    assert missing == []


def test_main_schemas_have_examples_and_described_fields(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    main = [
        "ProductOut",
        "ProductCreate",
        "SkuOut",
        "SkuCreate",
        "LevelOut",
        "StockOut",
        "HoldIn",
        "AllocationIn",
        "ReservationOut",
        "CartOut",
        "CartItemIn",
        "OrderIn",
        "OrderOut",
        "UserOut",
        "RegisterRequest",
        "TokenResponse",
        "WebhookCreate",
        "WebhookOut",
        "EventOut",
        "Problem",
    ]
    without_examples = [name for name in main if not schemas[name].get("examples")]
    assert without_examples == []
    undescribed = [
        f"{name}.{field}"
        for name in main
        for field, prop in schemas[name]["properties"].items()
        if not prop.get("description")
    ]
    assert undescribed == []


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_pages_for_people_are_not_in_the_document(document: dict[str, Any]) -> None:
    leaked = [
        path
        for path in document["paths"]
        if not (path.startswith(f"{API}/") or path.startswith("/health"))
    ]
    assert leaked == []


async def test_problems_sent_carry_only_members_of_the_schema(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    members = set(document["components"]["schemas"]["Problem"]["properties"])
    field_error = set(document["components"]["schemas"]["FieldError"]["properties"])

    missing = await client.get(f"{API}/products/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert missing.json()["instance"] == f"{API}/products/999999"
    assert set(missing.json()) <= members

    refused = await client.get(f"{API}/products/not-a-number")
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "validation_error"
    assert body["instance"] == f"{API}/products/not-a-number"
    assert set(body) <= members
    assert body["errors"] and all(set(error) <= field_error for error in body["errors"])


def test_every_schema_field_is_described(document: dict[str, Any]) -> None:
    described, total = schema_fields(document)
    assert total > 400
    assert described == total
