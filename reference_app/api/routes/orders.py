"""Orders: filtered, newest-first lists, one order with its money, its history, refunds.

Orders are written by checkout and payment processing; sellers read them here, with the
attribution checkout kept from the landing URL (issue 16), and ask for refunds
(``POST /orders/{id}/refunds``, issue 15).
``created_from``/``created_to`` select a half-open range ``[from, to)`` on the order's
creation time, which is also the partition key, so a range reads only its months.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from pixecom_core.models.orders import Order, OrderEvent, OrderEventType, OrderStatus
from pixecom_core.models.payments import RefundStatus
from pixecom_core.orders import OrderService
from pixecom_core.orders.refunds import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_REASON_LENGTH,
    RefundView,
)
from pixecom_core.orders.services import OrderDetail, OrderMoney
from pixecom_core.providers.values import MAX_AMOUNT_MINOR
from reference_app.api.dashboard_reads import DashboardReads
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep
from reference_app.api.schemas import IsoDateTime, PageOut

router = APIRouter(tags=["orders"])

#: Every authenticated route can answer these: no valid token, or the seller's quota spent.
_AUTH_ERRORS = (401, 429)


class OrderAttributionOut(BaseModel):
    """Where the shopper came from, as checkout kept it from the landing URL (or the
    storefront's own attribution); ``null`` where nothing was kept."""

    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_content: str | None
    utm_term: str | None
    fbclid: str | None = Field(description="The click id the ad network appended.")
    campaign_ref: str | None = Field(
        description="The ad network's campaign id (the landing URL's `campaign_id`)."
    )
    adset_ref: str | None = Field(
        description="The ad network's ad set id (the landing URL's `adset_id`)."
    )
    ad_ref: str | None = Field(description="The ad network's ad id (the landing URL's `ad_id`).")


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
    attribution: OrderAttributionOut = Field(description="Where the shopper came from.")

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        # The attribution columns are flat on the row and nested here.
        return cls.model_validate(
            {
                **order.model_dump(),
                "attribution": OrderAttributionOut.model_validate(order, from_attributes=True),
            }
        )


class OrderMoneyOut(BaseModel):
    """The order's money in one currency, from the payment ledger (minor units)."""

    currency: str = Field(description="ISO 4217.")
    captured_minor: int
    refunded_minor: int = Field(description="Refunds the gateway completed.")
    chargeback_minor: int = Field(description="Charged back (disputes lost or open).")
    chargeback_reversed_minor: int = Field(description="Chargebacks won back.")
    net_minor: int = Field(description="What the seller keeps: captured − refunded − chargebacks.")
    open_refunds_minor: int = Field(description="In refunds requested or pending, not yet done.")
    refundable_minor: int = Field(description="What can still be refunded.")

    @classmethod
    def of(cls, money: OrderMoney) -> OrderMoneyOut:
        state = money.state
        return cls(
            currency=state.currency,
            captured_minor=state.captured_minor,
            refunded_minor=state.refunded_minor,
            chargeback_minor=state.chargeback_minor,
            chargeback_reversed_minor=state.chargeback_reversed_minor,
            net_minor=state.net_minor,
            open_refunds_minor=money.open_refunds_minor,
            refundable_minor=money.refundable_minor,
        )


class RefundOut(BaseModel):
    """A refund asked for through PixEcom. ``status``: ``REQUESTED`` (the gateway's answer
    has not come; it is asked again), ``PENDING`` (accepted, money not back yet),
    ``SUCCEEDED`` (in the ledger), ``FAILED`` (nothing refunded; see ``failure_reason``)."""

    id: uuid.UUID
    order_id: uuid.UUID
    gateway: str
    amount_minor: int
    currency: str = Field(description="ISO 4217.")
    reason: str | None
    status: RefundStatus
    gateway_reference: str | None = Field(description="The gateway's refund id, once known.")
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, refund: RefundView) -> RefundOut:
        return cls.model_validate(refund, from_attributes=True)


class OrderDetailOut(OrderOut):
    """One order with its money per currency and its refunds."""

    money: list[OrderMoneyOut] = Field(description="Per currency; empty before any payment.")
    refunds: list[RefundOut] = Field(description="Refunds asked for here, oldest first.")

    @classmethod
    def of_detail(cls, detail: OrderDetail) -> OrderDetailOut:
        return cls(
            **OrderOut.of(detail.order).model_dump(),
            money=[OrderMoneyOut.of(money) for money in detail.money],
            refunds=[RefundOut.of(refund) for refund in detail.refunds],
        )


class RefundIn(BaseModel):
    """A refund of (part of) the order's captured payment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount_minor": 1500, "reason": "arrived damaged"}]},
    )

    amount_minor: int = Field(gt=0, le=MAX_AMOUNT_MINOR, description="Minor units to refund.")
    reason: str | None = Field(
        default=None, max_length=MAX_REASON_LENGTH, description="Passed to the gateway."
    )


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
    reads: DashboardReads,
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
) -> Response:
    """The seller's orders, newest first. 422 for an unknown status, a date-time without
    an offset or ``created_from`` not before ``created_to``; 400 ``invalid_cursor``."""

    async def compute() -> PageOut[OrderOut]:
        page = await OrderService(seller).list_orders(
            paging,
            statuses=status or (),
            created_from=created_from,
            created_to=created_to,
            sellpage_id=sellpage_id,
        )
        return PageOut[OrderOut].of(page, OrderOut.of)

    query = {
        "status": list(status or ()),
        "created_from": created_from,
        "created_to": created_to,
        "sellpage_id": sellpage_id,
        "limit": paging.limit,
        "cursor": paging.cursor,
    }
    return await reads.answer("orders", query, compute)


@router.get(
    "/orders/{order_id}",
    response_model=OrderDetailOut,
    summary="Get an order with its money and refunds",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_order(order_id: uuid.UUID, seller: CurrentSeller) -> OrderDetailOut:
    """One of the seller's orders, its money per currency (captured, refunded, charged
    back, net, still refundable) and its refunds; 404 for any other id."""
    return OrderDetailOut.of_detail(await OrderService(seller).get_order_detail(order_id))


@router.post(
    "/orders/{order_id}/refunds",
    response_model=RefundOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Refund (part of) an order",
    responses=error_responses(*_AUTH_ERRORS, 404, 409, 422, 503),
)
async def refund_order(
    order_id: uuid.UUID,
    body: RefundIn,
    seller: CurrentSeller,
    resources: ResourcesDep,
    idempotency_key: Annotated[
        str,
        Header(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
            description="Your key for this refund: a retry with the same key and body is "
            "the same refund, never a second one.",
        ),
    ],
) -> RefundOut:
    """Ask the order's gateway to return ``amount_minor`` to the buyer; 202 with where the
    refund stands: ``SUCCEEDED`` or ``PENDING`` as the gateway answered, ``FAILED`` when
    it refused (``failure_reason`` says why; nothing was refunded), ``REQUESTED`` when it
    did not answer in time (the amount stays reserved and it is asked again).

    409 ``refund_exceeds_refundable`` for more than is left (refunds still open count),
    ``nothing_to_refund`` before a capture, ``idempotency_key_reused`` for a key already
    used with another body; 404 for another seller's order.
    """
    refund = await resources.refunds.request(
        seller.seller_id,
        order_id,
        amount_minor=body.amount_minor,
        reason=body.reason,
        idempotency_key=idempotency_key,
        requested_by=seller.user_id,
    )
    return RefundOut.of(refund)


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
