"""The payment ledger: append-only money facts, derived order money state, webhook inbox."""

from pixecom_core.ledger.inbox import ProcessResult, Receipt, WebhookInbox
from pixecom_core.ledger.money import (
    MoneyState,
    StatusDecision,
    decide_status,
    derive_status,
    money_states,
)
from pixecom_core.ledger.service import Ledger, PaymentOwner, RecordOutcome, UnknownPaymentError

__all__ = [
    "Ledger",
    "MoneyState",
    "PaymentOwner",
    "ProcessResult",
    "Receipt",
    "RecordOutcome",
    "StatusDecision",
    "UnknownPaymentError",
    "WebhookInbox",
    "decide_status",
    "derive_status",
    "money_states",
]
