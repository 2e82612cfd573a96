"""A recomputation writes only what changed (issue 18 item 3).

A steady sync recomputes days whose numbers mostly stand. The roll-ups of
``entity_stats_daily`` and ``sellpage_stats_daily`` are upserted, so an unchanged row keeps
its tuple (same ``xmin`` and ``ctid``: not rewritten, not even locked), a changed number
rewrites exactly its row, and a row the recomputed days no longer produce is deleted —
leaving the tables as a recomputation from scratch would.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.providers import EntityLevel
from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_sellpages, lock_sellpage_aggregation
from pixecom_core.stats.aggregate import SellpageAggregation
from pixecom_core.tenancy import open_seller_scope
from tests.db.tenant_rows import seller_scope
from tests.stats.test_pipeline import (  # noqa: F401 (fixtures)
    DAY,
    T0,
    Shop,
    ingest_and_aggregate,
    insight,
    make_shop,
    sessions,
)

DAYS = [DAY - timedelta(days=1), DAY]
Key = tuple[Any, ...]


async def recompute(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    seller_id: uuid.UUID,
) -> SellpageAggregation:
    async with open_seller_scope(sessions, seller_id, settings) as scope:
        await lock_sellpage_aggregation(scope)
        return await aggregate_sellpages(scope, DAYS)


def tuples(dsn: str, seller_id: uuid.UUID, table: str, key: str) -> dict[Key, tuple[str, str]]:
    """Each row's tuple identity (``xmin``, ``ctid``) by its key."""
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            f"SELECT {key}, xmin::text, ctid::text FROM {table} WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {tuple(row[:-2]): (row[-2], row[-1]) for row in rows}


def entity_tuples(dsn: str, seller_id: uuid.UUID) -> dict[Key, tuple[str, str]]:
    return tuples(dsn, seller_id, "entity_stats_daily", "entity_id, stat_date")


def sellpage_tuples(dsn: str, seller_id: uuid.UUID) -> dict[Key, tuple[str, str]]:
    return tuples(dsn, seller_id, "sellpage_stats_daily", "sellpage_id, stat_date")


def numbers(dsn: str, seller_id: uuid.UUID) -> dict[str, set[tuple[Any, ...]]]:
    """Both roll-ups' rows of the seller, every column but ``computed_at``."""
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        entities = conn.execute(
            "SELECT entity_type, network, entity_id, stat_date, reporting_currency,"
            " spend_minor, gross_revenue_minor, refunds_minor, chargebacks_minor,"
            " net_revenue_minor, orders_count FROM entity_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
        pages = conn.execute(
            "SELECT sellpage_id, stat_date, reporting_currency, spend_minor,"
            " gross_revenue_minor, refunds_minor, chargebacks_minor, net_revenue_minor,"
            " orders_count, roas, needs_reaggregation FROM sellpage_stats_daily"
            " WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {"entities": set(entities), "sellpages": set(pages)}


def owner_execute(dsn: str, shop: Shop, sql: str, params: tuple[Any, ...]) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn, seller_scope(conn, shop.seller_id):
        return conn.execute(sql, params).rowcount


async def spend_of_three_levels(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    shop: Shop,
) -> None:
    """A campaign, its ad set and its ad with spend on both days."""
    rows = [
        insight(name, day, T0, micros, level=level)
        for day in DAYS
        for name, micros, level in (
            (shop.campaign, 10_000_000, EntityLevel.CAMPAIGN),
            ("adset_1", 6_000_000, EntityLevel.ADSET),
            ("ad_1", 4_000_000, EntityLevel.AD),
        )
    ]
    await ingest_and_aggregate(sessions, settings, shop.seller_id, rows)


async def test_an_unchanged_recomputation_writes_no_row_and_a_change_rewrites_only_its_row(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
) -> None:
    shop = make_shop(database_owner_dsn)
    await spend_of_three_levels(sessions, settings, shop)
    first = await recompute(sessions, settings, shop.seller_id)
    assert (first.entity_rows, first.rows_written) == (6, 2)
    assert (first.entity_rows_changed, first.rows_changed) == (6, 2)  # all new
    entities = entity_tuples(database_owner_dsn, shop.seller_id)
    pages = sellpage_tuples(database_owner_dsn, shop.seller_id)
    assert len(entities) == 6 and len(pages) == 2

    again = await recompute(sessions, settings, shop.seller_id)

    # The days still hold their rows, and none of them was written.
    assert (again.entity_rows, again.rows_written) == (6, 2)
    assert (again.entity_rows_changed, again.rows_changed) == (0, 0)
    assert entity_tuples(database_owner_dsn, shop.seller_id) == entities
    assert sellpage_tuples(database_owner_dsn, shop.seller_id) == pages

    # The ad set's spend of DAY is restated: exactly its row is rewritten.
    restated = [
        insight("adset_1", DAY, T0 + timedelta(hours=1), 7_000_000, level=EntityLevel.ADSET)
    ]
    await ingest_and_aggregate(sessions, settings, shop.seller_id, restated)
    changed = await recompute(sessions, settings, shop.seller_id)

    assert (changed.entity_rows_changed, changed.rows_changed) == (1, 0)
    after = entity_tuples(database_owner_dsn, shop.seller_id)
    assert {key for key in entities if after[key] != entities[key]} == {("adset_1", DAY)}
    assert after.keys() == entities.keys()
    assert sellpage_tuples(database_owner_dsn, shop.seller_id) == pages
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, shop.seller_id):
        spend = conn.execute(
            "SELECT spend_minor FROM entity_stats_daily"
            " WHERE seller_id = %s AND entity_id = 'adset_1' AND stat_date = %s",
            (shop.seller_id, DAY),
        ).fetchone()
    assert spend == (700,)

    # A sellpage row flagged by the old marker (0017) is rewritten and the flag cleared.
    flagged = owner_execute(
        database_owner_dsn,
        shop,
        "UPDATE sellpage_stats_daily SET needs_reaggregation = true"
        " WHERE seller_id = %s AND stat_date = %s",
        (shop.seller_id, DAY),
    )
    assert flagged == 1
    pages = sellpage_tuples(database_owner_dsn, shop.seller_id)
    cleared = await recompute(sessions, settings, shop.seller_id)
    assert (cleared.entity_rows_changed, cleared.rows_changed) == (0, 1)
    after_pages = sellpage_tuples(database_owner_dsn, shop.seller_id)
    assert {key for key in pages if after_pages[key] != pages[key]} == {(shop.sellpage_id, DAY)}
    assert all(not row[-1] for row in numbers(database_owner_dsn, shop.seller_id)["sellpages"])


async def test_rows_the_days_no_longer_produce_are_deleted_as_from_scratch(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
) -> None:
    shop = make_shop(database_owner_dsn)
    await spend_of_three_levels(sessions, settings, shop)
    await recompute(sessions, settings, shop.seller_id)
    entities = entity_tuples(database_owner_dsn, shop.seller_id)

    # The ad's snapshot of DAY is gone (no spend, no revenue), and the campaign is
    # unlinked from the sellpage: the ad's day and both sellpage days are no longer produced.
    removed = owner_execute(
        database_owner_dsn,
        shop,
        "DELETE FROM ad_stats_daily WHERE seller_id = %s AND entity_id = 'ad_1' AND stat_date = %s",
        (shop.seller_id, DAY),
    )
    unlinked = owner_execute(
        database_owner_dsn,
        shop,
        "UPDATE campaigns SET sellpage_id = NULL WHERE seller_id = %s AND external_id = %s",
        (shop.seller_id, shop.campaign),
    )
    assert (removed, unlinked) == (1, 1)
    written = await recompute(sessions, settings, shop.seller_id)

    assert (written.entity_rows, written.rows_written) == (5, 0)
    assert (written.entity_rows_changed, written.rows_changed) == (1, 2)
    after = entity_tuples(database_owner_dsn, shop.seller_id)
    assert after == {key: row for key, row in entities.items() if key != ("ad_1", DAY)}
    assert sellpage_tuples(database_owner_dsn, shop.seller_id) == {}

    # What is left is what a recomputation into empty days gives.
    incremental = numbers(database_owner_dsn, shop.seller_id)
    for table in ("entity_stats_daily", "sellpage_stats_daily"):
        owner_execute(
            database_owner_dsn, shop, f"DELETE FROM {table} WHERE seller_id = %s", (shop.seller_id,)
        )
    scratch = await recompute(sessions, settings, shop.seller_id)
    assert (scratch.entity_rows_changed, scratch.rows_changed) == (5, 0)
    assert numbers(database_owner_dsn, shop.seller_id) == incremental
    assert {(row[2], row[3]) for row in incremental["entities"]} == {
        (name, day) for name in (shop.campaign, "adset_1", "ad_1") for day in DAYS
    } - {("ad_1", DAY)}
