"""Tracking records of many orders at once, for order lists.

An order list shows each order's tracking state; asking ``/orders/{id}/tracking`` once
per row would be one request (and one quota hit) per order. This reads the records of
a page of orders in one bounded, cursor-paginated query (SCALE-4) through a seller
repository, so the seller filter and row-level security both apply.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import ClassVar

from sqlmodel import col

from pixecom_core.errors import InvalidRequestError
from pixecom_core.models.tracking import TrackingRecord
from pixecom_core.tenancy import Page, PageRequest, SellerContext, SellerRepository

#: Most order ids one request may name (a page of orders at the largest page size).
MAX_ORDER_IDS = 200


class TrackingRecordRepository(SellerRepository[TrackingRecord]):
    """Tracking records of the scope's seller, oldest first (``created_at, id``)."""

    model: ClassVar[type[TrackingRecord]] = TrackingRecord

    async def list_for_orders(
        self, page: PageRequest, order_ids: Sequence[uuid.UUID]
    ) -> Page[TrackingRecord]:
        """One page of the records of ``order_ids`` (every order's when empty)."""
        if not order_ids:
            return await self.list(page)
        return await self.list(page, col(TrackingRecord.order_id).in_(list(order_ids)))


class TrackingRecordReports:
    """Read one seller's tracking records (read-only)."""

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    async def for_orders(
        self, page: PageRequest, order_ids: Sequence[uuid.UUID] = ()
    ) -> Page[TrackingRecord]:
        """The records of the given orders (all the seller's records when none given).

        An id of another seller's order simply matches nothing.

        :raises InvalidRequestError: more than :data:`MAX_ORDER_IDS` ids.
        """
        unique = list(dict.fromkeys(order_ids))
        if len(unique) > MAX_ORDER_IDS:
            raise InvalidRequestError(
                f"name at most {MAX_ORDER_IDS} orders per request", code="too_many_orders"
            )
        async with self._context.scope() as scope:
            return await TrackingRecordRepository(scope).list_for_orders(page, unique)
