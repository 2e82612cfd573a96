"""``pixecom fx …`` and ``pixecom stats reaggregate``: load a range of reference rates,
set a seller's manual rates, recompute sellers' days.

Both run the same core code as the scheduled load and the API
(:mod:`pixecom_core.stats.fx_rates`), as the application role; the sellers whose days
waited for the loaded rates get a re-aggregation queued when Redis is configured (without
it, their marked days are recomputed by their next sync).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import mark_all_days_dirty
from pixecom_core.stats.fx_rates import ManualRate, ManualRates, RateLoad, load_rates
from pixecom_core.tenancy import open_seller_scope
from reference_app.worker.broker import Queue, build_broker, kick_revenue_refresh
from reference_app.worker.scheduler import sellers as every_seller

#: A backfill loads this many days per source call (the ECB's full history is one file,
#: but the rows of a year are stored in one statement).
CHUNK_DAYS = 366


def chunks(since: date, until: date, size: int = CHUNK_DAYS) -> Iterator[tuple[date, date]]:
    """[since, until] as consecutive ranges of at most ``size`` days."""
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=size - 1))
        yield start, end
        start = end + timedelta(days=1)


async def _backfill(settings: Settings, since: date, until: date) -> list[RateLoad]:
    registry = ProviderRegistry(create_plugin_manager())
    settings = settings.with_chosen_providers(registry)
    source = registry.currency_rates(settings.fx_source)
    engine = create_engine(settings, role="app", application_name="pixecom-fx")
    loads: list[RateLoad] = []
    try:
        sessions = create_sessionmaker(engine)
        for start, end in chunks(since, until):
            loads.append(await load_rates(sessions, settings, source, start, end))
    finally:
        await source.aclose()
        await engine.dispose()
    marked = {seller for load in loads for seller in load.sellers_marked}
    if marked and settings.redis_url:
        broker = build_broker(settings, Queue.PAYMENTS)
        await broker.startup()
        try:
            for seller_id in marked:
                await kick_revenue_refresh(broker, seller_id)
        finally:
            await broker.shutdown()
    return loads


def backfill(settings: Settings, since: date, until: date) -> list[RateLoad]:
    """Load the rate source's rates of [since, until], chunk by chunk."""
    return asyncio.run(_backfill(settings, since, until))


async def _set_rate(
    settings: Settings,
    seller_id: uuid.UUID,
    day: date,
    base: str,
    quote: str,
    rate: Decimal | None,
    changed_by: str,
    note: str | None,
) -> ManualRate | bool:
    engine = create_engine(settings, role="app", application_name="pixecom-fx")
    try:
        async with open_seller_scope(create_sessionmaker(engine), seller_id, settings) as scope:
            rates = ManualRates(scope)
            if rate is None:
                return await rates.remove(day, base, quote, changed_by=changed_by, note=note)
            return await rates.set(day, base, quote, rate, changed_by=changed_by, note=note)
    finally:
        await engine.dispose()


def set_manual_rate(
    settings: Settings,
    seller_id: uuid.UUID,
    day: date,
    base: str,
    quote: str,
    rate: Decimal | None,
    *,
    changed_by: str,
    note: str | None = None,
) -> ManualRate | bool:
    """Set (``rate``) or remove (``None``) a seller's manual rate; audited, and the day is
    marked for re-aggregation (its next sync or revenue refresh recomputes it)."""
    return asyncio.run(_set_rate(settings, seller_id, day, base, quote, rate, changed_by, note))


async def _reaggregate(
    settings: Settings, seller_ids: list[uuid.UUID], since: date | None, until: date | None
) -> dict[uuid.UUID, int]:
    engine = create_engine(settings, role="app", application_name="pixecom-stats")
    marked: dict[uuid.UUID, int] = {}
    try:
        sessions = create_sessionmaker(engine)
        if not seller_ids:
            seller_ids = [seller async for seller, _tier in every_seller(sessions)]
        for seller_id in seller_ids:
            async with open_seller_scope(sessions, seller_id, settings) as scope:
                marked[seller_id] = await mark_all_days_dirty(scope, since=since, until=until)
    finally:
        await engine.dispose()
    if settings.redis_url and any(marked.values()):
        broker = build_broker(settings, Queue.PAYMENTS)
        await broker.startup()
        try:
            for seller_id, days in marked.items():
                if days:
                    await kick_revenue_refresh(broker, seller_id)
        finally:
            await broker.shutdown()
    return marked


def reaggregate(
    settings: Settings,
    seller_ids: list[uuid.UUID],
    *,
    since: date | None = None,
    until: date | None = None,
) -> dict[uuid.UUID, int]:
    """Mark every day with spend or money of ``seller_ids`` (every seller when empty) in
    [since, until] for re-aggregation and queue their refresh; return the days marked per
    seller. After upgrading to revision 0017, days aggregated before it have no per-seller
    row until they are recomputed: this recomputes them."""
    return asyncio.run(_reaggregate(settings, seller_ids, since, until))
