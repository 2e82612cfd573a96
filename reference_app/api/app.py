"""The API application factory.

``create_app(settings)`` is the only way the API is built — by ``pixecom dev``, by a
production ASGI server and by every test — so settings are checked in one place and each
app owns its connection pool and Redis client (opened in the lifespan, closed on shutdown).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pluggy
from fastapi import FastAPI

from pixecom_core import __version__
from pixecom_core.accounts import AccountService, SessionRevocations
from pixecom_core.ad_accounts.connections import AdConnections
from pixecom_core.assets import AssetRegistry
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.db.urls import app_conninfo
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.security.rate_limits import LoginGuard, RateLimiter
from pixecom_core.settings import Settings
from reference_app.api import health
from reference_app.api.body_limit import BodyLimitMiddleware, route_body_limits
from reference_app.api.dashboard_hits import DashboardHitMiddleware
from reference_app.api.dashboard_reads import DashboardWriteMiddleware
from reference_app.api.errors import install_error_handlers
from reference_app.api.observability import install_observability
from reference_app.api.openapi import install_openapi
from reference_app.api.resources import AppResources
from reference_app.api.routes import MATCH_ORDER
from reference_app.api.shedding import install_load_shedding
from reference_app.api.storefront_hits import StorefrontHitMiddleware
from reference_app.configuration import require_redis_url
from reference_app.dashboard import mount_dashboard
from reference_app.services import open_services
from reference_app.worker.broker import Queue, TaskKicker, build_broker

#: Redis answers in well under a millisecond on loopback; waiting seconds for a reply only
#: queues requests behind a dead server.
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0


def validated_settings(settings: Settings) -> Settings:
    """Validate ``settings`` again, as the API is about to run with them.

    A ``Settings`` object can be built without validation (``model_construct``) or
    changed afterwards (``model_copy(update=...)``); re-validating here means a weak or
    placeholder secret never reaches a non-dev API, however the object was made
    (SEC-4). Raises :class:`pixecom_core.settings.WeakSecretError`,
    :class:`pixecom_core.db.urls.DatabaseNotConfiguredError` or
    :class:`reference_app.configuration.RedisNotConfiguredError`.
    """
    checked = type(settings).model_validate(dict(settings))
    app_conninfo(checked)  # raises DatabaseNotConfiguredError with what to do
    require_redis_url(checked)
    return checked


def create_app(
    settings: Settings, *, plugin_manager: pluggy.PluginManager | None = None
) -> FastAPI:
    """Build the PixEcom API for ``settings``.

    Refuses to build (raises) with weak secrets outside dev mode or without a database
    or Redis URL, so a misconfigured deployment fails at start, not on its first request.

    :param plugin_manager: the plugins to use; the installed ones (``PIXECOM_LOAD_PLUGINS``,
        ``PIXECOM_PLUGIN_MODULES``) when not given. Tests pass their own.
    """
    settings = validated_settings(settings)
    redis_url = require_redis_url(settings)
    registry = ProviderRegistry(plugin_manager or create_plugin_manager())
    # Issue 13 item 6: the tracker and the storage are the configured or the only installed.
    settings = settings.with_chosen_providers(registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, AppResources]]:
        # Issue 13 #8: the engine, Redis client, ledger, inbox and tracking are built by
        # the same builder as a worker's; the API adds what only it uses.
        async with open_services(
            settings,
            registry,
            application_name="pixecom-api",
            redis_socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        ) as services:
            # SCALE-6: dashboard reads go to the replica when there is one.
            replica = (
                create_engine(settings, role="replica", application_name="pixecom-api-reports")
                if settings.read_database_url
                else None
            )
            limiter = RateLimiter(redis_url, key_prefix=settings.redis_key_prefix)
            accounts = AccountService(
                services.sessions,
                settings,
                login_guard=LoginGuard(services.redis, limiter, settings),
                revocations=SessionRevocations(services.redis, settings),
            )
            # The API only kicks tasks; `pixecom worker` runs them.
            tasks = TaskKicker(build_broker(settings, Queue.PAYMENTS, registry=registry))
            resources = AppResources(
                settings=settings,
                engine=services.engine,
                sessions=services.sessions,
                redis=services.redis,
                limiter=limiter,
                accounts=accounts,
                providers=registry,
                inbox=services.inbox,
                tasks=tasks,
                tracking=services.tracking,
                assets=AssetRegistry(services.sessions, settings, registry, services.breakers),
                ad_connections=AdConnections.for_settings(services.sessions, settings, registry),
                refunds=services.refunds,
                payment_connections=services.payment_connections,
                dashboards=services.dashboards,
                replica_sessions=create_sessionmaker(replica) if replica is not None else None,
            )
            observability.attach(services.engine, services.redis, services.breakers)
            try:
                yield {"resources": resources}
            finally:
                observability.detach()
                await tasks.close()
                if replica is not None:
                    await replica.dispose()
                # Providers' pools (HTTP, Meta's shared pacing in Redis) go with the app.
                await registry.aclose()

    app = FastAPI(
        title="PixEcom",
        version=__version__,
        summary="Multi-tenant e-commerce API for sellers who drive paid-ad traffic.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health.router)
    for router in MATCH_ORDER:
        app.include_router(router)
    # The seller dashboard (SELLER-1: real numbers, not fake data): static files that
    # read the API above with the seller's own login.
    mount_dashboard(app)
    # Issue 18: a successful write makes the acting seller's cached dashboard reads stale
    # before it answers. Added first, so it runs innermost, nearest the routes.
    app.add_middleware(DashboardWriteMiddleware)
    # Issue 18 item 1: a repeated dashboard read that hits the seller's cache is answered
    # before routing, its admission and entry in one Redis round trip.
    app.add_middleware(DashboardHitMiddleware)
    # Issue 18 item 1: storefront cache hits are answered before routing, in one Redis
    # round trip, inside shedding, body limits and observability.
    app.add_middleware(StorefrontHitMiddleware, routes=lambda: app.routes)
    # SEC-3: bodies are limited before anything buffers them; routes
    # declare other limits with `openapi_extra=body_limit(...)` (see body_limit.py).
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        route_limits=lambda: route_body_limits(app.routes),
    )
    # SCALE-8: past capacity, shed with 503 + Retry-After instead of timing
    # out for everyone. Added last, so it runs first.
    install_load_shedding(app, settings.shed_max_in_flight)
    # Issue 7: request ids, access log, latency by route template and GET /metrics.
    # Added after everything else, so it runs first and also counts shed and refused
    # requests.
    observability = install_observability(app, settings)
    return app
