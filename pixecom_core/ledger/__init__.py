"""The payment ledger: append-only money facts, derived order money state, webhook inbox."""

from pixecom_core.ledger.inbox import ProcessResult, Receipt, WebhookInbox
from pixecom_core.ledger.money import MoneyState, derive_status, money_states
from pixecom_core.ledger.service import Ledger, PaymentOwner, RecordOutcome, UnknownPaymentError

__all__ = [
    "Ledger",
    "MoneyState",
    "PaymentOwner",
    "ProcessResult",
    "Receipt",
    "RecordOutcome",
    "UnknownPaymentError",
    "WebhookInbox",
    "derive_status",
    "money_states",
]
