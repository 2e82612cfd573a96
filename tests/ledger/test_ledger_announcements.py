"""The ledger announces after commit, and one broken listener silences no other plugin."""

from __future__ import annotations

import logging

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from pixecom_core import hookimpl
from pixecom_core.events import count_hook_failures
from pixecom_core.ledger import ProcessResult, WebhookInbox
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import OrderStatusChange, PaymentEventKind, PaymentEventRecord
from tests.db.tenant_rows import seller_scope
from tests.ledger import fakepay
from tests.ledger.conftest import HookRecorder, OrderFactory, PayableOrder
from tests.ledger.test_ledger import deliver, order_status


class BrokenListener:
    """Looks at the database from its own connection, then raises."""

    def __init__(self, dsn: str, order: PayableOrder) -> None:
        self.dsn, self.order = dsn, order
        self.statuses_seen: list[str] = []

    @hookimpl(tryfirst=True)
    def pixecom_on_payment_event(self, event: PaymentEventRecord) -> None:
        raise RuntimeError(f"cannot handle {event.kind}")

    @hookimpl(tryfirst=True)
    def pixecom_on_order_status_changed(self, change: OrderStatusChange) -> None:
        self.statuses_seen.append(order_status(self.dsn, self.order)[0])
        raise RuntimeError(f"cannot handle {change.new_status}")


async def test_a_broken_listener_is_logged_and_counted_and_the_others_still_hear(
    inbox: WebhookInbox,
    registry: ProviderRegistry,
    hooks: HookRecorder,
    payable_order: OrderFactory,
    database_owner_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = payable_order()
    broken = BrokenListener(database_owner_dsn, order)
    registry.plugin_manager.register(broken, name="broken-listener")
    metrics = CollectorRegistry()
    count_hook_failures(metrics)
    facts = [fakepay.fact(order.payment, "ch_1", PaymentEventKind.CAPTURED, 10_000)]

    with caplog.at_level(logging.ERROR, logger="pixecom_core.events"):
        assert await inbox.process(await deliver(inbox, facts)) is ProcessResult.PROCESSED

    # Announced after commit: another connection already saw the order PAID.
    assert broken.statuses_seen == ["PAID"]
    assert [e.kind for e in hooks.payment_events] == [PaymentEventKind.CAPTURED]
    assert [(c.previous_status, c.new_status) for c in hooks.status_changes] == [
        ("PENDING", "PAID")
    ]
    assert order_status(database_owner_dsn, order)[0] == "PAID"
    for hook in ("pixecom_on_payment_event", "pixecom_on_order_status_changed"):
        labels = {"hook": hook, "plugin": "broken-listener"}
        assert metrics.get_sample_value("pixecom_event_hook_failures_total", labels) == 1.0
    assert sum("broken-listener" in r.getMessage() for r in caplog.records) == 2


async def test_a_status_change_carries_the_time_of_its_timeline_row(
    inbox: WebhookInbox, hooks: HookRecorder, payable_order: OrderFactory, database_owner_dsn: str
) -> None:
    order = payable_order()
    facts = [fakepay.fact(order.payment, "ch_1", PaymentEventKind.CAPTURED, 10_000)]

    await inbox.process(await deliver(inbox, facts))

    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, order.seller_id):
        rows = conn.execute(
            "SELECT event_type, created_at, payload->>'reason' FROM order_events"
            " WHERE seller_id = %s AND order_id = %s ORDER BY created_at, id",
            (order.seller_id, order.order_id),
        ).fetchall()
    assert [r[0] for r in rows] == ["PAYMENT_RECORDED", "STATUS_CHANGED"]
    assert rows[0][1] < rows[1][1]  # clock_timestamp(): one transaction, two times
    [change] = hooks.status_changes
    assert (change.changed_at, change.reason) == (rows[1][1], rows[1][2])
    assert change.reason == "payment facts recorded"
