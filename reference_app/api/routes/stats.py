"""Seller stats: daily overview with totals, per sellpage, per campaign/ad set/ad, sync status.

Numbers come from the aggregated tables the worker keeps current; money is integer minor
units of the seller's reporting currency (per-entity spend: of the ad account's currency,
named in each item); ROAS is null when there was no spend.

Every route here only reads, and tolerates the lag of a streaming replica, so they read
from ``read_database_url`` when it is set (SCALE-6: separate read and
write load), under the same row-level security as on the primary.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pixecom_core.models.ads import AdEntityStatus
from pixecom_core.providers import EntityLevel
from pixecom_core.stats.reports import (
    AccountSyncStatus,
    EntityFigures,
    Figures,
    SellpageFigures,
    StatsReports,
)
from reference_app.api.dependencies import Paging, ReportingSeller
from reference_app.api.errors import error_responses
from reference_app.api.schemas import IsoDate, PageOut

router = APIRouter(prefix="/stats", tags=["stats"])

Since = Annotated[IsoDate, Query(description="First day, inclusive (YYYY-MM-DD).")]
Until = Annotated[IsoDate, Query(description="Last day, inclusive (YYYY-MM-DD).")]


class FiguresOut(BaseModel):
    """Spend and revenue in minor units of the reporting currency."""

    spend_minor: int
    gross_revenue_minor: int
    refunds_minor: int
    chargebacks_minor: int
    net_revenue_minor: int = Field(description="gross − refunds − chargebacks")
    orders: int
    roas: Decimal | None = Field(description="net revenue / spend; null when spend is 0")

    @classmethod
    def of(cls, figures: Figures) -> FiguresOut:
        return cls(
            spend_minor=figures.spend_minor,
            gross_revenue_minor=figures.gross_revenue_minor,
            refunds_minor=figures.refunds_minor,
            chargebacks_minor=figures.chargebacks_minor,
            net_revenue_minor=figures.net_revenue_minor,
            orders=figures.orders,
            roas=figures.roas,
        )


class DayOut(FiguresOut):
    day: date


class OverviewOut(BaseModel):
    """A seller's days in a range, with totals."""

    reporting_currency: str
    since: date
    until: date
    days: list[DayOut]
    totals: FiguresOut
    pending_days: int = Field(description="Days waiting for re-aggregation (late refunds …).")


class SellpageOut(FiguresOut):
    sellpage_id: uuid.UUID
    slug: str
    title: str


class EntityOut(BaseModel):
    """A campaign, ad set or ad over the range, in its ad account's currency."""

    network: str
    level: EntityLevel
    entity_id: str
    name: str | None
    status: AdEntityStatus | None = Field(
        default=None,
        description="As the network last named it; null while the entity is not synced yet.",
    )
    currency: str
    spend_minor: int
    impressions: int
    clicks: int
    purchases: int


class SyncStatusOut(BaseModel):
    """An ad account's sync state."""

    ad_account_id: uuid.UUID
    network: str
    external_id: str
    name: str
    last_synced_at: datetime | None
    lag_seconds: int | None = Field(description="Seconds since the last successful sync.")
    last_sync_error: str | None
    sync_failures: int
    throttled_until: datetime | None
    needs_reconnect: bool


@router.get(
    "/overview",
    response_model=OverviewOut,
    summary="Daily spend, revenue and ROAS with totals",
    responses=error_responses(422),
)
async def overview(seller: ReportingSeller, since: Since, until: Until) -> OverviewOut:
    """Days of the range that have figures, and the range's totals."""
    report = await StatsReports(seller).overview(since, until)
    return OverviewOut(
        reporting_currency=report.reporting_currency,
        since=report.since,
        until=report.until,
        days=[DayOut(day=d.day, **FiguresOut.of(d.figures).model_dump()) for d in report.days],
        totals=FiguresOut.of(report.totals),
        pending_days=report.pending_days,
    )


@router.get(
    "/sellpages",
    response_model=PageOut[SellpageOut],
    summary="Each sellpage's figures over a range",
    responses=error_responses(422),
)
async def sellpages(
    seller: ReportingSeller, since: Since, until: Until, paging: Paging
) -> PageOut[SellpageOut]:
    """Every sellpage, zeros included, by id."""
    page = await StatsReports(seller).sellpages(since, until, paging)

    def convert(item: SellpageFigures) -> SellpageOut:
        return SellpageOut(
            sellpage_id=item.sellpage_id,
            slug=item.slug,
            title=item.title,
            **FiguresOut.of(item.figures).model_dump(),
        )

    return PageOut[SellpageOut].of(page, convert)


@router.get(
    "/entities",
    response_model=PageOut[EntityOut],
    summary="Each campaign, ad set or ad over a range",
    responses=error_responses(422),
)
async def entities(
    seller: ReportingSeller,
    since: Since,
    until: Until,
    paging: Paging,
    level: Annotated[EntityLevel, Query()] = EntityLevel.CAMPAIGN,
) -> PageOut[EntityOut]:
    """Entities with numbers in the range, by network and id."""
    page = await StatsReports(seller).entities(level, since, until, paging)

    def convert(item: EntityFigures) -> EntityOut:
        return EntityOut.model_validate(item, from_attributes=True)

    return PageOut[EntityOut].of(page, convert)


@router.get(
    "/sync-status",
    response_model=PageOut[SyncStatusOut],
    summary="Sync state of each ad account",
)
async def sync_status(seller: ReportingSeller, paging: Paging) -> PageOut[SyncStatusOut]:
    """Last success, lag, last error, failures in a row, throttling, reconnection."""
    page = await StatsReports(seller).sync_status(paging)

    def convert(item: AccountSyncStatus) -> SyncStatusOut:
        return SyncStatusOut.model_validate(item, from_attributes=True)

    return PageOut[SyncStatusOut].of(page, convert)
