"""Aggregation: the latest snapshot per entity and day, and what each sellpage earned.

Both steps are set-based SQL over one seller's window of days, run inside that seller's
scope (SCALE-10: raw SQL for the stats worker, no per-row ORM).

``ad_stats_daily`` holds, per entity and day, the **latest** raw snapshot — never a sum of
fetches (STATS-1, double counting): ``DISTINCT ON`` picks the newest ``fetched_at`` of each
entity-day in the window, and the upsert only replaces a stored snapshot with a strictly
newer one, so a retry carrying old data cannot overwrite new data and running the same
cycle twice changes nothing. An entity a complete re-fetch of its account no longer reports
delivered nothing that day (networks omit such rows), so its snapshot becomes zero
(:func:`zero_unreported`) instead of counting on.

``sellpage_stats_daily`` is recomputed for the requested days (delete and insert in one
transaction): spend from the campaign-level daily rows of campaigns linked to the
sellpage, revenue from the payment ledger (captures − refunds − chargebacks + reversals),
attributed to the order's day in the seller's time zone, everything converted to the
seller's reporting currency with the day's FX rate — never added raw across currencies —
and ROAS NULL when spend is 0 (STATS-4). A day whose money has no FX rate yet is kept out
of the sums and marked ``needs_reaggregation`` rather than guessed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text

from pixecom_core.stats.currency import minor_per_major_sql
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

# The FX rate of a (day, from, to): identity, the latest direct rate on or before the day,
# else the inverse of the latest reverse rate. NULL when neither exists.
_RATE = """
CASE WHEN {src} = {rep} THEN 1::numeric ELSE COALESCE(
    (SELECT fx.rate FROM fx_rates AS fx
      WHERE fx.base_currency = {src} AND fx.quote_currency = {rep} AND fx.rate_date <= {day}
      ORDER BY fx.rate_date DESC LIMIT 1),
    (SELECT 1 / fx.rate FROM fx_rates AS fx
      WHERE fx.base_currency = {rep} AND fx.quote_currency = {src} AND fx.rate_date <= {day}
      ORDER BY fx.rate_date DESC LIMIT 1)
) END
"""

_SELLPAGE_ROWS = f"""
WITH seller AS (
    SELECT reporting_currency AS rep, timezone AS tz FROM sellers WHERE id = :seller_id
),
spend AS (
    SELECT c.sellpage_id, d.stat_date AS day, d.spend_micros::numeric / 1000000 AS major,
           {_RATE.format(src="d.currency", rep="seller.rep", day="d.stat_date")} AS rate
      FROM ad_stats_daily AS d
      CROSS JOIN seller
      JOIN ad_accounts AS a ON a.seller_id = d.seller_id AND a.network = d.network
      JOIN campaigns AS c
        ON c.seller_id = d.seller_id AND c.ad_account_id = a.id AND c.external_id = d.entity_id
     WHERE d.seller_id = :seller_id
       AND d.entity_type = 'campaign'
       AND d.stat_date = ANY(CAST(:days AS date[]))
       AND c.sellpage_id IS NOT NULL
),
money AS (
    SELECT o.sellpage_id, (o.created_at AT TIME ZONE seller.tz)::date AS day, o.id AS order_id,
           p.event_type,
           p.amount_minor::numeric / {minor_per_major_sql("p.currency")} AS major,
           {
    _RATE.format(
        src="p.currency", rep="seller.rep", day="(o.created_at AT TIME ZONE seller.tz)::date"
    )
} AS rate
      FROM orders AS o
      CROSS JOIN seller
      JOIN payment_events AS p ON p.seller_id = o.seller_id AND p.order_id = o.id
     WHERE o.seller_id = :seller_id
       AND o.sellpage_id IS NOT NULL
       AND o.created_at >= :created_from AND o.created_at < :created_to
       AND (o.created_at AT TIME ZONE seller.tz)::date = ANY(CAST(:days AS date[]))
),
per_day AS (
    SELECT sellpage_id, day,
           sum(major * rate) AS spend_major,
           0::numeric AS gross, 0::numeric AS refunds, 0::numeric AS chargebacks,
           NULL::uuid AS paid_order,
           bool_or(rate IS NULL) AS missing_rate
      FROM spend GROUP BY sellpage_id, day
    UNION ALL
    SELECT sellpage_id, day, 0,
           sum(major * rate) FILTER (WHERE event_type = 'CAPTURED'),
           sum(major * rate) FILTER (WHERE event_type = 'REFUNDED'),
           sum(CASE event_type WHEN 'CHARGEBACK' THEN major * rate
                               WHEN 'CHARGEBACK_REVERSED' THEN -major * rate END),
           order_id,
           bool_or(rate IS NULL)
      FROM money GROUP BY sellpage_id, day, order_id
)
SELECT sellpage_id, day,
       round(coalesce(sum(spend_major), 0) * {minor_per_major_sql("seller.rep")})::bigint AS spend,
       round(coalesce(sum(gross), 0) * {minor_per_major_sql("seller.rep")})::bigint AS gross,
       round(coalesce(sum(refunds), 0) * {minor_per_major_sql("seller.rep")})::bigint AS refunds,
       greatest(round(coalesce(sum(chargebacks), 0) * {minor_per_major_sql("seller.rep")}), 0)
           ::bigint AS chargebacks,
       count(DISTINCT paid_order) FILTER (WHERE gross > 0) AS orders,
       bool_or(missing_rate) AS missing_rate,
       seller.rep
  FROM per_day CROSS JOIN seller
 GROUP BY sellpage_id, day, seller.rep
"""

_CLEAR_SELLPAGE_DAYS = text(
    "DELETE FROM sellpage_stats_daily"
    " WHERE seller_id = :seller_id AND stat_date = ANY(CAST(:days AS date[]))"
)
_INSERT_SELLPAGE_DAYS = text(
    f"""
    WITH fresh AS ({_SELLPAGE_ROWS})
    INSERT INTO sellpage_stats_daily
        (seller_id, sellpage_id, stat_date, reporting_currency, spend_minor,
         gross_revenue_minor, refunds_minor, chargebacks_minor, net_revenue_minor,
         orders_count, roas, needs_reaggregation, computed_at)
    SELECT :seller_id, sellpage_id, day, rep, spend, gross, refunds, chargebacks,
           gross - refunds - chargebacks, orders,
           CASE WHEN spend > 0 THEN round((gross - refunds - chargebacks)::numeric / spend, 6)
           END,
           coalesce(missing_rate, false), now()
      FROM fresh
    """
)

_DIRTY_DAYS = text(
    "SELECT DISTINCT stat_date FROM sellpage_stats_daily"
    " WHERE seller_id = :seller_id AND needs_reaggregation ORDER BY stat_date LIMIT :limit"
)

#: Dirty days re-aggregated per cycle beyond the regular window (bounded work per job).
MAX_DIRTY_DAYS_PER_CYCLE = 62

# One seller's sellpage days are recomputed by one transaction at a time (a sync and a
# revenue refresh would otherwise delete and insert the same days at once). A
# transaction-level lock: released at commit, and safe behind PgBouncer.
_LOCK_SELLPAGE_AGGREGATION = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('pixecom:sellpage-days:' || :seller_id, 0))"
)


@dataclass(frozen=True)
class SellpageAggregation:
    """What one sellpage re-aggregation wrote."""

    days: tuple[date, ...]
    rows_written: int


async def aggregate_daily(scope: SellerScope, *, network: str, since: date, until: date) -> int:
    """Adopt the newest raw snapshot of each entity-day of ``network`` in [since, until];
    return how many daily rows were inserted or replaced by a newer snapshot."""
    result = await scope.session.execute(
        _AGGREGATE_DAILY,
        {"seller_id": scope.seller_id, "network": network, "since": since, "until": until},
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
    """Days marked for re-aggregation (late refunds, late attribution, a missing FX rate)."""
    rows = await scope.session.execute(_DIRTY_DAYS, {"seller_id": scope.seller_id, "limit": limit})
    return [row.stat_date for row in rows]


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
    """Recompute ``sellpage_stats_daily`` of the scope's seller for ``days``."""
    unique_days = sorted(set(days))
    if not unique_days:
        return SellpageAggregation(days=(), rows_written=0)
    # Bounds on created_at let PostgreSQL prune order partitions; a day in any time zone
    # lies within a day of UTC either side.
    created_from = datetime.combine(unique_days[0] - timedelta(days=1), time(), UTC)
    created_to = datetime.combine(unique_days[-1] + timedelta(days=2), time(), UTC)
    await scope.session.execute(
        _CLEAR_SELLPAGE_DAYS, {"seller_id": scope.seller_id, "days": unique_days}
    )
    result = await scope.session.execute(
        _INSERT_SELLPAGE_DAYS,
        {
            "seller_id": scope.seller_id,
            "days": unique_days,
            "created_from": created_from,
            "created_to": created_to,
        },
    )
    return SellpageAggregation(
        days=tuple(unique_days),
        rows_written=int(result.rowcount),  # type: ignore[attr-defined]
    )
