"""Refunds a seller asks for: reserve the amount, ask the gateway, record what it answers.

Issue 15 item 3. ``POST /orders/{id}/refunds`` runs :meth:`RefundService.request`:

1. **Reserve**, in one transaction that locks the order row: the seller's
   ``Idempotency-Key`` either names an existing refund (the same request again: answer
   it; another request: refused) or a new ``refunds`` row is written ``REQUESTED`` —
   if the amount fits what is still refundable: captured, minus refunds and chargebacks
   in the ledger, minus refunds still open (``REQUESTED`` or ``PENDING``). Concurrent
   requests for one order queue on the lock, so together they never refund more than
   was captured.
2. **Ask the gateway**, with no transaction open, under an idempotency key derived from
   the refund's id (the seller's key is only unique per seller): a retry after a timeout
   is the same refund at the gateway, never a second one.
3. **Record the answer**: ``PENDING`` keeps the amount reserved; ``FAILED`` (or the
   gateway refusing the request, :class:`~pixecom_core.providers.ProviderRefused`)
   releases it; ``SUCCEEDED`` records the ``REFUNDED`` fact through the ledger, in the
   same transaction. The gateway's webhook announces the same refund under the same
   reference, so the fact is recorded once, from whichever comes first; when the webhook
   comes first, the ledger marks the refund ``SUCCEEDED`` itself
   (:func:`mark_refunds_succeeded`).

A refund whose answer never came (timeout, outage) stays ``REQUESTED`` with its amount
reserved; :meth:`RefundService.settle` asks the gateway again under the same key, and a
pending one is fetched until it settles.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.errors import ConflictError, InvalidRequestError, NotFoundError
from pixecom_core.ledger.money import MoneyState, order_money_states
from pixecom_core.models.orders import OrderEventType
from pixecom_core.models.payments import RefundStatus
from pixecom_core.orders.status import record_order_event
from pixecom_core.providers import (
    GatewayPaymentEvent,
    GatewayRefund,
    MerchantAccount,
    PaymentEventKind,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    RefundRequest,
    RefundState,
)
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerScope, bind_seller_scope, open_seller_scope

if TYPE_CHECKING:  # the ledger imports this module (mark_refunds_succeeded)
    from pixecom_core.ledger import Ledger
    from pixecom_core.payments.connections import PaymentConnections
    from pixecom_core.plugins import ProviderRegistry

_log = logging.getLogger(__name__)

#: Longest seller reason kept (the gateways' own limits are lower and cut it further).
MAX_REASON_LENGTH = 500
#: Longest ``Idempotency-Key`` accepted (Stripe's own limit).
MAX_IDEMPOTENCY_KEY_LENGTH = 255
#: How long one request to the gateway may be under way before a retry may ask again
#: (well above any gateway client's timeout).
ASKING_WINDOW_SECONDS = 120

_LOCK_ORDER = text(
    "SELECT id, created_at, currency, payment_gateway, payment_id FROM orders"
    " WHERE seller_id = :seller_id AND id = :order_id FOR UPDATE"
)
_PAYMENT_ACCOUNT = text(
    "SELECT account_id FROM order_payments WHERE seller_id = :seller_id"
    " AND gateway = :gateway AND payment_id = :payment_id"
)
_CAPTURES = text(
    "SELECT gateway_reference, amount_minor, currency FROM payment_events"
    " WHERE seller_id = :seller_id AND order_id = :order_id AND gateway = :gateway"
    " AND event_type = 'CAPTURED' ORDER BY occurred_at, id"
)
_OPEN_RESERVED = text(
    "SELECT coalesce(sum(amount_minor), 0) FROM refunds"
    " WHERE seller_id = :seller_id AND order_id = :order_id AND currency = :currency"
    " AND status IN ('REQUESTED', 'PENDING')"
)
_BY_KEY = text("SELECT * FROM refunds WHERE seller_id = :seller_id AND idempotency_key = :key")
_BY_ID = text("SELECT * FROM refunds WHERE seller_id = :seller_id AND id = :refund_id")
_OPEN = text("SELECT seller_id, refund_id FROM pixecom_open_refunds(:settled_before, :max_rows)")
_FOR_ORDER = text(
    "SELECT * FROM refunds WHERE seller_id = :seller_id AND order_id = :order_id"
    " ORDER BY created_at, id"
)
_INSERT = text(
    """
    INSERT INTO refunds (seller_id, id, order_id, order_created_at, gateway, idempotency_key,
                         amount_minor, currency, reason, requested_by, asking_until)
    VALUES (:seller_id, :id, :order_id, :order_created_at, :gateway, :key, :amount_minor,
            :currency, :reason, :requested_by, now() + make_interval(secs => :window))
    RETURNING *
    """
)
# A retry asks the gateway only when no other request is asking it right now.
_CLAIM_ASKING = text(
    """
    UPDATE refunds SET asking_until = now() + make_interval(secs => :window)
     WHERE seller_id = :seller_id AND id = :refund_id AND status = 'REQUESTED'
       AND (asking_until IS NULL OR asking_until < now())
    RETURNING id
    """
)
_DONE_ASKING = text(
    "UPDATE refunds SET asking_until = NULL WHERE seller_id = :seller_id AND id = :refund_id"
)
_LOCK_REFUND = text(
    "SELECT * FROM refunds WHERE seller_id = :seller_id AND id = :refund_id FOR UPDATE"
)
_UPDATE = text(
    """
    UPDATE refunds
       SET status = :status, gateway_reference = coalesce(:reference, gateway_reference),
           failure_reason = :failure_reason, asking_until = NULL, updated_at = now()
     WHERE seller_id = :seller_id AND id = :refund_id
    RETURNING *
    """
)
_MARK_SUCCEEDED = text(
    """
    UPDATE refunds SET status = 'SUCCEEDED', failure_reason = NULL, updated_at = now()
     WHERE seller_id = :seller_id AND gateway = :gateway AND gateway_reference = :reference
       AND status <> 'SUCCEEDED'
    """
)
_FACT_RECORDED = text(
    "SELECT 1 FROM payment_events WHERE seller_id = :seller_id AND gateway = :gateway"
    " AND gateway_reference = :reference AND event_type = 'REFUNDED'"
)


class IdempotencyKeyReusedError(ConflictError):
    """The ``Idempotency-Key`` already names another refund request."""

    code = "idempotency_key_reused"


class RefundExceedsRefundableError(ConflictError):
    """More than is still refundable (captured, minus refunds done and open)."""

    code = "refund_exceeds_refundable"


class NothingToRefundError(ConflictError):
    """The order has no captured payment to refund."""

    code = "nothing_to_refund"


@dataclass(frozen=True)
class RefundView:
    """One refund as the seller sees it."""

    id: uuid.UUID
    order_id: uuid.UUID
    gateway: str
    amount_minor: int
    currency: str
    reason: str | None
    status: RefundStatus
    gateway_reference: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


def _view(row: object) -> RefundView:
    return RefundView(
        id=row.id,  # type: ignore[attr-defined]
        order_id=row.order_id,  # type: ignore[attr-defined]
        gateway=row.gateway,  # type: ignore[attr-defined]
        amount_minor=row.amount_minor,  # type: ignore[attr-defined]
        currency=row.currency.strip(),  # type: ignore[attr-defined]
        reason=row.reason,  # type: ignore[attr-defined]
        status=RefundStatus(row.status),  # type: ignore[attr-defined]
        gateway_reference=row.gateway_reference,  # type: ignore[attr-defined]
        failure_reason=row.failure_reason,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        updated_at=row.updated_at,  # type: ignore[attr-defined]
    )


@dataclass(frozen=True)
class _Reserved:
    """A refund row to send to the gateway, and what it needs."""

    refund: RefundView
    order_created_at: datetime
    payment_reference: str
    capture_reference: str
    #: The seller's own account the payment was made on, for a gateway with connections.
    account: MerchantAccount | None = None
    #: This request may ask the gateway (no other one is asking it now).
    claimed: bool = True


def refundable_minor(state: MoneyState | None, open_minor: int) -> int:
    """What can still be refunded in one currency: captured, minus refunds and chargebacks
    in the ledger (a reversed chargeback gives its amount back), minus open refunds."""
    if state is None:
        return 0
    return max(state.net_minor - open_minor, 0)


def gateway_idempotency_key(refund_id: uuid.UUID) -> str:
    """The key the gateway sees for refund ``refund_id``: stable across retries, unique
    across sellers (a seller's own ``Idempotency-Key`` is unique only per seller)."""
    return f"pixecom-refund-{refund_id}"


def _request_fingerprint(order_id: uuid.UUID, amount_minor: int, reason: str | None) -> str:
    return hashlib.sha256(f"{order_id}|{amount_minor}|{reason or ''}".encode()).hexdigest()


async def mark_refunds_succeeded(
    scope: SellerScope, *, gateway: str, references: Sequence[str]
) -> None:
    """Mark the seller's refunds with these gateway references ``SUCCEEDED``: the ledger
    calls it in the transaction that records their ``REFUNDED`` facts, whichever recorded
    them first, the gateway's answer or its webhook. A reference no refund names (a refund
    made in the gateway's own dashboard) changes nothing."""
    for reference in references:
        await scope.session.execute(
            _MARK_SUCCEEDED,
            {"seller_id": scope.seller_id, "gateway": gateway, "reference": reference},
        )


async def refunds_of_order(scope: SellerScope, order_id: uuid.UUID) -> list[RefundView]:
    """The order's refunds asked for through PixEcom, oldest first."""
    rows = await scope.session.execute(
        _FOR_ORDER, {"seller_id": scope.seller_id, "order_id": order_id}
    )
    return [_view(row) for row in rows]


class RefundService:
    """Refunds of one platform: request them for a seller, settle the open ones.

    :param sessions: app-role session factory (every query runs in a seller scope).
    :param registry: finds the order's gateway.
    :param ledger: records the ``REFUNDED`` fact of a refund the gateway answers
        ``succeeded``, and announces it after commit.
    :param connections: the sellers' own gateway accounts: a refund on a gateway that
        implements connections is made on the seller's account (never the platform's).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        ledger: Ledger,
        connections: PaymentConnections,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._ledger = ledger
        self._connections = connections

    async def request(
        self,
        seller_id: uuid.UUID,
        order_id: uuid.UUID,
        *,
        amount_minor: int,
        reason: str | None,
        idempotency_key: str,
        requested_by: uuid.UUID | None = None,
    ) -> RefundView:
        """Refund ``amount_minor`` of the order's captured payment; answer where it stands.

        The same ``idempotency_key`` with the same order, amount and reason answers the
        same refund (asking the gateway again, under the same key, if its first answer
        never came); with anything else it is refused.

        :raises NotFoundError: not the seller's order.
        :raises InvalidRequestError: a blank or overlong key or reason, a non-positive amount.
        :raises IdempotencyKeyReusedError: the key names another request.
        :raises NothingToRefundError: nothing was captured.
        :raises RefundExceedsRefundableError: more than is still refundable.
        :raises PaymentConnectionRequired: the gateway needs the seller's own account and
            none is connected (revoked or disconnected since the payment).
        """
        key = idempotency_key.strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise InvalidRequestError(
                f"send an Idempotency-Key header of 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
                code="idempotency_key_required",
            )
        if amount_minor <= 0:
            raise InvalidRequestError("amount_minor must be positive", code="invalid_amount")
        reason = (reason or "").strip() or None
        if reason is not None and len(reason) > MAX_REASON_LENGTH:
            raise InvalidRequestError(
                f"reason is limited to {MAX_REASON_LENGTH} characters", code="reason_too_long"
            )
        reserved = await self._reserve(seller_id, order_id, amount_minor, reason, key, requested_by)
        if reserved.refund.status is not RefundStatus.REQUESTED or not reserved.claimed:
            return reserved.refund
        return await self._ask_gateway(seller_id, reserved)

    async def settle(self, seller_id: uuid.UUID, refund_id: uuid.UUID) -> RefundView:
        """Bring an open refund up to date: ask the gateway again for one still
        ``REQUESTED`` (same key), fetch one ``PENDING``; a settled one is answered as is."""
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            row = (
                await scope.session.execute(
                    _BY_ID, {"seller_id": seller_id, "refund_id": refund_id}
                )
            ).first()
            if row is None:
                raise NotFoundError("no such refund")
            reserved = await self._reserved(scope, row)
            claimed = await self._claim(scope, reserved.refund)
        refund = reserved.refund
        if refund.status is RefundStatus.REQUESTED:
            return await self._ask_gateway(seller_id, reserved) if claimed else refund
        if refund.status is RefundStatus.PENDING and refund.gateway_reference is not None:
            gateway = self._registry.payment_gateway(refund.gateway)
            answer = await gateway.fetch_refund(
                payment_reference=reserved.payment_reference,
                refund_reference=refund.gateway_reference,
                account=reserved.account,
            )
            return await self._apply(seller_id, reserved, answer)
        return refund

    async def settle_open(
        self, *, quiet_seconds: float, limit: int = 100, now: datetime | None = None
    ) -> int:
        """Settle refunds left open: each one ``REQUESTED`` or ``PENDING`` whose last word
        is older than ``quiet_seconds`` and that nobody is asking the gateway about (the
        payments worker calls this on its sweep). A refund that fails to settle stays open
        for the next sweep; it never stops the others. Return how many were looked at.
        """
        cut_off = (now or datetime.now(UTC)) - timedelta(seconds=quiet_seconds)
        async with self._sessions() as session:
            rows = (
                await session.execute(_OPEN, {"settled_before": cut_off, "max_rows": limit})
            ).all()
        for row in rows:
            try:
                await self.settle(row.seller_id, row.refund_id)
            except Exception:  # one refund's trouble must not hold up the rest
                _log.exception("refund %s could not be settled; next sweep", row.refund_id)
        return len(rows)

    async def _reserve(
        self,
        seller_id: uuid.UUID,
        order_id: uuid.UUID,
        amount_minor: int,
        reason: str | None,
        key: str,
        requested_by: uuid.UUID | None,
    ) -> _Reserved:
        fingerprint = _request_fingerprint(order_id, amount_minor, reason)
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            session = scope.session
            order = (
                await session.execute(_LOCK_ORDER, {"seller_id": seller_id, "order_id": order_id})
            ).first()
            if order is None:
                raise NotFoundError("no such order")
            existing = (
                await session.execute(_BY_KEY, {"seller_id": seller_id, "key": key})
            ).first()
            if existing is not None:
                if (
                    _request_fingerprint(existing.order_id, existing.amount_minor, existing.reason)
                    != fingerprint
                ):
                    raise IdempotencyKeyReusedError(
                        "this Idempotency-Key was used for another refund request; "
                        "use a new key for a new refund"
                    )
                reserved = await self._reserved(scope, existing, order)
                return replace(reserved, claimed=await self._claim(scope, reserved.refund))
            if order.payment_gateway is None or order.payment_id is None:
                raise NothingToRefundError("the order has no payment to refund")
            account = await self._account(scope, order.payment_gateway, order.payment_id)
            keys = {"seller_id": seller_id, "order_id": order_id}
            captures = (
                await session.execute(_CAPTURES, {**keys, "gateway": order.payment_gateway})
            ).all()
            if not captures:
                raise NothingToRefundError("nothing was captured for this order yet")
            currency = captures[0].currency.strip()
            states = await order_money_states(session, seller_id, order_id)
            open_minor = int(
                (await session.execute(_OPEN_RESERVED, {**keys, "currency": currency})).scalar_one()
            )
            left = refundable_minor(states.get(currency), open_minor)
            if amount_minor > left:
                raise RefundExceedsRefundableError(
                    f"at most {left} {currency} minor units can still be refunded "
                    f"({open_minor} are in refunds still open)"
                )
            refund_id = uuid.uuid4()
            row = (
                await session.execute(
                    _INSERT,
                    {
                        **keys,
                        "id": refund_id,
                        "order_created_at": order.created_at,
                        "gateway": order.payment_gateway,
                        "key": key,
                        "amount_minor": amount_minor,
                        "currency": currency,
                        "reason": reason,
                        "requested_by": requested_by,
                        "window": ASKING_WINDOW_SECONDS,
                    },
                )
            ).one()
            await record_order_event(
                scope,
                order_id=order_id,
                event_type=OrderEventType.NOTE,
                payload={
                    "refund_id": str(refund_id),
                    "refund": "requested",
                    "amount_minor": amount_minor,
                    "currency": currency,
                    "reason": reason,
                    "requested_by": str(requested_by) if requested_by else None,
                },
            )
            return _Reserved(
                refund=_view(row),
                order_created_at=order.created_at,
                payment_reference=order.payment_id,
                capture_reference=captures[0].gateway_reference,
                account=account,
            )

    async def _account(
        self, scope: SellerScope, gateway: str, payment_id: str
    ) -> MerchantAccount | None:
        """The seller's account the payment was made on, when ``gateway`` implements
        connections.

        :raises PaymentConnectionRequired: it does and that account is not connected now.
        """
        if not self._connections.needs_connection(self._registry.payment_gateway(gateway)):
            return None
        made_on = await scope.session.scalar(
            _PAYMENT_ACCOUNT,
            {"seller_id": scope.seller_id, "gateway": gateway, "payment_id": payment_id},
        )
        return await self._connections.account_for(scope, gateway, account_id=made_on)

    @staticmethod
    async def _claim(scope: SellerScope, refund: RefundView) -> bool:
        """Whether this request may ask the gateway about ``refund`` now (claimed)."""
        if refund.status is not RefundStatus.REQUESTED:
            return False
        claimed = await scope.session.execute(
            _CLAIM_ASKING,
            {"seller_id": scope.seller_id, "refund_id": refund.id, "window": ASKING_WINDOW_SECONDS},
        )
        return claimed.first() is not None

    async def _reserved(
        self, scope: SellerScope, row: object, order: Any | None = None
    ) -> _Reserved:
        """What sending the existing refund ``row`` to the gateway needs.

        :param order: the refund's order row, when the caller locked it already.
        """
        refund = _view(row)
        keys = {"seller_id": scope.seller_id, "order_id": refund.order_id}
        if order is None:
            order = (await scope.session.execute(_LOCK_ORDER, keys)).first()
        captures = (
            await scope.session.execute(_CAPTURES, {**keys, "gateway": refund.gateway})
        ).all()
        if order is None or order.payment_id is None or not captures:
            raise NothingToRefundError("the refund's payment is no longer known")
        return _Reserved(
            refund=refund,
            order_created_at=order.created_at,
            payment_reference=order.payment_id,
            capture_reference=captures[0].gateway_reference,
            account=await self._account(scope, refund.gateway, order.payment_id),
        )

    async def _ask_gateway(self, seller_id: uuid.UUID, reserved: _Reserved) -> RefundView:
        refund = reserved.refund
        gateway = self._registry.payment_gateway(refund.gateway)
        request = RefundRequest(
            idempotency_key=gateway_idempotency_key(refund.id),
            seller_id=seller_id,
            order_id=refund.order_id,
            refund_id=refund.id,
            payment_reference=reserved.payment_reference,
            capture_reference=reserved.capture_reference,
            amount_minor=refund.amount_minor,
            currency=refund.currency,
            reason=refund.reason,
            account=reserved.account,
        )
        try:
            answer = await gateway.refund(request)
        except (ProviderRefused, ProviderAuthError) as exc:
            # The gateway did not take the request: nothing was refunded.
            return await self._finish(seller_id, refund.id, RefundStatus.FAILED, None, str(exc))
        except ProviderError as exc:
            # Throttled, transient, down: the outcome is unknown. The amount stays
            # reserved; settle() asks again under the same key.
            _log.warning("refund %s: %s did not answer: %s", refund.id, refund.gateway, exc)
            async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
                await scope.session.execute(
                    _DONE_ASKING, {"seller_id": seller_id, "refund_id": refund.id}
                )
            return refund
        return await self._apply(seller_id, reserved, answer)

    async def _apply(
        self, seller_id: uuid.UUID, reserved: _Reserved, answer: GatewayRefund
    ) -> RefundView:
        """Record the gateway's answer about ``reserved``; a success through the ledger."""
        refund = reserved.refund
        if answer.state is RefundState.FAILED:
            return await self._finish(
                seller_id,
                refund.id,
                RefundStatus.FAILED,
                answer.refund_reference,
                answer.failure_reason or "the gateway reports the refund failed",
            )
        if answer.state is RefundState.PENDING:
            return await self._finish(
                seller_id, refund.id, RefundStatus.PENDING, answer.refund_reference, None
            )
        fact = GatewayPaymentEvent(
            gateway=refund.gateway,
            event_id=f"refund-answer:{answer.refund_reference}",
            gateway_reference=reserved.payment_reference,
            fact_reference=answer.refund_reference,
            kind=PaymentEventKind.REFUNDED,
            amount_minor=answer.amount_minor,
            currency=answer.currency,
            occurred_at=answer.occurred_at,
            order_reference=str(refund.order_id),
            metadata={"refund_id": str(refund.id)},
        )
        async with self._sessions() as session, session.begin():
            # The reference first, so the ledger's mark_refunds_succeeded finds this row
            # while it records the fact (or the webhook recorded it already: then the
            # fact is a duplicate and the row is marked here).
            async with bind_seller_scope(session, seller_id, self._settings) as scope:
                await scope.session.execute(
                    _UPDATE,
                    {
                        "seller_id": seller_id,
                        "refund_id": refund.id,
                        "status": RefundStatus.PENDING.value,
                        "reference": answer.refund_reference,
                        "failure_reason": None,
                    },
                )
            outcome = await self._ledger.record_in(session, [fact])
            async with bind_seller_scope(session, seller_id, self._settings) as scope:
                await mark_refunds_succeeded(
                    scope, gateway=refund.gateway, references=[answer.refund_reference]
                )
                row = (
                    await scope.session.execute(
                        _BY_ID, {"seller_id": seller_id, "refund_id": refund.id}
                    )
                ).one()
        self._ledger.announce(outcome)
        return _view(row)

    async def _finish(
        self,
        seller_id: uuid.UUID,
        refund_id: uuid.UUID,
        status: RefundStatus,
        reference: str | None,
        failure_reason: str | None,
    ) -> RefundView:
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            current = (
                await scope.session.execute(
                    _LOCK_REFUND, {"seller_id": seller_id, "refund_id": refund_id}
                )
            ).one()
            if RefundStatus(current.status) is RefundStatus.SUCCEEDED:
                # The webhook recorded it meanwhile: a late pending answer changes nothing.
                return _view(current)
            row = (
                await scope.session.execute(
                    _UPDATE,
                    {
                        "seller_id": seller_id,
                        "refund_id": refund_id,
                        "status": status.value,
                        "reference": reference,
                        "failure_reason": failure_reason,
                    },
                )
            ).one()
            if reference is not None and status is RefundStatus.PENDING:
                recorded = (
                    await scope.session.execute(
                        _FACT_RECORDED,
                        {"seller_id": seller_id, "gateway": row.gateway, "reference": reference},
                    )
                ).first()
                if recorded is not None:
                    await mark_refunds_succeeded(scope, gateway=row.gateway, references=[reference])
                    row = (
                        await scope.session.execute(
                            _BY_ID, {"seller_id": seller_id, "refund_id": refund_id}
                        )
                    ).one()
            return _view(row)


__all__ = [
    "IdempotencyKeyReusedError",
    "NothingToRefundError",
    "RefundExceedsRefundableError",
    "RefundService",
    "RefundView",
    "gateway_idempotency_key",
    "mark_refunds_succeeded",
    "refundable_minor",
    "refunds_of_order",
]
