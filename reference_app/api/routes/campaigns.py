"""Campaigns, ad sets and ads: read them, and tie a campaign to the sellpage it sells.

The hierarchy is synced from the ad networks, so it is read-only here except for one
field: ``PATCH /campaigns/{campaign_id}`` sets or clears the campaign's sellpage, which
attributes its spend to that sellpage's revenue. Ad-account secrets never appear in any
response: only ids of ad accounts do.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from pixecom_core.campaigns import CampaignService
from pixecom_core.models.ads import Ad, AdEntityStatus, Adset, Campaign
from reference_app.api.dashboard_reads import DashboardReads
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep
from reference_app.api.schemas import PageOut

router = APIRouter(tags=["campaigns"])

#: Every authenticated route can answer these: no valid token, or the seller's quota spent.
_AUTH_ERRORS = (401, 429)


class CampaignOut(BaseModel):
    """A campaign on one of the seller's ad accounts."""

    id: uuid.UUID
    ad_account_id: uuid.UUID
    external_id: str = Field(description="The campaign's id on its ad network.")
    name: str
    status: AdEntityStatus
    sellpage_id: uuid.UUID | None = Field(
        description="The sellpage the campaign's spend is attributed to; null when none."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignOut:
        return cls.model_validate(campaign, from_attributes=True)


class CampaignLinkIn(BaseModel):
    """Which sellpage the campaign sends traffic to."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # null (untie) is valid too, but the OpenAPI document drops null example values.
            "examples": [{"sellpage_id": "0b5e7a4e-6f55-4f0e-9a49-6d1f1c2b8e21"}]
        },
    )

    sellpage_id: uuid.UUID | None = Field(
        description="One of the seller's sellpages, or null to untie the campaign."
    )


class AdsetOut(BaseModel):
    """An ad set within a campaign."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    external_id: str = Field(description="The ad set's id on its ad network.")
    name: str
    status: AdEntityStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, adset: Adset) -> AdsetOut:
        return cls.model_validate(adset, from_attributes=True)


class AdOut(BaseModel):
    """An ad within an ad set."""

    id: uuid.UUID
    adset_id: uuid.UUID
    creative_id: uuid.UUID | None
    ad_post_id: uuid.UUID | None
    external_id: str = Field(description="The ad's id on its ad network.")
    name: str
    status: AdEntityStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, ad: Ad) -> AdOut:
        return cls.model_validate(ad, from_attributes=True)


@router.get(
    "/campaigns",
    response_model=PageOut[CampaignOut],
    summary="List campaigns",
    responses=error_responses(400, *_AUTH_ERRORS, 422),
)
async def list_campaigns(
    seller: CurrentSeller,
    reads: DashboardReads,
    paging: Paging,
    status: Annotated[AdEntityStatus | None, Query(description="Only this status.")] = None,
    ad_account_id: Annotated[
        uuid.UUID | None, Query(description="Only campaigns of this ad account.")
    ] = None,
    sellpage_id: Annotated[
        uuid.UUID | None, Query(description="Only campaigns tied to this sellpage.")
    ] = None,
    linked: Annotated[
        bool | None,
        Query(description="true: only campaigns tied to a sellpage; false: only untied ones."),
    ] = None,
) -> Response:
    """The seller's campaigns, oldest first; 400 ``invalid_cursor`` for a cursor this API
    did not issue, 422 for unknown filter values or ``sellpage_id`` with ``linked=false``.

    A dashboard read (issue 18 item 1): cached per seller, made stale by a link, by the
    sync that names or discovers campaigns, and by any successful write of the seller."""

    async def compute() -> PageOut[CampaignOut]:
        page = await CampaignService(seller).list_campaigns(
            paging,
            status=status,
            ad_account_id=ad_account_id,
            sellpage_id=sellpage_id,
            linked=linked,
        )
        return PageOut[CampaignOut].of(page, CampaignOut.of)

    query = {
        "status": status,
        "ad_account_id": ad_account_id,
        "sellpage_id": sellpage_id,
        "linked": linked,
        "limit": paging.limit,
        "cursor": paging.cursor,
    }
    return await reads.answer("campaigns", query, compute)


@router.get(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    summary="Get a campaign",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_campaign(campaign_id: uuid.UUID, seller: CurrentSeller) -> CampaignOut:
    """One of the seller's campaigns; 404 for any other id."""
    return CampaignOut.of(await CampaignService(seller).get_campaign(campaign_id))


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    summary="Tie a campaign to a sellpage, or untie it",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def link_campaign(
    campaign_id: uuid.UUID, body: CampaignLinkIn, seller: CurrentSeller, resources: ResourcesDep
) -> CampaignOut:
    """Sets ``sellpage_id`` (null unties). 404 ``not_found`` when the campaign is not the
    seller's, 404 ``sellpage_not_found`` when the sellpage is not. Every day the campaign
    spent, however old, is recomputed (its spend moves between sellpages and the
    unattributed line); the stats show it within seconds."""
    before = await CampaignService(seller).get_campaign(campaign_id)
    campaign = await CampaignService(seller).link_campaign(campaign_id, body.sellpage_id)
    if before.sellpage_id != campaign.sellpage_id:
        await resources.queue_reaggregation(seller.seller_id)
    return CampaignOut.of(campaign)


@router.get(
    "/adsets",
    response_model=PageOut[AdsetOut],
    summary="List ad sets",
    responses=error_responses(400, *_AUTH_ERRORS, 422),
)
async def list_adsets(
    seller: CurrentSeller,
    paging: Paging,
    campaign_id: Annotated[
        uuid.UUID | None, Query(description="Only ad sets of this campaign.")
    ] = None,
    status: Annotated[AdEntityStatus | None, Query(description="Only this status.")] = None,
) -> PageOut[AdsetOut]:
    """The seller's ad sets, oldest first."""
    page = await CampaignService(seller).list_adsets(paging, campaign_id=campaign_id, status=status)
    return PageOut[AdsetOut].of(page, AdsetOut.of)


@router.get(
    "/adsets/{adset_id}",
    response_model=AdsetOut,
    summary="Get an ad set",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_adset(adset_id: uuid.UUID, seller: CurrentSeller) -> AdsetOut:
    """One of the seller's ad sets; 404 for any other id."""
    return AdsetOut.of(await CampaignService(seller).get_adset(adset_id))


@router.get(
    "/ads",
    response_model=PageOut[AdOut],
    summary="List ads",
    responses=error_responses(400, *_AUTH_ERRORS, 422),
)
async def list_ads(
    seller: CurrentSeller,
    paging: Paging,
    adset_id: Annotated[uuid.UUID | None, Query(description="Only ads of this ad set.")] = None,
    status: Annotated[AdEntityStatus | None, Query(description="Only this status.")] = None,
) -> PageOut[AdOut]:
    """The seller's ads, oldest first."""
    page = await CampaignService(seller).list_ads(paging, adset_id=adset_id, status=status)
    return PageOut[AdOut].of(page, AdOut.of)


@router.get(
    "/ads/{ad_id}",
    response_model=AdOut,
    summary="Get an ad",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_ad(ad_id: uuid.UUID, seller: CurrentSeller) -> AdOut:
    """One of the seller's ads; 404 for any other id."""
    return AdOut.of(await CampaignService(seller).get_ad(ad_id))
