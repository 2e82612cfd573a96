"""Dashboard reads answered from the seller's cache, and writes that make it stale (issue 18).

A route that reads a seller's aggregates (``/stats/overview``, ``/orders``, …) takes a
:data:`DashboardReads` and returns ``await reads.answer(route, query, compute)``: on a hit
the cached bytes are the response — no SQL, no model built, no serialisation; on a miss
``compute()`` builds the response model, which is serialised once (``model_dump_json``:
the bytes FastAPI would send for the route's ``response_model``, without validating the
model a second time) and kept under the seller's current generation token
(:mod:`pixecom_core.dashboard_cache`). The route's ``response_model`` still documents the
answer, so the OpenAPI document is the same.

The cache key is the authenticated seller's id (from the verified access token, never
the request), the route and its validated, normalised query: another seller's request
can never name an entry of this one (TENANT-1).

A repeated read that hits is answered before routing
(:mod:`reference_app.api.dashboard_hits`), with only the seller's admission
(:func:`~reference_app.api.dependencies.admit_seller_request`): a route answering through
:data:`DashboardReads` must take no other dependency that could refuse a request, and its
validated query must follow from its path and query string alone (not from the clock, a
header or a cookie).

:class:`DashboardWriteMiddleware` keeps a seller's next read fresh after a write through
the API: before a successful write answers, it waits for the invalidations the write's
commits started and makes the acting seller's cache stale — so every change a seller
makes (a link, a price, a rate, a reporting currency) shows on their next read.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixecom_core.dashboard_cache import DashboardCache
from reference_app.api.dashboard_prefetch import learn, prefetched
from reference_app.api.dependencies import ACTING_SELLER_STATE, Claims
from reference_app.api.resources import ResourcesDep

#: A read's validated query: name → value (str, int, date, datetime, UUID, enum, None) or
#: a list of such values.
ReadQuery = Mapping[str, object]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def normalized_query(query: ReadQuery) -> str:
    """One string per meaning: keys sorted, ``None`` left out, lists sorted and without
    repeats, date-times in UTC — so two spellings of the same read share an entry."""
    pairs: list[tuple[str, str]] = []
    for name in sorted(query):
        value = query[name]
        values = list(value) if isinstance(value, list | tuple) else [value]
        texts = sorted({_text(v) for v in values if v is not None})
        pairs.extend((name, text) for text in texts)
    return urlencode(pairs)


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class DashboardReader:
    """Answers one request's dashboard read from the seller's cache or by computing it.

    :param cache: the process's dashboard cache.
    :param seller_id: the authenticated seller (from the verified token).
    :param scope: the request's ASGI scope, where the request's admission may have left
        this read's cache entry (:mod:`reference_app.api.dashboard_prefetch`).
    """

    def __init__(
        self, cache: DashboardCache, seller_id: uuid.UUID, scope: Scope | None = None
    ) -> None:
        self._cache = cache
        self._seller_id = seller_id
        self._scope: Scope = scope if scope is not None else {}

    async def answer(
        self,
        route: str,
        query: ReadQuery,
        compute: Callable[[], Awaitable[BaseModel]],
    ) -> Response:
        """The JSON response of this read: cached bytes, or ``compute()``'s model
        serialised once and cached. An error ``compute()`` raises is answered as usual
        and nothing is cached."""
        if not self._cache.enabled:
            return _json_response((await compute()).model_dump_json().encode())
        normalized = normalized_query(query)
        # Token first, database second (pixecom_core.dashboard_cache). Issue 18 item 1:
        # read with the request's admission when it guessed this very entry.
        read = prefetched(self._scope, self._cache.entry_key(self._seller_id, route, normalized))
        if read is not None:
            cached = await self._cache.lookup_from(self._seller_id, route, *read)
        else:
            cached = await self._cache.lookup(self._seller_id, route, normalized)
        learn(self._scope, route, normalized)
        if cached.body is not None:
            return _json_response(cached.body)
        if cached.generation is None:  # Redis failed: nothing to store under
            return _json_response((await compute()).model_dump_json().encode())

        async def serialised() -> bytes:
            return (await compute()).model_dump_json().encode()

        body = await self._cache.compute_once(
            self._seller_id, route, normalized, serialised, generation=cached.generation
        )
        return _json_response(body)


def _json_response(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


async def dashboard_reader(
    request: Request, resources: ResourcesDep, claims: Claims
) -> DashboardReader:
    """The authenticated seller's :class:`DashboardReader`."""
    return DashboardReader(resources.dashboards, claims.seller_id, request.scope)


DashboardReads = Annotated[DashboardReader, Depends(dashboard_reader)]


class DashboardWriteMiddleware:
    """Before a successful write (any method but GET, HEAD, OPTIONS; status below 400)
    sends its answer: wait for the invalidations its commits started, and make the
    acting seller's dashboard cache stale. Reads pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_after_invalidating(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                await _invalidate(scope)
            await send(message)

        await self.app(scope, receive, send_after_invalidating)


async def _invalidate(scope: Scope) -> None:
    state = scope.get("state") or {}
    resources = state.get("resources")
    cache = getattr(resources, "dashboards", None)
    if not isinstance(cache, DashboardCache):
        return
    await cache.settle()
    seller_id = state.get(ACTING_SELLER_STATE)
    if isinstance(seller_id, uuid.UUID):
        await cache.sellers_changed({seller_id})
