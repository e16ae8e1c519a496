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
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_CONTENT_TYPE = "application/problem+json"

log = structlog.get_logger("storekeeper.errors")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Problem(BaseModel):
    """RFC 9457 problem details, with the stable machine-readable `code`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str


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
# intervention (shutting down, cannot connect now).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")


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


def problem_response(error: StorekeeperError) -> ProblemResponse:
    return ProblemResponse(error.body(), status_code=error.status_code, headers=error.headers())


def problem_responses(*errors: type[StorekeeperError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given errors, grouped by status."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = responses.setdefault(
            error.status_code,
            {
                "model": Problem,
                "content": {PROBLEM_CONTENT_TYPE: {"schema": Problem.model_json_schema()}},
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
    async def _domain_error(_request: Request, exc: StorekeeperError) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        errors = _clean_validation_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return problem_response(ValidationFailed(errors, detail=detail))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        error_class = _HTTP_CODES.get(exc.status_code)
        if error_class is not None:
            detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
            error = error_class(detail)
            headers = {**error.headers(), **(exc.headers or {})}
            return ProblemResponse(error.body(), status_code=exc.status_code, headers=headers)
        body = problem_body(exc.status_code, "http_error", str(exc.detail))
        return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def _database_error(_request: Request, exc: Exception) -> Response:
        if not is_database_unavailable(exc):
            raise exc  # a real failure: the catch-all below renders it as a 500
        log.warning("database_unavailable", error_type=type(exc).__name__)
        return problem_response(
            ServiceUnavailable("The database cannot take this request now; retry shortly.")
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
            request_id=request_id,
        )
        headers = {"X-Request-ID": request_id} if request_id else None
        return ProblemResponse(body, status_code=500, headers=headers)
