"""The API's observability: a request id and an access log line per request, latency
metrics by route template, and ``GET /metrics``.

:class:`RequestObservabilityMiddleware` is a plain ASGI middleware (not Starlette's
``BaseHTTPMiddleware``), so the context it binds — the request id, and the seller id that
authentication adds (``reference_app.api.dependencies.access_claims``) — stays visible to
the access log line it writes when the response is done, and never crosses into a
concurrent request.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixecom_core.errors import AuthenticationError, PermissionDeniedError
from pixecom_core.observability import bind_log_context, clear_log_context
from pixecom_core.observability.metrics import (
    DeploymentGauges,
    HttpMetrics,
    PoolGauges,
    exposition_registry,
    retire_process,
)
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from reference_app.api.dependencies import ClientIP
from reference_app.api.errors import error_responses
from reference_app.api.errors import request_id as request_id_for
from reference_app.worker.broker import Queue, stream_name

#: The route label of a request no route matched (a 404 for a made-up path): raw paths
#: would put ids in labels and let any client create time series at will.
UNMATCHED_ROUTE = "<unmatched>"

_access_log = logging.getLogger("pixecom.access")


def route_template(scope: Scope) -> str:
    """The path template of the route that served ``scope`` (``/orders/{order_id}``)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return UNMATCHED_ROUTE


@dataclass
class ApiObservability:
    """This app's metric registry and what its scrape-time gauges read from.

    The lifespan calls :meth:`attach` once the engine and Redis client are open, and
    :meth:`detach` when it ends. Under ``pixecom serve --workers N`` a scrape exposes the
    samples of every API process of the port (see :mod:`pixecom_core.observability.metrics`).
    """

    settings: Settings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    http: HttpMetrics = field(init=False)
    deployment: DeploymentGauges = field(init=False)
    pool: PoolGauges = field(init=False)
    engine: AsyncEngine | None = None
    redis: aioredis.Redis | None = None
    breakers: ProviderBreakers | None = None

    def __post_init__(self) -> None:
        self.http = HttpMetrics(self.registry)
        self.deployment = DeploymentGauges(self.registry)
        self.pool = PoolGauges(self.registry)

    def attach(
        self, engine: AsyncEngine, client: aioredis.Redis, breakers: ProviderBreakers
    ) -> None:
        """Start reporting the pool of ``engine`` and reading Redis through ``client``."""
        self.engine, self.redis, self.breakers = engine, client, breakers
        self.pool.watch(engine)
        self.http.processes.set(1)

    def detach(self) -> None:
        """Stop reporting (the lifespan is ending): this process no longer counts."""
        self.pool.watch(None)
        self.http.processes.set(0)
        retire_process()
        self.engine = self.redis = self.breakers = None

    async def exposition(self) -> bytes:
        """The Prometheus text exposition, with queue depths and breakers read now."""
        self.pool.refresh()
        if self.redis is not None:
            streams = {queue.value: stream_name(self.settings, queue) for queue in Queue}
            await self.deployment.refresh(
                self.redis,
                streams,
                f"{self.settings.redis_key_prefix}workers",
                self.breakers,
                # The breakers this deployment guards calls with (TrackingService and
                # AssetRegistry name them by kind and configured provider).
                [
                    (kind, identifier)
                    for kind, identifier in (
                        ("tracker", self.settings.tracking_provider),
                        ("storage", self.settings.storage_provider),
                    )
                    if identifier  # empty: none installed, nothing guarded
                ],
            )
        return generate_latest(exposition_registry(self.registry))


class RequestObservabilityMiddleware:
    """Request id in, request id out; one access log line and one histogram sample per
    request, labelled by route template and status class."""

    def __init__(self, app: ASGIApp, observability: ApiObservability) -> None:
        self.app = app
        self.observability = observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (other scope types pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The ASGI spec makes `state` a per-request copy of the lifespan state; not every
        # server does, and a shared dict would hand one request's id to the next.
        state = dict(scope.get("state") or {})
        state.pop("request_id", None)
        scope["state"] = state
        # One id per request, by the error shape's rule: the error body, the response
        # header and every log line quote the same one.
        request_id = request_id_for(Request(scope))
        clear_log_context()
        bind_log_context(request_id=request_id)
        status = 500  # what the client sees if the app raises before answering
        started = time.perf_counter()
        metrics = self.observability.http
        metrics.in_flight.inc()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_flight.dec()
            self.observability.pool.refresh()
            route = route_template(scope)
            metrics.observe(scope["method"], route, status, elapsed)
            # A server error is an operator's problem; a client error is not.
            _access_log.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            # Not cleared here: the 500 handler logs its traceback after this middleware
            # returns, and should name the request too. Servers run each request in a
            # task of its own, and the context is cleared when the next one starts.


def install_observability(app: FastAPI, settings: Settings) -> ApiObservability:
    """Add the middleware (outermost, so every answer is counted) and ``/metrics``."""
    observability = ApiObservability(settings)
    app.state.observability = observability
    app.include_router(router)
    app.add_middleware(RequestObservabilityMiddleware, observability=observability)
    return observability


def _allowed(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


async def metrics_access(request: Request, ip: ClientIP) -> None:
    """Only ``metrics_allowed_networks`` (and the bearer token, when one is set) may scrape."""
    observability: ApiObservability = request.app.state.observability
    settings = observability.settings
    if not _allowed(ip, settings.metrics_allowed_networks):
        raise PermissionDeniedError(
            "metrics are not served to this address; see metrics_allowed_networks",
            code="metrics_forbidden",
        )
    token = settings.metrics_bearer_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise AuthenticationError("metrics need the metrics bearer token")


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of the API processes on this port",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition (no seller data in any label).",
        },
        # 401: a metrics bearer token is configured and was not given; 403: the client
        # is outside metrics_allowed_networks.
        **error_responses(401, 403),
    },
)
async def metrics(request: Request, _access: Annotated[None, Depends(metrics_access)]) -> Response:
    """Request latency by route template, requests in flight, DB pool usage, queue
    depths and circuit-breaker states. Processes sharing a port (``pixecom serve
    --workers N``) answer for all of them: scrape the port once."""
    observability: ApiObservability = request.app.state.observability
    return Response(await observability.exposition(), media_type=CONTENT_TYPE_LATEST)


__all__ = [
    "ApiObservability",
    "RequestObservabilityMiddleware",
    "install_observability",
]
