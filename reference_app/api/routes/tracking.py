"""Order tracking: add a tracking number, read an order's parcels, receive tracker pushes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from pixecom_core.providers import TrackingStatus
from pixecom_core.tracking import TrackingRecordView
from reference_app.api.dependencies import CurrentSeller
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(tags=["tracking"])


class TrackingIn(BaseModel):
    """A carrier's tracking number for an order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"carrier": "usps", "tracking_number": "9400100000000"}]}
    )

    carrier: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)
    tracking_number: str = Field(pattern=r"^[A-Za-z0-9-]{4,64}$")


class TrackingOut(BaseModel):
    """A parcel of an order and its last known status."""

    id: uuid.UUID
    order_id: uuid.UUID
    carrier: str
    tracking_number: str
    status: TrackingStatus
    last_event_at: datetime | None
    last_checked_at: datetime | None

    @classmethod
    def of(cls, record: TrackingRecordView) -> TrackingOut:
        return cls.model_validate(record, from_attributes=True)


class PushAck(BaseModel):
    """The push was verified; ``updated`` parcels changed."""

    updated: int


@router.post(
    "/orders/{order_id}/tracking",
    status_code=status.HTTP_201_CREATED,
    response_model=TrackingOut,
    summary="Add a tracking number to an order",
    responses=error_responses(404, 409, 422),
)
async def add_tracking(
    order_id: uuid.UUID, body: TrackingIn, seller: CurrentSeller, resources: ResourcesDep
) -> TrackingOut:
    """Stored at once and registered with the tracker (or by the next refresh)."""
    record = await resources.tracking.add(
        seller, order_id, carrier=body.carrier, number=body.tracking_number
    )
    return TrackingOut.of(record)


@router.get(
    "/orders/{order_id}/tracking",
    response_model=list[TrackingOut],
    summary="An order's parcels",
    responses=error_responses(404, 422),
)
async def order_tracking(
    order_id: uuid.UUID, seller: CurrentSeller, resources: ResourcesDep
) -> list[TrackingOut]:
    """Every tracking number of the order (a handful at most) with its status."""
    return [TrackingOut.of(r) for r in await resources.tracking.for_order(seller, order_id)]


@router.post(
    "/webhooks/tracking/{tracker}",
    response_model=PushAck,
    summary="Receive a tracker's push",
    tags=["webhooks"],
    responses=error_responses(400, 404, 413, 422),
)
async def tracking_push(
    tracker: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=64)],
    request: Request,
    resources: ResourcesDep,
) -> PushAck:
    """400 for a signature the tracker plugin refuses (nothing written); a repeated push
    answers 200 and changes nothing."""
    body = await request.body()
    updated = await resources.tracking.receive_push(
        tracker, body=body, headers=dict(request.headers)
    )
    return PushAck(updated=updated)
