"""Process-wide resources the API opens at startup and closes at shutdown.

They live in the lifespan state (not module globals), so every app built by
:func:`reference_app.api.app.create_app` — one per test, say — owns its own pool.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as redis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.accounts import AccountService
from pixecom_core.ad_accounts.connections import AdConnections
from pixecom_core.assets import AssetRegistry
from pixecom_core.dashboard_cache import DashboardCache
from pixecom_core.ledger import WebhookInbox
from pixecom_core.orders.refunds import RefundService
from pixecom_core.payments.connections import PaymentConnections
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.security.rate_limits import RateLimiter
from pixecom_core.settings import Settings
from pixecom_core.tracking import TrackingService
from reference_app.worker.broker import TaskKicker

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppResources:
    """What request handlers may use.

    The engine connects as the application role, which owns nothing, so PostgreSQL's
    row-level security applies to every query the API makes. ``limiter`` counts on Redis,
    so limits hold across every API process (SEC-1).
    """

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: redis.Redis
    limiter: RateLimiter
    accounts: AccountService
    #: Installed plugins' providers (payment gateways, …), looked up by identifier.
    providers: ProviderRegistry
    inbox: WebhookInbox
    #: Queues worker tasks (the API never runs them).
    tasks: TaskKicker
    tracking: TrackingService
    assets: AssetRegistry
    #: Sellers connecting their own ad accounts (consent flow, chooser, disconnect).
    ad_connections: AdConnections
    #: Refunds sellers ask for (``POST /orders/{id}/refunds``).
    refunds: RefundService
    #: Sellers' own gateway accounts (``/payments/connections``).
    payment_connections: PaymentConnections
    #: Sellers' cached dashboard reads (issue 18; :mod:`reference_app.api.dashboard_reads`).
    dashboards: DashboardCache
    #: Sessions on the read replica (``read_database_url``), or ``None`` without one.
    replica_sessions: async_sessionmaker[AsyncSession] | None = None

    async def queue_reaggregation(self, seller_id: uuid.UUID) -> None:
        """Queue the recomputation of the seller's days just marked for re-aggregation.

        Best effort: with Redis down the marks stay, and the seller's next sync (or
        revenue refresh) recomputes them; the request still succeeds."""
        try:
            await self.tasks.refresh_revenue(seller_id)
        except Exception:
            _log.warning("could not queue the re-aggregation of %s", seller_id, exc_info=True)

    @property
    def report_sessions(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for read-only dashboard reads that tolerate replica lag (audit
        SCALE-6): the replica's when configured, else the primary's. Writes and
        read-your-writes paths use ``sessions``."""
        return self.replica_sessions or self.sessions


async def get_resources(request: Request) -> AppResources:
    """The resources opened by the lifespan of the app serving ``request``."""
    resources: AppResources = request.state.resources
    return resources


ResourcesDep = Annotated[AppResources, Depends(get_resources)]
