"""Load shedding: past a fixed number of requests in flight, answer 503 at once.

SCALE-8 (Black Friday, ~500 req/s): the previous version let every request
queue for one of its 10 pool connections until clients timed out — a partial outage for
everyone. An API process here serves at most ``shed_max_in_flight`` requests at once; the
next one gets ``503 Service Unavailable`` with ``Retry-After`` and ``X-PixEcom-Shed: 1``
within microseconds, so the requests that are admitted keep their latency and a client (or
a load balancer) knows to come back. A deliberate shed is told apart from a failure by that
header: `pixecom simulate` counts sheds separately and any other 5xx as an error.

Never shed (``exempt_prefixes``): payment webhooks — a refused webhook would only be
redelivered later by the gateway, but answering 2xx fast is what keeps the gateway's retry
storm away (MONEY-3) — and the liveness / readiness probes, which must tell the truth
about the process under load.

A plain ASGI middleware (no ``BaseHTTPMiddleware``), so admitted requests stream as before
and the count is exact: it rises when a request starts and falls when its response ends,
also when the client disconnects or the handler raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

#: Header marking a response as a deliberate shed (not an error of the application).
SHED_HEADER = "x-pixecom-shed"
#: Paths never shed: webhooks (answered 2xx fast, MONEY-3) and health probes.
DEFAULT_EXEMPT_PREFIXES: tuple[str, ...] = ("/webhooks/", "/healthz", "/readyz", "/metrics")


class LoadSheddingMiddleware:
    """Serve at most ``max_in_flight`` requests at once; shed the rest with 503.

    :param app: the application to protect.
    :param max_in_flight: requests served at once; must be at least 1 (turn shedding off by
        not installing the middleware, see :func:`install_load_shedding`).
    :param retry_after_seconds: sent as ``Retry-After`` with every shed.
    :param exempt_prefixes: path prefixes that are never shed (nor counted).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_seconds: int = 1,
        exempt_prefixes: Iterable[str] = DEFAULT_EXEMPT_PREFIXES,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_seconds = retry_after_seconds
        self.exempt_prefixes = tuple(exempt_prefixes)
        #: Requests being served now (one event loop per process: no lock needed).
        self.in_flight = 0
        #: Requests shed since start.
        self.shed_total = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit the request, or answer 503 when ``max_in_flight`` are being served."""
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed_total += 1
            await self._shed(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "overloaded",
                    "message": "the server is at capacity; retry after the Retry-After delay",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_seconds).encode()),
                    (SHED_HEADER.encode(), b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_load_shedding(app: Starlette, max_in_flight: int) -> None:
    """Add :class:`LoadSheddingMiddleware` to ``app`` unless ``max_in_flight`` is 0 (off).

    Call it after every other ``add_middleware``: the last one added runs first, so a
    shed request costs nothing else.
    """
    if max_in_flight <= 0:
        return
    app.add_middleware(LoadSheddingMiddleware, max_in_flight=max_in_flight)
