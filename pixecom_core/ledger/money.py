"""An order's money state, derived from its ledger facts — never stored, never mutated.

Audit §7: "``Order.total`` … should be derived from the PaymentEvent aggregate, not
directly mutated". The state is a pure function of the *set* of facts, so the order in
which webhooks arrive (a refund before its capture, say) cannot change the result: once
every fact is in, the state is right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pixecom_core.models.orders import OrderStatus
from pixecom_core.models.payments import PaymentEventType

#: Statuses set by fulfilment (tracking); a payment fact never moves an order back from them
#: to PAID, but refunds still show.
FULFILMENT_STATUSES = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})


@dataclass(frozen=True)
class MoneyState:
    """What happened to an order's money in one currency, in minor units.

    ``net_minor`` is what the seller keeps: captured − refunded − charged back + chargebacks
    reversed (audit §6: ROAS net of refunds and chargebacks).
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


def derive_status(current: OrderStatus, states: Mapping[str, MoneyState]) -> OrderStatus:
    """The order status its money says, given the status it has.

    - nothing captured: ``CONFIRMED`` once authorised, else the status stays (a failed
      attempt leaves the order open for another);
    - captured, nothing deducted: ``PAID`` (or the fulfilment status it already reached);
    - deductions covering every capture: ``REFUNDED``; some: ``PARTIALLY_REFUNDED``.
    """
    captured = sum(state.captured_minor for state in states.values())
    if captured == 0:
        authorized = any(state.authorized_minor for state in states.values())
        if authorized and current in {OrderStatus.PENDING, OrderStatus.CONFIRMED}:
            return OrderStatus.CONFIRMED
        return current
    deductions = {currency: state.deducted_minor for currency, state in states.items()}
    if all(
        state.captured_minor == 0 or deductions[currency] >= state.captured_minor
        for currency, state in states.items()
    ):
        return OrderStatus.REFUNDED
    if any(amount > 0 for amount in deductions.values()):
        return OrderStatus.PARTIALLY_REFUNDED
    if current in FULFILMENT_STATUSES:
        return current
    return OrderStatus.PAID
