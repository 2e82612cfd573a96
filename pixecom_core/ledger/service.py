"""The payment ledger: record gateway facts exactly once and keep orders in step.

Each fact is identified by ``(seller, gateway, fact reference, kind)`` — the gateway's id
of the money movement, not of the webhook that announced it — and inserted with
``ON CONFLICT DO NOTHING``: a redelivered webhook, or the same refund announced by two
notification types, records nothing new (MONEY-2). ``payment_events`` is append-only in
the database; an order's money (paid, refunded, net) is computed from it
(:mod:`pixecom_core.ledger.money`) and its status follows, each change written as an
``order_events`` row. Facts for one order are serialised by locking the order row, so
concurrent deliveries cannot both decide a status from a stale sum.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pluggy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.conversions.outbox import queue_purchase
from pixecom_core.errors import PixecomError
from pixecom_core.events import announce
from pixecom_core.ledger.money import MoneyState, decide_status, order_money_states
from pixecom_core.models.orders import OrderEventType, OrderStatus
from pixecom_core.models.payments import PaymentEventType
from pixecom_core.orders.refunds import mark_refunds_succeeded
from pixecom_core.orders.status import change_order_status, record_order_event
from pixecom_core.providers import (
    GatewayPaymentEvent,
    OrderStatusChange,
    PaymentEventKind,
    PaymentEventRecord,
)
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import mark_days_dirty
from pixecom_core.tenancy import SellerScope, bind_seller_scope

_log = logging.getLogger(__name__)

_FIND_PAYMENT = text(
    "SELECT seller_id, order_id, order_created_at FROM pixecom_find_payment(:gateway, :reference)"
)
_LOCK_ORDER = text(
    "SELECT status, total_minor, currency FROM orders WHERE seller_id = :seller_id"
    " AND id = :order_id AND created_at = :created_at FOR UPDATE"
)
_INSERT_FACT = text(
    """
    INSERT INTO payment_events
        (seller_id, order_id, gateway, gateway_reference, event_type, amount_minor, currency,
         occurred_at, gateway_event_id, raw)
    VALUES (:seller_id, :order_id, :gateway, :fact_reference, :event_type, :amount_minor,
            :currency, :occurred_at, :event_id, CAST(:raw AS jsonb))
    ON CONFLICT ON CONSTRAINT uq_payment_events_fact DO NOTHING
    RETURNING id, recorded_at
    """
)
# STATS-2: a refund (or any late fact) changes the revenue of its order's day, which may
# have been aggregated already: mark the seller's day for re-aggregation (issue 16: every
# order's day, with or without a sellpage — the seller's totals count them all).
_ORDER_DAY = text(
    """
    SELECT (o.created_at AT TIME ZONE s.timezone)::date AS day
      FROM orders AS o JOIN sellers AS s ON s.id = o.seller_id
     WHERE o.seller_id = :seller_id AND o.id = :order_id AND o.created_at = :created_at
    """
)


# Issue 15: a webhook about a connected account may only record facts of the seller who
# connected it (now or before: late refunds and chargebacks of an ended connection count).
_CONNECTED_ACCOUNT = text(
    "SELECT 1 FROM payment_connections WHERE seller_id = :seller_id AND gateway = :gateway"
    " AND account_id = :account_id AND connected_at IS NOT NULL LIMIT 1"
)


class ForeignAccountError(PixecomError):
    """A delivery about one seller's connected account names a payment of a seller who
    never connected that account: refused, whatever the payment directory says."""

    code = "foreign_account"


class UnknownPaymentError(PixecomError):
    """No order is known for the payment an event names (yet): keep the event and retry."""

    code = "unknown_payment"


@dataclass(frozen=True)
class PaymentOwner:
    """The seller and order a gateway payment belongs to."""

    seller_id: uuid.UUID
    order_id: uuid.UUID
    order_created_at: datetime


@dataclass
class RecordOutcome:
    """What one call to :meth:`Ledger.record` changed."""

    recorded: list[PaymentEventRecord] = field(default_factory=list)
    duplicates: int = 0
    status_changes: list[OrderStatusChange] = field(default_factory=list)
    seller_ids: set[uuid.UUID] = field(default_factory=set)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class Ledger:
    """Records normalised gateway events (from any payment plugin) into the ledger.

    :param sessions: app-role session factory; every write happens in a seller scope.
    :param settings: timeouts for the scopes.
    :param plugin_manager: receives ``pixecom_on_payment_event`` once per recorded fact and
        ``pixecom_on_order_status_changed`` per status change, after commit.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        plugin_manager: pluggy.PluginManager | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._pm = plugin_manager

    async def find_owner(
        self, gateway: str, payment_reference: str, *, session: AsyncSession | None = None
    ) -> PaymentOwner | None:
        """The seller and order of a gateway payment, through the payment directory.

        :param session: run the lookup on this session (and its connection, in its
            transaction) instead of a new one, for a caller that already holds a connection.
        """
        parameters = {"gateway": gateway, "reference": payment_reference}
        if session is not None:
            row = (await session.execute(_FIND_PAYMENT, parameters)).first()
        else:
            async with self._sessions() as own:
                row = (await own.execute(_FIND_PAYMENT, parameters)).first()
        if row is None:
            return None
        return PaymentOwner(
            seller_id=row.seller_id, order_id=row.order_id, order_created_at=row.order_created_at
        )

    async def record(self, events: Sequence[GatewayPaymentEvent]) -> RecordOutcome:
        """Record ``events`` in one transaction of their own; facts already in the ledger
        are skipped. Announces what was recorded once it committed.

        Raises :class:`UnknownPaymentError` (before writing anything) when a payment has no
        known order, so the caller can keep the delivery and retry it later. Any other
        failure rolls every order back: nothing was announced, and the retry records (and
        announces) it all.
        """
        async with self._sessions() as session, session.begin():
            outcome = await self.record_in(session, events)
        self.announce(outcome)
        return outcome

    async def record_in(
        self,
        session: AsyncSession,
        events: Sequence[GatewayPaymentEvent],
        *,
        account_id: str | None = None,
    ) -> RecordOutcome:
        """Record ``events`` inside the transaction ``session`` has open; commit nothing and
        announce nothing.

        For a caller whose own rows commit with the facts: the webhook inbox marks the
        delivery processed in the same transaction, on the same connection (issue 13 item
        5), then calls :meth:`announce` with the outcome once it committed. Each seller's
        facts are written under that seller's scope (:func:`bind_seller_scope`), one seller
        after another; orders are locked in (seller, order) order, so two deliveries naming
        the same orders cannot deadlock.

        :param account_id: the connected account the delivery is about
            (:meth:`~pixecom_core.providers.PaymentGatewayConnections.webhook_account`):
            every payment it names must belong to a seller who connected that account.

        Raises :class:`UnknownPaymentError` (before writing anything) when a payment has no
        known order, :class:`ForeignAccountError` when ``account_id`` is not the seller's.
        """
        by_payment: dict[tuple[str, str], list[GatewayPaymentEvent]] = defaultdict(list)
        for event in events:
            by_payment[(event.gateway, event.gateway_reference)].append(event)
        by_order: dict[tuple[uuid.UUID, uuid.UUID], tuple[PaymentOwner, list[GatewayPaymentEvent]]]
        by_order = {}
        for (gateway, reference), payment_events in by_payment.items():
            owner = await self.find_owner(gateway, reference, session=session)
            if owner is None:
                raise UnknownPaymentError(
                    f"no order is known for {gateway} payment {reference!r}; will retry"
                )
            key = (owner.seller_id, owner.order_id)
            by_order.setdefault(key, (owner, []))[1].extend(payment_events)

        outcome = RecordOutcome()
        for seller_id in sorted({seller_id for seller_id, _ in by_order}):
            async with bind_seller_scope(session, seller_id, self._settings) as scope:
                if account_id is not None:
                    await self._check_account(scope, events[0].gateway, account_id)
                for key in sorted(k for k in by_order if k[0] == seller_id):
                    owner, order_events = by_order[key]
                    await self._record_for_order(scope, owner, order_events, outcome)
            outcome.seller_ids.add(seller_id)
        return outcome

    @staticmethod
    async def _check_account(scope: SellerScope, gateway: str, account_id: str) -> None:
        connected = (
            await scope.session.execute(
                _CONNECTED_ACCOUNT,
                {"seller_id": scope.seller_id, "gateway": gateway, "account_id": account_id},
            )
        ).first()
        if connected is None:
            raise ForeignAccountError(
                f"a delivery about {gateway} account {account_id!r} names a payment of a "
                "seller who never connected that account; refused"
            )

    async def _record_for_order(
        self,
        scope: SellerScope,
        owner: PaymentOwner,
        events: Sequence[GatewayPaymentEvent],
        outcome: RecordOutcome,
    ) -> None:
        session = scope.session
        keys = {
            "seller_id": owner.seller_id,
            "order_id": owner.order_id,
            "created_at": owner.order_created_at,
        }
        order = (await session.execute(_LOCK_ORDER, keys)).first()
        if order is None:
            raise UnknownPaymentError(f"order {owner.order_id} is not (yet) visible; will retry")
        recorded_before = len(outcome.recorded)
        for event in events:
            event_type = PaymentEventType(event.kind.value.upper())
            row = (
                await session.execute(
                    _INSERT_FACT,
                    {
                        "seller_id": owner.seller_id,
                        "order_id": owner.order_id,
                        "gateway": event.gateway,
                        "fact_reference": event.fact_reference,
                        "event_type": event_type.value,
                        "amount_minor": event.amount_minor,
                        "currency": event.currency,
                        "occurred_at": event.occurred_at,
                        "event_id": event.event_id,
                        "raw": _json(
                            {
                                "payment_reference": event.gateway_reference,
                                "order_reference": event.order_reference,
                                "metadata": dict(event.metadata),
                            }
                        ),
                    },
                )
            ).first()
            if row is None:
                outcome.duplicates += 1
                continue
            outcome.recorded.append(
                PaymentEventRecord(
                    id=row.id,
                    seller_id=owner.seller_id,
                    order_id=owner.order_id,
                    gateway=event.gateway,
                    gateway_event_id=event.event_id,
                    gateway_reference=event.fact_reference,
                    kind=event.kind,
                    amount_minor=event.amount_minor,
                    currency=event.currency,
                    occurred_at=event.occurred_at,
                    recorded_at=row.recorded_at,
                )
            )
            await record_order_event(
                scope,
                order_id=owner.order_id,
                event_type=OrderEventType.PAYMENT_RECORDED,
                payload={
                    "payment_event_id": row.id,
                    "kind": event.kind.value,
                    "amount_minor": event.amount_minor,
                    "currency": event.currency,
                    "gateway": event.gateway,
                    "fact_reference": event.fact_reference,
                },
            )
        if len(outcome.recorded) > recorded_before:
            day = await session.scalar(_ORDER_DAY, keys)
            if day is not None:
                await mark_days_dirty(scope, [day])
        for record in outcome.recorded[recorded_before:]:
            if record.kind is PaymentEventKind.REFUNDED:
                await mark_refunds_succeeded(
                    scope, gateway=record.gateway, references=[record.gateway_reference]
                )
        states = await self.money_state(scope, owner.order_id)
        previous = OrderStatus(order.status)
        # Judged against the order's own total and currency: a short, excess or
        # foreign-currency capture never makes an order PAID.
        decision = decide_status(
            previous, states, total_minor=order.total_minor, currency=order.currency.strip()
        )
        status = decision.status
        reason = "payment facts recorded"
        if decision.mismatch is not None:
            reason = f"payment does not match the order: {decision.mismatch}"
        if status is OrderStatus.PAID and previous is not OrderStatus.PAID:
            # Issue 17 item 4: the order's Purchase for each conversion destination, in
            # this transaction; sent after commit, once per order whatever happens next.
            await queue_purchase(scope, owner.order_id, owner.order_created_at)
        if status is not previous:
            outcome.status_changes.append(
                await change_order_status(
                    scope,
                    order_id=owner.order_id,
                    order_created_at=owner.order_created_at,
                    from_status=previous,
                    to_status=status,
                    reason=reason,
                )
            )

    @staticmethod
    async def money_state(scope: SellerScope, order_id: uuid.UUID) -> dict[str, MoneyState]:
        """The order's money per currency, summed from its ledger facts."""
        return await order_money_states(scope.session, scope.seller_id, order_id)

    def announce(self, outcome: RecordOutcome) -> None:
        """Tell the plugins what ``outcome`` recorded and changed: call only after the
        transaction that wrote it committed (MONEY-6: never announce what may still roll
        back). Each plugin hears on its own, so one failing never silences the others."""
        for record in outcome.recorded:
            announce(self._pm, "pixecom_on_payment_event", event=record)
        for change in outcome.status_changes:
            announce(self._pm, "pixecom_on_order_status_changed", change=change)
