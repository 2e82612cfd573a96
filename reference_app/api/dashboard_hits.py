"""Dashboard cache hits answered before routing: the request's admission and its cache
entry in one Redis round trip, no dependency injection, the cached bytes straight to the
client (issue 18 item 1).

A repeated dashboard read (``/orders``, ``/stats/overview``, …) already cost one Redis
round trip and no SQL (:mod:`reference_app.api.dashboard_prefetch`), but went through
FastAPI's routing, query parsing and dependency resolution before its route found the
cached bytes: about a quarter of the API's CPU for such a read, and most of what it cost
beyond ``/healthz``. :class:`DashboardHitMiddleware` serves such a request first, as
:mod:`reference_app.api.storefront_hits` does the storefront's:

- only a ``GET`` whose path and query string this process has answered as a dashboard
  read is considered (:func:`~reference_app.api.dashboard_prefetch.guess`): a cached
  read's validated query is a function of its path and query string, so the cache key
  learned from that validated request is this request's key too (a request never seen
  goes to its route, which validates it and teaches the key);
- the bearer token is verified and the request admitted exactly as the route's
  dependency does (:func:`~reference_app.api.dependencies.admit_seller_request`: the
  login's revocation, the seller's quota, the guessed entry and the seller's generation
  token, one script); the key carries the verified token's seller, so no request can
  name another seller's entry (TENANT-1);
- an entry computed under the seller's current token is the answer, with the headers
  the route sends (``Content-Type: application/json``, ``Content-Length``), labelled
  with the route's template in the metrics and the access log;
- anything else — no or an invalid token, a revoked login, a stale or missing entry,
  Redis failing — goes on to the route as before. What was admitted (or refused by the
  quota) is left in the request state (:data:`SELLER_ADMISSION_STATE`), so the route
  does not count the request twice, and the entry read with it serves the route's own
  lookup.

It runs innermost but for the write middleware, inside load shedding, body limits and
observability, so a hit is shed, counted, logged and given its request id like any
other request.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from starlette.types import ASGIApp, Receive, Scope, Send

from pixecom_core.errors import AuthenticationError
from pixecom_core.security.rate_limits import RateLimited
from reference_app.api.dashboard_prefetch import guess, prefetched
from reference_app.api.dependencies import SELLER_ADMISSION_STATE, admit_seller_request
from reference_app.api.resources import AppResources

_log = logging.getLogger(__name__)

_JSON = b"application/json"


class DashboardHitMiddleware:
    """Answer a guessed dashboard read from the seller's cache when it hits; pass every
    other request, and every miss, to the app (see the module docstring).

    :param app: the application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a dashboard cache hit, or pass the request on."""
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("root_path")
            and await self._answer_hit(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answer_hit(self, scope: Scope, send: Send) -> bool:
        read = guess(scope)
        if read is None:
            return False
        state = scope.get("state")
        resources = state.get("resources") if isinstance(state, dict) else None
        token = _bearer_token(scope)
        if not isinstance(resources, AppResources) or token is None:
            return False
        assert isinstance(state, dict)
        cache = resources.dashboards
        if not cache.enabled:
            return False
        try:
            claims = await admit_seller_request(scope, resources, token)
        except RateLimited as refused:
            state[SELLER_ADMISSION_STATE] = (token, refused)
            return False
        except AuthenticationError:
            return False  # nothing counted: the route refuses it the same way
        except redis.RedisError:
            _log.warning("dashboard cache unavailable; the route answers", exc_info=True)
            return False
        state[SELLER_ADMISSION_STATE] = (token, claims)
        values = prefetched(scope, cache.entry_key(claims.seller_id, read.route, read.query))
        if values is None:
            return False
        cached = await cache.lookup_from(claims.seller_id, read.route, *values)
        if cached.body is None:
            return False
        if read.endpoint_route is not None:
            scope["route"] = read.endpoint_route
        headers = [
            (b"content-length", str(len(cached.body)).encode("latin-1")),
            (b"content-type", _JSON),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": cached.body})
        return True


def _bearer_token(scope: Scope) -> str | None:
    """The credentials of the first ``Authorization`` header, when its scheme is Bearer
    (as :class:`fastapi.security.HTTPBearer` reads it)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, credentials = header.partition(" ")
            credentials = credentials.strip()
            if scheme.lower() == "bearer" and credentials:
                return credentials
            return None
    return None


__all__ = ["DashboardHitMiddleware"]
