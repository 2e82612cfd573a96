"""Payloads of the event hooks: what core tells plugins after something happened.

Each payload describes a fact core has already committed, so a plugin reacting to it
(notifying a seller, forwarding a conversion) can never change or block it.
"""

import uuid
from datetime import date

from pydantic import AwareDatetime, Field

from pixecom_core.providers.payments import PaymentEventKind
from pixecom_core.providers.values import CurrencyCode, FrozenValue, MinorUnits


class PaymentEventRecord(FrozenValue):
    """A payment event as recorded in the append-only ledger.

    :param id: the ledger row's id.
    :param seller_id: the seller the money belongs to.
    :param order_id: the order it was matched to, or ``None`` when matching is pending.
    :param gateway: the gateway's ``identifier``.
    :param gateway_event_id: the gateway's unique event id.
    :param gateway_reference: the gateway's payment id.
    :param kind: what happened to the money.
    :param amount_minor: amount in minor units, never negative.
    :param currency: ISO 4217 code.
    :param occurred_at: when the gateway says it happened.
    :param recorded_at: when core wrote it to the ledger.
    """

    id: uuid.UUID
    seller_id: uuid.UUID
    order_id: uuid.UUID | None
    gateway: str
    gateway_event_id: str
    gateway_reference: str
    kind: PaymentEventKind
    amount_minor: MinorUnits
    currency: CurrencyCode
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime


class OrderStatusChange(FrozenValue):
    """An order moved from one status to another.

    :param seller_id: the seller who owns the order.
    :param order_id: the order.
    :param previous_status: the status before, or ``None`` for a new order.
    :param new_status: the status after (a value of core's order status enum).
    :param changed_at: when core committed the change.
    :param reason: why, when known (``"payment captured"``, ``"refunded by seller"``).
    """

    seller_id: uuid.UUID
    order_id: uuid.UUID
    previous_status: str | None
    new_status: str
    changed_at: AwareDatetime
    reason: str | None = None


class StatsAggregationSummary(FrozenValue):
    """One seller's stats were (re-)aggregated for a window of days.

    :param seller_id: the seller.
    :param since: first day aggregated, inclusive.
    :param until: last day aggregated, inclusive.
    :param ad_entity_days: ``ad_stats_daily`` rows written.
    :param sellpage_days: ``sellpage_stats_daily`` rows the recomputed days hold (written
        or already current: the roll-up rewrites only rows whose numbers changed).
    :param reporting_currency: the seller's reporting currency (ISO 4217).
    :param aggregated_at: when the aggregation committed.
    """

    seller_id: uuid.UUID
    since: date
    until: date
    ad_entity_days: int = Field(ge=0)
    sellpage_days: int = Field(ge=0)
    reporting_currency: CurrencyCode
    aggregated_at: AwareDatetime
