"""Tracking: register, pushes applied once, polls, and a breaker when the tracker fails."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.orders.status import change_order_status
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import OrderStatusChange, TrackingStatus, WebhookVerificationError
from pixecom_core.providers.errors import ProviderTransientError, ProviderUnavailable
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext
from pixecom_core.tracking import TrackingService, tag_for
from pixecom_core.tracking import service as tracking_service
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.ledger.conftest import insert_order
from tests.tracking.faketrack import IDENTIFIER, FakeTracker, FakeTrackPlugin, push


@pytest.fixture
def tracker() -> FakeTracker:
    return FakeTracker()


@pytest.fixture
def tracking_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "tracking_provider": IDENTIFIER,
            "breaker_failure_threshold": 2,
            "breaker_reset_seconds": 0.5,
            "tracking_refresh_seconds": 60,
        }
    )


@pytest.fixture
def service(
    app_engine: AsyncEngine, tracking_settings: Settings, tracker: FakeTracker
) -> TrackingService:
    manager = create_plugin_manager(load_entry_points=False, plugins=[FakeTrackPlugin(tracker)])
    return TrackingService(
        create_sessionmaker(app_engine),
        tracking_settings,
        ProviderRegistry(manager),
        ProviderBreakers(tracking_settings),
        manager,
    )


def paid_order(dsn: str) -> tuple[uuid.UUID, uuid.UUID]:
    seller_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        order = insert_order(conn, seller_id)
        with seller_scope(conn, seller_id):
            conn.execute("UPDATE orders SET status = 'PAID' WHERE id = %s", (order.order_id,))
    return seller_id, order.order_id


def order_state(dsn: str, seller_id: uuid.UUID, order_id: uuid.UUID) -> tuple[str, list[str]]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        status = conn.execute(
            "SELECT status FROM orders WHERE seller_id = %s AND id = %s", (seller_id, order_id)
        ).fetchone()
        events = conn.execute(
            "SELECT event_type FROM order_events WHERE seller_id = %s AND order_id = %s"
            " ORDER BY created_at, id",
            (seller_id, order_id),
        ).fetchall()
    assert status is not None
    return str(status[0]), [e[0] for e in events]


def context(service: TrackingService, seller_id: uuid.UUID, settings: Settings) -> SellerContext:
    return SellerContext(seller_id=seller_id, sessions=service._sessions, settings=settings)


async def test_a_push_moves_the_parcel_and_the_order_once(
    service: TrackingService,
    tracker: FakeTracker,
    tracking_settings: Settings,
    database_owner_dsn: str,
) -> None:
    seller_id, order_id = paid_order(database_owner_dsn)
    record = await service.add(
        context(service, seller_id, tracking_settings), order_id, carrier="usps", number="TRK1"
    )
    assert record.status is TrackingStatus.NOT_FOUND
    assert tracker.registered["TRK1"].tag == tag_for(seller_id, order_id)

    body, headers = push(
        "TRK1", tag_for(seller_id, order_id), TrackingStatus.IN_TRANSIT, datetime.now(UTC)
    )
    first = await service.receive_push(IDENTIFIER, body=body, headers=headers)
    again = await service.receive_push(IDENTIFIER, body=body, headers=headers)

    assert (first, again) == (1, 0)
    status, events = order_state(database_owner_dsn, seller_id, order_id)
    assert status == "SHIPPED"
    assert events.count("TRACKING_UPDATED") == 1 and events.count("STATUS_CHANGED") == 1


async def test_an_older_push_never_moves_a_parcel_back(
    service: TrackingService, tracking_settings: Settings, database_owner_dsn: str
) -> None:
    seller_id, order_id = paid_order(database_owner_dsn)
    await service.add(
        context(service, seller_id, tracking_settings), order_id, carrier="usps", number="TRK2"
    )
    now = datetime.now(UTC)
    tag = tag_for(seller_id, order_id)

    await service.receive_push(IDENTIFIER, **_kw(push("TRK2", tag, TrackingStatus.DELIVERED, now)))
    late = await service.receive_push(
        IDENTIFIER, **_kw(push("TRK2", tag, TrackingStatus.IN_TRANSIT, now - timedelta(hours=1)))
    )

    assert late == 0
    assert order_state(database_owner_dsn, seller_id, order_id)[0] == "DELIVERED"


def _kw(pushed: tuple[bytes, dict[str, str]]) -> dict[str, object]:
    return {"body": pushed[0], "headers": pushed[1]}


async def test_a_badly_signed_push_writes_nothing(
    service: TrackingService, tracking_settings: Settings, database_owner_dsn: str
) -> None:
    seller_id, order_id = paid_order(database_owner_dsn)
    await service.add(
        context(service, seller_id, tracking_settings), order_id, carrier="usps", number="TRK3"
    )
    body, headers = push(
        "TRK3", tag_for(seller_id, order_id), TrackingStatus.DELIVERED, datetime.now(UTC)
    )

    with pytest.raises(WebhookVerificationError):
        await service.receive_push(
            IDENTIFIER, body=body.replace(b"delivered", b"exception"), headers=headers
        )

    assert order_state(database_owner_dsn, seller_id, order_id) == ("PAID", [])


async def test_polling_applies_changes(
    service: TrackingService,
    tracker: FakeTracker,
    tracking_settings: Settings,
    database_owner_dsn: str,
) -> None:
    seller_id, order_id = paid_order(database_owner_dsn)
    tracker.down = True  # registration fails at first: the number is kept for the refresh
    await service.add(
        context(service, seller_id, tracking_settings), order_id, carrier="dhl", number="TRK4"
    )
    tracker.down = False
    tracker.status["TRK4"] = TrackingStatus.DELIVERED

    result = await service.refresh_seller(seller_id)

    assert (result.registered, result.polled, result.changed) == (1, 1, 1)
    assert order_state(database_owner_dsn, seller_id, order_id)[0] == "DELIVERED"
    # Checked just now: the next refresh has nothing due.
    assert (await service.refresh_seller(seller_id)).polled == 0


async def test_a_failing_tracker_opens_the_breaker_and_jobs_fail_fast(
    service: TrackingService,
    tracker: FakeTracker,
    tracking_settings: Settings,
    database_owner_dsn: str,
) -> None:
    seller_id, order_id = paid_order(database_owner_dsn)
    await service.add(
        context(service, seller_id, tracking_settings), order_id, carrier="dhl", number="TRK5"
    )
    tracker.down = True
    tracker.delay_seconds = 0.3  # slow and failing

    for _ in range(2):  # the threshold
        with pytest.raises(ProviderTransientError):
            await service.refresh_seller(seller_id)
    calls = tracker.calls
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        await service.refresh_seller(seller_id)

    assert time.monotonic() - started < 0.2  # failed fast: the tracker was not called
    assert tracker.calls == calls

    tracker.down = False  # the tracker recovers; after the reset time the breaker closes
    tracker.delay_seconds = 0
    time.sleep(0.6)
    assert (await service.refresh_seller(seller_id)).polled == 1


async def test_a_number_refused_for_good_is_kept_but_not_sent_again(
    service: TrackingService,
    tracker: FakeTracker,
    tracking_settings: Settings,
    database_owner_dsn: str,
) -> None:
    seller_id, order_id = paid_order(database_owner_dsn)
    await service.add(
        context(service, seller_id, tracking_settings), order_id, carrier="usps", number="BAD1"
    )
    calls = tracker.calls

    result = await service.refresh_seller(seller_id)

    assert result.polled == 0 and tracker.calls == calls  # not re-registered, not polled
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller_id):
        raw = conn.execute(
            "SELECT raw->>'rejected' FROM tracking_records WHERE seller_id = %s", (seller_id,)
        ).fetchone()
    assert raw == ("malformed",)


class StatusWatcher:
    """Records each announced change and what another connection saw at that moment."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.seen: list[tuple[OrderStatusChange, str, list[str]]] = []

    @hookimpl
    def pixecom_on_order_status_changed(self, change: OrderStatusChange) -> None:
        # A connection of its own: only what is committed is visible from here.
        status, events = order_state(self.dsn, change.seller_id, change.order_id)
        self.seen.append((change, status, events))


@dataclass(frozen=True)
class WatchedOrder:
    """A paid order with tracking number ``number``, behind a service a watcher listens to."""

    service: TrackingService
    watcher: StatusWatcher
    seller_id: uuid.UUID
    order_id: uuid.UUID
    number: str = "TRK-WATCHED"

    def push(self, status: TrackingStatus) -> dict[str, Any]:
        """``body`` and ``headers`` of a signed push moving the parcel to ``status`` now."""
        tag = tag_for(self.seller_id, self.order_id)
        body, headers = push(self.number, tag, status, datetime.now(UTC))
        return {"body": body, "headers": headers}


@pytest.fixture
async def watched(
    app_engine: AsyncEngine,
    tracker: FakeTracker,
    tracking_settings: Settings,
    database_owner_dsn: str,
) -> WatchedOrder:
    watcher = StatusWatcher(database_owner_dsn)
    manager = create_plugin_manager(
        load_entry_points=False, plugins=[FakeTrackPlugin(tracker), watcher]
    )
    service = TrackingService(
        create_sessionmaker(app_engine),
        tracking_settings,
        ProviderRegistry(manager),
        ProviderBreakers(tracking_settings),
        manager,
    )
    seller_id, order_id = paid_order(database_owner_dsn)
    order = WatchedOrder(service, watcher, seller_id, order_id)
    await service.add(
        context(service, seller_id, tracking_settings),
        order_id,
        carrier="usps",
        number=order.number,
    )
    return order


async def test_a_status_change_is_announced_once_its_rows_are_visible_elsewhere(
    watched: WatchedOrder,
) -> None:
    await watched.service.receive_push(IDENTIFIER, **watched.push(TrackingStatus.IN_TRANSIT))

    [(change, status_seen, events_seen)] = watched.watcher.seen
    assert (change.order_id, change.previous_status, change.new_status) == (
        watched.order_id,
        "PAID",
        "SHIPPED",
    )
    assert change.reason == "parcel in_transit"
    assert status_seen == "SHIPPED"
    assert events_seen.count("STATUS_CHANGED") == 1


async def test_a_tracking_update_that_rolls_back_announces_nothing(
    watched: WatchedOrder, database_owner_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[OrderStatusChange] = []

    async def change_then_fail(*args: Any, **kwargs: Any) -> OrderStatusChange:
        written.append(await change_order_status(*args, **kwargs))
        raise RuntimeError("the transaction fails after the status change")

    monkeypatch.setattr(tracking_service, "change_order_status", change_then_fail)

    with pytest.raises(RuntimeError, match="after the status change"):
        await watched.service.receive_push(IDENTIFIER, **watched.push(TrackingStatus.DELIVERED))

    assert [c.new_status for c in written] == ["DELIVERED"]  # the change was written...
    assert watched.watcher.seen == []  # ...rolled back, and never announced
    assert order_state(database_owner_dsn, watched.seller_id, watched.order_id) == ("PAID", [])
