"""GET /stats/*: the seller's own aggregated numbers, totals, ROAS null without spend."""

from __future__ import annotations

import uuid
from datetime import date

import httpx
import psycopg

from tests.app.conftest import NewSeller
from tests.db.tenant_rows import insert_seller_day, seller_scope

D1, D2 = date(2026, 11, 20), date(2026, 11, 21)


def arrange(dsn: str, seller_id: uuid.UUID) -> uuid.UUID:
    with psycopg.connect(dsn, autocommit=True) as conn, seller_scope(conn, seller_id):
        page = conn.execute(
            "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'Hats') RETURNING id",
            (seller_id, f"hats-{uuid.uuid4().hex[:8]}"),
        ).fetchone()
        assert page is not None
        for day, spend, gross, refunds in ((D1, 2_000, 9_000, 1_000), (D2, 0, 4_000, 0)):
            net = gross - refunds
            conn.execute(
                "INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date,"
                " reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,"
                " chargebacks_minor, net_revenue_minor, orders_count, roas) VALUES"
                " (%s, %s, %s, 'EUR', %s, %s, %s, 0, %s, 2, %s)",
                (
                    seller_id,
                    page[0],
                    day,
                    spend,
                    gross,
                    refunds,
                    net,
                    net / spend if spend else None,
                ),
            )
            # The seller's own day: the page's figures plus 5.00 of an unlinked campaign.
            insert_seller_day(
                conn,
                seller_id,
                day,
                reporting_currency="EUR",
                spend_minor=spend + 500,
                unlinked_spend_minor=500,
                gross_revenue_minor=gross,
                refunds_minor=refunds,
                net_revenue_minor=net,
                orders_count=2,
                no_campaign_net_revenue_minor=net // 2,
                no_campaign_orders_count=1,
            )
        account = conn.execute(
            "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone, currency,"
            " last_sync_error, sync_failures) VALUES (%s, 'meta', 'act_1', 'Main', 'UTC', 'EUR',"
            " 'rate limited', 1) RETURNING id",
            (seller_id,),
        ).fetchone()
        assert account is not None
        conn.execute(
            "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name, status) VALUES"
            " (%s, %s, 'c1', 'Winter hats', 'PAUSED')",
            (seller_id, account[0]),
        )
        conn.execute(
            "INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id, stat_date,"
            " snapshot_fetched_at, spend_micros, impressions, clicks, purchases,"
            " purchase_value_micros, currency) VALUES (%s, 'meta', 'campaign', 'c1', %s, now(),"
            " 20000000, 1000, 40, 2, 90000000, 'EUR')",
            (seller_id, D1),
        )
        conn.execute(
            "INSERT INTO entity_stats_daily (seller_id, entity_type, network, entity_id,"
            " stat_date, reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,"
            " chargebacks_minor, net_revenue_minor, orders_count)"
            " VALUES (%s, 'campaign', 'meta', 'c1', %s, 'EUR', 2000, 9000, 1000, 0, 8000, 1)",
            (seller_id, D1),
        )
    return page[0]


async def test_overview_sellpages_entities_and_sync_status(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller(currency="EUR")
    other = await new_seller()
    arrange(database_owner_dsn, seller.seller_id)
    query = {"since": "2026-11-01", "until": "2026-11-30"}

    overview = await api_client.get("/stats/overview", params=query, headers=seller.headers)
    pages = await api_client.get("/stats/sellpages", params=query, headers=seller.headers)
    entities = await api_client.get("/stats/entities", params=query, headers=seller.headers)
    status = await api_client.get("/stats/sync-status", headers=seller.headers)

    body = overview.json()
    assert overview.status_code == 200, overview.text
    assert body["reporting_currency"] == "EUR"
    assert [
        (d["day"], d["spend_minor"], d["net_revenue_minor"], d["roas"]) for d in body["days"]
    ] == [
        ("2026-11-20", 2_500, 8_000, "3.200000"),
        ("2026-11-21", 500, 4_000, "8.000000"),
    ]
    assert body["totals"]["net_revenue_minor"] == 12_000
    # Overall ROAS: all net revenue over all spend, the unlinked campaign's included.
    assert body["totals"]["roas"] == "4.000000"
    assert body["unattributed"] == {
        "spend_minor": 1_000,
        "no_sellpage_net_revenue_minor": 0,
        "no_sellpage_orders": 0,
        "no_campaign_net_revenue_minor": 6_000,
        "no_campaign_orders": 2,
    }
    assert body["pending_days"] == 0
    assert pages.json()["items"][0]["title"] == "Hats"
    assert pages.json()["unattributed"]["spend_minor"] == 1_000
    assert entities.json()["items"] == [
        {
            "network": "meta",
            "level": "campaign",
            "entity_id": "c1",
            "name": "Winter hats",
            "status": "PAUSED",
            "currency": "EUR",
            "spend_minor": 2_000,
            "impressions": 1000,
            "clicks": 40,
            "purchases": 2,
            "reporting_currency": "EUR",
            "spend_reporting_minor": 2_000,
            "gross_revenue_minor": 9_000,
            "refunds_minor": 1_000,
            "chargebacks_minor": 0,
            "net_revenue_minor": 8_000,
            "orders": 1,
            "roas": "4.000000",
        }
    ]
    assert entities.json()["unattributed"]["no_campaign_orders"] == 2
    [account] = status.json()["items"]
    assert account["last_sync_error"] == "rate limited" and account["lag_seconds"] is None

    # Another seller sees none of it.
    theirs = await api_client.get("/stats/overview", params=query, headers=other.headers)
    assert theirs.json()["days"] == [] and theirs.json()["totals"]["roas"] is None
    assert (await api_client.get("/stats/sync-status", headers=other.headers)).json()["items"] == []


async def test_a_reversed_or_huge_range_is_refused(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()

    reversed_range = await api_client.get(
        "/stats/overview",
        params={"since": "2026-11-30", "until": "2026-11-01"},
        headers=seller.headers,
    )
    huge = await api_client.get(
        "/stats/overview",
        params={"since": "2020-01-01", "until": "2026-11-01"},
        headers=seller.headers,
    )

    assert reversed_range.status_code == 422
    assert reversed_range.json()["error"]["code"] == "empty_date_range"
    assert huge.json()["error"]["code"] == "date_range_too_long"
