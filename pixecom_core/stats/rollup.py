"""The day roll-ups: what a seller spent and earned, per sellpage, per ad entity and in all.

One statement recomputes the three roll-ups of a seller's days from the same converted
amounts (issue 16), so every view agrees to the cent:

- **Rates** (``rates``): each currency the days' money is in, converted into the seller's
  reporting currency with the rate *of that day*: the seller's own manual rate first,
  then the source's (direct, inverse, or across the source's base currency, e.g. GBP→USD
  through EUR). Sources store a row for every calendar day, a day without publication
  carrying the previous one (``fx_rates.carried_from``), so a day with no rate of its
  own is a day whose rate is *not published yet*: its money is converted provisionally at
  the latest rate of the 7 days before, and the currency is listed in the day's
  ``fx_pending_currencies`` until a later load brings the rate (then the day is
  re-aggregated). Money with no rate in those 7 days is left out, and pending too.
- **Spend**: each entity-day's snapshot (``ad_stats_daily``, every level) converted and
  rounded to the reporting currency's minor unit *once*; the campaign level sums into the
  seller's day (all of it, ``unlinked_spend_minor`` for campaigns linked to no sellpage)
  and into the sellpage its campaign is linked to. Spend days are the ad account's days,
  as the network reports them.
- **Revenue**: each payment fact (captures, refunds, chargebacks and their reversals) of
  the orders created on the day — in the seller's time zone — converted and rounded once,
  then summed per order (chargebacks net of reversals, never below zero). An order counts
  for its sellpage, and for the campaign, ad set and ad its landing URL named
  (:func:`attribution_sql`); an order without one of them counts as such in the seller's
  day (``no_sellpage_*``, ``no_campaign_*``).

The statement runs in the seller's scope and writes only what changed (issue 18 item 3: a
steady sync recomputes days whose numbers mostly stand, and rewriting every row cost
PostgreSQL a tuple, its index entries, WAL and a foreign-key check each). A
``sellpage_stats_daily`` or ``entity_stats_daily`` row the recomputation produces is
inserted when new and updated when one of its numbers (or the reporting currency) differs;
an identical row is not touched at all — it is left out before the upsert, so it is not
even locked, and the upsert's ``WHERE … IS DISTINCT FROM`` guards the update as well. A
row of a recomputed day the recomputation no longer produces (an entity-day left with
neither a snapshot nor an attributed order — a zeroed snapshot still gives a row of zeros,
as before —, a sellpage-day left with neither a linked campaign's spend nor an order) is
deleted by the same statement. So ``computed_at`` of those two tables is when the row's
numbers were last written — when they were computed *as they are* — not when the day was
last recomputed; a ``sellpage_stats_daily`` row still flagged ``needs_reaggregation``
(0017 stopped writing the flag) is rewritten and the flag cleared. ``seller_stats_daily``
rows are upserted every time and their ``needs_reaggregation`` cleared (the per-seller
advisory lock keeps a concurrent marker from being lost, and a second recomputation from
writing the same days at once: see :mod:`pixecom_core.stats.aggregate`); their
``computed_at`` is when the day was last recomputed.

The statement returns, per partitioned roll-up, the rows the days hold (``entity_rows``,
``sellpage_rows``: written or already current) and the rows it inserted, updated or
deleted (``entity_rows_changed``, ``sellpage_rows_changed``), and the
``seller_stats_daily`` rows it upserted (``seller_rows``).
"""

from __future__ import annotations

from sqlalchemy import text

from pixecom_core.stats.currency import minor_per_major_sql, round_half_even_sql

#: How far back a provisional conversion may look for a rate (days).
PROVISIONAL_RATE_DAYS = 7

_REP = minor_per_major_sql("seller.rep")
# A payment fact in the reporting currency's minor units, rounded once (ties to even).
_FACT_MINOR = round_half_even_sql(
    f"(f.amount_minor::numeric / {minor_per_major_sql('f.currency')} * r.rate * {_REP})"
)

# The candidates for one (day, currency): manual before source, a rate of the day before
# an older one. {pref} orders the kinds when two are of the same day.
_RATE_CANDIDATES = f"""
    SELECT m.rate, m.rate_date AS rate_day, 0 AS pref FROM seller_fx_rates AS m
     WHERE m.seller_id = :seller_id AND m.base_currency = n.currency
       AND m.quote_currency = seller.rep
       AND m.rate_date BETWEEN n.day - {PROVISIONAL_RATE_DAYS} AND n.day
    UNION ALL
    SELECT 1 / m.rate, m.rate_date, 0 FROM seller_fx_rates AS m
     WHERE m.seller_id = :seller_id AND m.base_currency = seller.rep
       AND m.quote_currency = n.currency
       AND m.rate_date BETWEEN n.day - {PROVISIONAL_RATE_DAYS} AND n.day
    UNION ALL
    SELECT f.rate, f.rate_date, 1 FROM fx_rates AS f
     WHERE f.base_currency = n.currency AND f.quote_currency = seller.rep
       AND f.rate_date BETWEEN n.day - {PROVISIONAL_RATE_DAYS} AND n.day
    UNION ALL
    SELECT 1 / f.rate, f.rate_date, 1 FROM fx_rates AS f
     WHERE f.base_currency = seller.rep AND f.quote_currency = n.currency
       AND f.rate_date BETWEEN n.day - {PROVISIONAL_RATE_DAYS} AND n.day
    UNION ALL
    SELECT q.rate / s.rate, s.rate_date, 2 FROM fx_rates AS s
      JOIN fx_rates AS q
        ON q.rate_date = s.rate_date AND q.base_currency = s.base_currency
       AND q.quote_currency = seller.rep
     WHERE s.quote_currency = n.currency
       AND s.rate_date BETWEEN n.day - {PROVISIONAL_RATE_DAYS} AND n.day
"""


def attribution_sql() -> str:
    """CTEs resolving each order of ``orders_src`` to the ad entities its landing URL named.

    An order naming an ad we know gets that ad, its ad set and its campaign; else one
    naming an ad set gets it and its campaign; else the campaign named by
    ``campaign_ref``, or by ``utm_campaign`` holding a campaign's id or, failing that, the
    name of exactly one campaign. Ids are matched against the synced hierarchy, so an
    order naming a campaign not synced yet counts without a campaign until it is (the
    next sync re-aggregates its recent days). Ids only unique per network: ties are
    broken by id, so the answer is stable. ``attribution`` carries the order's ``day`` and
    ``sellpage_id`` too: the payment facts are read from it, so the money never has to be
    joined back to the orders by id (see ``facts``).
    """
    hierarchy = """
          JOIN adsets AS s ON s.seller_id = :seller_id AND s.id = x.adset_id
          JOIN campaigns AS c ON c.seller_id = :seller_id AND c.id = s.campaign_id
          JOIN ad_accounts AS a ON a.seller_id = :seller_id AND a.id = c.ad_account_id"""
    return f"""
ad_hits AS (
    SELECT DISTINCT ON (o.id) o.id AS order_id, a.network, c.external_id AS campaign_id,
           s.external_id AS adset_id, x.external_id AS ad_id
      FROM orders_src AS o
      JOIN ads AS x ON x.seller_id = :seller_id AND x.external_id = o.ad_ref{hierarchy}
     ORDER BY o.id, x.id
),
adset_hits AS (
    SELECT DISTINCT ON (o.id) o.id AS order_id, a.network, c.external_id AS campaign_id,
           s.external_id AS adset_id
      FROM orders_src AS o
      JOIN adsets AS s ON s.seller_id = :seller_id AND s.external_id = o.adset_ref
      JOIN campaigns AS c ON c.seller_id = :seller_id AND c.id = s.campaign_id
      JOIN ad_accounts AS a ON a.seller_id = :seller_id AND a.id = c.ad_account_id
     ORDER BY o.id, s.id
),
campaign_hits AS (
    SELECT DISTINCT ON (o.id) o.id AS order_id, a.network, c.external_id AS campaign_id
      FROM orders_src AS o
      JOIN campaigns AS c
        ON c.seller_id = :seller_id
       AND (c.external_id = o.campaign_ref
            OR c.external_id = o.utm_campaign
            -- IS TRUE: an order without utm_campaign (NULL) must not run the twin count
            -- for every campaign (NULL AND x evaluates x).
            OR ((c.name = o.utm_campaign) IS TRUE
                AND (SELECT count(*) FROM campaigns AS twin
                      WHERE twin.seller_id = :seller_id AND twin.name = c.name) = 1))
      JOIN ad_accounts AS a ON a.seller_id = :seller_id AND a.id = c.ad_account_id
     ORDER BY o.id, (c.external_id = o.campaign_ref) IS TRUE DESC,
              (c.external_id = o.utm_campaign) IS TRUE DESC, c.id
),
attribution AS (
    SELECT o.id AS order_id, o.day, o.sellpage_id,
           coalesce(ah.network, sh.network, ch.network) AS network,
           coalesce(ah.campaign_id, sh.campaign_id, ch.campaign_id) AS campaign_id,
           coalesce(ah.adset_id, sh.adset_id) AS adset_id,
           ah.ad_id
      FROM orders_src AS o
      LEFT JOIN ad_hits AS ah ON ah.order_id = o.id
      LEFT JOIN adset_hits AS sh ON sh.order_id = o.id
      LEFT JOIN campaign_hits AS ch ON ch.order_id = o.id
)"""


_CONVERTED_ROWS = f"""
WITH seller AS (
    SELECT reporting_currency AS rep, timezone AS tz FROM sellers WHERE id = :seller_id
),
spend_src AS (
    SELECT d.network, d.entity_type, d.entity_id, d.stat_date AS day, d.currency,
           d.spend_micros, d.ad_account_id
      FROM ad_stats_daily AS d
     WHERE d.seller_id = :seller_id AND d.stat_date = ANY(CAST(:days AS date[]))
       AND d.stat_date BETWEEN :first_day AND :last_day
),
orders_src AS (
    SELECT o.id, o.sellpage_id, (o.created_at AT TIME ZONE seller.tz)::date AS day,
           o.campaign_ref, o.adset_ref, o.ad_ref, o.utm_campaign
      FROM orders AS o CROSS JOIN seller
     WHERE o.seller_id = :seller_id
       AND o.created_at >= :created_from AND o.created_at < :created_to
       AND (o.created_at AT TIME ZONE seller.tz)::date = ANY(CAST(:days AS date[]))
),
{attribution_sql()},
-- The facts carry each order's day, sellpage and entities, so order_money is already one row
-- per order with everything the roll-ups need. Joining order_money back to orders_src and
-- attribution by order id ran as nested loops over CTE scans (the day filter makes
-- PostgreSQL expect ~5 orders, not hundreds): two 548 x 548 loops, 140 of a day's 220 ms.
-- The payment events are looked up per order through their (seller_id, order_id) index;
-- OFFSET 0 keeps the subquery from being flattened, where an unanalyzed payment_events
-- had PostgreSQL scan the seller's events and rescan orders_src for each one instead.
facts AS (
    SELECT o.order_id, o.day, o.sellpage_id, o.network, o.campaign_id, o.adset_id, o.ad_id,
           p.event_type, p.currency, p.amount_minor
      FROM attribution AS o
      CROSS JOIN LATERAL (
          SELECT p.event_type, p.currency, p.amount_minor FROM payment_events AS p
           WHERE p.seller_id = :seller_id AND p.order_id = o.order_id
          OFFSET 0
      ) AS p
),
needed AS (
    SELECT DISTINCT day, currency FROM spend_src
    UNION
    SELECT DISTINCT day, currency FROM facts
),
rates AS (
    SELECT n.day, n.currency, r.rate, coalesce(r.rate_day = n.day, false) AS exact
      FROM needed AS n CROSS JOIN seller
      LEFT JOIN LATERAL (
          SELECT 1::numeric AS rate, n.day AS rate_day WHERE n.currency = seller.rep
          UNION ALL
          (SELECT c.rate, c.rate_day FROM ({_RATE_CANDIDATES}) AS c
            WHERE n.currency <> seller.rep
            ORDER BY c.rate_day DESC, c.pref LIMIT 1)
      ) AS r ON true
),
spend AS (
    SELECT s.network, s.entity_type, s.entity_id, s.day,
           {round_half_even_sql(f"(s.spend_micros::numeric / 1000000 * r.rate * {_REP})")}::bigint
               AS minor,
           camp.sellpage_id
      FROM spend_src AS s CROSS JOIN seller
      JOIN rates AS r ON r.day = s.day AND r.currency = s.currency
      LEFT JOIN LATERAL (
          SELECT c.sellpage_id FROM campaigns AS c
            JOIN ad_accounts AS a ON a.seller_id = c.seller_id AND a.id = c.ad_account_id
           WHERE s.entity_type = 'campaign' AND c.seller_id = :seller_id
             AND c.external_id = s.entity_id AND a.network = s.network
             AND (s.ad_account_id IS NULL OR a.id = s.ad_account_id)
           ORDER BY c.id LIMIT 1
      ) AS camp ON true
),
order_money AS (
    SELECT f.order_id, f.day, f.sellpage_id, f.network, f.campaign_id, f.adset_id, f.ad_id,
           coalesce(sum(x.minor) FILTER (WHERE f.event_type = 'CAPTURED'), 0) AS gross,
           coalesce(sum(x.minor) FILTER (WHERE f.event_type = 'REFUNDED'), 0) AS refunds,
           greatest(coalesce(sum(CASE f.event_type WHEN 'CHARGEBACK' THEN x.minor
                                                   WHEN 'CHARGEBACK_REVERSED' THEN -x.minor
                                 END), 0), 0) AS chargebacks
      FROM facts AS f CROSS JOIN seller
      JOIN rates AS r ON r.day = f.day AND r.currency = f.currency
      CROSS JOIN LATERAL (
          SELECT {_FACT_MINOR}::bigint AS minor
      ) AS x
     GROUP BY f.order_id, f.day, f.sellpage_id, f.network, f.campaign_id, f.adset_id, f.ad_id
),
orders_out AS (
    SELECT m.order_id, m.day, m.sellpage_id, m.network, m.campaign_id, m.adset_id, m.ad_id,
           m.gross, m.refunds, m.chargebacks, m.gross - m.refunds - m.chargebacks AS net,
           m.gross > 0 AS paid
      FROM order_money AS m
),
entity_revenue AS (
    SELECT network, level AS entity_type, entity_id, day, sum(gross) AS gross,
           sum(refunds) AS refunds, sum(chargebacks) AS chargebacks, sum(net) AS net,
           count(*) FILTER (WHERE paid) AS orders
      FROM orders_out
      CROSS JOIN LATERAL (VALUES ('campaign', campaign_id), ('adset', adset_id), ('ad', ad_id))
           AS levels(level, entity_id)
     WHERE entity_id IS NOT NULL
     GROUP BY network, level, entity_id, day
),
entity_days AS (
    SELECT coalesce(s.network, e.network) AS network,
           coalesce(s.entity_type, e.entity_type) AS entity_type,
           coalesce(s.entity_id, e.entity_id) AS entity_id, coalesce(s.day, e.day) AS day,
           coalesce(s.minor, 0) AS spend, coalesce(e.gross, 0) AS gross,
           coalesce(e.refunds, 0) AS refunds, coalesce(e.chargebacks, 0) AS chargebacks,
           coalesce(e.net, 0) AS net, coalesce(e.orders, 0) AS orders
      FROM spend AS s
      FULL JOIN entity_revenue AS e
        ON e.network = s.network AND e.entity_type = s.entity_type
       AND e.entity_id = s.entity_id AND e.day = s.day
),
sellpage_days AS (
    SELECT sellpage_id, day, sum(spend) AS spend, sum(gross) AS gross,
           sum(refunds) AS refunds, sum(chargebacks) AS chargebacks, sum(net) AS net,
           sum(orders) AS orders
      FROM (
          SELECT sellpage_id, day, minor AS spend, 0 AS gross, 0 AS refunds, 0 AS chargebacks,
                 0 AS net, 0 AS orders
            FROM spend
           WHERE entity_type = 'campaign' AND sellpage_id IS NOT NULL AND minor IS NOT NULL
          UNION ALL
          SELECT sellpage_id, day, 0, gross, refunds, chargebacks, net, paid::int
            FROM orders_out WHERE sellpage_id IS NOT NULL
      ) AS parts
     GROUP BY sellpage_id, day
),
pending AS (
    SELECT r.day, array_agg(DISTINCT r.currency ORDER BY r.currency) AS currencies
      FROM rates AS r WHERE NOT r.exact GROUP BY r.day
),
seller_days AS (
    SELECT d.day,
           coalesce(sp.spend, 0) AS spend, coalesce(sp.unlinked, 0) AS unlinked,
           coalesce(rv.gross, 0) AS gross, coalesce(rv.refunds, 0) AS refunds,
           coalesce(rv.chargebacks, 0) AS chargebacks, coalesce(rv.net, 0) AS net,
           coalesce(rv.orders, 0) AS orders,
           coalesce(rv.no_sellpage_net, 0) AS no_sellpage_net,
           coalesce(rv.no_sellpage_orders, 0) AS no_sellpage_orders,
           coalesce(rv.no_campaign_net, 0) AS no_campaign_net,
           coalesce(rv.no_campaign_orders, 0) AS no_campaign_orders,
           coalesce(pd.currencies, '{{}}'::text[]) AS pending_currencies
      FROM unnest(CAST(:days AS date[])) AS d(day)
      LEFT JOIN (
          SELECT day, sum(minor) AS spend,
                 sum(minor) FILTER (WHERE sellpage_id IS NULL) AS unlinked
            FROM spend WHERE entity_type = 'campaign' GROUP BY day
      ) AS sp ON sp.day = d.day
      LEFT JOIN (
          SELECT day, sum(gross) AS gross, sum(refunds) AS refunds,
                 sum(chargebacks) AS chargebacks, sum(net) AS net,
                 count(*) FILTER (WHERE paid) AS orders,
                 sum(net) FILTER (WHERE sellpage_id IS NULL) AS no_sellpage_net,
                 count(*) FILTER (WHERE paid AND sellpage_id IS NULL) AS no_sellpage_orders,
                 sum(net) FILTER (WHERE campaign_id IS NULL) AS no_campaign_net,
                 count(*) FILTER (WHERE paid AND campaign_id IS NULL) AS no_campaign_orders
            FROM orders_out GROUP BY day
      ) AS rv ON rv.day = d.day
      LEFT JOIN pending AS pd ON pd.day = d.day
),
stored_entities AS (
    SELECT o.entity_type, o.network, o.entity_id, o.stat_date, o.reporting_currency,
           o.spend_minor, o.gross_revenue_minor, o.refunds_minor, o.chargebacks_minor,
           o.net_revenue_minor, o.orders_count
      FROM entity_stats_daily AS o
     WHERE o.seller_id = :seller_id AND o.stat_date = ANY(CAST(:days AS date[]))
       AND o.stat_date BETWEEN :first_day AND :last_day
),
-- What differs between the recomputed and the stored rows: a FULL JOIN, which PostgreSQL
-- runs as a hash or merge join only, never as a nested loop over two CTEs.
entity_changes AS (
    SELECT e.entity_type, e.network, e.entity_id, e.day, e.spend, e.gross, e.refunds,
           e.chargebacks, e.net, e.orders, o.entity_type AS gone_type,
           o.network AS gone_network, o.entity_id AS gone_id, o.stat_date AS gone_day
      FROM entity_days AS e
      FULL JOIN stored_entities AS o
        ON o.entity_type = e.entity_type AND o.network = e.network
       AND o.entity_id = e.entity_id AND o.stat_date = e.day
     WHERE e.entity_id IS NULL OR o.entity_id IS NULL
        OR (o.reporting_currency, o.spend_minor, o.gross_revenue_minor, o.refunds_minor,
            o.chargebacks_minor, o.net_revenue_minor, o.orders_count)
           IS DISTINCT FROM
           ((SELECT rep FROM seller), e.spend, e.gross, e.refunds, e.chargebacks, e.net,
            e.orders)
),
written_entities AS (
    INSERT INTO entity_stats_daily AS t
        (seller_id, entity_type, network, entity_id, stat_date, reporting_currency,
         spend_minor, gross_revenue_minor, refunds_minor, chargebacks_minor,
         net_revenue_minor, orders_count)
    SELECT :seller_id, c.entity_type, c.network, c.entity_id, c.day, seller.rep, c.spend,
           c.gross, c.refunds, c.chargebacks, c.net, c.orders
      FROM entity_changes AS c CROSS JOIN seller
     WHERE c.entity_id IS NOT NULL
    ON CONFLICT (seller_id, entity_type, network, entity_id, stat_date) DO UPDATE
       SET reporting_currency = EXCLUDED.reporting_currency,
           spend_minor = EXCLUDED.spend_minor,
           gross_revenue_minor = EXCLUDED.gross_revenue_minor,
           refunds_minor = EXCLUDED.refunds_minor,
           chargebacks_minor = EXCLUDED.chargebacks_minor,
           net_revenue_minor = EXCLUDED.net_revenue_minor,
           orders_count = EXCLUDED.orders_count,
           computed_at = now()
     WHERE (t.reporting_currency, t.spend_minor, t.gross_revenue_minor, t.refunds_minor,
            t.chargebacks_minor, t.net_revenue_minor, t.orders_count)
           IS DISTINCT FROM
           (EXCLUDED.reporting_currency, EXCLUDED.spend_minor, EXCLUDED.gross_revenue_minor,
            EXCLUDED.refunds_minor, EXCLUDED.chargebacks_minor, EXCLUDED.net_revenue_minor,
            EXCLUDED.orders_count)
    RETURNING 1
),
dropped_entities AS (
    DELETE FROM entity_stats_daily AS t
     USING entity_changes AS c
     WHERE c.entity_id IS NULL
       AND t.seller_id = :seller_id AND t.stat_date = ANY(CAST(:days AS date[]))
       AND t.stat_date BETWEEN :first_day AND :last_day
       AND t.entity_type = c.gone_type AND t.network = c.gone_network
       AND t.entity_id = c.gone_id AND t.stat_date = c.gone_day
    RETURNING 1
),
sellpage_rows AS (
    SELECT sellpage_id, day, spend, gross, refunds, chargebacks, net, orders,
           CASE WHEN spend > 0 THEN round(net::numeric / spend, 6) END AS roas
      FROM sellpage_days
),
stored_sellpages AS (
    SELECT o.sellpage_id, o.stat_date, o.reporting_currency, o.spend_minor,
           o.gross_revenue_minor, o.refunds_minor, o.chargebacks_minor, o.net_revenue_minor,
           o.orders_count, o.roas, o.needs_reaggregation
      FROM sellpage_stats_daily AS o
     WHERE o.seller_id = :seller_id AND o.stat_date = ANY(CAST(:days AS date[]))
       AND o.stat_date BETWEEN :first_day AND :last_day
),
sellpage_changes AS (
    SELECT p.sellpage_id, p.day, p.spend, p.gross, p.refunds, p.chargebacks, p.net,
           p.orders, p.roas, o.sellpage_id AS gone_id, o.stat_date AS gone_day
      FROM sellpage_rows AS p
      FULL JOIN stored_sellpages AS o ON o.sellpage_id = p.sellpage_id AND o.stat_date = p.day
     WHERE p.sellpage_id IS NULL OR o.sellpage_id IS NULL OR o.needs_reaggregation
        OR (o.reporting_currency, o.spend_minor, o.gross_revenue_minor, o.refunds_minor,
            o.chargebacks_minor, o.net_revenue_minor, o.orders_count, o.roas)
           IS DISTINCT FROM
           ((SELECT rep FROM seller), p.spend, p.gross, p.refunds, p.chargebacks, p.net,
            p.orders, p.roas)
),
written_sellpages AS (
    INSERT INTO sellpage_stats_daily AS t
        (seller_id, sellpage_id, stat_date, reporting_currency, spend_minor,
         gross_revenue_minor, refunds_minor, chargebacks_minor, net_revenue_minor,
         orders_count, roas, needs_reaggregation, computed_at)
    SELECT :seller_id, c.sellpage_id, c.day, seller.rep, c.spend, c.gross, c.refunds,
           c.chargebacks, c.net, c.orders, c.roas, false, now()
      FROM sellpage_changes AS c CROSS JOIN seller
     WHERE c.sellpage_id IS NOT NULL
    ON CONFLICT (seller_id, sellpage_id, stat_date) DO UPDATE
       SET reporting_currency = EXCLUDED.reporting_currency,
           spend_minor = EXCLUDED.spend_minor,
           gross_revenue_minor = EXCLUDED.gross_revenue_minor,
           refunds_minor = EXCLUDED.refunds_minor,
           chargebacks_minor = EXCLUDED.chargebacks_minor,
           net_revenue_minor = EXCLUDED.net_revenue_minor,
           orders_count = EXCLUDED.orders_count,
           roas = EXCLUDED.roas,
           needs_reaggregation = false,
           computed_at = now()
     WHERE t.needs_reaggregation
        OR (t.reporting_currency, t.spend_minor, t.gross_revenue_minor, t.refunds_minor,
            t.chargebacks_minor, t.net_revenue_minor, t.orders_count, t.roas)
           IS DISTINCT FROM
           (EXCLUDED.reporting_currency, EXCLUDED.spend_minor, EXCLUDED.gross_revenue_minor,
            EXCLUDED.refunds_minor, EXCLUDED.chargebacks_minor, EXCLUDED.net_revenue_minor,
            EXCLUDED.orders_count, EXCLUDED.roas)
    RETURNING 1
),
dropped_sellpages AS (
    DELETE FROM sellpage_stats_daily AS t
     USING sellpage_changes AS c
     WHERE c.sellpage_id IS NULL
       AND t.seller_id = :seller_id AND t.stat_date = ANY(CAST(:days AS date[]))
       AND t.stat_date BETWEEN :first_day AND :last_day
       AND t.sellpage_id = c.gone_id AND t.stat_date = c.gone_day
    RETURNING 1
),
written_days AS (
    INSERT INTO seller_stats_daily AS t
        (seller_id, stat_date, reporting_currency, spend_minor, unlinked_spend_minor,
         gross_revenue_minor, refunds_minor, chargebacks_minor, net_revenue_minor,
         orders_count, no_sellpage_net_revenue_minor, no_sellpage_orders_count,
         no_campaign_net_revenue_minor, no_campaign_orders_count, needs_reaggregation,
         fx_pending_currencies, computed_at)
    SELECT :seller_id, day, seller.rep, spend, unlinked, gross, refunds, chargebacks, net,
           orders, no_sellpage_net, no_sellpage_orders, no_campaign_net, no_campaign_orders,
           false, pending_currencies, now()
      FROM seller_days CROSS JOIN seller
    ON CONFLICT (seller_id, stat_date) DO UPDATE
       SET reporting_currency = EXCLUDED.reporting_currency,
           spend_minor = EXCLUDED.spend_minor,
           unlinked_spend_minor = EXCLUDED.unlinked_spend_minor,
           gross_revenue_minor = EXCLUDED.gross_revenue_minor,
           refunds_minor = EXCLUDED.refunds_minor,
           chargebacks_minor = EXCLUDED.chargebacks_minor,
           net_revenue_minor = EXCLUDED.net_revenue_minor,
           orders_count = EXCLUDED.orders_count,
           no_sellpage_net_revenue_minor = EXCLUDED.no_sellpage_net_revenue_minor,
           no_sellpage_orders_count = EXCLUDED.no_sellpage_orders_count,
           no_campaign_net_revenue_minor = EXCLUDED.no_campaign_net_revenue_minor,
           no_campaign_orders_count = EXCLUDED.no_campaign_orders_count,
           needs_reaggregation = false,
           fx_pending_currencies = EXCLUDED.fx_pending_currencies,
           computed_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM entity_days) AS entity_rows,
       (SELECT count(*) FROM sellpage_days) AS sellpage_rows,
       (SELECT count(*) FROM written_days) AS seller_rows,
       (SELECT count(*) FROM written_entities) + (SELECT count(*) FROM dropped_entities)
           AS entity_rows_changed,
       (SELECT count(*) FROM written_sellpages) + (SELECT count(*) FROM dropped_sellpages)
           AS sellpage_rows_changed
"""

#: Recompute the three roll-ups of ``:days``, writing only the rows whose numbers changed.
RECOMPUTE_DAYS = text(_CONVERTED_ROWS)
