"""Aggregation: the latest snapshot per entity and day, and the day roll-ups.

Both steps are set-based SQL over one seller's window of days, run inside that seller's
scope (SCALE-10: raw SQL for the stats worker, no per-row ORM).

``ad_stats_daily`` holds, per entity and day, the **latest** raw snapshot — never a sum of
fetches (STATS-1, double counting): ``DISTINCT ON`` picks the newest ``fetched_at`` of each
entity-day in the window, and the upsert only replaces a stored snapshot with a strictly
newer one, so a retry carrying old data cannot overwrite new data and running the same
cycle twice changes nothing. An entity a complete re-fetch of its account no longer reports
delivered nothing that day (networks omit such rows), so its snapshot becomes zero
(:func:`zero_unreported`) instead of counting on.

The day roll-ups — per sellpage, per ad entity, per seller — are recomputed together for
the requested days in one transaction (:mod:`pixecom_core.stats.rollup` says how): spend
from the daily snapshots, revenue from the payment ledger (captures − refunds −
chargebacks + reversals) on the order's day in the seller's time zone, everything
converted to the seller's reporting currency with the day's rate — never added raw across
currencies — and ROAS NULL when spend is 0 (STATS-4).

Whatever moves money between days or entities after the fact marks the days it touches
(``seller_stats_daily.needs_reaggregation``, issue 16 item 4): a late payment fact (the
ledger), linking or unlinking a campaign (:func:`mark_campaign_days_dirty`, every day of
its spend), a rate that arrived (:func:`mark_rate_days_dirty`), a new reporting currency
(:func:`mark_all_days_dirty`). The next sync and the revenue refresh recompute marked
days, oldest first, whatever their age.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text

from pixecom_core.dashboard_cache import DashboardPart, dashboard_changed_on_commit
from pixecom_core.stats.rollup import RECOMPUTE_DAYS
from pixecom_core.tenancy import SellerScope

_AGGREGATE_DAILY = text(
    """
    INSERT INTO ad_stats_daily AS daily
        (seller_id, network, entity_type, entity_id, stat_date, snapshot_fetched_at,
         ad_account_id, spend_micros, impressions, clicks, purchases, purchase_value_micros,
         currency, updated_at)
    SELECT DISTINCT ON (network, entity_type, entity_id, date_start)
           seller_id, network, entity_type, entity_id, date_start, fetched_at,
           ad_account_id, spend_micros, impressions, clicks, purchases,
           purchase_value_micros, currency, now()
      FROM ad_stats_raw
     WHERE seller_id = :seller_id
       AND network = :network
       AND date_start BETWEEN :since AND :until
       AND date_stop = date_start
       AND (CAST(:ad_account_id AS uuid) IS NULL OR ad_account_id = :ad_account_id)
     ORDER BY network, entity_type, entity_id, date_start, fetched_at DESC
    ON CONFLICT (seller_id, network, entity_type, entity_id, stat_date) DO UPDATE
       SET snapshot_fetched_at = EXCLUDED.snapshot_fetched_at,
           ad_account_id = EXCLUDED.ad_account_id,
           spend_micros = EXCLUDED.spend_micros,
           impressions = EXCLUDED.impressions,
           clicks = EXCLUDED.clicks,
           purchases = EXCLUDED.purchases,
           purchase_value_micros = EXCLUDED.purchase_value_micros,
           currency = EXCLUDED.currency,
           updated_at = now()
     WHERE daily.snapshot_fetched_at < EXCLUDED.snapshot_fetched_at
    """
)

# An entity-day of the account still holding a snapshot older than the complete fetch that
# just ran was not reported by it: the network omits entities without delivery, so its
# snapshot becomes zero. The zero is stored as a raw snapshot too (the raw table stays the
# record of what each fetch said, and re-adopting from it can never bring the old numbers
# back), once: a snapshot already zero is left as it is.
_ZERO_UNREPORTED = text(
    """
    WITH stale AS (
        UPDATE ad_stats_daily AS daily
           SET snapshot_fetched_at = :fetched_at,
               spend_micros = 0, impressions = 0, clicks = 0, purchases = 0,
               purchase_value_micros = 0, updated_at = now()
         WHERE seller_id = :seller_id
           AND network = :network
           AND ad_account_id = :ad_account_id
           AND stat_date BETWEEN :since AND :until
           AND snapshot_fetched_at < :fetched_at
           AND (spend_micros, impressions, clicks, purchases, purchase_value_micros)
               <> (0, 0, 0, 0, 0)
        RETURNING seller_id, ad_account_id, network, entity_type, entity_id, stat_date,
                  currency
    )
    INSERT INTO ad_stats_raw
        (seller_id, ad_account_id, network, entity_type, entity_id, date_start, date_stop,
         fetched_at, spend_micros, impressions, clicks, purchases, purchase_value_micros,
         currency)
    SELECT seller_id, ad_account_id, network, entity_type, entity_id, stat_date, stat_date,
           :fetched_at, 0, 0, 0, 0, 0, currency
      FROM stale
    ON CONFLICT ON CONSTRAINT uq_ad_stats_raw_fetch DO NOTHING
    """
)

_DIRTY_DAYS = text(
    "SELECT stat_date FROM seller_stats_daily"
    " WHERE seller_id = :seller_id AND needs_reaggregation ORDER BY stat_date LIMIT :limit"
)
# Marks days for re-aggregation: a row with zeros for a day not aggregated yet, the flag
# on one that was. The figures stay until the re-aggregation replaces them.
_MARK_DAYS = text(
    """
    INSERT INTO seller_stats_daily AS t
        (seller_id, stat_date, reporting_currency, spend_minor, unlinked_spend_minor,
         gross_revenue_minor, refunds_minor, chargebacks_minor, net_revenue_minor,
         orders_count, no_sellpage_net_revenue_minor, no_sellpage_orders_count,
         no_campaign_net_revenue_minor, no_campaign_orders_count, needs_reaggregation)
    SELECT :seller_id, day, s.reporting_currency, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, true
      FROM unnest(CAST(:days AS date[])) AS d(day)
      JOIN sellers AS s ON s.id = :seller_id
    ON CONFLICT (seller_id, stat_date) DO UPDATE SET needs_reaggregation = true
     WHERE NOT t.needs_reaggregation
    """
)
_MARK_RATE_DAYS = text(
    "UPDATE seller_stats_daily SET needs_reaggregation = true"
    " WHERE seller_id = :seller_id AND cardinality(fx_pending_currencies) > 0"
    " AND stat_date BETWEEN :since AND :until AND NOT needs_reaggregation"
)
# Every day the seller has money on: what a new reporting currency changes.
_DAYS_WITH_MONEY = text(
    """
    SELECT day FROM (
        SELECT stat_date AS day FROM seller_stats_daily WHERE seller_id = :seller_id
        UNION
        SELECT DISTINCT stat_date FROM ad_stats_daily
         WHERE seller_id = :seller_id AND entity_type = 'campaign'
        UNION
        SELECT DISTINCT (o.created_at AT TIME ZONE s.timezone)::date
          FROM orders AS o JOIN sellers AS s ON s.id = o.seller_id
         WHERE o.seller_id = :seller_id
           AND EXISTS (SELECT 1 FROM payment_events AS p
                        WHERE p.seller_id = o.seller_id AND p.order_id = o.id)
    ) AS days
    WHERE (CAST(:since AS date) IS NULL OR day >= :since)
      AND (CAST(:until AS date) IS NULL OR day <= :until)
    """
)
# The days a campaign's spend and orders fall on: what (un)linking it changes.
_CAMPAIGN_DAYS = text(
    """
    SELECT DISTINCT d.stat_date FROM ad_stats_daily AS d
      JOIN campaigns AS c ON c.seller_id = d.seller_id AND c.external_id = d.entity_id
     WHERE d.seller_id = :seller_id AND d.entity_type = 'campaign' AND c.id = :campaign_id
    """
)

#: Dirty days re-aggregated per cycle beyond the regular window (bounded work per job).
MAX_DIRTY_DAYS_PER_CYCLE = 62

# One seller's days are recomputed by one transaction at a time (a sync and a revenue
# refresh would otherwise write the same days at once), and no transaction
# marks a day dirty while one is: a marker written after the recomputation's snapshot
# would be cleared by it. Markers take the lock shared (they never wait for each other),
# the recomputation exclusively. Transaction-level: released at commit, safe behind
# PgBouncer.
_LOCK_SELLPAGE_AGGREGATION = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('pixecom:sellpage-days:' || :seller_id, 0))"
)
_LOCK_FOR_MARKING = text(
    "SELECT pg_advisory_xact_lock_shared("
    "hashtextextended('pixecom:sellpage-days:' || :seller_id, 0))"
)


@dataclass(frozen=True)
class SellpageAggregation:
    """What one sellpage re-aggregation recomputed, and what of it changed."""

    days: tuple[date, ...]
    #: ``sellpage_stats_daily`` rows the recomputed days hold: their sellpage-days, whether
    #: written now or already current (a recomputation writes only what changed).
    rows_written: int
    #: ``entity_stats_daily`` rows the recomputed days hold, in the same sense.
    entity_rows: int = 0
    #: ``sellpage_stats_daily`` rows inserted, updated or deleted by the recomputation.
    rows_changed: int = 0
    #: ``entity_stats_daily`` rows inserted, updated or deleted by the recomputation.
    entity_rows_changed: int = 0


async def aggregate_daily(
    scope: SellerScope,
    *,
    network: str,
    since: date,
    until: date,
    ad_account_id: uuid.UUID | None = None,
) -> int:
    """Adopt the newest raw snapshot of each entity-day of ``network`` in [since, until]
    (of one ad account's fetches when ``ad_account_id`` is given: a sync adopts what its
    account fetched, not every account's rows again, issue 18 item 3); return how many
    daily rows were inserted or replaced by a newer snapshot."""
    result = await scope.session.execute(
        _AGGREGATE_DAILY,
        {
            "seller_id": scope.seller_id,
            "network": network,
            "since": since,
            "until": until,
            "ad_account_id": ad_account_id,
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def zero_unreported(
    scope: SellerScope,
    *,
    network: str,
    ad_account_id: uuid.UUID,
    since: date,
    until: date,
    fetched_at: datetime,
) -> int:
    """Zero the account's entity-days in [since, until] that a complete fetch, whose first
    row was fetched at ``fetched_at``, no longer reported; return how many were zeroed.

    Call it after :func:`aggregate_daily` adopted the fetch, and only when the fetch of
    every level over the whole window succeeded: the networks omit an entity without
    delivery (Meta does), so absence from a complete fetch is the statement "spent nothing
    that day", while absence from a fetch that broke off says nothing. Only snapshots
    tied to ``ad_account_id`` are touched: a fetch of one account says nothing of another.
    ``fetched_at`` must not be later than any row of the fetch (take the earliest of the
    fetch's start and its rows' ``fetched_at``), so every reported entity holds a snapshot
    at or after it.
    """
    result = await scope.session.execute(
        _ZERO_UNREPORTED,
        {
            "seller_id": scope.seller_id,
            "network": network,
            "ad_account_id": ad_account_id,
            "since": since,
            "until": until,
            "fetched_at": fetched_at,
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def dirty_days(scope: SellerScope, *, limit: int = MAX_DIRTY_DAYS_PER_CYCLE) -> list[date]:
    """Days marked for re-aggregation (late refunds, a link, a rate that arrived, a new
    reporting currency), oldest first."""
    rows = await scope.session.execute(_DIRTY_DAYS, {"seller_id": scope.seller_id, "limit": limit})
    return [row.stat_date for row in rows]


async def lock_for_marking(scope: SellerScope) -> None:
    """Take the seller's aggregation lock shared, for a transaction that marks days dirty:
    it waits for a recomputation in progress, and none starts until it commits."""
    await scope.session.execute(_LOCK_FOR_MARKING, {"seller_id": str(scope.seller_id)})


async def mark_days_dirty(scope: SellerScope, days: Iterable[date]) -> int:
    """Mark ``days`` of the scope's seller for re-aggregation; return how many were not
    marked already. The mark commits with the caller's transaction."""
    unique_days = sorted(set(days))
    if not unique_days:
        return 0
    await lock_for_marking(scope)
    result = await scope.session.execute(
        _MARK_DAYS, {"seller_id": scope.seller_id, "days": unique_days}
    )
    # The overview shows marked days as being recomputed.
    dashboard_changed_on_commit(scope, {DashboardPart.STATS})
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mark_rate_days_dirty(scope: SellerScope, since: date, until: date) -> int:
    """Mark the seller's days in [since, until] that wait for a rate (issue 16: rates
    arrived); return how many."""
    await lock_for_marking(scope)
    result = await scope.session.execute(
        _MARK_RATE_DAYS, {"seller_id": scope.seller_id, "since": since, "until": until}
    )
    dashboard_changed_on_commit(scope, {DashboardPart.STATS})
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mark_all_days_dirty(
    scope: SellerScope, *, since: date | None = None, until: date | None = None
) -> int:
    """Mark every day the seller has spend or money on, optionally within [since, until]
    (a new reporting currency; ``pixecom stats reaggregate`` after an upgrade)."""
    days = [
        row.day
        for row in await scope.session.execute(
            _DAYS_WITH_MONEY, {"seller_id": scope.seller_id, "since": since, "until": until}
        )
    ]
    return await mark_days_dirty(scope, days)


async def mark_campaign_days_dirty(scope: SellerScope, campaign_id: uuid.UUID) -> int:
    """Mark every day with spend of the campaign (linked or unlinked from a sellpage)."""
    days = [
        row.stat_date
        for row in await scope.session.execute(
            _CAMPAIGN_DAYS, {"seller_id": scope.seller_id, "campaign_id": campaign_id}
        )
    ]
    return await mark_days_dirty(scope, days)


async def lock_sellpage_aggregation(scope: SellerScope) -> None:
    """Wait until no other transaction is recomputing this seller's sellpage days.

    Call it first in the transaction, before reading :func:`dirty_days`, so what it reads
    includes everything the previous recomputation committed.
    """
    await scope.session.execute(_LOCK_SELLPAGE_AGGREGATION, {"seller_id": str(scope.seller_id)})


async def refresh_dirty_days(scope: SellerScope) -> SellpageAggregation:
    """Recompute the seller's days marked dirty by the ledger (new captures, refunds,
    chargebacks) without waiting for the next sync, so a seller's revenue shows within
    seconds of the payment rather than at the next cycle of its tier."""
    await lock_sellpage_aggregation(scope)
    return await aggregate_sellpages(scope, await dirty_days(scope))


async def aggregate_sellpages(scope: SellerScope, days: list[date]) -> SellpageAggregation:
    """Recompute the scope's seller's roll-ups of ``days``: ``sellpage_stats_daily``,
    ``entity_stats_daily`` and ``seller_stats_daily`` (:mod:`pixecom_core.stats.rollup`),
    clearing their re-aggregation marks, in one statement that writes only the rows whose
    numbers changed and deletes those the days no longer produce. Call
    :func:`lock_sellpage_aggregation` first in the transaction."""
    unique_days = sorted(set(days))
    if not unique_days:
        return SellpageAggregation(days=(), rows_written=0)
    # Issue 18: the seller's cached stats are stale once the recomputed days commit.
    dashboard_changed_on_commit(scope, {DashboardPart.STATS})
    # Bounds on created_at let PostgreSQL prune order partitions; a day in any time zone
    # lies within a day of UTC either side.
    created_from = datetime.combine(unique_days[0] - timedelta(days=1), time(), UTC)
    created_to = datetime.combine(unique_days[-1] + timedelta(days=2), time(), UTC)
    # The bounds let PostgreSQL prune partitions under a generic plan too (a prepared
    # statement cannot prune on ``= ANY(:days)``).
    bounds = {"first_day": unique_days[0], "last_day": unique_days[-1]}
    written = (
        await scope.session.execute(
            RECOMPUTE_DAYS,
            {
                "seller_id": scope.seller_id,
                "days": unique_days,
                "created_from": created_from,
                "created_to": created_to,
                **bounds,
            },
        )
    ).one()
    return SellpageAggregation(
        days=tuple(unique_days),
        rows_written=int(written.sellpage_rows),
        entity_rows=int(written.entity_rows),
        rows_changed=int(written.sellpage_rows_changed),
        entity_rows_changed=int(written.entity_rows_changed),
    )
