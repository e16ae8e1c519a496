"""Logging, request ids, access logs and Prometheus metrics for HTTP traffic."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storekeeper.errors import PayloadTooLarge, problem_response

MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

access_log = structlog.get_logger("storekeeper.access")

HTTP_REQUESTS = Counter(
    "storekeeper_http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "storekeeper_http_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# The standard-library loggers of the server itself; their records are rendered by the
# same processors as the service's own (so `LOG_FORMAT=json` gives one format on stderr).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_HANDLER_NAME = "storekeeper"


def configure_logging(log_format: str, level: str = "INFO") -> None:
    """structlog for the service's own lines, and the same rendering for every standard
    `logging` record (uvicorn's start-up, shutdown and error lines, libraries' warnings):
    a handler on the root logger formats them with structlog's `ProcessorFormatter`, and
    uvicorn's loggers hand their records to it instead of keeping handlers of their own."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    # Configuring again replaces this function's handler, not those others attached (a
    # test runner's capture, for one).
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(numeric_level)
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        # uvicorn turns its access log off (`access_log=False`, as `storekeeper serve` runs
        # it: the service writes its own) by leaving that logger without handlers and not
        # propagating; it stays off. Any logger uvicorn did configure hands its records on.
        enabled = bool(server_logger.handlers) or server_logger.propagate
        server_logger.handlers = []
        server_logger.propagate = enabled
        server_logger.setLevel(numeric_level)


AUDIT_LOGGER = "storekeeper.audit"
_AUDIT_LEVEL = structlog.make_filtering_bound_logger(logging.INFO)


class AuditLog:
    """The audit log: failed sign-ins, sign-outs, ended sign-ins, accounts created or changed
    by an admin, refused forms. Each record carries `logger="storekeeper.audit"` and is kept
    at INFO whatever STOREKEEPER_LOG_LEVEL says (a quieter level must not drop the audit
    trail); it goes through the processors and output configured for every other log, read
    at each call (so `structlog.testing.capture_logs` sees it too)."""

    def info(self, event: str, **fields: Any) -> None:
        self._logger().info(event, logger=AUDIT_LOGGER, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._logger().warning(event, logger=AUDIT_LOGGER, **fields)

    @staticmethod
    def _logger() -> Any:
        return structlog.wrap_logger(None, wrapper_class=_AUDIT_LEVEL)


def audit_logger() -> AuditLog:
    return AuditLog()


def metrics_payload() -> tuple[bytes, str]:
    """Prometheus exposition; aggregates all workers when running multi-process."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


NOSNIFF = (b"x-content-type-options", b"nosniff")
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def _security_headers(scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response carries: `nosniff` always, HSTS in production (read from
    the settings of the app that serves `scope`)."""
    settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
    env = getattr(getattr(settings, "env", None), "value", None)
    return (NOSNIFF, HSTS) if env == "production" else (NOSNIFF,)


class RequestContextMiddleware:
    """Request id, security headers, body-size limit, access log line and HTTP metrics, as
    pure ASGI.

    Pure ASGI (not BaseHTTPMiddleware) keeps the per-request overhead low and the
    response streaming untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Worked out on the first request (the app's settings are known by then).
        self._security_headers: tuple[tuple[bytes, bytes], ...] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status_holder = {"status": 500}
        header_value = request_id.encode("latin-1")
        if self._security_headers is None:
            self._security_headers = _security_headers(scope)
        security_headers = self._security_headers
        replaced = {b"x-request-id", *(name for name, _ in security_headers)}

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in replaced
                ]
                headers.append((b"x-request-id", header_value))
                headers.extend(security_headers)
                message["headers"] = headers
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > MAX_BODY_BYTES:
                response = problem_response(PayloadTooLarge(), scope.get("path"))
                await response(scope, receive, send_with_request_id)
                return
            await self.app(scope, _limited_receive(receive), send_with_request_id)
        finally:
            duration = time.perf_counter() - start
            template = _route_template(scope)
            status = str(status_holder["status"])
            method = scope.get("method", "")
            count, latency = _http_series(method, template, status)
            count.inc()
            latency.observe(duration)
            access_log.info(
                "request",
                method=method,
                route=template,
                path=scope.get("path"),
                status=status_holder["status"],
                duration_ms=round(duration * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


_SERIES: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _http_series(method: str, template: str, status: str) -> tuple[Any, Any]:
    """The request counter and latency histogram of one (method, route, status), looked up
    once per process: `labels()` validates and joins the labels on every call. Bounded by
    the routes times the statuses they answer (unmatched paths share one template)."""
    key = (method, template, status)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = (
            HTTP_REQUESTS.labels(method, template, status),
            HTTP_LATENCY.labels(method, template, status),
        )
    return series


def _route_template(scope: Scope) -> str:
    """The matched route's path template with the prefix of every router it sits in.

    FastAPI matches included routers lazily: the route object in the scope keeps the path
    it was declared with ("/categories/{category_id}"), without the prefix of the router it
    was included in ("/api/v1"). That prefix is the part of the request path in front of
    what the route's own pattern matches.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not template:
        return "<unmatched>"
    path: str = scope.get("path", "")
    pattern = getattr(route, "path_regex", None)
    if pattern is None or pattern.match(path):
        return str(template)
    for index, char in enumerate(path):
        if char == "/" and index and pattern.match(path[index:]):
            return path[:index] + template
    return str(template)


def _limited_receive(receive: Receive) -> Receive:
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                # Raised as an HTTP error so the body parser passes it on as a 413.
                raise HTTPException(413)
        return message

    return wrapped


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if _REQUEST_ID_PATTERN.match(candidate):
                return candidate
            return None
    return None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
