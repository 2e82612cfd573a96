"""One campaign's figures day by day, for the dashboard's campaign view."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from pixecom_core.stats.campaign_days import CampaignDay, CampaignDayReports, CampaignFigures
from pixecom_core.tenancy import SellerContext
from reference_app.api.dashboard_reads import DashboardReads
from reference_app.api.dependencies import CurrentSeller
from reference_app.api.errors import error_responses
from reference_app.api.schemas import IsoDate

router = APIRouter(prefix="/stats", tags=["stats"])


class CampaignFiguresOut(BaseModel):
    """Spend (minor units of the ad account's currency) and delivery counts."""

    spend_minor: int
    impressions: int
    clicks: int
    purchases: int

    @classmethod
    def of(cls, figures: CampaignFigures) -> CampaignFiguresOut:
        return cls(
            spend_minor=figures.spend_minor,
            impressions=figures.impressions,
            clicks=figures.clicks,
            purchases=figures.purchases,
        )


class CampaignDayOut(CampaignFiguresOut):
    day: date

    @classmethod
    def of_day(cls, day: CampaignDay) -> CampaignDayOut:
        return cls(day=day.day, **CampaignFiguresOut.of(day).model_dump())


class CampaignDaysOut(BaseModel):
    """A campaign's days with figures in a range (at most 366 days), and their totals."""

    campaign_id: uuid.UUID
    name: str
    network: str
    external_id: str
    currency: str
    since: date
    until: date
    days: list[CampaignDayOut]
    totals: CampaignFiguresOut


@router.get(
    "/campaigns/{campaign_id}/days",
    response_model=CampaignDaysOut,
    summary="A campaign's figures per day over a range",
    responses=error_responses(401, 404, 422, 429),
)
async def campaign_days(
    campaign_id: uuid.UUID,
    seller: CurrentSeller,
    reads: DashboardReads,
    since: Annotated[IsoDate, Query(description="First day, inclusive (YYYY-MM-DD).")],
    until: Annotated[IsoDate, Query(description="Last day, inclusive (YYYY-MM-DD).")],
) -> Response:
    """Days of the range on which the campaign has figures; 404 for a campaign that is
    not the seller's, 422 for an empty, reversed or too long range."""
    query = {"campaign_id": campaign_id, "since": since, "until": until}
    return await reads.answer(
        "stats/campaign-days", query, lambda: _campaign_days(seller, campaign_id, since, until)
    )


async def _campaign_days(
    seller: SellerContext, campaign_id: uuid.UUID, since: date, until: date
) -> CampaignDaysOut:
    report = await CampaignDayReports(seller).days(campaign_id, since, until)
    return CampaignDaysOut(
        campaign_id=report.campaign_id,
        name=report.name,
        network=report.network,
        external_id=report.external_id,
        currency=report.currency,
        since=report.since,
        until=report.until,
        days=[CampaignDayOut.of_day(d) for d in report.days],
        totals=CampaignFiguresOut.of(report.totals),
    )
