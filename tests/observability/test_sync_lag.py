"""Sync lag per tier, read through the aggregates-only directory function."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.models.sellers import SellerTier
from pixecom_core.observability.metrics import label_values
from pixecom_core.observability.sync_lag import SyncLagGauges, TierSyncLag, sync_lag_by_tier
from pixecom_core.testing.databases import TestDatabase
from tests.db.tenant_rows import insert_seller, seller_scope

Connection = psycopg.Connection[tuple[Any, ...]]


def add_account(
    conn: Connection,
    seller_id: uuid.UUID,
    *,
    last_synced_at: datetime | None,
    created_at: datetime | None = None,
    status: str = "ACTIVE",
    needs_reconnect: bool = False,
) -> None:
    with seller_scope(conn, seller_id):
        conn.execute(
            "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone, "
            "currency, status, needs_reconnect, last_synced_at, created_at) "
            "VALUES (%s, 'meta', %s, 'Account', 'UTC', 'USD', %s, %s, %s, "
            "coalesce(%s, now()))",
            (
                seller_id,
                f"act_{uuid.uuid4().hex[:12]}",
                status,
                needs_reconnect,
                last_synced_at,
                created_at,
            ),
        )


def seller_in_tier(conn: Connection, tier: SellerTier) -> uuid.UUID:
    seller_id = uuid.uuid4()
    insert_seller(conn, seller_id)
    with seller_scope(conn, seller_id):
        conn.execute("UPDATE sellers SET tier = %s WHERE id = %s", (tier.value, seller_id))
    return seller_id


def by_tier(lags: list[TierSyncLag]) -> dict[SellerTier, TierSyncLag]:
    return {lag.tier: lag for lag in lags}


async def test_lag_per_tier_from_the_accounts(
    owner_conn: Connection, app_engine: AsyncEngine
) -> None:
    sessions = create_sessionmaker(app_engine)
    before = by_tier(await sync_lag_by_tier(sessions))
    now = datetime.now(UTC)
    high = seller_in_tier(owner_conn, SellerTier.HIGH)
    add_account(owner_conn, high, last_synced_at=now - timedelta(minutes=2))
    # The most-behind high-tier account: synced 500 days ago (older than any other row).
    add_account(owner_conn, high, last_synced_at=now - timedelta(days=500))
    # Never synced, connected 3 minutes ago; paused and disconnected ones do not count;
    # one waiting for a reconnect is counted apart and does not set the lag.
    add_account(owner_conn, high, last_synced_at=None, created_at=now - timedelta(minutes=3))
    add_account(owner_conn, high, last_synced_at=now - timedelta(days=900), status="PAUSED")
    add_account(owner_conn, high, last_synced_at=now - timedelta(days=900), needs_reconnect=True)
    medium = seller_in_tier(owner_conn, SellerTier.MEDIUM)
    add_account(owner_conn, medium, last_synced_at=None, created_at=now - timedelta(days=600))

    registry = CollectorRegistry()
    after = by_tier(await SyncLagGauges(registry).refresh(sessions))

    assert [lag.tier for lag in after.values()] == list(SellerTier)
    high_lag, medium_lag = after[SellerTier.HIGH], after[SellerTier.MEDIUM]
    assert high_lag.accounts == before[SellerTier.HIGH].accounts + 3
    assert high_lag.never_synced == before[SellerTier.HIGH].never_synced + 1
    assert high_lag.needs_reconnect == before[SellerTier.HIGH].needs_reconnect + 1
    assert 500 * 86400 <= high_lag.max_lag_seconds < 500 * 86400 + 120
    # A never-synced account is behind since it was connected.
    assert medium_lag.never_synced == before[SellerTier.MEDIUM].never_synced + 1
    assert 600 * 86400 <= medium_lag.max_lag_seconds < 600 * 86400 + 120
    assert (
        registry.get_sample_value("pixecom_sync_lag_max_seconds", {"tier": "high"})
        == high_lag.max_lag_seconds
    )
    assert registry.get_sample_value("pixecom_sync_accounts", {"tier": "high"}) == (
        high_lag.accounts
    )
    # Tier names only: no seller or account id in any label.
    assert set(label_values(registry)) == {tier.value for tier in SellerTier}
    assert str(high) not in str(after)


async def test_the_app_role_cannot_read_accounts_by_switching_the_setting_on(
    database: TestDatabase, owner_conn: Connection
) -> None:
    seller = seller_in_tier(owner_conn, SellerTier.LOW)
    add_account(owner_conn, seller, last_synced_at=None)
    with psycopg.connect(database.app_dsn) as conn, conn.transaction():
        # The policies that admit the function's query name the owner role only.
        conn.execute("SELECT set_config('pixecom.sync_lag', 'on', true)")
        assert conn.execute("SELECT count(*) FROM ad_accounts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM sellers").fetchone() == (0,)
        # The function itself answers aggregates, with the setting off again after it.
        rows = conn.execute("SELECT * FROM pixecom_sync_lag_by_tier()").fetchall()
        assert rows and all(len(row) == 5 for row in rows)
        assert conn.execute("SELECT current_setting('pixecom.sync_lag', true)").fetchone() == (
            "off",
        )


async def test_the_app_role_cannot_select_the_owners_tables_directly(
    database: TestDatabase,
) -> None:
    with psycopg.connect(database.app_dsn) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE POLICY sneaky ON ad_accounts FOR SELECT USING (true)")


def test_the_function_runs_as_its_owner_with_a_fixed_search_path(
    owner_conn: Connection, database: TestDatabase
) -> None:
    row = owner_conn.execute(
        "SELECT has_function_privilege('public', p.oid, 'EXECUTE'),"
        " has_function_privilege(%s, p.oid, 'EXECUTE'), p.prosecdef, p.proconfig"
        " FROM pg_proc AS p WHERE p.oid = 'pixecom_sync_lag_by_tier()'::regprocedure",
        (database.settings.app_role,),
    ).fetchone()
    assert row is not None
    public_may, app_may, security_definer, config = row
    assert (public_may, app_may, security_definer) == (False, True, True)
    assert any(str(item).startswith("search_path=") for item in config)
