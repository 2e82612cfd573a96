"""Broker tasks are module functions that read the worker's resources from the broker's
state, so a test runs one on services of its own, without a worker process or a queue
(issue 13 #8: one place builds the services; tasks importable and testable alone)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from taskiq import Context, InMemoryBroker, TaskiqMessage

from pixecom_core.ledger import ProcessResult
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import SyncJobs
from pixecom_core.stats.sync import StatsSync
from reference_app.services import open_services
from reference_app.worker.broker import (
    REFRESH_REVENUE,
    WorkerResources,
    process_webhook,
    refresh_revenue,
    revenue_refresh_key,
)
from tests.db.tenant_rows import insert_seller, seller_scope


def context_on(broker: InMemoryBroker, task_name: str) -> Context:
    message = TaskiqMessage(
        task_id=uuid.uuid4().hex, task_name=task_name, labels={}, args=[], kwargs={}
    )
    return Context(message, broker)


@asynccontextmanager
async def broker_on(settings: Settings, **update: object) -> AsyncIterator[InMemoryBroker]:
    """A broker whose state holds worker resources opened by the shared builder, on
    ``settings`` with Redis keys of its own and ``update`` applied."""
    isolated = settings.model_copy(
        update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:", **update}
    )
    providers = ProviderRegistry(create_plugin_manager())
    broker = InMemoryBroker()
    async with open_services(
        isolated, providers, application_name="pixecom-test-tasks", redis_socket_timeout=5.0
    ) as services:
        stats_sync = StatsSync(
            services.sessions,
            isolated,
            providers,
            SecretBox(isolated.token_encryption_keys),
            providers.plugin_manager,
        )
        broker.state.pixecom = WorkerResources(
            services=services,
            sync_jobs=SyncJobs(stats_sync, services.sessions, isolated, services.redis),
            broker=broker,
        )
        yield broker


@pytest.fixture
async def broker_with_resources(settings: Settings) -> AsyncIterator[InMemoryBroker]:
    """A broker whose state holds worker resources opened by the shared builder."""
    async with broker_on(settings) as broker:
        yield broker


async def test_a_revenue_refresh_runs_alone_and_clears_its_pending_marker(
    broker_with_resources: InMemoryBroker,
) -> None:
    services = broker_with_resources.state.pixecom.services
    seller_id = str(uuid.uuid4())
    marker = revenue_refresh_key(services.settings, seller_id)
    await services.redis.set(marker, "1")

    days = await refresh_revenue(seller_id, context_on(broker_with_resources, REFRESH_REVENUE))

    assert days == 0  # a seller with no dirty days
    assert await services.redis.exists(marker) == 0


async def test_a_webhook_task_for_an_unknown_delivery_is_skipped(
    broker_with_resources: InMemoryBroker,
) -> None:
    outcome = await process_webhook(
        2**40, context_on(broker_with_resources, "pixecom.process_webhook")
    )

    assert outcome == ProcessResult.SKIPPED.value


async def test_a_task_outside_a_worker_says_how_to_give_it_resources() -> None:
    with pytest.raises(RuntimeError, match="build_broker"):
        await refresh_revenue(str(uuid.uuid4()), context_on(InMemoryBroker(), REFRESH_REVENUE))


async def test_a_revenue_refresh_works_through_every_marked_day_however_many(
    broker_with_resources: InMemoryBroker, database_owner_dsn: str
) -> None:
    """Issue 16 item 4: a new reporting currency marks years of days; one refresh (62 days
    per transaction) recomputes them all, oldest first."""
    seller_id = uuid.uuid4()
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            conn.execute(
                "INSERT INTO seller_stats_daily (seller_id, stat_date, reporting_currency,"
                " spend_minor, unlinked_spend_minor, gross_revenue_minor, refunds_minor,"
                " chargebacks_minor, net_revenue_minor, orders_count,"
                " no_sellpage_net_revenue_minor, no_sellpage_orders_count,"
                " no_campaign_net_revenue_minor, no_campaign_orders_count, needs_reaggregation)"
                " SELECT %s, d::date, 'USD', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, true"
                " FROM generate_series(date '2024-01-01', date '2024-05-09', interval '1 day') d",
                (seller_id,),
            )

    days = await refresh_revenue(str(seller_id), context_on(broker_with_resources, REFRESH_REVENUE))

    assert days == 130
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller_id):
        left = conn.execute(
            "SELECT count(*) FILTER (WHERE needs_reaggregation), sum(spend_minor)"
            " FROM seller_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchone()
    # Recomputed from the (empty) sources: no mark left, and the made-up spend is gone.
    assert left == (0, 0)
