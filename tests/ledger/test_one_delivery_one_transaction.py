"""Issue 13 item 5: one webhook delivery is one transaction on one connection.

A delivery used to hold its inbox row's connection (and row lock) while the ledger opened a
second connection per order and while ``parse_events`` called the gateway's API; a
half-pool semaphore kept bursts from starving the pool. Now the delivery is parsed with
nothing held, then claimed, recorded and marked processed in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, ProcessResult, WebhookInbox
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import GatewayPaymentEvent, PaymentEventKind, VerifiedWebhook
from pixecom_core.settings import Settings
from tests.ledger import fakepay
from tests.ledger.conftest import HookRecorder, OrderFactory
from tests.ledger.test_ledger import deliver, inbox_seller, ledger_rows, order_status

K = PaymentEventKind


class ConnectionCounter:
    """Counts the pool's connections checked out at once, at most."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.now = self.most = self.checkouts = 0
        event.listen(engine.sync_engine, "checkout", self._out)
        event.listen(engine.sync_engine, "checkin", self._in)

    def _out(self, *_: Any) -> None:
        self.now += 1
        self.checkouts += 1
        self.most = max(self.most, self.now)

    def _in(self, *_: Any) -> None:
        self.now -= 1


async def test_a_delivery_naming_two_sellers_holds_one_connection_at_a_time(
    settings: Settings,
    registry: ProviderRegistry,
    payable_order: OrderFactory,
    database_owner_dsn: str,
    hooks: HookRecorder,
) -> None:
    engine = create_engine(settings, role="app")
    try:
        counter = ConnectionCounter(engine)
        sessions = create_sessionmaker(engine)
        inbox = WebhookInbox(
            sessions, settings, registry, Ledger(sessions, settings, registry.plugin_manager)
        )
        first, second = payable_order(), payable_order()
        other_order_of_first = payable_order(first.seller_id)
        inbox_id = await deliver(
            inbox,
            [
                fakepay.fact(first.payment, "ch_1", K.CAPTURED, 10_000),
                fakepay.fact(other_order_of_first.payment, "ch_2", K.CAPTURED, 4_000),
                fakepay.fact(second.payment, "ch_3", K.CAPTURED, 10_000),
            ],
        )
        counter.most = counter.checkouts = 0

        assert await inbox.process(inbox_id) is ProcessResult.PROCESSED
    finally:
        await engine.dispose()

    # Read, then claim-record-mark: two short checkouts, never two at once.
    assert (counter.most, counter.checkouts) == (1, 2)
    # Each seller's facts were written in that seller's scope, in the one transaction.
    assert [r[0] for r in ledger_rows(database_owner_dsn, first)] == ["ch_1"]
    assert [r[0] for r in ledger_rows(database_owner_dsn, other_order_of_first)] == ["ch_2"]
    assert [r[0] for r in ledger_rows(database_owner_dsn, second)] == ["ch_3"]
    assert order_status(database_owner_dsn, first)[0] == "PAID"
    assert order_status(database_owner_dsn, other_order_of_first)[0] == "UNDERPAID"
    assert order_status(database_owner_dsn, second)[0] == "PAID"
    assert inbox_seller(database_owner_dsn, inbox_id) == ("PROCESSED", None)
    assert len(hooks.payment_events) == 3


async def test_a_pool_of_one_connection_processes_a_burst(
    settings: Settings, registry: ProviderRegistry, payable_order: OrderFactory
) -> None:
    """With one connection and no overflow, a delivery needing a second one would wait for
    the pool until it timed out; none does."""
    single = settings.model_copy(
        update={"db_pool_size": 1, "db_pool_max_overflow": 0, "db_pool_timeout_seconds": 3.0}
    )
    engine = create_engine(single, role="app")
    try:
        sessions = create_sessionmaker(engine)
        inbox = WebhookInbox(sessions, single, registry, Ledger(sessions, single))
        orders = [payable_order() for _ in range(8)]
        ids = [
            await deliver(inbox, [fakepay.fact(order.payment, "ch_1", K.CAPTURED, 500)])
            for order in orders
        ]

        results = await asyncio.gather(*(inbox.process(inbox_id) for inbox_id in ids))
    finally:
        await engine.dispose()

    assert results == [ProcessResult.PROCESSED] * len(ids)


@pytest.fixture
def parse_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[asyncio.Event, asyncio.Event]]:
    """Make fakepay's first ``parse_events`` say it started, then wait until released;
    later calls parse at once."""
    started, release = asyncio.Event(), asyncio.Event()
    parse = fakepay.FakePayGateway.parse_events

    async def gated(
        self: fakepay.FakePayGateway, webhook: VerifiedWebhook
    ) -> list[GatewayPaymentEvent]:
        if not started.is_set():
            started.set()
            await release.wait()
        return await parse(self, webhook)

    monkeypatch.setattr(fakepay.FakePayGateway, "parse_events", gated)
    yield started, release
    release.set()


async def lock_now(dsn: str, inbox_id: int) -> list[tuple[Any, ...]]:
    """Lock the delivery's row from another connection, failing at once if it is held."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn, conn.transaction():
        cursor = await conn.execute(
            "SELECT id, status FROM webhook_inbox WHERE id = %s FOR UPDATE NOWAIT", (inbox_id,)
        )
        return await cursor.fetchall()


async def test_no_row_lock_is_held_while_the_gateway_parses(
    inbox: WebhookInbox,
    payable_order: OrderFactory,
    database_owner_dsn: str,
    parse_gate: tuple[asyncio.Event, asyncio.Event],
) -> None:
    started, release = parse_gate
    order = payable_order()
    inbox_id = await deliver(inbox, [fakepay.fact(order.payment, "ch_1", K.CAPTURED, 10_000)])
    processing = asyncio.create_task(inbox.process(inbox_id))
    await asyncio.wait_for(started.wait(), timeout=10)

    # The gateway is "calling its API": another worker (or an operator) can lock the row.
    assert await lock_now(database_owner_dsn, inbox_id) == [(inbox_id, "RECEIVED")]
    release.set()

    assert await asyncio.wait_for(processing, timeout=10) is ProcessResult.PROCESSED
    assert order_status(database_owner_dsn, order)[0] == "PAID"


async def test_a_delivery_finished_by_another_worker_while_parsing_is_skipped(
    inbox: WebhookInbox,
    payable_order: OrderFactory,
    database_owner_dsn: str,
    hooks: HookRecorder,
    parse_gate: tuple[asyncio.Event, asyncio.Event],
) -> None:
    started, release = parse_gate
    order = payable_order()
    inbox_id = await deliver(inbox, [fakepay.fact(order.payment, "ch_1", K.CAPTURED, 10_000)])
    slow = asyncio.create_task(inbox.process(inbox_id))
    await asyncio.wait_for(started.wait(), timeout=10)

    # While the first worker waits for the gateway, a second one processes the delivery.
    assert await inbox.process(inbox_id) is ProcessResult.PROCESSED
    release.set()

    assert await asyncio.wait_for(slow, timeout=10) is ProcessResult.SKIPPED
    assert len(ledger_rows(database_owner_dsn, order)) == 1
    assert len(hooks.payment_events) == 1


async def test_a_failing_parse_is_retried_later_and_holds_nothing(
    inbox: WebhookInbox,
    payable_order: OrderFactory,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def unreachable(
        self: fakepay.FakePayGateway,  # noqa: ARG001
        webhook: VerifiedWebhook,  # noqa: ARG001
    ) -> list[GatewayPaymentEvent]:
        raise ConnectionError("the gateway's API did not answer")

    monkeypatch.setattr(fakepay.FakePayGateway, "parse_events", unreachable)
    order = payable_order()
    inbox_id = await deliver(inbox, [fakepay.fact(order.payment, "ch_1", K.CAPTURED, 10_000)])

    assert await inbox.process(inbox_id) is ProcessResult.DEFERRED
    with psycopg.connect(database_owner_dsn) as conn:
        row = conn.execute(
            "SELECT status, attempts, last_error FROM webhook_inbox WHERE id = %s", (inbox_id,)
        ).fetchone()
    assert row == ("DEFERRED", 1, "ConnectionError: the gateway's API did not answer")
    assert ledger_rows(database_owner_dsn, order) == []


class _Undone(Exception):
    """Raised inside a transaction to roll it back."""


async def test_a_deliverys_intake_leaves_its_pooled_connection_transactional(
    settings: Settings, registry: ProviderRegistry, ledger: Ledger, database_owner_dsn: str
) -> None:
    """The intake stores a delivery in one autocommit statement (no BEGIN and COMMIT
    around it: a burst's cost); the connection goes back to the pool transactional, so the
    next user's rollback still undoes its writes."""
    single = settings.model_copy(update={"db_pool_size": 1, "db_pool_max_overflow": 0})
    engine = create_engine(single, role="app")
    try:
        sessions = create_sessionmaker(engine)
        inbox = WebhookInbox(sessions, single, registry, ledger)
        body, headers = fakepay.delivery([], event_id="evt_intake_kept")
        receipt = await inbox.receive("fakepay", body=body, headers=headers)
        assert not receipt.duplicate
        with pytest.raises(_Undone):
            async with sessions() as session, session.begin():
                await session.execute(
                    text(
                        "SELECT pixecom_inbox_receive('fakepay', 'evt_intake_undone', 'x',"
                        " '{}'::jsonb, ''::bytea, now())"
                    )
                )
                raise _Undone
        assert engine.pool.checkedin() == 1  # the same, single connection both times
    finally:
        await engine.dispose()
    with psycopg.connect(database_owner_dsn) as conn:
        stored = conn.execute(
            "SELECT event_id FROM webhook_inbox WHERE event_id LIKE 'evt_intake_%'"
        ).fetchall()
    assert stored == [("evt_intake_kept",)]
