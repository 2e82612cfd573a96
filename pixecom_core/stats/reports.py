"""What a seller reads: daily totals, per-sellpage and per-entity figures, sync status.

Everything is read from the aggregated tables in the seller's scope — never recomputed
from raw rows at request time — and every list is keyset-paginated with the hard page
limit (SCALE-4). Money is integer minor units of the seller's reporting currency, except
per-entity spend, which stays in the ad account's currency (say which, never mix them).
ROAS is ``None`` when there was no spend (STATS-4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from pixecom_core.errors import InvalidRequestError
from pixecom_core.providers import EntityLevel
from pixecom_core.stats.currency import micros_per_minor_unit_sql
from pixecom_core.tenancy import Page, PageRequest, SellerContext
from pixecom_core.tenancy.pagination import decode_cursor, encode_cursor

#: The longest range one report covers.
MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class Figures:
    """Spend and revenue of a day, a sellpage or a range, in the reporting currency."""

    spend_minor: int
    gross_revenue_minor: int
    refunds_minor: int
    chargebacks_minor: int
    net_revenue_minor: int
    orders: int

    @property
    def roas(self) -> Decimal | None:
        """Net revenue per unit of spend; ``None`` without spend."""
        if self.spend_minor <= 0:
            return None
        return (Decimal(self.net_revenue_minor) / Decimal(self.spend_minor)).quantize(
            Decimal("0.000001")
        )


@dataclass(frozen=True)
class DayFigures:
    day: date
    figures: Figures
    #: Currencies whose rate of the day is not published yet: the day's figures are
    #: converted provisionally (issue 16) and will be recomputed when it is.
    fx_pending_currencies: tuple[str, ...] = ()
    #: Marked for re-aggregation (money moved after the day was computed).
    needs_reaggregation: bool = False


@dataclass(frozen=True)
class Unattributed:
    """What cannot be put on a sellpage or a campaign, over a range (issue 16 item 2).

    :param spend_minor: spend of campaigns linked to no sellpage.
    :param no_sellpage_net_revenue_minor: net revenue of orders naming no sellpage.
    :param no_sellpage_orders: paid orders naming no sellpage.
    :param no_campaign_net_revenue_minor: net revenue of orders whose landing URL named
        no campaign we know (they count at sellpage level only).
    :param no_campaign_orders: paid orders of that kind.
    """

    spend_minor: int
    no_sellpage_net_revenue_minor: int
    no_sellpage_orders: int
    no_campaign_net_revenue_minor: int
    no_campaign_orders: int


@dataclass(frozen=True)
class Overview:
    """A seller's days in a range, with totals over all spend and all revenue."""

    reporting_currency: str
    since: date
    until: date
    days: list[DayFigures]
    totals: Figures
    pending_days: int
    unattributed: Unattributed


@dataclass(frozen=True)
class SellpageFigures:
    sellpage_id: uuid.UUID
    slug: str
    title: str
    figures: Figures


@dataclass(frozen=True)
class EntityFigures:
    """One campaign, ad set or ad over a range: its numbers in its ad account's currency,
    and its spend and attributed revenue in the seller's reporting currency."""

    network: str
    level: EntityLevel
    entity_id: str
    name: str | None
    #: ``ACTIVE``, ``PAUSED``, ``ARCHIVED`` or ``DELETED`` as the network last named it;
    #: ``None`` while the entity is not in the synced hierarchy.
    status: str | None
    currency: str
    spend_minor: int
    impressions: int
    clicks: int
    purchases: int
    reporting_currency: str
    #: Spend in the reporting currency and the revenue of the orders attributed to the
    #: entity (issue 16 item 3); summed over campaigns, the spend is the overview's.
    figures: Figures


@dataclass(frozen=True)
class AccountSyncStatus:
    ad_account_id: uuid.UUID
    network: str
    external_id: str
    name: str
    last_synced_at: datetime | None
    lag_seconds: int | None
    last_sync_error: str | None
    sync_failures: int
    throttled_until: datetime | None
    needs_reconnect: bool


_SUMS = """
    coalesce(sum(spend_minor), 0) AS spend, coalesce(sum(gross_revenue_minor), 0) AS gross,
    coalesce(sum(refunds_minor), 0) AS refunds, coalesce(sum(chargebacks_minor), 0) AS cb,
    coalesce(sum(net_revenue_minor), 0) AS net, coalesce(sum(orders_count), 0) AS orders
"""
# Issue 16 item 2: the seller's own days, over all spend and all revenue. A day only
# marked (zeros, waiting for its first aggregation) shows as pending.
_OVERVIEW = text(
    """
    SELECT stat_date, spend_minor AS spend, gross_revenue_minor AS gross,
           refunds_minor AS refunds, chargebacks_minor AS cb, net_revenue_minor AS net,
           orders_count AS orders, unlinked_spend_minor, no_sellpage_net_revenue_minor,
           no_sellpage_orders_count, no_campaign_net_revenue_minor, no_campaign_orders_count,
           needs_reaggregation, fx_pending_currencies, reporting_currency
      FROM seller_stats_daily
     WHERE seller_id = :seller_id AND stat_date BETWEEN :since AND :until
     ORDER BY stat_date
    """
)
_UNATTRIBUTED = text(
    """
    SELECT coalesce(sum(unlinked_spend_minor), 0) AS spend,
           coalesce(sum(no_sellpage_net_revenue_minor), 0) AS no_sellpage_net,
           coalesce(sum(no_sellpage_orders_count), 0) AS no_sellpage_orders,
           coalesce(sum(no_campaign_net_revenue_minor), 0) AS no_campaign_net,
           coalesce(sum(no_campaign_orders_count), 0) AS no_campaign_orders
      FROM seller_stats_daily
     WHERE seller_id = :seller_id AND stat_date BETWEEN :since AND :until
       AND reporting_currency = :rep
    """
)
_CURRENCY = text("SELECT reporting_currency FROM sellers WHERE id = :seller_id")
_SELLPAGES = text(
    f"""
    SELECT p.id, p.slug, p.title, {_SUMS}
      FROM sellpages AS p
      LEFT JOIN sellpage_stats_daily AS s
        ON s.seller_id = p.seller_id AND s.sellpage_id = p.id
       AND s.stat_date BETWEEN :since AND :until AND s.reporting_currency = :rep
     WHERE p.seller_id = :seller_id AND (CAST(:after AS uuid) IS NULL OR p.id > :after)
     GROUP BY p.id, p.slug, p.title
     ORDER BY p.id
     LIMIT :limit
    """
)
# One page of entities from the roll-up (spend and attributed revenue in the reporting
# currency), then, for that page only, the network's own numbers in the account's currency
# and the name and status the network last gave.
_ENTITIES = text(
    f"""
    WITH page AS (
        SELECT e.network, e.entity_id, {_SUMS}
          FROM entity_stats_daily AS e
         WHERE e.seller_id = :seller_id AND e.entity_type = :level
           AND e.stat_date BETWEEN :since AND :until AND e.reporting_currency = :rep
           AND (CAST(:after_network AS text) IS NULL
                OR (e.network, e.entity_id) > (:after_network, :after_entity))
         GROUP BY e.network, e.entity_id
         ORDER BY e.network, e.entity_id
         LIMIT :limit
    )
    SELECT page.*, native.currency, coalesce(native.spend, 0) AS native_spend,
           coalesce(native.impressions, 0) AS impressions,
           coalesce(native.clicks, 0) AS clicks, coalesce(native.purchases, 0) AS purchases,
           (SELECT ARRAY[c.name, c.status] FROM campaigns AS c
             WHERE c.seller_id = :seller_id AND c.external_id = page.entity_id LIMIT 1)
               AS campaign,
           (SELECT ARRAY[a.name, a.status] FROM adsets AS a
             WHERE a.seller_id = :seller_id AND a.external_id = page.entity_id LIMIT 1) AS adset,
           (SELECT ARRAY[x.name, x.status] FROM ads AS x
             WHERE x.seller_id = :seller_id AND x.external_id = page.entity_id LIMIT 1) AS ad
      FROM page
      LEFT JOIN LATERAL (
          SELECT min(d.currency) AS currency,
                 round(sum(d.spend_micros)::numeric
                       / {micros_per_minor_unit_sql("min(d.currency)")})::bigint AS spend,
                 sum(d.impressions) AS impressions, sum(d.clicks) AS clicks,
                 sum(d.purchases) AS purchases
            FROM ad_stats_daily AS d
           WHERE d.seller_id = :seller_id AND d.network = page.network
             AND d.entity_type = :level AND d.entity_id = page.entity_id
             AND d.stat_date BETWEEN :since AND :until
      ) AS native ON true
     ORDER BY page.network, page.entity_id
    """
)
_SYNC_STATUS = text(
    """
    SELECT id, network, external_id, name, last_synced_at, last_sync_error, sync_failures,
           throttled_until, needs_reconnect
      FROM ad_accounts WHERE seller_id = :seller_id
       AND (CAST(:after AS uuid) IS NULL OR id > :after)
     ORDER BY id LIMIT :limit
    """
)


_NOTHING = Figures(
    spend_minor=0,
    gross_revenue_minor=0,
    refunds_minor=0,
    chargebacks_minor=0,
    net_revenue_minor=0,
    orders=0,
)


def _figures(row: Any) -> Figures:
    return Figures(
        spend_minor=int(row.spend),
        gross_revenue_minor=int(row.gross),
        refunds_minor=int(row.refunds),
        chargebacks_minor=int(row.cb),
        net_revenue_minor=int(row.net),
        orders=int(row.orders),
    )


def check_range(since: date, until: date) -> None:
    """Refuse an empty, reversed or too long range."""
    if until < since:
        raise InvalidRequestError("until is before since", code="empty_date_range")
    if (until - since).days + 1 > MAX_RANGE_DAYS:
        raise InvalidRequestError(
            f"a report covers at most {MAX_RANGE_DAYS} days", code="date_range_too_long"
        )


class StatsReports:
    """Read-only reports of one seller."""

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    def _limit(self, page: PageRequest) -> int:
        settings = self._context.settings
        return page.effective_limit(
            default=settings.default_page_size, maximum=settings.max_page_size
        )

    async def overview(self, since: date, until: date) -> Overview:
        """Every day of the range that has figures, and the range's totals: all spend of
        every connected account and all revenue, whether or not it could be put on a
        sellpage or a campaign (those parts are in :attr:`Overview.unattributed`)."""
        check_range(since, until)
        seller = self._context.seller_id
        async with self._context.scope() as scope:
            currency = await scope.session.scalar(_CURRENCY, {"seller_id": seller})
            rows = (
                await scope.session.execute(
                    _OVERVIEW, {"seller_id": seller, "since": since, "until": until}
                )
            ).all()
        # A day still in the previous reporting currency (being recomputed after a change)
        # is listed as pending with no figures: amounts of two currencies never add up.
        days = [
            DayFigures(
                day=row.stat_date,
                figures=_figures(row) if row.reporting_currency == currency else _NOTHING,
                fx_pending_currencies=tuple(row.fx_pending_currencies),
                needs_reaggregation=row.needs_reaggregation or row.reporting_currency != currency,
            )
            for row in rows
        ]
        rows = [row for row in rows if row.reporting_currency == currency]
        totals = Figures(
            spend_minor=sum(d.figures.spend_minor for d in days),
            gross_revenue_minor=sum(d.figures.gross_revenue_minor for d in days),
            refunds_minor=sum(d.figures.refunds_minor for d in days),
            chargebacks_minor=sum(d.figures.chargebacks_minor for d in days),
            net_revenue_minor=sum(d.figures.net_revenue_minor for d in days),
            orders=sum(d.figures.orders for d in days),
        )
        unattributed = Unattributed(
            spend_minor=sum(int(r.unlinked_spend_minor) for r in rows),
            no_sellpage_net_revenue_minor=sum(int(r.no_sellpage_net_revenue_minor) for r in rows),
            no_sellpage_orders=sum(int(r.no_sellpage_orders_count) for r in rows),
            no_campaign_net_revenue_minor=sum(int(r.no_campaign_net_revenue_minor) for r in rows),
            no_campaign_orders=sum(int(r.no_campaign_orders_count) for r in rows),
        )
        return Overview(
            reporting_currency=str(currency),
            since=since,
            until=until,
            days=days,
            totals=totals,
            pending_days=sum(1 for d in days if d.needs_reaggregation or d.fx_pending_currencies),
            unattributed=unattributed,
        )

    async def unattributed(self, since: date, until: date) -> Unattributed:
        """The range's spend and revenue that no sellpage (or campaign) can claim."""
        check_range(since, until)
        seller = self._context.seller_id
        async with self._context.scope() as scope:
            currency = await scope.session.scalar(_CURRENCY, {"seller_id": seller})
            row = (
                await scope.session.execute(
                    _UNATTRIBUTED,
                    {"seller_id": seller, "since": since, "until": until, "rep": currency},
                )
            ).one()
        return Unattributed(
            spend_minor=int(row.spend),
            no_sellpage_net_revenue_minor=int(row.no_sellpage_net),
            no_sellpage_orders=int(row.no_sellpage_orders),
            no_campaign_net_revenue_minor=int(row.no_campaign_net),
            no_campaign_orders=int(row.no_campaign_orders),
        )

    async def sellpages(self, since: date, until: date, page: PageRequest) -> Page[SellpageFigures]:
        """Each sellpage's totals over the range (zeros included), by sellpage id."""
        check_range(since, until)
        limit = self._limit(page)
        after = decode_cursor(page.cursor, arity=1)[0] if page.cursor else None
        async with self._context.scope() as scope:
            currency = await scope.session.scalar(_CURRENCY, {"seller_id": self._context.seller_id})
            rows = (
                await scope.session.execute(
                    _SELLPAGES,
                    {
                        "rep": currency,
                        "seller_id": self._context.seller_id,
                        "since": since,
                        "until": until,
                        "after": after,
                        "limit": limit + 1,
                    },
                )
            ).all()
        items = [
            SellpageFigures(sellpage_id=r.id, slug=r.slug, title=r.title, figures=_figures(r))
            for r in rows[:limit]
        ]
        cursor = encode_cursor([items[-1].sellpage_id]) if len(rows) > limit else None
        return Page(items=items, next_cursor=cursor, limit=limit)

    async def entities(
        self, level: EntityLevel, since: date, until: date, page: PageRequest
    ) -> Page[EntityFigures]:
        """Each campaign (or ad set, or ad) with numbers in the range: spend, and the net
        revenue, orders and ROAS of the orders attributed to it, in the reporting
        currency; impressions, clicks and the network's own spend in the account's."""
        check_range(since, until)
        limit = self._limit(page)
        after_network, after_entity = (
            decode_cursor(page.cursor, arity=2) if page.cursor else (None, None)
        )
        async with self._context.scope() as scope:
            reporting = str(
                await scope.session.scalar(_CURRENCY, {"seller_id": self._context.seller_id})
            )
            rows = (
                await scope.session.execute(
                    _ENTITIES,
                    {
                        "rep": reporting,
                        "seller_id": self._context.seller_id,
                        "level": level.value,
                        "since": since,
                        "until": until,
                        "after_network": after_network,
                        "after_entity": after_entity,
                        "limit": limit + 1,
                    },
                )
            ).all()
        names = {EntityLevel.CAMPAIGN: "campaign", EntityLevel.ADSET: "adset", EntityLevel.AD: "ad"}
        items = [
            EntityFigures(
                network=r.network,
                level=level,
                entity_id=r.entity_id,
                name=(getattr(r, names[level]) or (None, None))[0],
                status=(getattr(r, names[level]) or (None, None))[1],
                currency=r.currency or reporting,
                spend_minor=int(r.native_spend),
                impressions=int(r.impressions),
                clicks=int(r.clicks),
                purchases=int(r.purchases),
                reporting_currency=reporting,
                figures=_figures(r),
            )
            for r in rows[:limit]
        ]
        cursor = (
            encode_cursor([items[-1].network, items[-1].entity_id]) if len(rows) > limit else None
        )
        return Page(items=items, next_cursor=cursor, limit=limit)

    async def sync_status(self, page: PageRequest) -> Page[AccountSyncStatus]:
        """Each ad account's sync state: last success, lag, errors, throttling."""
        limit = self._limit(page)
        after = decode_cursor(page.cursor, arity=1)[0] if page.cursor else None
        now = datetime.now(UTC)
        async with self._context.scope() as scope:
            rows = (
                await scope.session.execute(
                    _SYNC_STATUS,
                    {"seller_id": self._context.seller_id, "after": after, "limit": limit + 1},
                )
            ).all()
        items = [
            AccountSyncStatus(
                ad_account_id=r.id,
                network=r.network,
                external_id=r.external_id,
                name=r.name,
                last_synced_at=r.last_synced_at,
                lag_seconds=int((now - r.last_synced_at).total_seconds())
                if r.last_synced_at
                else None,
                last_sync_error=r.last_sync_error,
                sync_failures=r.sync_failures,
                throttled_until=r.throttled_until,
                needs_reconnect=r.needs_reconnect,
            )
            for r in rows[:limit]
        ]
        cursor = encode_cursor([items[-1].ad_account_id]) if len(rows) > limit else None
        return Page(items=items, next_cursor=cursor, limit=limit)
