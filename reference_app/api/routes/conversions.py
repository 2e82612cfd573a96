"""Conversion destinations: where the seller's purchases are reported to ad networks.

Issue 17 item 4. A seller gives, per ad network, the id of the object that receives
events (Meta: the pixel or dataset id) and an access token for sending them; the token is
stored encrypted and never shown again. From then on every order that becomes PAID is
reported once to that network's conversions API, after the payment is recorded, with the
order id as event id (so the network de-duplicates it against the browser pixel's event).
Failures are retried; one that keeps failing shows in ``GET /problems``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field, SecretStr

from pixecom_core.catalog import StorefrontCache
from pixecom_core.conversions import ConversionDestinations, DestinationView
from pixecom_core.errors import NotFoundError
from pixecom_core.security.secret_box import SecretBox
from reference_app.api.dependencies import CurrentSeller
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(prefix="/conversions", tags=["conversions"])

Network = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_]*$", max_length=64, description="The ad network.")
]


class DestinationIn(BaseModel):
    destination_id: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="The network's receiving object (e.g. a pixel or dataset id).",
    )
    access_token: SecretStr = Field(
        min_length=1, max_length=2048, description="Stored encrypted; never shown again."
    )
    test_event_code: str | None = Field(
        default=None,
        max_length=64,
        description="The network's code routing events to its test view, while testing.",
    )


class DestinationOut(BaseModel):
    network: str
    destination_id: str
    test_event_code: str | None
    updated_at: datetime

    @classmethod
    def of(cls, view: DestinationView) -> DestinationOut:
        return cls.model_validate(view, from_attributes=True)


def _service(seller: CurrentSeller, resources: ResourcesDep) -> ConversionDestinations:
    return ConversionDestinations(
        seller,
        resources.providers,
        SecretBox(resources.settings.token_encryption_keys),
    )


@router.get(
    "/destinations",
    response_model=list[DestinationOut],
    summary="The seller's conversion destinations",
    responses=error_responses(401),
)
async def list_destinations(seller: CurrentSeller, resources: ResourcesDep) -> list[DestinationOut]:
    """One per network, by network; tokens are never shown."""
    return [DestinationOut.of(view) for view in await _service(seller, resources).list()]


@router.put(
    "/destinations/{network}",
    response_model=DestinationOut,
    summary="Report purchases to an ad network's conversions API",
    responses=error_responses(401, 422),
)
async def set_destination(
    network: Network, body: DestinationIn, seller: CurrentSeller, resources: ResourcesDep
) -> DestinationOut:
    """Sets (or replaces) the network's destination and token. 422 ``unknown_network``
    when no installed plugin is that network, ``conversions_not_supported`` when its
    plugin cannot receive events (which installed networks can is the deployment's)."""
    view = await _service(seller, resources).set(
        network,
        body.destination_id,
        body.access_token.get_secret_value(),
        test_event_code=body.test_event_code,
    )
    # The sellpages show the network's pixel for this destination: re-render them.
    await StorefrontCache(resources.redis, resources.settings).catalog_changed(seller.seller_id, ())
    return DestinationOut.of(view)


@router.delete(
    "/destinations/{network}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop reporting purchases to an ad network",
    responses=error_responses(401, 404),
)
async def remove_destination(
    network: Network, seller: CurrentSeller, resources: ResourcesDep
) -> Response:
    """Removes it; 404 when none was set. Events not sent yet are dropped."""
    if not await _service(seller, resources).remove(network):
        raise NotFoundError("no conversion destination for that network")
    await StorefrontCache(resources.redis, resources.settings).catalog_changed(seller.seller_id, ())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
