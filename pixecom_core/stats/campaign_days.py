"""One campaign's days: spend, impressions, clicks and purchases per day over a range.

The seller dashboard opens a campaign and shows its days (SELLER-1: sellers must
see their real numbers, not "a dashboard full of zeros"). Rows come from the latest
snapshots in ``ad_stats_daily`` (never a sum over fetches, STATS-1), in the ad account's
currency; a range is at most :data:`~pixecom_core.stats.reports.MAX_RANGE_DAYS` days, so
the answer is bounded without a cursor (SCALE-4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text

from pixecom_core.errors import NotFoundError
from pixecom_core.providers import EntityLevel
from pixecom_core.stats.currency import micros_per_minor_unit_sql
from pixecom_core.stats.reports import check_range
from pixecom_core.tenancy import SellerContext


@dataclass(frozen=True)
class CampaignFigures:
    """A campaign's figures (a day's or a range's), in its ad account's currency."""

    spend_minor: int
    impressions: int
    clicks: int
    purchases: int


@dataclass(frozen=True)
class CampaignDay(CampaignFigures):
    """A campaign's figures on one day."""

    day: date


@dataclass(frozen=True)
class CampaignDays:
    """A campaign, its ad account's currency, and its days in a range with totals."""

    campaign_id: uuid.UUID
    name: str
    network: str
    external_id: str
    currency: str
    since: date
    until: date
    days: list[CampaignDay]
    totals: CampaignFigures


_CAMPAIGN = text(
    """
    SELECT c.id, c.name, c.external_id, a.network, a.currency
      FROM campaigns AS c
      JOIN ad_accounts AS a ON a.seller_id = c.seller_id AND a.id = c.ad_account_id
     WHERE c.seller_id = :seller_id AND c.id = :campaign_id
    """
)
_DAYS = text(
    f"""
    SELECT stat_date,
           round(spend_micros::numeric / {micros_per_minor_unit_sql("currency")})::bigint
               AS spend,
           impressions, clicks, purchases
      FROM ad_stats_daily
     WHERE seller_id = :seller_id AND network = :network AND entity_type = :level
       AND entity_id = :entity_id AND stat_date BETWEEN :since AND :until
     ORDER BY stat_date
    """
)


class CampaignDayReports:
    """Read one seller's campaigns day by day (read-only)."""

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    async def days(self, campaign_id: uuid.UUID, since: date, until: date) -> CampaignDays:
        """The days of the range on which the campaign has figures, and their totals.

        :raises NotFoundError: the campaign is not the seller's.
        :raises InvalidRequestError: an empty, reversed or too long range.
        """
        check_range(since, until)
        seller = self._context.seller_id
        async with self._context.scope() as scope:
            campaign = (
                await scope.session.execute(
                    _CAMPAIGN, {"seller_id": seller, "campaign_id": campaign_id}
                )
            ).first()
            if campaign is None:
                raise NotFoundError("no such campaign")
            rows = (
                await scope.session.execute(
                    _DAYS,
                    {
                        "seller_id": seller,
                        "network": campaign.network,
                        "level": EntityLevel.CAMPAIGN.value,
                        "entity_id": campaign.external_id,
                        "since": since,
                        "until": until,
                    },
                )
            ).all()
        days = [
            CampaignDay(
                day=r.stat_date,
                spend_minor=int(r.spend),
                impressions=int(r.impressions),
                clicks=int(r.clicks),
                purchases=int(r.purchases),
            )
            for r in rows
        ]
        return CampaignDays(
            campaign_id=campaign.id,
            name=campaign.name,
            network=campaign.network,
            external_id=campaign.external_id,
            currency=campaign.currency,
            since=since,
            until=until,
            days=days,
            totals=CampaignFigures(
                spend_minor=sum(d.spend_minor for d in days),
                impressions=sum(d.impressions for d in days),
                clicks=sum(d.clicks for d in days),
                purchases=sum(d.purchases for d in days),
            ),
        )
