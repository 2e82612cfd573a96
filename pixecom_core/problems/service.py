"""ProblemReports: one seller's open problems, newest first, in one bounded feed.

The audit's sellers "stare at a dashboard full of zeros wondering what they're paying
for" (SELLER-2) and failures used to vanish ("no DLQ"; OPS-2). A seller
now reads, through the API, the problems that explain missing numbers:

- ``dead_letter``: a background job of the seller that exhausted its retries and is
  not resolved yet (``dead_letters``);
- ``webhook``: a payment webhook attributed to the seller that is ``DEFERRED`` (being
  retried) or ``FAILED`` (parked) in ``webhook_inbox``;
- ``sync_error``: an ad account whose last sync failed or that needs reconnecting;
- ``token_expiring``: an ad account whose access ends within
  :data:`TOKEN_EXPIRY_WARNING_DAYS` days (issue 14 item 6): reconnecting it before then
  keeps its syncs running; once it has ended the sync's refused token turns it into a
  ``sync_error`` in state ``needs_reconnect``;
- ``payment_mismatch``: an order whose captured money does not match it (``UNDERPAID``:
  less than its total; ``NEEDS_REVIEW``: another currency, or more than its total kept),
  with the ledger's own account of the amounts (issue 12 item 4);
- ``payment_connection``: a gateway account whose access the seller revoked at the
  gateway (Stripe's ``account.application.deauthorized``), while no other account of that
  gateway is connected: checkout on that gateway is stopped (issue 15 item 1).

``dead_letters`` and ``webhook_inbox`` have forced row-level security like the seller's
own tables (migration 0010, issue 12 item 3): a delivery nobody has attributed yet is
visible to no seller, only to the operator (``pixecom webhooks failed``). Every query here
still runs inside the seller's scope and filters on the scope's seller id (the filter
leads to the partial indexes of migration 0008); the id comes from the authenticated
context, never from the request. Job arguments, webhook bodies and headers are never
returned: only what the seller needs to act.

Errors are for people (issue 12 item 5: no SQL, stack trace or internal name reaches a
seller). A dead letter or a failed delivery holds whatever exception ended it — a
database error with its SQL, a parser's ``KeyError`` — so the seller reads a sentence
chosen by the problem's kind and state (:func:`seller_message`); the raw text stays with
the operator (``pixecom jobs dead-letters``, ``pixecom webhooks failed``, the logs). A
sync error is the ad network's own words (a :class:`~pixecom_core.providers.ProviderError`
message, e.g. "token expired"), shown as is unless it looks like internals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import text

from pixecom_core.tenancy import InvalidCursorError, Page, PageRequest, SellerContext
from pixecom_core.tenancy.pagination import decode_cursor, encode_cursor

#: Longest error text returned; the full text stays with the operator.
MAX_ERROR_CHARS = 500
#: How long before an ad account's token expires it shows as a problem.
TOKEN_EXPIRY_WARNING_DAYS = 7


class ProblemKind(StrEnum):
    """Where a problem comes from."""

    DEAD_LETTER = "dead_letter"
    WEBHOOK = "webhook"
    SYNC_ERROR = "sync_error"
    TOKEN_EXPIRING = "token_expiring"
    PAYMENT_MISMATCH = "payment_mismatch"
    PAYMENT_CONNECTION = "payment_connection"


@dataclass(frozen=True)
class Problem:
    """One open problem of a seller.

    :ivar key: stable id within ``kind`` (dead letter id, inbox id, ad account id,
        order id).
    :ivar subject: what failed: a task name, ``<gateway> <event type>``, an ad account,
        ``order <id>``.
    :ivar state: ``open`` (dead letter), ``DEFERRED``/``FAILED`` (webhook),
        ``failing``/``needs_reconnect`` (sync), ``expiring`` (token),
        ``UNDERPAID``/``NEEDS_REVIEW`` (order).
    """

    kind: ProblemKind
    key: str
    occurred_at: datetime
    subject: str
    state: str
    #: What went wrong, for the seller (:func:`seller_message`), never the raw error.
    error: str | None
    attempts: int


#: Text that betrays internals rather than explaining a problem: SQL, Python exception
#: names and tracebacks, driver and module names, source paths.
_INTERNALS = re.compile(
    r"\[SQL:|\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|RETURNING|VALUES)\b\s|Traceback|"
    r"File \"|\.py\b|psycopg|sqlalchemy|asyncpg|pixecom_|(?-i:\b[A-Z][A-Za-z]*(Error|Exception)\b)|"
    r"\b(bigint|integer|numeric|uuid|jsonb)\b|\bcolumn\b|\brelation\b|\bconstraint\b",
    re.IGNORECASE,
)
#: The dead letter of a job its worker stopped at the time limit (pixecom_core.stats.jobs).
_TIMED_OUT = re.compile(r"^stopped after [0-9.]+ s \(job timeout\)$")
#: What the ledger says of a payment it cannot place yet (UnknownPaymentError).
_UNKNOWN_PAYMENT = re.compile(r"^(no order is known for|order \S+ is not \(yet\) visible)")

#: Sentences a seller reads, by what failed (task names are internal: say what they do).
_JOB_NAMES = {"pixecom.sync_seller": "The ad statistics sync"}


def seller_message(kind: ProblemKind, state: str, subject: str, error: str | None) -> str | None:
    """The error a seller is shown for a problem: clear, and free of internals.

    :param error: the raw text stored with the problem (operators keep reading that).
    """
    if kind is ProblemKind.DEAD_LETTER:
        job = _JOB_NAMES.get(subject, "A background job")
        if error is not None and _TIMED_OUT.match(error):
            return (
                f"{job} took longer than its time limit and was stopped. "
                "It runs again at its next scheduled time."
            )
        return (
            f"{job} failed because of an error on PixEcom's side, not in your settings. "
            "It runs again at its next scheduled time; PixEcom's operators have the details."
        )
    if kind is ProblemKind.WEBHOOK:
        if error is not None and _UNKNOWN_PAYMENT.match(error):
            cause = "PixEcom does not know the order this payment belongs to yet."
        else:
            cause = "PixEcom could not process this payment notification."
        if state == "FAILED":
            return (
                f"{cause} It was set aside after repeated attempts; "
                "PixEcom's operators have the details."
            )
        return f"{cause} It is retried automatically."
    if kind is ProblemKind.TOKEN_EXPIRING:
        # The query wrote the date itself (an ISO day): nothing else is in it.
        return (
            f"PixEcom's access to this ad account ends on {error}. Reconnect the account "
            "before then to keep its spend syncing."
        )
    if kind is ProblemKind.PAYMENT_MISMATCH:
        # The ledger wrote the reason itself from amounts and currency codes
        # (pixecom_core.ledger.money.decide_status): no internals can be in it.
        action = (
            "Ask the shopper for the rest, or cancel and refund the order."
            if state == "UNDERPAID"
            else "Check the payment at your gateway and refund what was not due."
        )
        what = error or "The money captured for this order does not match its total."
        return f"{what[:1].upper()}{what[1:]}. {action}"
    if kind is ProblemKind.PAYMENT_CONNECTION:
        return (
            f"PixEcom's access to your {subject} was revoked at the gateway, so shoppers "
            "cannot pay with it. Connect the account again under Payments."
        )
    if error is None:
        return None
    if _INTERNALS.search(error):
        return (
            "The sync of this ad account failed because of an error on PixEcom's side. "
            "PixEcom's operators have the details."
        )
    return error


# Keyset order: newest first, then kind and key (text, "C" collation so the ORDER BY
# and the cursor's row comparison agree byte for byte). SCALE-4: always LIMITed.
_PROBLEMS = text(
    f"""
    SELECT kind, key, occurred_at, subject, state, error, attempts FROM (
        SELECT 'dead_letter' AS kind, id::text AS key, failed_at AS occurred_at,
               task_name AS subject, 'open' AS state, left(error, {MAX_ERROR_CHARS}) AS error,
               attempts
          FROM dead_letters
         WHERE seller_id = :seller_id AND resolved_at IS NULL
        UNION ALL
        SELECT 'webhook', id::text, received_at,
               gateway || ' ' || coalesce(nullif(event_type, ''), event_id), status,
               left(last_error, {MAX_ERROR_CHARS}), attempts
          FROM webhook_inbox
         WHERE seller_id = :seller_id AND status IN ('DEFERRED', 'FAILED')
        UNION ALL
        SELECT 'sync_error', id::text, coalesce(last_sync_attempt_at, created_at),
               network || ' ' || name,
               CASE WHEN needs_reconnect THEN 'needs_reconnect' ELSE 'failing' END,
               left(last_sync_error, {MAX_ERROR_CHARS}), sync_failures
          FROM ad_accounts
         WHERE seller_id = :seller_id AND (last_sync_error IS NOT NULL OR needs_reconnect)
        UNION ALL
        SELECT 'token_expiring', id::text,
               token_expires_at - interval '{TOKEN_EXPIRY_WARNING_DAYS} days',
               network || ' ' || name, 'expiring',
               to_char(token_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 0
          FROM ad_accounts
         WHERE seller_id = :seller_id AND status = 'ACTIVE' AND NOT needs_reconnect
           AND token_ciphertext IS NOT NULL
           AND token_expires_at > now()
           AND token_expires_at <= now() + interval '{TOKEN_EXPIRY_WARNING_DAYS} days'
        UNION ALL
        SELECT 'payment_mismatch', o.id::text, o.updated_at, 'order ' || o.id::text,
               o.status,
               (SELECT left(substring(e.payload->>'reason'
                                      FROM '^payment does not match the order: (.*)$'),
                            {MAX_ERROR_CHARS})
                  FROM order_events AS e
                 WHERE e.seller_id = o.seller_id AND e.order_id = o.id
                   AND e.event_type = 'STATUS_CHANGED' AND e.to_status = o.status
                 ORDER BY e.created_at DESC LIMIT 1),
               0
          FROM orders AS o
         WHERE o.seller_id = :seller_id AND o.status IN ('UNDERPAID', 'NEEDS_REVIEW')
        UNION ALL
        SELECT 'payment_connection', c.id::text, c.ended_at,
               c.gateway || ' account ' || coalesce(c.display_name, c.account_id, ''),
               'revoked', NULL, 0
          FROM payment_connections AS c
         WHERE c.seller_id = :seller_id AND c.status = 'REVOKED'
           AND NOT EXISTS (
               SELECT 1 FROM payment_connections AS a
                WHERE a.seller_id = c.seller_id AND a.gateway = c.gateway
                  AND (a.status = 'ACTIVE'
                       OR (a.connected_at IS NOT NULL AND a.created_at > c.created_at)))
    ) AS problems
     WHERE CAST(:after_at AS timestamptz) IS NULL
        OR (occurred_at, kind COLLATE "C", key COLLATE "C")
           < (CAST(:after_at AS timestamptz), CAST(:after_kind AS text) COLLATE "C",
              CAST(:after_key AS text) COLLATE "C")
     ORDER BY occurred_at DESC, kind COLLATE "C" DESC, key COLLATE "C" DESC
     LIMIT :limit
    """
)


class ProblemReports:
    """Read one seller's open problems (read-only)."""

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    async def open_problems(self, page: PageRequest) -> Page[Problem]:
        """One page of the seller's open problems, newest first.

        :raises InvalidCursorError: a cursor this list did not issue.
        """
        settings = self._context.settings
        limit = page.effective_limit(
            default=settings.default_page_size, maximum=settings.max_page_size
        )
        after: tuple[object, ...] = (None, None, None)
        if page.cursor:
            after = decode_cursor(page.cursor, arity=3)
            at, kind, key = after
            if not (
                isinstance(at, datetime)
                and at.utcoffset() is not None
                and kind in set(ProblemKind)
                and isinstance(key, str)
            ):
                raise InvalidCursorError("the cursor does not belong to this list")
        async with self._context.scope() as scope:
            rows = (
                await scope.session.execute(
                    _PROBLEMS,
                    {
                        "seller_id": self._context.seller_id,
                        "after_at": after[0],
                        "after_kind": after[1],
                        "after_key": after[2],
                        "limit": limit + 1,
                    },
                )
            ).all()
        items = [
            Problem(
                kind=ProblemKind(r.kind),
                key=r.key,
                occurred_at=r.occurred_at,
                subject=r.subject,
                state=r.state,
                error=seller_message(ProblemKind(r.kind), r.state, r.subject, r.error),
                attempts=int(r.attempts),
            )
            for r in rows[:limit]
        ]
        cursor = None
        if len(rows) > limit:
            last = items[-1]
            cursor = encode_cursor([last.occurred_at, last.kind.value, last.key])
        return Page(items=items, next_cursor=cursor, limit=limit)
