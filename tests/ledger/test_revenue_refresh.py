"""New payment facts reach a seller's sellpage revenue within seconds, not at the seller's
next sync (up to 30 minutes on the low tier): the payments worker queues one revenue
refresh per seller after it records facts (STATS-2: days touched by refunds are
re-aggregated; issue 8: a first look shows real, changing numbers)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.stats import refresh_dirty_days
from pixecom_core.tenancy import open_seller_scope
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue, build_broker, kick_process_webhook
from tests.ledger import fakepay
from tests.ledger.test_worker_redelivery import (  # noqa: F401  (fixtures)
    start_worker,
    wait_for,
    worker_env,
    worker_settings,
)
from tests.stats.test_pipeline import DAY, paid_order_on, record, sellpage_day
from tests.stats.test_pipeline import make_shop as make_stats_shop


@pytest.fixture
def sessions(app_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(app_engine)


async def test_the_inbox_names_the_sellers_that_gained_facts_and_only_those(
    app_engine: AsyncEngine,
    settings: Settings,
    registry: ProviderRegistry,
    ledger: Ledger,
    database_owner_dsn: str,
) -> None:
    heard: list[set[uuid.UUID]] = []

    async def on_recorded(sellers: set[uuid.UUID]) -> None:
        heard.append(sellers)

    inbox = WebhookInbox(
        create_sessionmaker(app_engine), settings, registry, ledger, on_recorded=on_recorded
    )
    shop = make_stats_shop(database_owner_dsn)
    payment = paid_order_on(database_owner_dsn, shop)
    capture = fakepay.fact(payment, f"ch_{uuid.uuid4().hex[:8]}", PaymentEventKind.CAPTURED, 900)

    body, headers = fakepay.delivery([capture])
    first = await inbox.receive("fakepay", body=body, headers=headers)
    await inbox.process(first.inbox_id)
    assert heard == [{shop.seller_id}]

    # The same fact again in another delivery records nothing new: no refresh is asked for.
    body, headers = fakepay.delivery([capture])
    again = await inbox.receive("fakepay", body=body, headers=headers)
    await inbox.process(again.inbox_id)
    assert heard == [{shop.seller_id}]


async def test_a_failing_listener_never_undoes_the_processing(
    app_engine: AsyncEngine,
    settings: Settings,
    registry: ProviderRegistry,
    ledger: Ledger,
    database_owner_dsn: str,
) -> None:
    async def broken(_sellers: set[uuid.UUID]) -> None:
        raise RuntimeError("redis is down")

    inbox = WebhookInbox(
        create_sessionmaker(app_engine), settings, registry, ledger, on_recorded=broken
    )
    shop = make_stats_shop(database_owner_dsn)
    payment = paid_order_on(database_owner_dsn, shop)
    body, headers = fakepay.delivery(
        [fakepay.fact(payment, "ch_x", PaymentEventKind.CAPTURED, 500)]
    )
    receipt = await inbox.receive("fakepay", body=body, headers=headers)
    assert (await inbox.process(receipt.inbox_id)).value == "processed"
    day = sellpage_day(database_owner_dsn, shop)
    assert day is not None and day["needs_reaggregation"]  # the next sync still catches it


async def test_concurrent_refreshes_of_one_seller_serialise_and_agree(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ledger: Ledger,
    database_owner_dsn: str,
) -> None:
    shop = make_stats_shop(database_owner_dsn)
    payment = paid_order_on(database_owner_dsn, shop)
    await record(ledger, payment, "ch_1", PaymentEventKind.CAPTURED, 8_000, "USD")
    await record(ledger, payment, "re_1", PaymentEventKind.REFUNDED, 3_000, "USD")

    async def refresh() -> tuple[object, ...]:
        async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
            return (await refresh_dirty_days(scope)).days

    # Without the per-seller lock, these delete and insert the same day at once and
    # collide on its unique key.
    results = await asyncio.gather(*(refresh() for _ in range(6)))
    assert (DAY,) in results  # the first one found the dirty day
    day = sellpage_day(database_owner_dsn, shop)
    assert day is not None
    assert (day["gross_revenue_minor"], day["refunds_minor"], day["net_revenue_minor"]) == (
        8_000,
        3_000,
        5_000,
    )
    assert not day["needs_reaggregation"]
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        assert (await refresh_dirty_days(scope)).days == ()  # nothing left to do


async def test_the_payments_worker_refreshes_revenue_without_a_sync(
    database: TestDatabase,
    worker_settings: Settings,  # noqa: F811
    inbox: WebhookInbox,
    start_worker: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    dsn = database.owner_dsn
    shop = make_stats_shop(dsn)
    payment = paid_order_on(dsn, shop)
    worker = start_worker(worker_env(database, worker_settings))  # type: ignore[operator]
    broker = build_broker(worker_settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        for fact, kind, amount in (
            ("ch_a", PaymentEventKind.CAPTURED, 12_000),
            ("re_a", PaymentEventKind.REFUNDED, 2_500),
        ):
            body, headers = fakepay.delivery([fakepay.fact(payment, fact, kind, amount)])
            receipt = await inbox.receive("fakepay", body=body, headers=headers)
            await kick_process_webhook(broker, receipt.inbox_id)
    finally:
        await broker.shutdown()

    def refreshed() -> bool:
        day = sellpage_day(dsn, shop)
        return (
            day is not None
            and not day["needs_reaggregation"]
            and (day["net_revenue_minor"] == 9_500)
        )

    wait_for(refreshed, 120, "the sellpage day's revenue", worker, tmp_path / "worker-0.log")
    day = sellpage_day(dsn, shop)
    assert day is not None
    assert (day["gross_revenue_minor"], day["refunds_minor"], day["orders_count"]) == (
        12_000,
        2_500,
        1,
    )
    with psycopg.connect(dsn) as conn:
        syncs = conn.execute(
            "SELECT count(*) FROM sync_runs WHERE seller_id = %s", (shop.seller_id,)
        ).fetchone()
    assert syncs == (0,)  # no sync ran: the payments worker did it
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, (tmp_path / "worker-0.log").read_text()
