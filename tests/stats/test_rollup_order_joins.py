"""A day's roll-up reads its orders once, never once per order (issue 18).

The per-order CTEs of the roll-up (``orders_src``, ``attribution``, ``facts``,
``order_money``) are materialized, and PostgreSQL cannot estimate the day filter on
``created_at`` in the seller's time zone: it expects a handful of orders where a busy
seller-day has hundreds. Joining the money back to the orders by id then ran as nested
loops rescanning a CTE per order — quadratic in the day's orders, 140 of the 220 ms of a
500-order day in scenario C. The facts now carry each order's day, sellpage and ad
entities, so no such join is left. The plan is read with ``EXPLAIN ANALYZE`` of the
statement the application sends, as the application role in the seller's scope.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_sellpages, lock_sellpage_aggregation
from pixecom_core.tenancy import bind_seller_scope, open_seller_scope
from tests.stats.test_pipeline import DAY, make_shop, sessions  # noqa: F401 (fixtures)
from tests.stats.test_rollup_plans import captured

#: Paid orders on the day: enough that a per-order rescan shows in the loop counts.
ORDERS = 300
#: CTEs holding one row per order (or per payment fact) of the recomputed days.
PER_ORDER_CTES = frozenset({"orders_src", "attribution", "facts", "order_money", "orders_out"})


def cte_rescans(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """Every scan of a per-order CTE in ``plan`` with how many times it ran."""
    found = []
    if plan["Node Type"] == "CTE Scan" and plan["CTE Name"] in PER_ORDER_CTES:
        found.append((plan["CTE Name"], int(plan["Actual Loops"])))
    for child in plan.get("Plans", []):
        found.extend(cte_rescans(child))
    return found


def paid_orders(dsn: str, seller_id: Any, sellpage_id: Any, campaign: str) -> None:
    """``ORDERS`` orders on DAY, each captured once; every other one names the campaign."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (seller_id, created_at, currency, subtotal_minor, total_minor,"
            " customer_email, payment_gateway, payment_id, sellpage_id, utm_campaign)"
            " SELECT %s, %s + n * interval '1 minute', 'USD', 1000, 1000, 'buyer@example.com',"
            " 'fakepay', 'fp_' || n, %s, CASE WHEN n %% 2 = 0 THEN %s END"
            " FROM generate_series(1, %s) AS n",
            (
                seller_id,
                datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=1),
                sellpage_id,
                campaign,
                ORDERS,
            ),
        )
        conn.execute(
            "INSERT INTO payment_events (seller_id, order_id, gateway, gateway_reference,"
            " event_type, amount_minor, currency, occurred_at)"
            " SELECT seller_id, id, 'fakepay', payment_id, 'CAPTURED', total_minor, currency,"
            " created_at FROM orders WHERE seller_id = %s",
            (seller_id,),
        )


async def test_a_busy_days_recomputation_scans_each_order_cte_once(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    app_engine: AsyncEngine,
    settings: Settings,
    database_owner_dsn: str,
) -> None:
    shop = make_shop(database_owner_dsn)
    paid_orders(database_owner_dsn, shop.seller_id, shop.sellpage_id, shop.campaign)

    with captured(app_engine) as statements:
        async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
            await lock_sellpage_aggregation(scope)
            await aggregate_sellpages(scope, [DAY])
    [(statement, parameters)] = [s for s in statements if "WITH seller AS" in s[0]]

    async with sessions() as session:
        await session.begin()
        async with bind_seller_scope(session, shop.seller_id, settings):
            connection = await session.connection()
            plan = (
                await connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
                )
            ).scalar_one()
            day = (
                await connection.exec_driver_sql(
                    "SELECT orders_count, no_campaign_orders_count, gross_revenue_minor"
                    " FROM seller_stats_daily WHERE seller_id = %s AND stat_date = %s",
                    (shop.seller_id, DAY),
                )
            ).one()
        await session.rollback()

    # The day holds every order, half of them attributed to the campaign.
    assert tuple(day) == (ORDERS, ORDERS // 2, ORDERS * 1000)
    rescans = cte_rescans(plan[0]["Plan"])
    assert {name for name, _ in rescans} >= {"orders_src", "facts"}
    # The attribution scans the orders once per campaign (one here), never once per order.
    assert [(name, loops) for name, loops in rescans if loops > 1] == []
