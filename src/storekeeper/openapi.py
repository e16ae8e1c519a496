"""The OpenAPI document: stable operationIds and the one Problem schema for every error.

Routes declare their errors with `errors.problem_responses`, which names the Problem schema;
this module puts that schema (with its parts) into the document and replaces the 422 that
FastAPI adds by itself to every operation with input, whose `HTTPValidationError` body the
service never sends (every 422 is problem+json, rendered by `errors.register_error_handlers`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from storekeeper.errors import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_SCHEMA_REF,
    Problem,
    ValidationFailed,
)

_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def operation_id(route: APIRoute) -> str:
    """The route function's name (`create_hold`): what generated clients call the method.
    tests/test_openapi.py holds them unique."""
    return route.name


def problem_schemas() -> dict[str, Any]:
    """The Problem schema and the schemas it refers to, as document components."""
    _, schemas = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    defs: dict[str, Any] = schemas.get("$defs", {})
    return defs


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the Problem schema in its components and FastAPI's default 422
    replaced by the problem+json one (in place; returned for convenience)."""
    unprocessable = {
        "description": f"`{ValidationFailed.code}`",
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            declared = responses.get("422", {}).get("content", {})
            if any(
                body.get("schema", {}).get("$ref") == _FASTAPI_VALIDATION_REF
                for body in declared.values()
            ):
                responses["422"] = unprocessable
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(problem_schemas())
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the finished document at the app's `openapi_url` (built once, on first use)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if not getattr(app.state, "openapi_finished", False):
            app.openapi_schema = finish_document(build())
            app.state.openapi_finished = True
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
