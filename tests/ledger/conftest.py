"""Fixtures for ledger tests: the fakepay gateway, a ledger, an inbox, orders to pay."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import OrderStatusChange, PaymentEventRecord
from pixecom_core.settings import Settings
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.ledger import fakepay


@dataclass
class HookRecorder:
    """A plugin that remembers every event hook call."""

    payment_events: list[PaymentEventRecord] = field(default_factory=list)
    status_changes: list[OrderStatusChange] = field(default_factory=list)

    @hookimpl
    def pixecom_on_payment_event(self, event: PaymentEventRecord) -> None:
        self.payment_events.append(event)

    @hookimpl
    def pixecom_on_order_status_changed(self, change: OrderStatusChange) -> None:
        self.status_changes.append(change)


@dataclass(frozen=True)
class PayableOrder:
    seller_id: uuid.UUID
    order_id: uuid.UUID
    created_at: datetime
    payment: str


OrderFactory = Callable[..., PayableOrder]


@pytest.fixture
def hooks() -> HookRecorder:
    return HookRecorder()


@pytest.fixture
def registry(hooks: HookRecorder) -> ProviderRegistry:
    pm = create_plugin_manager(load_entry_points=False, plugins=[fakepay, hooks])
    return ProviderRegistry(pm)


@pytest.fixture
def ledger(app_engine: AsyncEngine, settings: Settings, registry: ProviderRegistry) -> Ledger:
    return Ledger(create_sessionmaker(app_engine), settings, registry.plugin_manager)


@pytest.fixture
def inbox(
    app_engine: AsyncEngine, settings: Settings, registry: ProviderRegistry, ledger: Ledger
) -> WebhookInbox:
    fast_retries = settings.model_copy(
        update={"webhook_retry_base_seconds": 0.01, "webhook_max_attempts": 3}
    )
    return WebhookInbox(create_sessionmaker(app_engine), fast_retries, registry, ledger)


def insert_order(
    conn: psycopg.Connection[tuple[object, ...]],
    seller_id: uuid.UUID,
    *,
    total_minor: int = 10_000,
    currency: str = "USD",
    payment: str | None = None,
    created_at: datetime | None = None,
    sellpage_id: uuid.UUID | None = None,
) -> PayableOrder:
    """A PENDING order of ``seller_id`` with its gateway payment registered."""
    payment = payment or f"fp_{uuid.uuid4().hex}"
    created_at = created_at or datetime.now(UTC)
    with seller_scope(conn, seller_id):
        row = conn.execute(
            "INSERT INTO orders (seller_id, created_at, currency, subtotal_minor, total_minor,"
            " customer_email, payment_gateway, payment_id, sellpage_id) VALUES (%s, %s, %s, %s,"
            " %s, 'buyer@example.com', 'fakepay', %s, %s) RETURNING id",
            (seller_id, created_at, currency, total_minor, total_minor, payment, sellpage_id),
        ).fetchone()
        assert row is not None
        order_id = uuid.UUID(str(row[0]))
        conn.execute(
            "INSERT INTO order_payments (seller_id, gateway, payment_id, order_id,"
            " order_created_at) VALUES (%s, 'fakepay', %s, %s, %s)",
            (seller_id, payment, order_id, created_at),
        )
    return PayableOrder(
        seller_id=seller_id, order_id=order_id, created_at=created_at, payment=payment
    )


@pytest.fixture
def payable_order(database_owner_dsn: str) -> OrderFactory:
    """Create orders (each with its seller unless one is given) ready to be paid."""

    def create(seller_id: uuid.UUID | None = None, **kwargs: object) -> PayableOrder:
        with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
            if seller_id is None:
                seller_id = uuid.uuid4()
                insert_seller(conn, seller_id)
            return insert_order(conn, seller_id, **kwargs)  # type: ignore[arg-type]

    return create
