"""Seller stats: daily overview with totals, per sellpage, per campaign/ad set/ad, sync status.

Numbers come from the aggregated tables the worker keeps current; money is integer minor
units of the seller's reporting currency (per-entity ``spend_minor``: of the ad account's
currency, named in each item, beside ``spend_reporting_minor``); ROAS is null when there
was no spend. Totals count all spend of every connected account and all revenue; what no
sellpage or campaign can claim is reported as ``unattributed`` (issue 16).

Every route here only reads, and tolerates the lag of a streaming replica, so they read
from ``read_database_url`` when it is set (SCALE-6: separate read and
write load), under the same row-level security as on the primary.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from pixecom_core.models.ads import AdEntityStatus
from pixecom_core.providers import EntityLevel
from pixecom_core.stats.reports import (
    AccountSyncStatus,
    EntityFigures,
    Figures,
    SellpageFigures,
    StatsReports,
    Unattributed,
)
from pixecom_core.tenancy import PageRequest, SellerContext
from reference_app.api.dashboard_reads import DashboardReads
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
    fx_pending_currencies: list[str] = Field(
        default_factory=list,
        description="Currencies whose rate of the day is not published yet: the day is "
        "converted at the latest earlier rate until it is, then recomputed.",
    )
    needs_reaggregation: bool = Field(
        default=False, description="Money moved after the day was computed; recomputing."
    )


class UnattributedOut(BaseModel):
    """Spend and revenue no sellpage (or campaign) can claim, in the reporting currency."""

    spend_minor: int = Field(description="Spend of campaigns linked to no sellpage.")
    no_sellpage_net_revenue_minor: int = Field(
        description="Net revenue of orders that name no sellpage."
    )
    no_sellpage_orders: int
    no_campaign_net_revenue_minor: int = Field(
        description="Net revenue of orders whose landing URL named no known campaign; "
        "they count at sellpage level only."
    )
    no_campaign_orders: int

    @classmethod
    def of(cls, unattributed: Unattributed) -> UnattributedOut:
        return cls.model_validate(unattributed, from_attributes=True)


class OverviewOut(BaseModel):
    """A seller's days in a range, with totals over all spend and all revenue."""

    reporting_currency: str
    since: date
    until: date
    days: list[DayOut]
    totals: FiguresOut = Field(
        description="All spend of every connected account and all net revenue; "
        "roas = all net revenue / all spend."
    )
    unattributed: UnattributedOut
    pending_days: int = Field(
        description="Days being recomputed (late refunds, links, rates) or waiting for a rate."
    )


class SellpageOut(FiguresOut):
    sellpage_id: uuid.UUID
    slug: str
    title: str


class SellpagesOut(PageOut[SellpageOut]):
    """A page of sellpages, and the range's spend and revenue no sellpage can claim."""

    unattributed: UnattributedOut


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
    currency: str = Field(description="The ad account's currency.")
    spend_minor: int = Field(description="Spend in the ad account's currency.")
    impressions: int
    clicks: int
    purchases: int = Field(description="Purchases as the network counted them.")
    reporting_currency: str
    spend_reporting_minor: int = Field(
        description="Spend converted at each day's rate; summed over campaigns it is the "
        "overview's spend."
    )
    gross_revenue_minor: int = Field(
        description="Revenue of the orders whose landing URL named this entity."
    )
    refunds_minor: int
    chargebacks_minor: int
    net_revenue_minor: int
    orders: int
    roas: Decimal | None = Field(description="net revenue / reporting spend; null without spend")

    @classmethod
    def of(cls, item: EntityFigures) -> EntityOut:
        figures = item.figures
        return cls(
            network=item.network,
            level=item.level,
            entity_id=item.entity_id,
            name=item.name,
            status=AdEntityStatus(item.status) if item.status else None,
            currency=item.currency,
            spend_minor=item.spend_minor,
            impressions=item.impressions,
            clicks=item.clicks,
            purchases=item.purchases,
            reporting_currency=item.reporting_currency,
            spend_reporting_minor=figures.spend_minor,
            gross_revenue_minor=figures.gross_revenue_minor,
            refunds_minor=figures.refunds_minor,
            chargebacks_minor=figures.chargebacks_minor,
            net_revenue_minor=figures.net_revenue_minor,
            orders=figures.orders,
            roas=figures.roas,
        )


class EntitiesOut(PageOut[EntityOut]):
    """A page of entities, and the range's revenue no campaign can claim."""

    unattributed: UnattributedOut


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
async def overview(
    seller: ReportingSeller, reads: DashboardReads, since: Since, until: Until
) -> Response:
    """Days of the range that have figures, and the range's totals."""
    return await reads.answer(
        "stats/overview", {"since": since, "until": until}, lambda: _overview(seller, since, until)
    )


async def _overview(seller: SellerContext, since: date, until: date) -> OverviewOut:
    report = await StatsReports(seller).overview(since, until)
    return OverviewOut(
        reporting_currency=report.reporting_currency,
        since=report.since,
        until=report.until,
        days=[
            DayOut(
                day=d.day,
                fx_pending_currencies=list(d.fx_pending_currencies),
                needs_reaggregation=d.needs_reaggregation,
                **FiguresOut.of(d.figures).model_dump(),
            )
            for d in report.days
        ],
        totals=FiguresOut.of(report.totals),
        unattributed=UnattributedOut.of(report.unattributed),
        pending_days=report.pending_days,
    )


@router.get(
    "/sellpages",
    response_model=SellpagesOut,
    summary="Each sellpage's figures over a range",
    responses=error_responses(422),
)
async def sellpages(
    seller: ReportingSeller, reads: DashboardReads, since: Since, until: Until, paging: Paging
) -> Response:
    """Every sellpage, zeros included, by id; ``unattributed`` is the range's spend of
    campaigns linked to no sellpage and the revenue of orders naming none."""
    query = {"since": since, "until": until, "limit": paging.limit, "cursor": paging.cursor}
    return await reads.answer(
        "stats/sellpages", query, lambda: _sellpages(seller, since, until, paging)
    )


async def _sellpages(
    seller: SellerContext, since: date, until: date, paging: PageRequest
) -> SellpagesOut:
    reports = StatsReports(seller)
    page = await reports.sellpages(since, until, paging)
    unattributed = await reports.unattributed(since, until)

    def convert(item: SellpageFigures) -> SellpageOut:
        return SellpageOut(
            sellpage_id=item.sellpage_id,
            slug=item.slug,
            title=item.title,
            **FiguresOut.of(item.figures).model_dump(),
        )

    return SellpagesOut(
        **PageOut[SellpageOut].of(page, convert).model_dump(),
        unattributed=UnattributedOut.of(unattributed),
    )


@router.get(
    "/entities",
    response_model=EntitiesOut,
    summary="Each campaign, ad set or ad over a range",
    responses=error_responses(422),
)
async def entities(
    seller: ReportingSeller,
    reads: DashboardReads,
    since: Since,
    until: Until,
    paging: Paging,
    level: Annotated[EntityLevel, Query()] = EntityLevel.CAMPAIGN,
) -> Response:
    """Entities with numbers in the range, by network and id: spend, and the net revenue,
    orders and ROAS of the orders whose landing URL named them. ``unattributed`` holds the
    range's revenue of orders that named no known campaign."""
    query = {
        "since": since,
        "until": until,
        "level": level,
        "limit": paging.limit,
        "cursor": paging.cursor,
    }
    return await reads.answer(
        "stats/entities", query, lambda: _entities(seller, level, since, until, paging)
    )


async def _entities(
    seller: SellerContext, level: EntityLevel, since: date, until: date, paging: PageRequest
) -> EntitiesOut:
    reports = StatsReports(seller)
    page = await reports.entities(level, since, until, paging)
    unattributed = await reports.unattributed(since, until)
    return EntitiesOut(
        **PageOut[EntityOut].of(page, EntityOut.of).model_dump(),
        unattributed=UnattributedOut.of(unattributed),
    )


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
