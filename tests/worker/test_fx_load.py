"""The scheduler's rate load (issue 16 item 1): once per interval whatever the number of
schedulers, and the sellers whose days waited for the rates get their refresh queued."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import redis.asyncio as redis
from pixecom_ecb_rates import plugin as ecb_plugin
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.settings import Settings
from reference_app.worker import scheduler
from tests.db.tenant_rows import insert_seller, insert_seller_day, seller_scope
from tests.stats.test_pipeline import sessions  # noqa: F401 (fixture)
from tests.stats.test_trustworthy_numbers import TODAY, ecb  # noqa: F401 (fixture)

#: The scheduler's clock: TODAY in the afternoon, after the ECB published.
NOW = datetime(TODAY.year, TODAY.month, TODAY.day, 17, 0, tzinfo=UTC)


@pytest.mark.usefixtures("ecb")  # the sandbox served, and the source pointed at it
async def test_the_load_runs_once_per_slot_and_queues_the_waiting_sellers(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A seller whose day of the week before waited for the USD rate.
    seller_id = uuid.uuid4()
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            insert_seller_day(
                conn,
                seller_id,
                TODAY,
                reporting_currency="EUR",
                fx_pending_currencies=["USD"],
            )
    kicked: list[uuid.UUID] = []

    async def kick(_broker: object, seller: uuid.UUID, _settings: object = None) -> None:
        kicked.append(seller)

    monkeypatch.setattr(scheduler, "kick_revenue_refresh", kick)
    registry = ProviderRegistry(
        create_plugin_manager(load_entry_points=False, plugins=[ecb_plugin])
    )
    isolated = settings.model_copy(update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"})
    assert isolated.redis_url is not None
    client = redis.Redis.from_url(isolated.redis_url)
    try:
        first = await scheduler.load_fx_rates(
            sessions,
            client,
            object(),
            isolated,
            registry,
            now=NOW,  # type: ignore[arg-type]
        )
        second = await scheduler.load_fx_rates(
            sessions,
            client,
            object(),
            isolated,
            registry,
            now=NOW,  # type: ignore[arg-type]
        )
    finally:
        await client.aclose()

    assert first is not None and first.stored_through == TODAY
    assert second is None  # the slot was claimed: two schedulers load once
    assert seller_id in first.sellers_marked and seller_id in kicked
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller_id):
        marked = conn.execute(
            "SELECT needs_reaggregation FROM seller_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchone()
    assert marked == (True,)


async def test_without_a_rate_source_nothing_is_loaded(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
) -> None:
    registry = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[]))
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url)
    try:
        loaded = await scheduler.load_fx_rates(
            sessions,
            client,
            object(),
            settings,
            registry,  # type: ignore[arg-type]
        )
    finally:
        await client.aclose()
    assert loaded is None
