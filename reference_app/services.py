"""The services the API and the workers share, built in one place.

Issue 13 #8: the API's lifespan and each worker's startup used to wire the engine, the
Redis client, the ledger, the webhook inbox and the tracking service each their own way.
:func:`open_services` builds them once per process from settings and the installed
providers, and closes what it opened when the block ends; each process adds only what is
its own (the API its rate limiter and accounts, a worker its sync jobs).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.conversions import ConversionSender
from pixecom_core.dashboard_cache import DashboardCache
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.orders.refunds import RefundService
from pixecom_core.payments.connections import PaymentConnections
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.tracking import TrackingService
from reference_app.configuration import require_redis_url

#: Redis answers in well under a millisecond on loopback; waiting seconds for a
#: connection only queues work behind a dead server.
REDIS_CONNECT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Services:
    """What the API and the workers both run on; one set per process.

    The engine connects as the application role, so row-level security applies to every
    query. ``redis`` is this process's client for locks, counters and markers (brokers
    keep their own pools).
    """

    settings: Settings
    #: Installed plugins' providers, looked up by identifier.
    providers: ProviderRegistry
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: redis.Redis
    breakers: ProviderBreakers
    ledger: Ledger
    inbox: WebhookInbox
    tracking: TrackingService
    #: Refunds sellers ask for, and settling the open ones.
    refunds: RefundService
    #: Sellers' own gateway accounts (issue 15): checkout, refunds and webhooks use them.
    payment_connections: PaymentConnections
    #: Sends the conversion events the ledger queued (issue 17).
    conversions: ConversionSender
    #: Sellers' cached dashboard reads; every session of ``sessions`` invalidates them
    #: after a commit that changed them (issue 18).
    dashboards: DashboardCache


@asynccontextmanager
async def open_services(
    settings: Settings,
    providers: ProviderRegistry,
    *,
    application_name: str,
    redis_socket_timeout: float,
    redis_retry: Retry | None = None,
    on_recorded: Callable[[set[uuid.UUID]], Awaitable[None]] | None = None,
) -> AsyncIterator[Services]:
    """Open the shared services for one process; close them when the block ends.

    :param application_name: labels the process's PostgreSQL connections
        (``pg_stat_activity``), e.g. ``pixecom-api`` or ``pixecom-worker-payments``.
    :param redis_socket_timeout: how long a Redis reply may take: short for the API,
        which must answer requests; longer for workers.
    :param redis_retry: retries of a Redis command on a lost connection; ``None``: none.
    :param on_recorded: called with the sellers whose new payment facts the inbox
        recorded (a worker queues their revenue refresh); ``None``: nothing is called.
    :raises reference_app.configuration.RedisNotConfiguredError: without ``REDIS_URL``.
    """
    redis_url = require_redis_url(settings)
    engine = create_engine(settings, role="app", application_name=application_name)
    client = redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=redis_socket_timeout,
    )
    if redis_retry is not None:
        client.set_retry(redis_retry)
    dashboards = DashboardCache(client, settings)
    try:
        sessions = create_sessionmaker(engine)
        dashboards.watch(sessions)
        ledger = Ledger(sessions, settings, providers.plugin_manager)
        breakers = ProviderBreakers(settings)
        connections = PaymentConnections.for_settings(sessions, settings, providers)
        yield Services(
            settings=settings,
            providers=providers,
            engine=engine,
            sessions=sessions,
            redis=client,
            breakers=breakers,
            ledger=ledger,
            inbox=WebhookInbox(
                sessions,
                settings,
                providers,
                ledger,
                on_recorded=on_recorded,
                connections=connections,
            ),
            tracking=TrackingService(
                sessions, settings, providers, breakers, providers.plugin_manager
            ),
            refunds=RefundService(sessions, settings, providers, ledger, connections),
            payment_connections=connections,
            conversions=ConversionSender(
                sessions, settings, providers, SecretBox(settings.token_encryption_keys)
            ),
            dashboards=dashboards,
        )
    finally:
        # Invalidations started by the last commits reach Redis before it closes.
        await dashboards.settle()
        await client.aclose()
        await engine.dispose()
