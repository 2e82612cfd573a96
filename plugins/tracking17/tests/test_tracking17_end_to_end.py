"""17TRACK end to end: core's tracking service over the sandbox, and its breaker.

Real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, else embedded), the sandbox on
loopback: a tracking number is registered and polled to its new status; when the
sandbox is slow (past the client timeout) or down, the breaker opens after the
configured failures and refreshes fail fast without calling 17TRACK; when it recovers,
the breaker half-opens and closes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from pixecom_tracking17.tracker import Tracker17
from tracking17_support import SandboxHandle

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import Tracker
from pixecom_core.providers.errors import ProviderTransientError, ProviderUnavailable
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext
from pixecom_core.testing import databases
from pixecom_core.testing.databases import TestDatabase
from pixecom_core.tracking import TrackingService


class Track17AtSandbox:
    def __init__(self, tracker: Tracker17) -> None:
        self.tracker = tracker

    @hookimpl
    def pixecom_register_trackers(self) -> list[Tracker]:
        return [self.tracker]


@pytest.fixture(scope="module")
def database() -> Iterator[TestDatabase]:
    with (
        databases.test_servers() as (server_dsn, redis_url),
        databases.provision_test_database(server_dsn, redis_url) as db,
    ):
        yield db


def paid_order(db: TestDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    seller_id, order_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        conn.execute(
            "INSERT INTO sellers (id, name, reporting_currency) VALUES (%s, 'Ship co', 'USD')",
            (seller_id,),
        )
        conn.execute(
            "INSERT INTO orders (seller_id, id, created_at, status, currency, subtotal_minor,"
            " total_minor, customer_email) VALUES (%s, %s, %s, 'PAID', 'USD', 100, 100,"
            " 'b@example.com')",
            (seller_id, order_id, datetime.now(UTC)),
        )
    return seller_id, order_id


def order_status(db: TestDatabase, order_id: uuid.UUID) -> str:
    with psycopg.connect(db.owner_dsn) as conn:
        row = conn.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def test_polling_and_the_breaker_against_the_sandbox(
    database: TestDatabase, sandbox: SandboxHandle, tracker: Tracker17
) -> None:
    settings: Settings = database.settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-17track-e2e:{uuid.uuid4().hex}:",
            "tracking_provider": tracker.identifier,
            "tracking_refresh_seconds": 60,
            "breaker_failure_threshold": 2,
            "breaker_reset_seconds": 1.0,
        }
    )
    manager = create_plugin_manager(load_entry_points=False, plugins=[Track17AtSandbox(tracker)])
    engine = create_engine(settings, role="app")
    service = TrackingService(
        create_sessionmaker(engine), settings, ProviderRegistry(manager), ProviderBreakers(settings)
    )
    seller_id, order_id = paid_order(database)
    context = SellerContext(seller_id=seller_id, sessions=service._sessions, settings=settings)
    number = f"RR{uuid.uuid4().int % 10**9:09d}US"
    try:
        await service.add(context, order_id, carrier="usps", number=number)
        await sandbox.set_status(number, "Delivered")
        polled = await service.refresh_seller(seller_id)
        assert polled.changed == 1
        assert order_status(database, order_id) == "DELIVERED"

        # 17TRACK slow past the client's timeout, then down: the breaker opens.
        second_seller, second_order = paid_order(database)
        second_context = SellerContext(
            seller_id=second_seller, sessions=service._sessions, settings=settings
        )
        await service.add(second_context, second_order, carrier="usps", number=number + "X")
        await sandbox.configure(latency_seconds=3.0)  # the client gives up after 2 s
        for _ in range(settings.breaker_failure_threshold):
            with pytest.raises(ProviderTransientError):
                await service.refresh_seller(second_seller)
        await sandbox.configure(latency_seconds=0.0)
        await sandbox.fault("server_error", status=503, times=10_000)  # 17TRACK down
        calls_before = len(await sandbox.requests())
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await service.refresh_seller(second_seller)
        assert time.monotonic() - started < 0.5  # fast: 17TRACK was not called
        assert len(await sandbox.requests()) == calls_before

        # Recovered: after the reset time one trial call goes through and closes it.
        (await sandbox.control.delete("/_sandbox/faults")).raise_for_status()
        await asyncio.sleep(1.1)
        recovered = await service.refresh_seller(second_seller)
        assert recovered.polled == 1
        assert await ProviderBreakers(settings).state("tracker", tracker.identifier) == "closed"
    finally:
        await engine.dispose()
