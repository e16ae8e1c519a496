"""The domain error hierarchy and its single mapping to RFC 9457 problem+json responses.

Each error class carries its HTTP status and stable `code`; `register_error_handlers`
renders them, and `problem_responses` documents them in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Error responses name the one Problem schema; `storekeeper.openapi` puts it in the document.
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

log = structlog.get_logger("storekeeper.errors")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(description: str) -> Any:
    """A member sent only with some codes: not required, never null (so no `default`)."""
    return Field(default=None, description=description, json_schema_extra=_no_default)


class FieldError(BaseModel):
    """One refused input of a `validation_error`."""

    loc: list[str | int] = Field(
        description="Where the input is: `body`, `query`, `path`, `header` or `form`, then the "
        "field names and list indexes down to it.",
        examples=[["body", "items", 0, "quantity"]],
    )
    msg: str = Field(description="What is wrong, for people.")
    type: str | SkipJsonSchema[None] = _optional(
        "The kind of refusal (`missing`, `greater_than_equal`, ...); sent for input refused "
        "before the service ran."
    )


class Shortage(BaseModel):
    """One line of an `insufficient_stock` refusal."""

    sku: str = Field(description="The SKU code of the line.")
    requested: int = Field(description="The units the line asked for.")
    available: int = Field(description="The units that could be had when it was refused.")


class Problem(BaseModel):
    """RFC 9457 problem details, with the stable machine-readable `code` (branch on it, not
    on `detail`). Members past `code` are sent only with the codes they name."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:storekeeper:problem:insufficient_stock",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "Not enough stock to serve every line.",
                    "instance": "/api/v1/inventory/holds",
                    "code": "insufficient_stock",
                    "shortages": [{"sku": "TEE-RED-M", "requested": 3, "available": 1}],
                },
                {
                    "type": "urn:storekeeper:problem:validation_error",
                    "title": HTTPStatus(422).phrase,
                    "status": 422,
                    "detail": "body.items.0.quantity: Input should be greater than or equal to 1",
                    "instance": "/api/v1/inventory/holds",
                    "code": "validation_error",
                    "errors": [
                        {
                            "loc": ["body", "items", 0, "quantity"],
                            "msg": "Input should be greater than or equal to 1",
                            "type": "greater_than_equal",
                        }
                    ],
                },
            ]
        },
    )

    type: str = Field(description="The problem type: `urn:storekeeper:problem:<code>`.")
    title: str = Field(description="The HTTP status phrase (`Conflict`).")
    status: int = Field(description="The HTTP status code, as on the response.")
    detail: str = Field(description="What went wrong this time, for people.")
    instance: str | SkipJsonSchema[None] = _optional(
        "The path of the request that failed (sent on every problem the application renders)."
    )
    code: str = Field(description="The stable machine-readable code (see the error table).")
    errors: list[FieldError] | SkipJsonSchema[None] = _optional(
        "`validation_error`: every input refused."
    )
    shortages: list[Shortage] | SkipJsonSchema[None] = _optional(
        "`insufficient_stock`: every line that cannot be served in full."
    )
    current_version: int | SkipJsonSchema[None] = _optional(
        "`version_conflict`: the resource's version now; reload it and send that version."
    )
    current_status: str | SkipJsonSchema[None] = _optional(
        "`invalid_transition` of an order: its status now."
    )
    allowed: list[str] | SkipJsonSchema[None] = _optional(
        "`invalid_transition` of an order: the statuses it may move to from `current_status`."
    )
    required_scope: str | SkipJsonSchema[None] = _optional(
        "`forbidden` for an API key: the scope the operation takes, or `admin` / `user` when "
        "no key can reach it (an administrator or the person must sign in)."
    )
    codes: list[str] | SkipJsonSchema[None] = _optional(
        "`conflict` when creating SKUs: the SKU codes already in use."
    )
    sku: str | SkipJsonSchema[None] = _optional("`purchase_limit_exceeded`: the SKU code.")
    limit: int | SkipJsonSchema[None] = _optional(
        "`purchase_limit_exceeded`: the SKU's `max_per_customer`."
    )
    already_ordered: int | SkipJsonSchema[None] = _optional(
        "`purchase_limit_exceeded`: the units of the SKU the customer has ordered already."
    )
    requested: int | SkipJsonSchema[None] = _optional(
        "`purchase_limit_exceeded`: the units of the SKU this request asks for."
    )
    request_id: str | SkipJsonSchema[None] = _optional(
        "`internal_error`: the request id to quote when reporting it."
    )


class StorekeeperError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_detail: ClassVar[str] = "The server could not complete the request."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, Any]:
        return problem_body(self.status_code, self.code, self.detail, **self.extra)


class RetryableError(StorekeeperError):
    """A conflict that re-running the whole unit of work may resolve."""

    status_code = 409
    code = "concurrent_update"
    default_detail = "The resource was changed concurrently; retries were exhausted."


class BadRequest(StorekeeperError):
    status_code = 400
    code = "bad_request"
    default_detail = "The request could not be understood."


class Unauthorized(StorekeeperError):
    status_code = 401
    code = "unauthorized"
    default_detail = "Authentication is required."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(StorekeeperError):
    status_code = 403
    code = "forbidden"
    default_detail = "You are not allowed to do this."


class NotFound(StorekeeperError):
    status_code = 404
    code = "not_found"
    default_detail = "No such resource."


class MethodNotAllowed(StorekeeperError):
    status_code = 405
    code = "method_not_allowed"
    default_detail = "This method is not allowed on this resource."


class Conflict(StorekeeperError):
    status_code = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class VersionConflict(StorekeeperError):
    status_code = 409
    code = "version_conflict"
    default_detail = "The resource was changed since you read it; reload and retry."


class InvalidTransition(StorekeeperError):
    status_code = 409
    code = "invalid_transition"
    default_detail = "This status change is not allowed from the current status."


class HoldExpired(StorekeeperError):
    status_code = 409
    code = "hold_expired"
    default_detail = "The hold has expired and its stock was returned."


class InsufficientStock(StorekeeperError):
    status_code = 409
    code = "insufficient_stock"
    default_detail = "Not enough stock to serve every line."

    def __init__(self, shortages: Sequence[dict[str, Any]], detail: str | None = None) -> None:
        self.shortages = [dict(item) for item in shortages]
        super().__init__(detail, shortages=self.shortages)


class PurchaseLimitExceeded(StorekeeperError):
    """More units of a SKU for one customer than its `max_per_customer` allows."""

    status_code = 409
    code = "purchase_limit_exceeded"
    default_detail = "This order would exceed the most units of a SKU one customer may buy."

    def __init__(
        self,
        *,
        sku: str,
        limit: int,
        already_ordered: int,
        requested: int,
        detail: str | None = None,
    ) -> None:
        super().__init__(
            detail
            or f"At most {limit} of {sku} per customer: {already_ordered} already ordered, "
            f"{requested} more requested.",
            sku=sku,
            limit=limit,
            already_ordered=already_ordered,
            requested=requested,
        )


class PayloadTooLarge(StorekeeperError):
    status_code = 413
    code = "payload_too_large"
    default_detail = "The request body is larger than 1 MiB."


class UnsupportedMediaType(StorekeeperError):
    status_code = 415
    code = "unsupported_media_type"
    default_detail = "The request body is not of a type this endpoint takes."


class ValidationFailed(StorekeeperError):
    status_code = 422
    code = "validation_error"
    default_detail = "The request is not valid."

    def __init__(self, errors: Sequence[dict[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail, errors=[dict(e) for e in errors])

    @classmethod
    def field(cls, loc: Sequence[str | int], msg: str) -> ValidationFailed:
        return cls([{"loc": list(loc), "msg": msg}], detail=msg)


class IdempotencyKeyReused(StorekeeperError):
    status_code = 422
    code = "idempotency_key_reused"
    default_detail = "This idempotency key was already used with a different request."


class RateLimited(StorekeeperError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many requests; retry later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(StorekeeperError):
    status_code = 503
    code = "service_unavailable"
    default_detail = "The service cannot answer right now."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


# SQLSTATE classes that mean "the database cannot take this request now", not "this request
# is wrong": connection exceptions, insufficient resources (too many clients), operator
# intervention (shutting down, cannot connect now), and a write sent to a read-only server
# (25006: a standby during a failover, before the new primary is promoted or reached).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P", "25006")


def sqlstate_of(exc: DBAPIError) -> str | None:
    """The SQLSTATE code of a driver error (asyncpg names it `sqlstate`, psycopg `pgcode`);
    None on SQLite, whose errors carry none."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return sqlstate if isinstance(sqlstate, str) else None


def is_database_unavailable(exc: BaseException) -> bool:
    """True when the error says the database is out of reach or full, not that work failed."""
    if isinstance(exc, PoolTimeoutError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = sqlstate_of(exc)
        if sqlstate is not None and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
            return True
        # SQLite: a writer held the lock past the busy timeout.
        return "database is locked" in str(exc.orig)
    return False


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:storekeeper:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(error: StorekeeperError, instance: str | None = None) -> ProblemResponse:
    """The problem+json response of `error`; `instance` is the path of the request."""
    body = error.body()
    if instance is not None:
        body["instance"] = instance
    return ProblemResponse(body, status_code=error.status_code, headers=error.headers())


def problem_responses(*errors: type[StorekeeperError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given errors, grouped by status: problem+json only (no
    `model`, which would add an `application/json` body the service never sends)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = responses.setdefault(
            error.status_code,
            {
                "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
                "description": "",
            },
        )
        codes = [c for c in entry["description"].split(", ") if c]
        codes.append(f"`{error.code}`")
        entry["description"] = ", ".join(codes)
    return responses


def _clean_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    cleaned = []
    for error in errors:
        loc = [part if isinstance(part, int | str) else str(part) for part in error.get("loc", ())]
        cleaned.append(
            {"loc": loc, "msg": str(error.get("msg", "invalid")), "type": error.get("type")}
        )
    return cleaned


_HTTP_CODES = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StorekeeperError)
    async def _domain_error(request: Request, exc: StorekeeperError) -> Response:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = _clean_validation_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return problem_response(ValidationFailed(errors, detail=detail), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error_class = _HTTP_CODES.get(exc.status_code)
        if error_class is not None:
            detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
            error = error_class(detail)
            headers = {**error.headers(), **(exc.headers or {})}
            body = {**error.body(), "instance": request.url.path}
            return ProblemResponse(body, status_code=exc.status_code, headers=headers)
        body = problem_body(
            exc.status_code, "http_error", str(exc.detail), instance=request.url.path
        )
        return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def _database_error(request: Request, exc: Exception) -> Response:
        if not is_database_unavailable(exc):
            raise exc  # a real failure: the catch-all below renders it as a 500
        log.warning("database_unavailable", error_type=type(exc).__name__)
        return problem_response(
            ServiceUnavailable("The database cannot take this request now; retry shortly."),
            request.url.path,
        )

    for database_error in (DBAPIError, PoolTimeoutError, ConnectionError):
        app.add_exception_handler(database_error, _database_error)

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled_error", error_type=type(exc).__name__)
        body = problem_body(
            500,
            "internal_error",
            "An unexpected error occurred. Quote the request id when reporting it.",
            instance=request.url.path,
            request_id=request_id,
        )
        headers = {"X-Request-ID": request_id} if request_id else None
        return ProblemResponse(body, status_code=500, headers=headers)
