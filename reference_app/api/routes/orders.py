"""Orders: filtered, newest-first lists, one order, and an order's history (read-only).

Orders are written by checkout and payment processing; sellers read them here.
``created_from``/``created_to`` select a half-open range ``[from, to)`` on the order's
creation time, which is also the partition key, so a range reads only its months.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pixecom_core.models.orders import Order, OrderEvent, OrderEventType, OrderStatus
from pixecom_core.orders import OrderService
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.schemas import IsoDateTime, PageOut

router = APIRouter(tags=["orders"])

#: Every authenticated route can answer these: no valid token, or the seller's quota spent.
_AUTH_ERRORS = (401, 429)


class OrderOut(BaseModel):
    """A customer's order. Amounts are minor units of ``currency``."""

    id: uuid.UUID
    status: OrderStatus
    sellpage_id: uuid.UUID | None = Field(description="The sellpage the order is attributed to.")
    attributed_at: datetime | None = Field(description="When the sellpage was attributed.")
    currency: str = Field(description="ISO 4217.")
    subtotal_minor: int
    total_minor: int
    customer_email: str
    payment_gateway: str | None
    payment_id: str | None = Field(description="The gateway's payment id, for display.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls.model_validate(order, from_attributes=True)


class OrderEventOut(BaseModel):
    """One entry in an order's history."""

    id: uuid.UUID
    order_id: uuid.UUID
    event_type: OrderEventType
    from_status: OrderStatus | None
    to_status: OrderStatus | None
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: OrderEvent) -> OrderEventOut:
        return cls.model_validate(event, from_attributes=True)


@router.get(
    "/orders",
    response_model=PageOut[OrderOut],
    summary="List orders, newest first",
    responses=error_responses(400, *_AUTH_ERRORS, 422),
)
async def list_orders(
    seller: CurrentSeller,
    paging: Paging,
    status: Annotated[
        list[OrderStatus] | None,
        Query(description="Only these statuses; repeat the parameter for several."),
    ] = None,
    created_from: Annotated[
        IsoDateTime | None,
        Query(description="Created at or after (inclusive); ISO 8601 with offset, e.g. `Z`."),
    ] = None,
    created_to: Annotated[
        IsoDateTime | None,
        Query(description="Created before (exclusive); ISO 8601 with offset, e.g. `Z`."),
    ] = None,
    sellpage_id: Annotated[
        uuid.UUID | None, Query(description="Only orders attributed to this sellpage.")
    ] = None,
) -> PageOut[OrderOut]:
    """The seller's orders, newest first. 422 for an unknown status, a date-time without
    an offset or ``created_from`` not before ``created_to``; 400 ``invalid_cursor``."""
    page = await OrderService(seller).list_orders(
        paging,
        statuses=status or (),
        created_from=created_from,
        created_to=created_to,
        sellpage_id=sellpage_id,
    )
    return PageOut[OrderOut].of(page, OrderOut.of)


@router.get(
    "/orders/{order_id}",
    response_model=OrderOut,
    summary="Get an order",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_order(order_id: uuid.UUID, seller: CurrentSeller) -> OrderOut:
    """One of the seller's orders; 404 for any other id."""
    return OrderOut.of(await OrderService(seller).get_order(order_id))


@router.get(
    "/orders/{order_id}/events",
    response_model=PageOut[OrderEventOut],
    summary="List an order's history, oldest first",
    responses=error_responses(400, *_AUTH_ERRORS, 404, 422),
)
async def list_order_events(
    order_id: uuid.UUID, seller: CurrentSeller, paging: Paging
) -> PageOut[OrderEventOut]:
    """The events of one of the seller's orders, oldest first; 404 for any other id."""
    page = await OrderService(seller).list_order_events(order_id, paging)
    return PageOut[OrderEventOut].of(page, OrderEventOut.of)
