"""One JSON error shape for every failure, and no stack trace ever reaches a client.

Every error response body is::

    {"error": {"code": "not_found", "message": "…", "request_id": "…", "details": […]}}

``code`` is stable and machine-readable; ``message`` is for people; ``details`` lists
field problems for 422s. Core's :mod:`pixecom_core.errors` map to statuses here, database
timeouts and an exhausted pool to 503 with ``Retry-After`` (SCALE-7: a runaway
query is cancelled and the client is told to come back, the request never hangs), and
anything unexpected to a bare 500 whose details go to the server log only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg.errors
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route, compile_path

from pixecom_core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PixecomError,
)
from pixecom_core.plugins import UnknownProviderError
from pixecom_core.providers.errors import (
    ProviderError,
    ProviderTransientError,
    WebhookVerificationError,
)
from pixecom_core.security.rate_limits import RateLimited
from pixecom_core.tenancy import InvalidCursorError

_log = logging.getLogger(__name__)

#: Seconds a client should wait after a 503 caused by database load.
DATABASE_RETRY_AFTER_SECONDS = 2

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}

_CORE_STATUSES: Sequence[tuple[type[PixecomError], int]] = (
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (AuthenticationError, status.HTTP_401_UNAUTHORIZED),
    (PermissionDeniedError, status.HTTP_403_FORBIDDEN),
    (InvalidRequestError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)


class FieldProblem(BaseModel):
    """One problem with one input field."""

    location: list[str | int] = Field(description='Where, e.g. ["body", "price_minor"].')
    message: str
    type: str = Field(description="pydantic's error type, e.g. `missing`, `int_parsing`.")


class ErrorBody(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    request_id: str | None = Field(default=None, description="Quote it when reporting.")
    details: list[FieldProblem] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response."""

    error: ErrorBody


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error shape for ``codes``."""
    return {
        code: {"model": ErrorResponse, "description": _STATUS_CODES.get(code, "error")}
        for code in codes
    }


def request_id(request: Request) -> str:
    """The request's id: the client's ``X-Request-ID`` if sane, else a new one."""
    existing: str | None = getattr(request.state, "request_id", None)
    if existing:
        return existing
    given = request.headers.get("x-request-id", "")
    value = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
    request.state.request_id = value
    return value


def error_response(
    request: Request,
    status_code: int,
    *,
    code: str | None = None,
    message: str,
    details: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response in the one error shape."""
    body = ErrorResponse(
        error=ErrorBody(
            code=code or _STATUS_CODES.get(status_code, "error"),
            message=message,
            request_id=request_id(request),
            details=details or [],
        )
    )
    # The id in a header too (issue 7): a 500 is answered outside the API's middleware,
    # which echoes it on every other response.
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status_code,
        headers={**(headers or {}), "X-Request-ID": body.error.request_id or ""},
    )


def allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """Every method some route of ``routes`` serves at ``path``, for a 405's ``Allow``.

    Starlette names only the methods of the first route whose path matched, so
    ``OPTIONS /products`` said ``Allow: POST`` while ``GET /products`` exists too (issue 12
    item 7). Concrete paths win over templated ones, as in OpenAPI: ``/assets/uploads``
    allows what that route allows, not what ``/assets/{asset_id}`` does.
    """
    matching: list[tuple[int, set[str]]] = []
    for context in iter_route_contexts(routes):
        route, route_path = context.original_route, context.path
        if not isinstance(route, Route) or route_path is None or not route.methods:
            continue
        pattern, _, convertors = compile_path(route_path)
        if pattern.match(path):
            matching.append((len(convertors), set(route.methods)))
    if not matching:
        return []
    fewest_parameters = min(parameters for parameters, _ in matching)
    methods = set().union(
        *(methods for parameters, methods in matching if parameters == fewest_parameters)
    )
    return sorted(methods)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _STATUS_CODES.get(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        methods = allowed_methods(request.app.routes, request.url.path)
        if methods:
            headers["Allow"] = ", ".join(methods)
    return error_response(
        request,
        exc.status_code,
        message=detail or "error",
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        FieldProblem(
            location=[part for part in error.get("loc", ()) if isinstance(part, str | int)],
            message=str(error.get("msg", "invalid")),
            type=str(error.get("type", "value_error")),
        )
        for error in exc.errors()
    ]
    return error_response(
        request,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        message="the request is not valid; see details",
        details=problems,
    )


async def _core_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PixecomError)
    for kind, status_code in _CORE_STATUSES:
        if isinstance(exc, kind):
            headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
            return error_response(
                request, status_code, code=exc.code, message=str(exc), headers=headers
            )
    return error_response(request, status.HTTP_400_BAD_REQUEST, code=exc.code, message=str(exc))


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return error_response(
        request,
        status.HTTP_429_TOO_MANY_REQUESTS,
        code="account_locked" if exc.limit == "login-account" else "rate_limited",
        message=exc.detail,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request, status.HTTP_400_BAD_REQUEST, code="invalid_cursor", message=str(exc)
    )


def _unavailable(request: Request, code: str, message: str) -> JSONResponse:
    return error_response(
        request,
        status.HTTP_503_SERVICE_UNAVAILABLE,
        code=code,
        message=message,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    cause = exc.orig
    if isinstance(cause, psycopg.errors.QueryCanceled):
        _log.warning("statement cancelled (statement_timeout) on %s", request.url.path)
        return _unavailable(
            request, "database_timeout", "the request took too long and was cancelled; retry"
        )
    if isinstance(cause, psycopg.errors.LockNotAvailable):
        _log.warning("lock wait cancelled (lock_timeout) on %s", request.url.path)
        return _unavailable(request, "database_busy", "the data is busy; retry shortly")
    if isinstance(cause, psycopg.DataError):
        # A value PostgreSQL cannot store (a NUL character in text or JSON, say): the
        # client's input, not a server fault. Said in the API's words: the database's
        # own text names tables and columns (issue 12 item 5).
        message = (
            "a number in the request is out of range"
            if isinstance(cause, psycopg.errors.NumericValueOutOfRange)
            else "a value in the request cannot be stored (NUL characters are not allowed)"
        )
        return error_response(
            request, status.HTTP_422_UNPROCESSABLE_CONTENT, code="invalid_value", message=message
        )
    if isinstance(cause, psycopg.OperationalError):
        _log.error("database unavailable on %s: %s", request.url.path, type(cause).__name__)
        return _unavailable(request, "database_unavailable", "the database is unavailable")
    return await _unexpected(request, exc)


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001
    _log.warning("connection pool exhausted on %s", request.url.path)
    return _unavailable(request, "database_busy", "the service is busy; retry shortly")


async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderError)
    if isinstance(exc, WebhookVerificationError):
        return error_response(
            request, status.HTTP_400_BAD_REQUEST, code="invalid_signature", message=str(exc)
        )
    _log.warning("provider %s failed on %s: %s", exc.provider, request.url.path, exc)
    if isinstance(exc, ProviderTransientError):
        return _unavailable(request, "provider_unavailable", "the provider did not answer; retry")
    return error_response(
        request,
        status.HTTP_502_BAD_GATEWAY,
        code="provider_error",
        message=f"the {exc.provider or 'external'} service refused the request",
    )


async def _unknown_provider(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request, status.HTTP_404_NOT_FOUND, code="unknown_provider", message=str(exc)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.error(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.url.path,
        request_id(request),
        exc_info=exc,
    )
    return error_response(
        request,
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        message="internal error; quote the request id when reporting it",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(PixecomError, _core_error)
    app.add_exception_handler(InvalidCursorError, _invalid_cursor)
    app.add_exception_handler(ProviderError, _provider_error)
    app.add_exception_handler(UnknownProviderError, _unknown_provider)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _pool_timeout)
    app.add_exception_handler(Exception, _unexpected)
