"""Seller-scoped repositories for orders and their event log (both partitioned by month)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, and_, literal
from sqlmodel import col

from pixecom_core.models.orders import Order, OrderEvent, OrderStatus
from pixecom_core.tenancy import InvalidCursorError, Page, PageRequest, SellerRepository


class OrderRepository(SellerRepository[Order]):
    """Orders of the scope's seller, newest first: key ``(created_at, id)`` descending."""

    model: ClassVar[type[Order]] = Order
    descending: ClassVar[bool] = True

    async def list_matching(
        self,
        page: PageRequest,
        *,
        statuses: Sequence[OrderStatus] = (),
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        sellpage_id: uuid.UUID | None = None,
    ) -> Page[Order]:
        """One page of orders, newest first; each given filter narrows it.

        :param statuses: keep orders in any of these statuses (all when empty).
        :param created_from: keep orders created at or after this moment (inclusive).
        :param created_to: keep orders created before this moment (exclusive).
        """
        filters: list[ColumnElement[bool]] = []
        if statuses:
            filters.append(col(Order.status).in_(list(statuses)))
        # Plain comparisons on the partition key: the planner prunes the months outside
        # [created_from, created_to) before touching them (STORE-1).
        if created_from is not None:
            filters.append(col(Order.created_at) >= created_from)
        if created_to is not None:
            filters.append(col(Order.created_at) < created_to)
        if sellpage_id is not None:
            filters.append(col(Order.sellpage_id) == sellpage_id)
        return await self.list(page, *filters)

    def _after(self, columns: Sequence[Any], values: Sequence[object]) -> ColumnElement[bool]:
        # A cursor is client input: a well-formed one carrying other types (forged, or
        # taken from another list) must be refused here, not reach SQL as a type error.
        created_at, order_id = values
        if not (
            isinstance(created_at, datetime)
            and created_at.utcoffset() is not None
            and isinstance(order_id, uuid.UUID)
        ):
            raise InvalidCursorError(
                "the cursor is not one of this list's; restart from the first page"
            )
        # The row comparison alone does not prune partitions; the redundant bound on
        # created_at lets the planner skip every month newer than the cursor's row, so a
        # deep page reads only the months it still has to walk.
        return and_(col(Order.created_at) <= literal(created_at), super()._after(columns, values))


class OrderEventRepository(SellerRepository[OrderEvent]):
    """Order events of the scope's seller, oldest first (an order's history reads forwards)."""

    model: ClassVar[type[OrderEvent]] = OrderEvent

    async def list_for_order(self, page: PageRequest, order_id: uuid.UUID) -> Page[OrderEvent]:
        """One page of the events of ``order_id``, oldest first.

        Served by ``ix_order_events_seller_id_order_id_created_at`` in each partition.
        """
        return await self.list(page, col(OrderEvent.order_id) == order_id)
