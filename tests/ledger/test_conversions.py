"""Conversion events (issue 17 item 4): queued with the PAID transition, sent after commit,
once per order whatever is replayed, retried with backoff, dead-lettered when refused.

The network here is an in-memory fake implementing the contract; the Meta plugin's own
tests drive the real wire format against its sandbox, and tests/app the whole flow.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.conversions import ConversionDestinations, ConversionSender
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import (
    AdNetwork,
    BrowserTag,
    ConversionDestination,
    ConversionEvent,
    ConversionsReceipt,
    PaymentEventKind,
    ProviderRefused,
    ProviderTransientError,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.ledger import fakepay
from tests.ledger.conftest import PayableOrder, insert_order
from tests.stats.fakeads import FakeAdNetwork
from tests.stats.test_pipeline import record


class FakeConversions(FakeAdNetwork):
    """An ad network that also receives conversion events, recording every batch."""

    identifier = "fakeconv"

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[ConversionDestination, list[ConversionEvent]]] = []
        self.failures_left: list[Exception] = []

    async def send_conversions(
        self, destination: ConversionDestination, events: Sequence[ConversionEvent]
    ) -> ConversionsReceipt:
        if self.failures_left:
            raise self.failures_left.pop(0)
        self.batches.append((destination, list(events)))
        return ConversionsReceipt(received=len(events), trace_id="trace-1")

    def browser_tag(self, destination_id: str) -> BrowserTag | None:
        return BrowserTag(
            script_url="https://tags.example/fake.js",
            init_js=f"fakeTag.init({destination_id!r});",
            purchase_js="fakeTag.purchase(orderId, value, currency);",
        )


class Plugin:
    def __init__(self, network: FakeConversions) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@pytest.fixture
def network() -> FakeConversions:
    return FakeConversions()


@pytest.fixture
def conversion_registry(network: FakeConversions) -> ProviderRegistry:
    return ProviderRegistry(
        create_plugin_manager(load_entry_points=False, plugins=[fakepay, Plugin(network)])
    )


@pytest.fixture
def sender(
    app_engine: AsyncEngine, settings: Settings, conversion_registry: ProviderRegistry
) -> ConversionSender:
    fast = settings.model_copy(
        update={"conversion_retry_base_seconds": 0.01, "conversion_max_attempts": 3}
    )
    return ConversionSender(
        create_sessionmaker(app_engine),
        fast,
        conversion_registry,
        SecretBox(settings.token_encryption_keys),
    )


async def seller_with_pixel(
    dsn: str, app_engine: AsyncEngine, settings: Settings, registry: ProviderRegistry
) -> uuid.UUID:
    seller_id = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
    context = SellerContext(
        seller_id=seller_id, sessions=create_sessionmaker(app_engine), settings=settings
    )
    await ConversionDestinations(context, registry, SecretBox(settings.token_encryption_keys)).set(
        "fakeconv", "px_123", "capi-token-secret"
    )
    return seller_id


def order_with_shopper(dsn: str, seller_id: uuid.UUID) -> PayableOrder:
    with psycopg.connect(dsn, autocommit=True) as conn:
        order = insert_order(conn, seller_id, total_minor=4_999)
        with seller_scope(conn, seller_id):
            conn.execute(
                "UPDATE orders SET landing_url = %s, fbp = %s, fbclid = %s, client_ip = %s,"
                " user_agent = %s WHERE seller_id = %s AND id = %s",
                (
                    "https://shop.example/s/hats?fbclid=IwAR0abc",
                    "fb.1.1700000000000.1234567890",
                    "IwAR0abc",
                    "203.0.113.7",
                    "Mozilla/5.0 (test)",
                    seller_id,
                    order.order_id,
                ),
            )
    return order


def deliveries(dsn: str, seller_id: uuid.UUID) -> list[tuple[str, int, str | None]]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        return [
            (row[0], row[1], row[2])
            for row in conn.execute(
                "SELECT status, attempts, last_error FROM conversion_deliveries"
                " WHERE seller_id = %s ORDER BY created_at",
                (seller_id,),
            )
        ]


async def test_a_paid_order_is_reported_once_whatever_is_replayed(
    database_owner_dsn: str,
    app_engine: AsyncEngine,
    settings: Settings,
    conversion_registry: ProviderRegistry,
    sender: ConversionSender,
    network: FakeConversions,
) -> None:
    seller_id = await seller_with_pixel(
        database_owner_dsn, app_engine, settings, conversion_registry
    )
    order = order_with_shopper(database_owner_dsn, seller_id)
    ledger = Ledger(create_sessionmaker(app_engine), settings, conversion_registry.plugin_manager)
    inbox = WebhookInbox(create_sessionmaker(app_engine), settings, conversion_registry, ledger)
    capture = fakepay.fact(order.payment, "ch_1", PaymentEventKind.CAPTURED, 4_999)

    # The same capture delivered three times, then a refund: one event, ever.
    for attempt in range(3):
        body, headers = fakepay.delivery([capture], event_id=f"evt_capture_{attempt}")
        receipt = await inbox.receive("fakepay", body=body, headers=headers)
        await inbox.process(receipt.inbox_id)
    body, headers = fakepay.delivery(
        [fakepay.fact(order.payment, "re_1", PaymentEventKind.REFUNDED, 999)]
    )
    await inbox.process((await inbox.receive("fakepay", body=body, headers=headers)).inbox_id)
    assert deliveries(database_owner_dsn, seller_id) == [("PENDING", 0, None)]

    report = await sender.send_due(seller_id)
    again = await sender.send_due(seller_id)

    assert (report.sent, again.sent) == (1, 0)
    [(destination, events)] = network.batches
    assert destination.destination_id == "px_123"
    assert destination.access_token.get_secret_value() == "capi-token-secret"
    [event] = events
    assert event.event_id == str(order.order_id) and event.event_name == "Purchase"
    assert (event.value_minor, event.currency) == (4_999, "USD")
    assert event.event_source_url == "https://shop.example/s/hats?fbclid=IwAR0abc"
    assert event.browser_ids == {"fbp": "fb.1.1700000000000.1234567890"}
    assert (event.click_id, event.client_ip, event.user_agent) == (
        "IwAR0abc",
        "203.0.113.7",
        "Mozilla/5.0 (test)",
    )
    assert event.email == "buyer@example.com"
    assert deliveries(database_owner_dsn, seller_id) == [("SENT", 1, None)]


async def test_transient_failures_are_retried_and_a_refused_event_is_dead_lettered(
    database_owner_dsn: str,
    app_engine: AsyncEngine,
    settings: Settings,
    conversion_registry: ProviderRegistry,
    sender: ConversionSender,
    network: FakeConversions,
) -> None:
    seller_id = await seller_with_pixel(
        database_owner_dsn, app_engine, settings, conversion_registry
    )
    ledger = Ledger(create_sessionmaker(app_engine), settings, conversion_registry.plugin_manager)
    first, second = (order_with_shopper(database_owner_dsn, seller_id) for _ in range(2))
    await record(ledger, first.payment, "ch_a", PaymentEventKind.CAPTURED, 4_999, "USD")

    network.failures_left = [ProviderTransientError("502 from the network")]
    failed = await sender.send_due(seller_id)
    assert (failed.sent, failed.retried) == (0, 1)
    [(status, attempts, error)] = deliveries(database_owner_dsn, seller_id)
    assert (status, attempts) == ("PENDING", 1) and "502" in str(error)
    # Not due before its backoff is over; then it goes.
    assert (
        await sender.send_due(seller_id, now=datetime.now(UTC) - timedelta(seconds=5))
    ).sent == 0
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert (await sender.send_due(seller_id, now=later)).sent == 1

    await record(ledger, second.payment, "ch_b", PaymentEventKind.CAPTURED, 4_999, "USD")
    network.failures_left = [ProviderRefused("event_time too old")]
    refused = await sender.send_due(seller_id)
    assert refused.failed == 1
    assert [d[0] for d in deliveries(database_owner_dsn, seller_id)] == ["SENT", "FAILED"]
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller_id):
        dead = conn.execute(
            "SELECT task_name, error FROM dead_letters WHERE seller_id = %s", (seller_id,)
        ).fetchall()
    assert dead == [("pixecom.send_conversions", "refused by fakeconv: event_time too old")]
    # A token never reaches an error, a log or a dead letter.
    assert "capi-token-secret" not in repr(dead)


async def test_an_event_failing_every_time_gives_up_after_the_last_attempt(
    database_owner_dsn: str,
    app_engine: AsyncEngine,
    settings: Settings,
    conversion_registry: ProviderRegistry,
    sender: ConversionSender,
    network: FakeConversions,
) -> None:
    seller_id = await seller_with_pixel(
        database_owner_dsn, app_engine, settings, conversion_registry
    )
    ledger = Ledger(create_sessionmaker(app_engine), settings, conversion_registry.plugin_manager)
    order = order_with_shopper(database_owner_dsn, seller_id)
    await record(ledger, order.payment, "ch_x", PaymentEventKind.CAPTURED, 4_999, "USD")
    network.failures_left = [ProviderTransientError("timeout")] * 5

    outcomes = []
    for step in range(4):
        at = datetime.now(UTC) + timedelta(hours=2 * (step + 1))
        outcomes.append(await sender.send_due(seller_id, now=at))

    assert [(o.retried, o.failed) for o in outcomes] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    [(status, attempts, error)] = deliveries(database_owner_dsn, seller_id)
    assert (status, attempts) == ("FAILED", 3) and "gave up after 3 attempts" in str(error)
    assert network.batches == []


async def test_due_sellers_finds_retries_across_sellers(
    database_owner_dsn: str,
    app_engine: AsyncEngine,
    settings: Settings,
    conversion_registry: ProviderRegistry,
    sender: ConversionSender,
) -> None:
    seller_id = await seller_with_pixel(
        database_owner_dsn, app_engine, settings, conversion_registry
    )
    ledger = Ledger(create_sessionmaker(app_engine), settings, conversion_registry.plugin_manager)
    order = order_with_shopper(database_owner_dsn, seller_id)
    await record(ledger, order.payment, "ch_d", PaymentEventKind.CAPTURED, 4_999, "USD")

    assert seller_id in await sender.due_sellers(datetime.now(UTC) + timedelta(seconds=1))
    assert seller_id not in await sender.due_sellers(datetime.now(UTC) - timedelta(days=1))


async def test_a_seller_without_a_destination_queues_nothing(
    database_owner_dsn: str, app_engine: AsyncEngine, settings: Settings, sender: ConversionSender
) -> None:
    seller_id = uuid.uuid4()
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
    order = order_with_shopper(database_owner_dsn, seller_id)
    ledger = Ledger(create_sessionmaker(app_engine), settings, None)
    await record(ledger, order.payment, "ch_n", PaymentEventKind.CAPTURED, 4_999, "USD")

    assert deliveries(database_owner_dsn, seller_id) == []
    assert (await sender.send_due(seller_id)).sent == 0
