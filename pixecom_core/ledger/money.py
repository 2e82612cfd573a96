"""An order's money state, derived from its ledger facts — never stored, never mutated.

MONEY-1, in the audit's words: "``Order.total`` … should be derived from the PaymentEvent
aggregate, not directly mutated". The state is a pure function of the *set* of facts, so the
order in which webhooks arrive (a refund before its capture, say) cannot change the result:
once every fact is in, the state is right.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pixecom_core.models.orders import OrderStatus
from pixecom_core.models.payments import PaymentEventType
from pixecom_core.stats.currency import exponent

_FACTS = text(
    "SELECT event_type, amount_minor, currency FROM payment_events"
    " WHERE seller_id = :seller_id AND order_id = :order_id"
)

#: Statuses set by fulfilment (tracking); a payment fact never moves an order back from them
#: to PAID, but refunds still show.
FULFILMENT_STATUSES = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})


@dataclass(frozen=True)
class MoneyState:
    """What happened to an order's money in one currency, in minor units.

    ``net_minor`` is what the seller keeps: captured − refunded − charged back + chargebacks
    reversed (STATS-3: ROAS net of refunds and chargebacks).
    """

    currency: str
    authorized_minor: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    chargeback_minor: int = 0
    chargeback_reversed_minor: int = 0
    failed_minor: int = 0

    @property
    def deducted_minor(self) -> int:
        """Refunds plus chargebacks not reversed."""
        return self.refunded_minor + self.chargeback_minor - self.chargeback_reversed_minor

    @property
    def net_minor(self) -> int:
        """Captured minus deductions."""
        return self.captured_minor - self.deducted_minor


_FIELDS: Mapping[PaymentEventType, str] = {
    PaymentEventType.AUTHORIZED: "authorized_minor",
    PaymentEventType.CAPTURED: "captured_minor",
    PaymentEventType.REFUNDED: "refunded_minor",
    PaymentEventType.CHARGEBACK: "chargeback_minor",
    PaymentEventType.CHARGEBACK_REVERSED: "chargeback_reversed_minor",
    PaymentEventType.FAILED: "failed_minor",
}


def money_states(facts: Iterable[tuple[PaymentEventType, int, str]]) -> dict[str, MoneyState]:
    """Sum ``(event_type, amount_minor, currency)`` facts into one state per currency."""
    totals: dict[str, dict[str, int]] = {}
    for event_type, amount, currency in facts:
        per_currency = totals.setdefault(currency, {})
        field = _FIELDS[PaymentEventType(event_type)]
        per_currency[field] = per_currency.get(field, 0) + amount
    return {
        currency: MoneyState(currency=currency, **fields) for currency, fields in totals.items()
    }


async def order_money_states(
    session: AsyncSession, seller_id: uuid.UUID, order_id: uuid.UUID
) -> dict[str, MoneyState]:
    """The order's money per currency, summed from its ledger facts (run in the seller's
    scope, inside the caller's transaction)."""
    rows = (await session.execute(_FACTS, {"seller_id": seller_id, "order_id": order_id})).all()
    return money_states((PaymentEventType(r.event_type), r.amount_minor, r.currency) for r in rows)


@dataclass(frozen=True)
class StatusDecision:
    """The status an order's money says, and why when the money does not match the order."""

    status: OrderStatus
    #: Why the captured money does not match the order (``None`` when it does): written in
    #: the order's history and shown to the seller as a problem.
    mismatch: str | None = None


def _amount(amount_minor: int, currency: str) -> str:
    """``1.50 USD``, ``3000 JPY``: an amount as a seller reads it."""
    digits = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    if not digits:
        return f"{sign}{whole} {currency}"
    return f"{sign}{whole}.{fraction:0{digits}d} {currency}"


def decide_status(
    current: OrderStatus,
    states: Mapping[str, MoneyState],
    *,
    total_minor: int,
    currency: str,
) -> StatusDecision:
    """The order status its money says, judged against the order's total and currency.

    - nothing captured: ``CONFIRMED`` once authorised, else the status stays (a failed
      attempt leaves the order open for another);
    - deductions covering every capture: ``REFUNDED``;
    - money kept in another currency than the order's: ``NEEDS_REVIEW`` (a gateway that
      captured 3000 JPY on a 3000 USD order did not pay it);
    - more kept than the order's total (a second capture under another charge id):
      ``NEEDS_REVIEW``;
    - less captured than the order's total: ``UNDERPAID``;
    - some deducted: ``PARTIALLY_REFUNDED``;
    - exactly the total, nothing deducted: ``PAID`` (or the fulfilment status it reached).

    Revenue never reads this status: it counts the captured facts themselves, converted.
    """
    captured = sum(state.captured_minor for state in states.values())
    if captured == 0:
        authorized = any(state.authorized_minor for state in states.values())
        if authorized and current in {OrderStatus.PENDING, OrderStatus.CONFIRMED}:
            return StatusDecision(OrderStatus.CONFIRMED)
        return StatusDecision(current)
    deductions = {code: state.deducted_minor for code, state in states.items()}
    if all(
        state.captured_minor == 0 or deductions[code] >= state.captured_minor
        for code, state in states.items()
    ):
        return StatusDecision(OrderStatus.REFUNDED)
    foreign = sorted(
        code for code, state in states.items() if code != currency and state.net_minor > 0
    )
    if foreign:
        kept = ", ".join(_amount(states[code].net_minor, code) for code in foreign)
        return StatusDecision(
            OrderStatus.NEEDS_REVIEW,
            f"captured {kept} on an order of {_amount(total_minor, currency)}",
        )
    own = states.get(currency, MoneyState(currency=currency))
    if own.net_minor > total_minor:
        return StatusDecision(
            OrderStatus.NEEDS_REVIEW,
            f"kept {_amount(own.net_minor, currency)}, more than the order's total of "
            f"{_amount(total_minor, currency)}",
        )
    if own.captured_minor < total_minor:
        return StatusDecision(
            OrderStatus.UNDERPAID,
            f"captured {_amount(own.captured_minor, currency)} of the order's "
            f"{_amount(total_minor, currency)}",
        )
    if any(amount > 0 for amount in deductions.values()):
        return StatusDecision(OrderStatus.PARTIALLY_REFUNDED)
    if current in FULFILMENT_STATUSES:
        return StatusDecision(current)
    return StatusDecision(OrderStatus.PAID)


def derive_status(
    current: OrderStatus,
    states: Mapping[str, MoneyState],
    *,
    total_minor: int,
    currency: str,
) -> OrderStatus:
    """The status of :func:`decide_status`, without the reason."""
    return decide_status(current, states, total_minor=total_minor, currency=currency).status
