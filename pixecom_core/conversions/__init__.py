"""Server-side conversion events (issue 17 item 4): destinations, outbox and sender.

- :class:`ConversionDestinations`: a seller's destination per ad network (pixel id and
  access token, encrypted), set through the API.
- :func:`queue_purchase`: called by the ledger in the transaction that makes an order
  PAID; writes one outbox row per destination. The row's key (seller, order, network,
  event) makes the event idempotent per order: a replayed webhook, a refund or a second
  PAID transition writes nothing.
- :class:`ConversionSender`: after commit, the payments worker sends a seller's due rows —
  claimed with a lease in one transaction, sent with no transaction open, settled in a
  second — through the network plugin's
  :class:`~pixecom_core.providers.ConversionsDestination`. A transient failure is retried
  with exponential backoff; a refused event, or one still failing after
  ``conversion_max_attempts``, ends ``FAILED`` with a dead letter the seller sees in
  ``GET /problems``.
"""

from pixecom_core.conversions.destinations import ConversionDestinations, DestinationView
from pixecom_core.conversions.outbox import (
    SEND_CONVERSIONS_TASK,
    ConversionSender,
    SendReport,
    queue_purchase,
)

__all__ = [
    "SEND_CONVERSIONS_TASK",
    "ConversionDestinations",
    "ConversionSender",
    "DestinationView",
    "SendReport",
    "queue_purchase",
]
