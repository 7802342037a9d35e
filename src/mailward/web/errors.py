"""One JSON error shape for the whole app: ``{"error": "<one line>"}``."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from mailward.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    TooManyAttempts,
)

log = logging.getLogger(__name__)


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        {"error": message}, status_code=status, headers=headers, media_type=MediaType.JSON
    )


HTTP_STATUS: dict[type[ServiceError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    TooManyAttempts: 429,
}


def http_status(exc: ServiceError) -> int:
    """The HTTP status a refused service call answers with (400 unless more specific)."""
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400


def service_error(_request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    """A service refused: its status (400/403/404/409) and its one-line reason."""
    return _error(str(exc), http_status(exc))


def validation_error(_request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Malformed body or parameters: 400 naming the field (never echoing values)."""
    problems = [_problem(item) for item in (exc.extra if isinstance(exc.extra, list) else [])]
    detail = "; ".join(p for p in problems if p) or exc.detail
    return _error(f"invalid request: {detail}", HTTP_400_BAD_REQUEST)


def _problem(item: Any) -> str:
    """One of Litestar's validation items as ``"<message> (query parameter x)"``."""
    if not isinstance(item, dict):
        return ""
    message = str(item.get("message", "")).strip()
    source = getattr(item.get("source"), "value", item.get("source"))
    key = str(item.get("key") or "").rstrip("_")
    if source == "body":
        return f"{message} (body field {key})" if key and key != "data" else f"{message} (body)"
    if not key:
        return message
    return f"{message} ({source} parameter {key})" if source else f"{message} ({key})"


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own errors (401, 404 route, 405, 429, ...) in our shape, headers kept."""
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return internal_error(request, exc)
    return _error(exc.detail, exc.status_code, exc.headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error("internal server error", HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ServiceError: service_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
