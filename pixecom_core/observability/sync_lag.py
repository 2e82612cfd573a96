"""How far behind the stats syncs are, per seller tier (OPS-2: "stats lag 30-60
minutes" went unseen).

Read through ``pixecom_sync_lag_by_tier()`` (migration ``0007_sync_lag``), which answers
aggregates only, so a worker exposes the lag of the whole deployment without reading any
seller's rows outside that seller's scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.models.sellers import SellerTier

_SYNC_LAG = text(
    "SELECT tier, accounts, never_synced, needs_reconnect, max_lag_seconds "
    "FROM pixecom_sync_lag_by_tier()"
)


@dataclass(frozen=True)
class TierSyncLag:
    """One tier's active ad accounts and the longest time since one of them synced."""

    tier: SellerTier
    accounts: int
    never_synced: int
    needs_reconnect: int
    max_lag_seconds: float


async def sync_lag_by_tier(sessions: async_sessionmaker[AsyncSession]) -> list[TierSyncLag]:
    """The lag of every tier, each tier listed even when it has no account (zeros)."""
    async with sessions() as session:
        rows = (await session.execute(_SYNC_LAG)).all()
    found = {
        SellerTier(row.tier): TierSyncLag(
            tier=SellerTier(row.tier),
            accounts=int(row.accounts),
            never_synced=int(row.never_synced),
            needs_reconnect=int(row.needs_reconnect),
            max_lag_seconds=float(row.max_lag_seconds),
        )
        for row in rows
    }
    return [found.get(tier, TierSyncLag(tier, 0, 0, 0, 0.0)) for tier in SellerTier]


class SyncLagGauges:
    """The sync lag as Prometheus gauges, labelled by tier only."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.max_lag = Gauge(
            "pixecom_sync_lag_max_seconds",
            "Longest time since an active ad account of the tier last synced successfully "
            "(since it was connected, if never).",
            ["tier"],
            registry=registry,
        )
        self.accounts = Gauge(
            "pixecom_sync_accounts",
            "Active ad accounts of the tier that PixEcom syncs.",
            ["tier"],
            registry=registry,
        )
        self.never_synced = Gauge(
            "pixecom_sync_never_synced_accounts",
            "Active ad accounts of the tier that never synced successfully.",
            ["tier"],
            registry=registry,
        )
        self.needs_reconnect = Gauge(
            "pixecom_sync_needs_reconnect_accounts",
            "Ad accounts of the tier waiting for their seller to reconnect (token refused).",
            ["tier"],
            registry=registry,
        )

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> list[TierSyncLag]:
        """Read the lag from the database and set the gauges."""
        lags = await sync_lag_by_tier(sessions)
        for lag in lags:
            self.max_lag.labels(lag.tier.value).set(lag.max_lag_seconds)
            self.accounts.labels(lag.tier.value).set(lag.accounts)
            self.never_synced.labels(lag.tier.value).set(lag.never_synced)
            self.needs_reconnect.labels(lag.tier.value).set(lag.needs_reconnect)
        return lags


__all__ = ["SyncLagGauges", "TierSyncLag", "sync_lag_by_tier"]
