"""Tracking records of many orders in one request, for order lists.

``GET /orders/{order_id}/tracking`` answers one order; an order list needs the tracking
state of a whole page of orders, so this reads them in one bounded, paginated query
instead of one request per row (SCALE-4, SEC-1: fewer requests per page view).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from pixecom_core.tracking.records import MAX_ORDER_IDS, TrackingRecordReports
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.routes.tracking import TrackingOut
from reference_app.api.schemas import PageOut

router = APIRouter(tags=["tracking"])


@router.get(
    "/tracking",
    response_model=PageOut[TrackingOut],
    summary="Tracking records of the given orders",
    responses=error_responses(400, 401, 422, 429),
)
async def list_tracking(
    seller: CurrentSeller,
    paging: Paging,
    order_id: Annotated[
        list[uuid.UUID] | None,
        Query(
            max_length=MAX_ORDER_IDS,
            description="Only these orders' records; repeat the parameter for several "
            f"(at most {MAX_ORDER_IDS}). All of the seller's records when absent.",
        ),
    ] = None,
) -> PageOut[TrackingOut]:
    """Records oldest first; another seller's order id matches nothing."""
    page = await TrackingRecordReports(seller).for_orders(paging, order_id or ())
    return PageOut[TrackingOut].of(
        page, lambda record: TrackingOut.model_validate(record, from_attributes=True)
    )
