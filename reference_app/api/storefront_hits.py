"""Storefront cache hits answered before routing: one Redis round trip, no dependency
injection, the cached bytes straight to the client (issue 18 item 1).

``GET /public/sellpages/{slug}`` is most of the API's traffic, and nearly every request
is a cache hit (SCALE-6). Through FastAPI a hit cost three Redis round trips (the client
IP's rate limit, the page with its slug's token, the seller's token) and a full route
resolution with its dependencies: several times the CPU of ``/healthz``.
:class:`StorefrontHitMiddleware` serves such a request first:

- the client IP's public rate limit is counted and the page's cache entry read in one
  round trip (:meth:`RateLimiter.hit_and_read`; the seller's token with them once this
  process has seen the slug, :meth:`StorefrontCache.lookup`);
- a hit is answered here with exactly what the route answers — the body, ``ETag``,
  ``Cache-Control``, a bodiless 304 for a matching ``If-None-Match`` — and is labelled
  with the route's template in the metrics and the access log;
- anything else (a miss, a remembered unknown slug, a refusal of the rate limit, Redis
  failing, another method or path) goes on to the route as before. What was counted is
  left in the request state (:data:`PUBLIC_THROTTLE_STATE`), so the route neither
  counts the request twice nor admits one the limit refused: it raises that refusal and
  the app's error handler answers 429 as it always has.

It runs innermost, inside load shedding, body limits and observability, so a hit is
shed, counted, logged and given its request id like any other request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.asyncio as redis
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from pixecom_core.catalog import StorefrontCache
from pixecom_core.catalog.storefront import is_valid_slug
from pixecom_core.security.rate_limits import RateLimited
from reference_app.api.dependencies import (
    PUBLIC_THROTTLE_STATE,
    client_address,
    public_ip_limit,
)
from reference_app.api.resources import AppResources
from reference_app.api.routes.public import cache_control, etag_matches, public_sellpage

_log = logging.getLogger(__name__)

#: The path prefix of the storefront's page route (``/public/sellpages/{slug}``).
SELLPAGE_PATH_PREFIX = "/public/sellpages/"


def sellpage_route(routes: list[BaseRoute]) -> APIRoute | None:
    """The app's route serving ``GET /public/sellpages/{slug}`` (its metrics label)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.endpoint is public_sellpage:
            return route
        original = getattr(route, "original_router", None)
        if original is not None:
            found = sellpage_route(original.routes)
            if found is not None:
                return found
    return None


class StorefrontHitMiddleware:
    """Answer ``GET /public/sellpages/{slug}`` from the storefront cache when it hits;
    pass every other request, and every miss, to the app (see the module docstring).

    :param app: the application.
    :param routes: returns the app's routes; read once, at the first storefront request,
        to find the page route whose template labels a hit.
    """

    def __init__(self, app: ASGIApp, *, routes: Callable[[], list[BaseRoute]]) -> None:
        self.app = app
        self._routes = routes
        self._route: APIRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a storefront cache hit, or pass the request on."""
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(SELLPAGE_PATH_PREFIX)
            and not scope.get("root_path")
            and await self._answer_hit(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answer_hit(self, scope: Scope, send: Send) -> bool:
        slug: str = scope["path"][len(SELLPAGE_PATH_PREFIX) :]
        state = scope.get("state")
        resources = state.get("resources") if isinstance(state, dict) else None
        if not isinstance(resources, AppResources) or "/" in slug or not is_valid_slug(slug):
            return False
        assert isinstance(state, dict)
        if self._route is None:
            self._route = sellpage_route(self._routes())
            if self._route is None:
                return False
        settings = resources.settings
        ip = client_address(scope, settings.trusted_proxies)
        limiter, client = resources.limiter, resources.redis

        async def count_and_read(keys: list[str]) -> list[bytes | None]:
            values = await limiter.hit_and_read(client, public_ip_limit(settings), [ip], keys)
            state[PUBLIC_THROTTLE_STATE] = True
            return values

        try:
            cached = await StorefrontCache(client, settings).lookup(slug, read=count_and_read)
        except RateLimited as refused:
            state[PUBLIC_THROTTLE_STATE] = refused
            return False
        except redis.RedisError:
            _log.warning("storefront cache unavailable; the route answers", exc_info=True)
            return False
        page = cached.page
        if page is None:
            return False
        scope["route"] = self._route
        headers = [
            (b"etag", page.etag.encode("latin-1")),
            (b"cache-control", cache_control(settings.public_cache_seconds).encode("latin-1")),
        ]
        if etag_matches(_header(scope, b"if-none-match"), page.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers.append((b"content-length", str(len(page.body)).encode("latin-1")))
        headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page.body})
        return True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


__all__ = ["SELLPAGE_PATH_PREFIX", "StorefrontHitMiddleware", "sellpage_route"]
