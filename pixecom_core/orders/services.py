"""OrderService: a seller reads its orders and their history.

Orders are written by checkout and payment processing, never through this service: it
only reads. Lists are newest first and bounded (SCALE-4); a date range prunes the
monthly partitions outside it (STORE-1).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pixecom_core.errors import InvalidRequestError, NotFoundError
from pixecom_core.ledger.money import MoneyState, order_money_states
from pixecom_core.models.orders import Order, OrderEvent, OrderStatus
from pixecom_core.models.payments import RefundStatus
from pixecom_core.orders.refunds import RefundView, refundable_minor, refunds_of_order
from pixecom_core.orders.repositories import OrderEventRepository, OrderRepository
from pixecom_core.tenancy import Page, PageRequest, SellerContext


def _require_aware(name: str, moment: datetime | None) -> None:
    if moment is not None and moment.utcoffset() is None:
        raise InvalidRequestError(
            f"{name} needs a UTC offset (e.g. 2026-03-01T00:00:00Z): a bare date-time "
            "would be read in the database session's time zone",
            code="naive_datetime",
        )


@dataclass(frozen=True)
class OrderMoney:
    """An order's money in one currency: the ledger's sums, the refunds still open, and
    what can still be refunded."""

    state: MoneyState
    open_refunds_minor: int

    @property
    def refundable_minor(self) -> int:
        return refundable_minor(self.state, self.open_refunds_minor)


@dataclass(frozen=True)
class OrderDetail:
    """One order with its money per currency and the refunds asked for through PixEcom."""

    order: Order
    money: list[OrderMoney]
    refunds: list[RefundView]


_OPEN = (RefundStatus.REQUESTED, RefundStatus.PENDING)


class OrderService:
    """Read one seller's orders and order events.

    Another seller's order id is not found (:class:`NotFoundError`), exactly like an id
    that does not exist at all.
    """

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    async def list_orders(
        self,
        page: PageRequest,
        *,
        statuses: Sequence[OrderStatus] = (),
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        sellpage_id: uuid.UUID | None = None,
    ) -> Page[Order]:
        """One page of the seller's orders, newest first (``created_at``, then ``id``).

        :param statuses: orders in any of these statuses; every status when empty.
        :param created_from: created at or after this moment (inclusive); needs an offset.
        :param created_to: created before this moment (exclusive); needs an offset.
        :param sellpage_id: orders attributed to this sellpage.
        :raises InvalidRequestError: a bound without a UTC offset, or an empty range
            (``created_from`` not before ``created_to``).
        """
        _require_aware("created_from", created_from)
        _require_aware("created_to", created_to)
        if created_from is not None and created_to is not None and created_from >= created_to:
            raise InvalidRequestError(
                "created_from must be before created_to (the range is [from, to))",
                code="empty_date_range",
            )
        async with self._context.scope() as scope:
            return await OrderRepository(scope).list_matching(
                page,
                statuses=statuses,
                created_from=created_from,
                created_to=created_to,
                sellpage_id=sellpage_id,
            )

    async def get_order(self, order_id: uuid.UUID) -> Order:
        """The seller's order ``order_id``; :class:`NotFoundError` otherwise.

        The primary key is ``(seller_id, id, created_at)`` (the partition key must be in
        it); callers know only the id, a random UUID, so the lookup is by
        ``(seller_id, id)``: one probe of the primary-key index of each monthly partition.
        """
        async with self._context.scope() as scope:
            order = await OrderRepository(scope).get(order_id)
        if order is None:
            raise NotFoundError("no such order")
        return order

    async def get_order_detail(self, order_id: uuid.UUID) -> OrderDetail:
        """The order, its money per currency from the ledger (captured, refunded, charged
        back, net) and its refunds, read in one transaction so they agree."""
        async with self._context.scope() as scope:
            order = await OrderRepository(scope).get(order_id)
            if order is None:
                raise NotFoundError("no such order")
            states = await order_money_states(scope.session, scope.seller_id, order_id)
            refunds = await refunds_of_order(scope, order_id)
        open_by_currency: dict[str, int] = {}
        for refund in refunds:
            if refund.status in _OPEN:
                open_by_currency[refund.currency] = (
                    open_by_currency.get(refund.currency, 0) + refund.amount_minor
                )
        money = [
            OrderMoney(state=states[currency], open_refunds_minor=open_by_currency.get(currency, 0))
            for currency in sorted(states)
        ]
        return OrderDetail(order=order, money=money, refunds=refunds)

    async def list_order_events(self, order_id: uuid.UUID, page: PageRequest) -> Page[OrderEvent]:
        """One page of the history of the seller's order ``order_id``, oldest first.

        :raises NotFoundError: the order is not the seller's (so an empty history always
            means an order without events, never an unknown id).
        """
        async with self._context.scope() as scope:
            if await OrderRepository(scope).get(order_id) is None:
                raise NotFoundError("no such order")
            return await OrderEventRepository(scope).list_for_order(page, order_id)
