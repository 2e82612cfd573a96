"""Request-body size limits, enforced before a byte of an oversized body is buffered.

SEC-3 ("No request size limits"): every request body is limited to
``Settings.max_body_bytes`` (1 MiB by default) unless its route says otherwise.

- A declared ``Content-Length`` above the limit is answered 413 at once: the app never
  runs and the body is never read. A malformed ``Content-Length`` is answered 400.
- A body of unknown length (``Transfer-Encoding: chunked``) is counted as the app reads
  it; the read that crosses the limit fails, the app's own response is dropped and the
  client gets the 413. Nothing past the message that crossed the limit is ever read.

Every refusal is in the app's one error shape (:mod:`reference_app.api.errors`) and says
``Connection: close``: the server does not drain the unread rest of the body, it drops
the connection, and the client opens a new one for its next request.

**Per-route limits** are declared on the route, where a reader of the route sees them,
and published in the OpenAPI document, where a client sees them::

    @router.post("/creatives/upload", openapi_extra=body_limit(25 * MiB))

:func:`body_limit` puts an ``x-max-body-bytes`` extension on the operation. The
middleware collects the limits from the app's routes, included routers followed, the
first time a request carries a body, so routes that plugins contribute work like
core's. A route limit may be larger or smaller than the default; it applies to every
request whose method and path match the route's (path converters included; when several
declaring routes match, the first in the app's order wins). Limits are looked up from
the method and path, before routing, so an oversized declared body is refused before any
dependency or handler runs. Do not use FastAPI's own ``max_body_size`` route option: it
answers in another shape and, being inside this middleware, can only lower the limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reference_app.api.errors import error_response

_log = logging.getLogger(__name__)

#: One mebibyte, for writing limits: ``body_limit(25 * MiB)``.
MiB = 1024 * 1024

#: The OpenAPI operation extension that carries a route's limit in bytes.
BODY_LIMIT_EXTENSION = "x-max-body-bytes"

#: A Content-Length with more digits than this exceeds any limit (and would be slow to
#: parse if it were absurdly long).
_MAX_LENGTH_DIGITS = 18
_ABSURD_LENGTH: int = 10**_MAX_LENGTH_DIGITS

#: Every answer of this middleware ends the connection: the unread body is not drained.
_CLOSE = {"Connection": "close"}


def body_limit(max_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` for a route whose bodies may be up to ``max_bytes`` bytes.

    Merge it with other extras if the route has some:
    ``openapi_extra={**body_limit(25 * MiB), "x-other": …}``.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"a body limit is a number of bytes >= 0, not {max_bytes!r}")
    return {BODY_LIMIT_EXTENSION: max_bytes}


@dataclass(frozen=True)
class RouteBodyLimit:
    """The body limit of one route and method; ``path`` as the route declares it."""

    method: str
    path: str
    max_bytes: int
    pattern: re.Pattern[str]

    def applies_to(self, method: str, route_path: str) -> bool:
        return method == self.method and self.pattern.match(route_path) is not None


def route_body_limits(routes: Sequence[BaseRoute]) -> tuple[RouteBodyLimit, ...]:
    """The limits declared with :func:`body_limit` among ``routes`` (an app's
    ``app.routes``), following included routers to every API route and its full path."""
    limits: list[RouteBodyLimit] = []
    for context in iter_route_contexts(routes):
        route, path = context.original_route, context.path
        if not isinstance(route, APIRoute) or path is None:
            continue
        declared = (route.openapi_extra or {}).get(BODY_LIMIT_EXTENSION)
        if declared is None:
            continue
        pattern, _, _ = compile_path(path)
        limits.extend(
            RouteBodyLimit(method=method, path=path, max_bytes=int(declared), pattern=pattern)
            for method in sorted(route.methods or ())
        )
    return tuple(limits)


class MalformedContentLength(ValueError):
    """``Content-Length`` is not one non-negative decimal number."""


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, ``None`` without one.

    Repeated headers, or a comma-separated list, are accepted only when every value is
    the same (RFC 9110 §8.6); anything else raises :class:`MalformedContentLength`.
    """
    values: set[bytes] = set()
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            values.update(part.strip() for part in value.split(b","))
    if not values:
        return None
    if len(values) != 1:
        raise MalformedContentLength("conflicting Content-Length values")
    (value,) = values
    if not value or not value.isdigit():  # bytes.isdigit() is ASCII digits only
        raise MalformedContentLength("Content-Length is not a decimal number")
    if len(value.lstrip(b"0")) > _MAX_LENGTH_DIGITS:
        return _ABSURD_LENGTH  # larger than any limit; no need to be exact
    return int(value)


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a body of unknown length crosses its limit.

    An HTTP exception, so FastAPI's body parsing re-raises it instead of turning it into
    a 400 "error parsing the body"; the middleware answers the 413 itself either way.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=_too_large_message(max_bytes))


def _too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than this route's limit of {max_bytes} bytes"


class BodyLimitMiddleware:
    """Pure ASGI middleware enforcing request-body limits (see the module docstring).

    :param app: the application to protect.
    :param max_body_bytes: the limit of every route that declares none.
    :param route_limits: returns the per-route limits; called once, the first time a
        request carries a body (by then every router is mounted). ``create_app`` passes
        ``lambda: route_body_limits(app.routes)``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        route_limits: Callable[[], Iterable[RouteBodyLimit]] = tuple,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._load_route_limits = route_limits
        self._route_limits: tuple[RouteBodyLimit, ...] | None = None

    def limit_for(self, scope: Scope) -> int:
        """The body limit of the request ``scope`` is about."""
        if self._route_limits is None:
            self._route_limits = tuple(self._load_route_limits())
        if self._route_limits:
            method, path = scope["method"], _route_path(scope)
            for route in self._route_limits:
                if route.applies_to(method, path):
                    return route.max_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            length = declared_length(scope)
        except MalformedContentLength as exc:
            await self._refuse(scope, receive, send, 400, "invalid_content_length", str(exc))
            return
        if length == 0:
            await self.app(scope, receive, send)
            return
        limit: int | None = None
        if length is not None:
            limit = self.limit_for(scope)
            if length > limit:
                await self._refuse(
                    scope, receive, send, 413, "payload_too_large", _too_large_message(limit)
                )
                return
        # Count even within a declared length: not every server enforces it, and an
        # HTTP/2 body may come without one.
        await self._call_counting(scope, receive, send, limit)

    async def _call_counting(
        self, scope: Scope, receive: Receive, send: Send, known_limit: int | None
    ) -> None:
        limit = known_limit
        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal limit, received, exceeded
            if exceeded:
                assert limit is not None
                raise BodyTooLarge(limit)  # never read past the limit, however often asked
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                if limit is None:  # looked up only for requests that do carry a body
                    limit = self.limit_for(scope)
                received += len(message["body"])
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                return  # the app's answer to a half-read body; the 413 replaces it
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or response_started:
                raise
        if exceeded and not response_started:
            assert limit is not None
            _log.info("refused %s %s: body over %d bytes", scope["method"], scope["path"], limit)
            await self._refuse(
                scope, receive, send, 413, "payload_too_large", _too_large_message(limit)
            )

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status_code: int, code: str, message: str
    ) -> None:
        response = error_response(
            Request(scope), status_code, code=code, message=message, headers=_CLOSE
        )
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the app routes on: ``path`` without the ``root_path`` it is mounted at."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path
