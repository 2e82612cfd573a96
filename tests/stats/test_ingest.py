"""Raw ingest (STORE-2, SCALE-10): every path of the move stores each fetch's row once.

The move tries a plain insert first and falls back to ``ON CONFLICT DO NOTHING`` when the
dedup key refuses it: a retried batch, a batch that repeats a row, a batch partly stored,
a concurrent writer of the same fetch. Each must store what the ``ON CONFLICT`` move alone
stored, report the new rows exactly, and leave the transaction usable for a next batch.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.providers import EntityLevel, InsightRow
from pixecom_core.settings import Settings
from pixecom_core.stats import ingest_raw
from pixecom_core.stats.ingest import UnknownSellerError
from pixecom_core.tenancy import open_seller_scope
from tests.db.tenant_rows import insert_seller, seller_scope

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def insight(entity: str, day: date, fetched_at: datetime, spend_micros: int) -> InsightRow:
    return InsightRow(
        network="meta",
        entity_type=EntityLevel.AD,
        entity_id=entity,
        date_start=day,
        date_stop=day,
        spend_micros=spend_micros,
        impressions=100,
        clicks=3,
        purchases=0,
        purchase_value_micros=0,
        currency="USD",
        fetched_at=fetched_at,
    )


def new_seller(dsn: str) -> uuid.UUID:
    seller_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
    return seller_id


def stored(dsn: str, seller_id: uuid.UUID) -> list[tuple[object, ...]]:
    """The seller's raw rows: entity, day, fetch time, spend, account."""
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        return conn.execute(
            "SELECT entity_id, date_start, fetched_at, spend_micros, ad_account_id"
            " FROM ad_stats_raw WHERE seller_id = %s ORDER BY 1, 2, 3",
            (seller_id,),
        ).fetchall()


def batch(fetched_at: datetime, spend: int = 5_000_000, ads: int = 3) -> list[InsightRow]:
    return [insight(f"ad_{n}", DAY, fetched_at, spend) for n in range(ads)]


async def test_a_new_fetch_is_stored_with_its_account(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    sessions = create_sessionmaker(app_engine)
    seller_id = new_seller(database_owner_dsn)
    account = uuid.uuid4()

    async with open_seller_scope(sessions, seller_id, settings) as scope:
        report = await ingest_raw(scope, batch(T0), ad_account_id=account)

    assert (report.rows_received, report.rows_inserted, report.duplicates) == (3, 3, 0)
    assert stored(database_owner_dsn, seller_id) == [
        (f"ad_{n}", DAY, T0, 5_000_000, account) for n in range(3)
    ]


async def test_a_retry_a_partly_stored_batch_and_a_repeated_row_are_each_stored_once(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    sessions = create_sessionmaker(app_engine)
    seller_id = new_seller(database_owner_dsn)
    later = T0 + timedelta(minutes=15)

    async with open_seller_scope(sessions, seller_id, settings) as scope:
        first = await ingest_raw(scope, batch(T0))
    async with open_seller_scope(sessions, seller_id, settings) as scope:
        # a retried fetch, in the same transaction as a later fetch that repeats a row and
        # carries one the first fetch did not report: the fallback leaves the transaction
        # and the staging table usable for the next batch
        retry = await ingest_raw(scope, batch(T0))
        mixed_rows = [*batch(later, spend=6_000_000), insight("ad_0", DAY, later, 6_000_000)]
        mixed = await ingest_raw(scope, [*batch(T0, ads=4), *mixed_rows])

    assert (first.rows_inserted, retry.rows_inserted, retry.duplicates) == (3, 0, 3)
    # 4 + 4 received; ad_3 at T0 and ad_0..2 at the later fetch are new, the rest are not
    assert (mixed.rows_received, mixed.rows_inserted) == (8, 4)
    rows = stored(database_owner_dsn, seller_id)
    assert len(rows) == 7
    assert len({(entity, day, fetched) for entity, day, fetched, _, _ in rows}) == 7
    # a changed snapshot is kept beside the first; the first one's numbers are unchanged
    assert [(r[2], r[3]) for r in rows if r[0] == "ad_0"] == [
        (T0, 5_000_000),
        (later, 6_000_000),
    ]


async def test_a_refused_batch_rolls_back_nothing_of_the_transaction(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    sessions = create_sessionmaker(app_engine)
    seller_id = new_seller(database_owner_dsn)

    async with open_seller_scope(sessions, seller_id, settings) as scope:
        await ingest_raw(scope, batch(T0, ads=2))
        # the batch repeats its own row, so its plain insert is refused and rolled back to
        # the savepoint: the first batch of this transaction must survive that
        again = await ingest_raw(scope, [*batch(T0, ads=3), insight("ad_2", DAY, T0, 5_000_000)])

    assert (again.rows_received, again.rows_inserted) == (4, 1)
    assert [r[0] for r in stored(database_owner_dsn, seller_id)] == ["ad_0", "ad_1", "ad_2"]


async def test_a_batch_that_breaks_a_rule_fails_whole(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    # only the dedup key's refusal falls back; any other error reaches the caller
    sessions = create_sessionmaker(app_engine)
    seller_id = new_seller(database_owner_dsn)
    bad = insight("ad_bad", DAY, T0, 1).model_copy(update={"currency": "usd"})

    with pytest.raises(psycopg.errors.CheckViolation, match="currency"):
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            await ingest_raw(scope, [*batch(T0), bad])
    assert stored(database_owner_dsn, seller_id) == []


async def test_two_writers_of_the_same_fetch_store_it_once(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    # the second writer's plain insert waits on the first's uncommitted rows, is refused
    # once they commit, and its fallback skips them
    sessions: async_sessionmaker[AsyncSession] = create_sessionmaker(app_engine)
    seller_id = new_seller(database_owner_dsn)
    first_written = asyncio.Event()
    release_first = asyncio.Event()

    async def first_writer() -> int:
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            report = await ingest_raw(scope, batch(T0))
            first_written.set()
            await release_first.wait()
        return report.rows_inserted

    async def second_writer() -> int:
        await first_written.wait()
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            report = await ingest_raw(scope, batch(T0))
        return report.rows_inserted

    first = asyncio.create_task(first_writer())
    second = asyncio.create_task(second_writer())
    await first_written.wait()
    await asyncio.sleep(0.3)  # the second writer is now waiting on the first's rows
    assert not second.done()
    release_first.set()

    assert list(await asyncio.wait_for(asyncio.gather(first, second), timeout=10)) == [3, 0]
    assert len(stored(database_owner_dsn, seller_id)) == 3


async def test_a_batch_for_a_seller_that_does_not_exist_is_refused(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    # ad_stats_raw has no foreign key to sellers (revision 0020): the ingest checks the
    # seller once per batch, and stores nothing for one that does not exist
    sessions = create_sessionmaker(app_engine)
    nobody = uuid.uuid4()

    with pytest.raises(UnknownSellerError, match=str(nobody)):
        async with open_seller_scope(sessions, nobody, settings) as scope:
            await ingest_raw(scope, batch(T0))
    assert stored(database_owner_dsn, nobody) == []


async def test_an_empty_batch_for_a_seller_that_does_not_exist_stores_nothing(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    sessions = create_sessionmaker(app_engine)
    nobody = uuid.uuid4()

    async with open_seller_scope(sessions, nobody, settings) as scope:
        report = await ingest_raw(scope, [])
    assert (report.rows_received, report.rows_inserted) == (0, 0)
    assert stored(database_owner_dsn, nobody) == []


async def test_deleting_a_seller_waits_for_its_ingest_then_is_refused(
    app_engine: AsyncEngine, settings: Settings, database_owner_dsn: str
) -> None:
    # the ingest locks the seller's row as a foreign key would: a concurrent DELETE waits
    # for the batch's commit, then its guard sees the new rows (none were stored before)
    sessions = create_sessionmaker(app_engine)
    seller_id = new_seller(database_owner_dsn)
    written = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            await ingest_raw(scope, batch(T0))
            written.set()
            await release.wait()

    async def deleter() -> None:
        await written.wait()
        async with await psycopg.AsyncConnection.connect(database_owner_dsn) as conn:
            await conn.execute(
                "SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),)
            )
            await conn.execute("DELETE FROM sellers WHERE id = %s", (seller_id,))

    writing = asyncio.create_task(writer())
    deleting = asyncio.create_task(deleter())
    await written.wait()
    await asyncio.sleep(0.3)  # the DELETE is now waiting on the ingest's lock
    assert not deleting.done()
    release.set()
    await asyncio.wait_for(writing, timeout=10)

    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="still has raw"):
        await asyncio.wait_for(deleting, timeout=10)
    assert len(stored(database_owner_dsn, seller_id)) == 3
