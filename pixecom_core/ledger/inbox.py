"""The webhook inbox: store a verified delivery at once, turn it into ledger facts later.

MONEY-3, "webhook burst": the endpoint only verifies the signature (through the gateway
plugin) and inserts the raw delivery — ``UNIQUE (gateway, event_id)`` makes a redelivery a
no-op — so it answers 2xx in milliseconds whatever the burst. A worker task then parses
the delivery and records its facts (:class:`pixecom_core.ledger.service.Ledger`).

Nothing is lost on the way: a delivery for a payment no order is known for yet is
``DEFERRED`` and retried with exponential backoff; one that keeps failing is parked as
``FAILED`` (the dead letter, visible to operators) after ``webhook_max_attempts``; a
worker that dies mid-way leaves the row ``RECEIVED`` — the ledger write is idempotent, so
processing it again (the task is redelivered, and :meth:`WebhookInbox.due` finds it)
gives the same result.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.ledger.service import ForeignAccountError, Ledger, UnknownPaymentError
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import (
    GatewayPaymentEvent,
    MerchantAccount,
    PaymentGateway,
    PaymentGatewayConnections,
    VerifiedWebhook,
    WebhookAccount,
)
from pixecom_core.settings import Settings

if TYPE_CHECKING:
    from pixecom_core.payments.connections import PaymentConnections

_log = logging.getLogger(__name__)

# The app role reads no inbox row outside a seller's scope and writes none (migration
# 0010, issue 12 item 3: raw bodies carry shoppers' personal data): every step goes
# through an owner function that touches one delivery, or answers ids only.
_RECEIVE = text(
    "SELECT inbox_id, duplicate FROM pixecom_inbox_receive("
    ":gateway, :event_id, :event_type, CAST(:headers AS jsonb), :body, :received_at)"
)
_CLAIM = text(
    "SELECT inbox_id AS id, gateway, event_id, event_type, headers, body, received_at, attempts"
    " FROM pixecom_inbox_claim(:id)"
)
_DONE = text("SELECT pixecom_inbox_processed(:id, :seller_id)")
_RETRY_LATER = text(
    "SELECT pixecom_inbox_retry_later(:id, :status, :attempts, :error, :next_attempt_at,"
    " :seller_id)"
)
_DUE = text("SELECT id FROM pixecom_inbox_due(:grace_seconds, :limit) AS id")

#: Headers kept with every delivery, whatever the gateway; the gateway adds its own.
ALWAYS_KEPT_WEBHOOK_HEADERS = frozenset({"content-type", "user-agent"})
#: Where the inbox notes the seller's account a delivery was addressed to (core's
#: ``/webhooks/{gateway}/accounts/{account_id}``); never taken from a request.
ACCOUNT_HEADER = "pixecom-account"


class ProcessResult(StrEnum):
    """What :meth:`WebhookInbox.process` did with one delivery."""

    PROCESSED = "processed"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"  # already processed, or another worker holds it right now


@dataclass(frozen=True)
class Receipt:
    """A stored delivery: its inbox id, and whether it had been stored before."""

    inbox_id: int
    duplicate: bool


def kept_webhook_headers(gateway: PaymentGateway, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a delivery the inbox stores: those the gateway declares in
    ``webhook_headers`` (its signature material, for audits) and
    :data:`ALWAYS_KEPT_WEBHOOK_HEADERS`; the rest is dropped.

    Core names no gateway's headers itself (issue 13 item 6): a new gateway's signature is
    kept because the gateway says so, and nothing else it was sent is.

    :param headers: the request headers, lower-cased names.
    """
    kept = ALWAYS_KEPT_WEBHOOK_HEADERS | {name.lower() for name in gateway.webhook_headers}
    return {name: value for name, value in headers.items() if name in kept}


class WebhookInbox:
    """Receive webhook deliveries and process them into the ledger.

    :param sessions: app-role session factory. The inbox is read and written through
        owner functions (a delivery's seller is unknown until it is parsed); the ledger
        writes happen in each seller's scope.
    :param registry: finds the gateway plugin by the identifier in the URL.
    :param ledger: where parsed facts go.
    :param on_recorded: called with the sellers whose ledger gained facts, after the
        delivery's processing committed (the worker uses it to refresh those sellers'
        revenue at once). Not called for a delivery that only repeated known facts. An
        exception it raises is logged, never undoes the processing.
    :param connections: sellers' own gateway accounts (issue 15): a delivery about a
        connected account records only facts of the seller who connected it, and one
        saying the seller revoked PixEcom's access ends that connection. Without it,
        account routing is off (core's own tests of the inbox alone).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        ledger: Ledger,
        *,
        on_recorded: Callable[[set[uuid.UUID]], Awaitable[None]] | None = None,
        connections: PaymentConnections | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._ledger = ledger
        self._on_recorded = on_recorded
        self._connections = connections

    async def receive(
        self,
        gateway: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,
    ) -> Receipt:
        """Verify a delivery through its gateway plugin and store it once.

        :param account: the seller's account the delivery was addressed to (its own
            webhook URL): verified as that account's notification, and noted with the
            delivery (:data:`ACCOUNT_HEADER`) so it is parsed with that account and its
            facts are recorded only for the seller who connected it.

        Raises :class:`pixecom_core.plugins.UnknownProviderError` for a gateway that is not
        installed and :class:`pixecom_core.providers.WebhookVerificationError` for a bad
        signature; nothing is stored then.
        """
        provider = self._registry.payment_gateway(gateway)
        lowered = {
            name.lower(): value for name, value in headers.items() if name.lower() != ACCOUNT_HEADER
        }
        if account is None:
            verified = await provider.verify_webhook(body=body, headers=lowered)
        else:
            verified = await provider.verify_webhook(body=body, headers=lowered, account=account)
        kept = kept_webhook_headers(provider, lowered)
        if account is not None:
            kept[ACCOUNT_HEADER] = account.account_id

        # One statement, one round trip: the function stores the delivery atomically on
        # its own, so no BEGIN and COMMIT are sent around it (a burst's intake cost).
        async with self._sessions() as session:
            connection = await session.connection(
                execution_options={"isolation_level": "AUTOCOMMIT"}
            )
            row = (
                await connection.execute(
                    _RECEIVE,
                    {
                        "gateway": provider.identifier,
                        "event_id": verified.event_id,
                        "event_type": verified.event_type,
                        "headers": json.dumps(kept),
                        "body": body,
                        "received_at": verified.received_at,
                    },
                )
            ).one()
        return Receipt(inbox_id=int(row.inbox_id), duplicate=bool(row.duplicate))

    async def process(self, inbox_id: int) -> ProcessResult:
        """Parse one stored delivery and record its facts; safe to call any number of times.

        See :meth:`_process`; afterwards ``on_recorded`` hears which sellers gained facts.
        """
        recorded_for: set[uuid.UUID] = set()
        result = await self._process(inbox_id, recorded_for)
        if recorded_for and self._on_recorded is not None:
            try:
                await self._on_recorded(recorded_for)
            except Exception:
                _log.exception("on_recorded failed for webhook %s", inbox_id)
        return result

    async def _process(self, inbox_id: int, recorded_for: set[uuid.UUID]) -> ProcessResult:
        """Parse one stored delivery and record its facts; safe to call any number of times.

        Issue 13 item 5, one delivery, one transaction: the delivery is read (a short
        transaction of its own), then parsed with no connection held — ``parse_events`` may
        call the gateway's API — and then, in one transaction on one connection, its row is
        locked again (``FOR UPDATE SKIP LOCKED``: skipped when another worker finished it
        meanwhile or is finishing it now), its facts are recorded in each seller's scope
        and it is marked processed. So a delivery never holds more than one connection,
        no row lock waits on the network, and the facts and the delivery's new status
        commit together. The plugins hear of the facts after that commit.
        """
        webhook = await self._read(inbox_id)
        if webhook is None:
            return ProcessResult.SKIPPED
        events: Sequence[GatewayPaymentEvent] = ()
        account: WebhookAccount | None = None
        parse_error: Exception | None = None
        try:
            gateway = self._registry.payment_gateway(webhook.gateway)
            addressed = webhook.headers.get(ACCOUNT_HEADER)
            merchant = None
            if self._connections is not None and isinstance(gateway, PaymentGatewayConnections):
                account = (
                    WebhookAccount(account_id=addressed)
                    if addressed
                    else gateway.webhook_account(webhook)
                )
                # Only a seller's own app needs its stored account (credentials) to parse:
                # a platform-endpoint delivery names its account and is parsed with the
                # platform's key, with no lookup per webhook.
                if addressed:
                    merchant = await self._connections.account_by_id(webhook.gateway, addressed)
            if merchant is None:
                events = await gateway.parse_events(webhook)
            else:
                events = await gateway.parse_events(webhook, account=merchant[1])
        except Exception as exc:
            parse_error = exc

        async with self._sessions() as session, session.begin():
            row = (await session.execute(_CLAIM, {"id": inbox_id})).first()
            if row is None:
                return ProcessResult.SKIPPED
            attempts = int(row.attempts) + 1
            if parse_error is not None:
                return await self._failed(session, inbox_id, attempts, parse_error, ())
            revoked_for: uuid.UUID | None = None
            try:
                # A savepoint: a failed write (and the seller scopes it bound) is undone
                # while the delivery's row stays locked for recording the retry.
                async with session.begin_nested():
                    if account is not None and account.revoked and self._connections:
                        revoked_for = await self._connections.revoke(
                            session, webhook.gateway, account.account_id
                        )
                    outcome = await self._ledger.record_in(
                        session, events, account_id=account.account_id if account else None
                    )
            except UnknownPaymentError as exc:
                seller = await self._seller_of(session, events)
                return await self._retry_later(session, inbox_id, attempts, str(exc), seller)
            except ForeignAccountError as exc:
                # Never true on a retry either: parked at once for the operator.
                _log.error("webhook %s refused: %s", inbox_id, exc)
                return await self._retry_later(
                    session, inbox_id, self._settings.webhook_max_attempts, str(exc), None
                )
            except Exception as exc:
                return await self._failed(session, inbox_id, attempts, exc, events)
            sellers = sorted(outcome.seller_ids | ({revoked_for} if revoked_for else set()))
            await session.execute(
                _DONE, {"id": inbox_id, "seller_id": sellers[0] if len(sellers) == 1 else None}
            )
        self._ledger.announce(outcome)
        recorded_for.update(record.seller_id for record in outcome.recorded)
        return ProcessResult.PROCESSED

    async def _read(self, inbox_id: int) -> VerifiedWebhook | None:
        """The stored delivery, when it is still pending and no other worker holds it. Its
        row is locked only for this short transaction, never while it is parsed."""
        async with self._sessions() as session, session.begin():
            row = (await session.execute(_CLAIM, {"id": inbox_id})).first()
        if row is None:
            return None
        return VerifiedWebhook(
            gateway=row.gateway,
            event_id=row.event_id,
            event_type=row.event_type,
            body=bytes(row.body),
            headers=dict(row.headers),
            received_at=row.received_at,
        )

    async def _failed(
        self,
        session: AsyncSession,
        inbox_id: int,
        attempts: int,
        exc: Exception,
        events: Sequence[GatewayPaymentEvent],
    ) -> ProcessResult:
        _log.warning("webhook %s failed: %r", inbox_id, exc)
        seller = await self._seller_of(session, events)
        error = f"{type(exc).__name__}: {exc}"
        return await self._retry_later(session, inbox_id, attempts, error, seller)

    async def _seller_of(
        self, session: AsyncSession, events: Sequence[GatewayPaymentEvent]
    ) -> uuid.UUID | None:
        """The one seller whose payments ``events`` name, when the payment directory knows
        it: a delivery that cannot be recorded yet then shows among that seller's problems
        (``GET /problems``). ``None`` for an unknown payment, a delivery that did not
        parse, or one naming payments of several sellers (the operator's to sort out).
        Looked up in the delivery's own transaction, on its one connection."""
        sellers: set[uuid.UUID] = set()
        try:
            # In a savepoint: a failed lookup must not abort the transaction that still
            # has to record the retry.
            async with session.begin_nested():
                for gateway, reference in {(e.gateway, e.gateway_reference) for e in events}:
                    owner = await self._ledger.find_owner(gateway, reference, session=session)
                    if owner is not None:
                        sellers.add(owner.seller_id)
        except Exception as exc:  # attribution is a courtesy: never fail the retry over it
            _log.warning("could not attribute a failed webhook to a seller: %r", exc)
            return None
        return sellers.pop() if len(sellers) == 1 else None

    async def _retry_later(
        self,
        session: AsyncSession,
        inbox_id: int,
        attempts: int,
        error: str,
        seller_id: uuid.UUID | None,
    ) -> ProcessResult:
        settings = self._settings
        if attempts >= settings.webhook_max_attempts:
            status, result = "FAILED", ProcessResult.FAILED
            _log.error(
                "webhook %s parked as FAILED after %s attempts: %s", inbox_id, attempts, error
            )
        else:
            status, result = "DEFERRED", ProcessResult.DEFERRED
        delay = min(
            settings.webhook_retry_base_seconds * 2 ** (attempts - 1),
            settings.webhook_retry_max_seconds,
        )
        await session.execute(
            _RETRY_LATER,
            {
                "id": inbox_id,
                "status": status,
                "attempts": attempts,
                "error": error[:2000],
                "next_attempt_at": datetime.now(UTC) + timedelta(seconds=delay),
                "seller_id": seller_id,
            },
        )
        return result

    async def due(self, *, limit: int = 500, grace_seconds: float = 0.0) -> list[int]:
        """Ids of deliveries waiting to be processed (new, or deferred and due), that have
        waited at least ``grace_seconds`` more.

        The sweeper re-kicks these, so a delivery whose task was lost (Redis restarted
        before the worker read it) is still processed; the grace keeps it from re-kicking
        deliveries whose first task is merely queued behind a burst.
        """
        async with self._sessions() as session:
            rows = (
                await session.execute(_DUE, {"limit": limit, "grace_seconds": grace_seconds})
            ).all()
        return [int(row.id) for row in rows]
