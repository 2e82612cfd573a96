"""``pixecom scheduler``: queue every seller's syncs (and tracking refreshes) on time,
spread out, once per slot; resume history backfills whose job was lost.

Every ``scheduler_tick_seconds`` it pages through the seller directory (ids and tiers),
asks :func:`pixecom_core.stats.schedule.due_syncs` which slots just started, claims each
slot in Redis with ``SET NX`` and queues the claimed syncs on their tier's queue. Claims
make it safe to run two schedulers (failover): a slot is queued once. The promises this
keeps (queue and interval per tier, the daily 28-day sweep, the 6-hourly tracking
refresh, one queueing per slot) are listed under "Jobs" in ``docs/architecture.md`` and
held by ``tests/worker/test_scheduler_promises.py``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq import AsyncBroker

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.models.sellers import SellerTier
from pixecom_core.observability import configure_logging
from pixecom_core.plugins import ProviderKind, ProviderRegistry, create_plugin_manager
from pixecom_core.providers import ProviderError
from pixecom_core.settings import Settings
from pixecom_core.stats.backfill import backfills_to_resume, claim_stalled
from pixecom_core.stats.fx_rates import RateLoad, load_rates
from pixecom_core.stats.schedule import due_syncs, due_tracking_refreshes
from reference_app.configuration import require_redis_url
from reference_app.worker.broker import (
    Queue,
    build_broker,
    kick_backfill,
    kick_revenue_refresh,
    kick_sync,
    kick_tracking_refresh,
)
from reference_app.worker.metrics import kick_slow_query_watch_if_due

_log = logging.getLogger(__name__)

_DIRECTORY = text("SELECT seller_id, tier FROM pixecom_seller_directory(:after, :max_rows)")
DIRECTORY_PAGE = 500


async def sellers(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[uuid.UUID, SellerTier]]:
    """Every seller id and tier, one directory page at a time."""
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(_DIRECTORY, {"after": after, "max_rows": DIRECTORY_PAGE})
            ).all()
        for row in rows:
            yield row.seller_id, SellerTier(row.tier)
        if len(rows) < DIRECTORY_PAGE:
            return
        after = rows[-1].seller_id


async def tick(
    sessions: async_sessionmaker[AsyncSession],
    client: redis.Redis,
    broker: AsyncBroker,
    settings: Settings,
    now: datetime | None = None,
) -> int:
    """Queue the syncs due now that no scheduler queued yet; return how many."""
    now = now or datetime.now(UTC)
    queued = 0
    batch: list[tuple[uuid.UUID, SellerTier]] = []

    async def flush() -> int:
        count = 0
        for due in due_syncs(batch, now, settings):
            if await client.set(due.claim_key, "1", nx=True, ex=due.claim_seconds):
                await kick_sync(broker, settings, due)
                count += 1
        sellers_only = [seller_id for seller_id, _ in batch]
        for seller_id, key, seconds in due_tracking_refreshes(sellers_only, now, settings):
            if await client.set(key, "1", nx=True, ex=seconds):
                await kick_tracking_refresh(broker, settings, seller_id)
                count += 1
        batch.clear()
        return count

    async for seller in sellers(sessions):
        batch.append(seller)
        if len(batch) >= DIRECTORY_PAGE:
            queued += await flush()
    queued += await flush()
    return queued


async def resume_backfills(
    sessions: async_sessionmaker[AsyncSession],
    client: redis.Redis,
    broker: AsyncBroker,
    settings: Settings,
    now: datetime | None = None,
) -> int:
    """Once per ``backfill_sweep_seconds`` (claimed in Redis, so two schedulers sweep
    once): queue again every incomplete backfill that no job carries on — its job was
    lost with its worker and Redis, or its wait after a throttle or failure is over.
    Return how many were queued."""
    now = now or datetime.now(UTC)
    interval = settings.backfill_sweep_seconds
    slot = int(now.timestamp()) // interval
    if not await client.set(
        f"{settings.redis_key_prefix}claim:backfill-sweep:{slot}", "1", nx=True, ex=interval * 2
    ):
        return 0
    queued = 0
    async for seller_id, ad_account_id in backfills_to_resume(sessions):
        task_id = await claim_stalled(client, settings, ad_account_id)
        if task_id is not None:
            await kick_backfill(broker, settings, seller_id, ad_account_id, task_id=task_id)
            queued += 1
    return queued


async def load_fx_rates(
    sessions: async_sessionmaker[AsyncSession],
    client: redis.Redis,
    broker: AsyncBroker,
    settings: Settings,
    registry: ProviderRegistry,
    now: datetime | None = None,
) -> RateLoad | None:
    """Once per ``fx_load_interval_seconds`` (claimed in Redis): load the last
    ``fx_load_days_back`` days of rates from the rate source and queue the re-aggregation
    of every seller whose days waited for them (issue 16 item 1). ``None`` when it was not
    this scheduler's turn or no source is installed."""
    now = now or datetime.now(UTC)
    if not registry.names(ProviderKind.CURRENCY_RATES):
        return None
    interval = settings.fx_load_interval_seconds
    slot = int(now.timestamp()) // interval
    if not await client.set(
        f"{settings.redis_key_prefix}claim:fx-load:{slot}", "1", nx=True, ex=interval * 2
    ):
        return None
    source = registry.currency_rates(settings.fx_source)
    today = now.date()
    load = await load_rates(
        sessions, settings, source, today - timedelta(days=settings.fx_load_days_back), today
    )
    for seller_id in load.sellers_marked:
        # The scheduler's broker is the stats-low queue's: name the payments queue.
        await kick_revenue_refresh(broker, seller_id, settings)
    return load


async def serve(settings: Settings) -> None:
    """Tick until SIGINT or SIGTERM."""
    redis_url = require_redis_url(settings)
    registry = ProviderRegistry(create_plugin_manager())
    settings = settings.with_chosen_providers(registry)
    engine = create_engine(settings, role="app", application_name="pixecom-scheduler")
    sessions = create_sessionmaker(engine)
    client = redis.Redis.from_url(redis_url)
    broker = build_broker(settings, Queue.STATS_LOW)
    await broker.startup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _log.info("scheduler started (tick %s s)", settings.scheduler_tick_seconds)
    try:
        while not stop.is_set():
            try:
                queued = await tick(sessions, client, broker, settings)
                if queued:
                    _log.info("queued %s sync(s)", queued)
                # Issue 14 item 4: backfills whose job was lost resume where they stopped.
                resumed = await resume_backfills(sessions, client, broker, settings)
                if resumed:
                    _log.info("resumed %s backfill(s)", resumed)
                # Issue 16: the day's rates, and the days that waited for them.
                try:
                    loaded = await load_fx_rates(sessions, client, broker, settings, registry)
                except ProviderError as exc:
                    _log.warning("currency rates not loaded (next slot retries): %s", exc)
                else:
                    if loaded is not None and loaded.rows_changed:
                        _log.info(
                            "rates of %s stored through %s; %s seller(s) re-aggregated",
                            loaded.source,
                            loaded.stored_through,
                            len(loaded.sellers_marked),
                        )
                # Issue 7 / OPS-1: pg_stat_activity watched for long-running queries.
                await kick_slow_query_watch_if_due(client, broker, settings)
            except Exception:  # a failed tick must not end the scheduler
                _log.exception("scheduler tick failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_tick_seconds)
            except TimeoutError:
                pass
    finally:
        await broker.shutdown()
        await registry.aclose()
        await client.aclose()
        await engine.dispose()


def run_scheduler(settings: Settings) -> None:
    """Blocking entry point of ``pixecom scheduler``."""
    configure_logging(settings, process="scheduler")
    asyncio.run(serve(settings))
