"""/fx/rates and /seller/reporting-currency: a seller's own rates, audited, and days that
move with them; linking a campaign recomputes every day it spent (issue 16)."""

from __future__ import annotations

import uuid
from datetime import date

import httpx
import psycopg

from tests.app.conftest import NewSeller
from tests.db.tenant_rows import insert_seller_day, seller_scope

OLD_DAY, NEW_DAY = date(2025, 3, 3), date(2026, 11, 20)


def dirty_days(dsn: str, seller_id: uuid.UUID) -> set[date]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT stat_date FROM seller_stats_daily WHERE seller_id = %s AND needs_reaggregation",
            (seller_id,),
        ).fetchall()
    return {row[0] for row in rows}


async def test_a_manual_rate_is_set_listed_audited_and_removed(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller(currency="EUR")
    other = await new_seller()
    rate = {"day": "2026-11-20", "base_currency": "EUR", "quote_currency": "VND", "rate": "27000.5"}

    first = await api_client.put("/fx/rates", json=rate, headers=seller.headers)
    changed = await api_client.put(
        "/fx/rates", json={**rate, "rate": "27100", "note": "bank rate"}, headers=seller.headers
    )
    listed = await api_client.get(
        "/fx/rates", params={"since": "2026-11-01", "until": "2026-11-30"}, headers=seller.headers
    )

    assert first.status_code == 200, first.text
    assert changed.json()["rate"] == "27100.0000000000"
    assert [(r["day"], r["rate"], r["note"]) for r in listed.json()] == [
        ("2026-11-20", "27100.0000000000", "bank rate")
    ]
    # The day it converts is recomputed.
    assert NEW_DAY in dirty_days(database_owner_dsn, seller.seller_id)
    # Another seller sees none of it, and its figures never use it.
    theirs = await api_client.get(
        "/fx/rates", params={"since": "2026-11-01", "until": "2026-11-30"}, headers=other.headers
    )
    assert theirs.json() == []
    # Nor can it remove it: its scope finds no such rate.
    foreign = await api_client.delete("/fx/rates/2026-11-20/EUR/VND", headers=other.headers)
    assert foreign.status_code == 404
    still = await api_client.get(
        "/fx/rates", params={"since": "2026-11-20", "until": "2026-11-20"}, headers=seller.headers
    )
    assert len(still.json()) == 1

    removed = await api_client.delete("/fx/rates/2026-11-20/EUR/VND", headers=seller.headers)
    again = await api_client.delete("/fx/rates/2026-11-20/EUR/VND", headers=seller.headers)
    assert (removed.status_code, again.status_code) == (204, 404)

    audit = (await api_client.get("/fx/rates/changes", headers=seller.headers)).json()
    assert [(c["old_rate"], c["new_rate"]) for c in audit] == [
        ("27100.0000000000", None),
        ("27000.5000000000", "27100.0000000000"),
        (None, "27000.5000000000"),
    ]
    assert all(c["changed_by"].startswith("user:") for c in audit)
    assert (await api_client.get("/fx/rates/changes", headers=other.headers)).json() == []


async def test_bad_rates_are_refused(api_client: httpx.AsyncClient, new_seller: NewSeller) -> None:
    seller = await new_seller()
    base = {"day": "2026-11-20", "base_currency": "EUR", "quote_currency": "VND", "rate": "2"}
    bad = [
        {**base, "quote_currency": "EUR"},
        {**base, "rate": "0"},
        {**base, "rate": "-1"},
        {**base, "rate": "NaN"},
        {**base, "base_currency": "eur"},
        {**base, "quote_currency": "ZZZ"},  # three letters, but no currency
        {**base, "day": "2026-13-01"},
    ]
    answers = [await api_client.put("/fx/rates", json=body, headers=seller.headers) for body in bad]
    assert [a.status_code for a in answers] == [422] * len(bad), [a.text for a in answers]
    unauthenticated = await api_client.put("/fx/rates", json=base)
    assert unauthenticated.status_code == 401


async def test_a_new_reporting_currency_recomputes_the_whole_history(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller(currency="USD")
    with (
        psycopg.connect(database_owner_dsn, autocommit=True) as conn,
        seller_scope(conn, seller.seller_id),
    ):
        for day in (OLD_DAY, NEW_DAY):  # one day far outside any 28-day sweep
            conn.execute(
                "INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id,"
                " stat_date, snapshot_fetched_at, spend_micros, impressions, clicks,"
                " purchases, purchase_value_micros, currency) VALUES (%s, 'net', 'campaign',"
                " 'c1', %s, now(), 1000000, 1, 1, 0, 0, 'USD')",
                (seller.seller_id, day),
            )
        # NEW_DAY was aggregated already, in dollars.
        insert_seller_day(
            conn, seller.seller_id, NEW_DAY, spend_minor=100, unlinked_spend_minor=100
        )

    changed = await api_client.put(
        "/seller/reporting-currency", json={"reporting_currency": "EUR"}, headers=seller.headers
    )
    same = await api_client.put(
        "/seller/reporting-currency", json={"reporting_currency": "EUR"}, headers=seller.headers
    )
    me = await api_client.get("/auth/me", headers=seller.headers)

    assert changed.json() == {"reporting_currency": "EUR", "days_to_recompute": 2}
    # Until they are recomputed, the old days are pending and count for nothing: no USD
    # amount is ever shown as euros.
    overview = await api_client.get(
        "/stats/overview",
        params={"since": "2026-11-01", "until": "2026-11-30"},
        headers=seller.headers,
    )
    body = overview.json()
    assert body["reporting_currency"] == "EUR" and body["pending_days"] == 1
    assert body["totals"]["spend_minor"] == 0
    assert [(d["day"], d["needs_reaggregation"]) for d in body["days"]] == [("2026-11-20", True)]
    assert same.json()["days_to_recompute"] == 0
    made_up = await api_client.put(
        "/seller/reporting-currency", json={"reporting_currency": "ZZZ"}, headers=seller.headers
    )
    assert made_up.status_code == 422 and made_up.json()["error"]["code"] == "invalid_currency"
    assert me.json()["seller"]["reporting_currency"] == "EUR"
    assert dirty_days(database_owner_dsn, seller.seller_id) == {OLD_DAY, NEW_DAY}


async def test_linking_a_campaign_marks_every_day_it_spent(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str
) -> None:
    seller = await new_seller()
    with (
        psycopg.connect(database_owner_dsn, autocommit=True) as conn,
        seller_scope(conn, seller.seller_id),
    ):
        page = conn.execute(
            "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'P') RETURNING id",
            (seller.seller_id, f"p-{uuid.uuid4().hex[:8]}"),
        ).fetchone()
        account = conn.execute(
            "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone, currency)"
            " VALUES (%s, 'net', 'act_1', 'A', 'UTC', 'USD') RETURNING id",
            (seller.seller_id,),
        ).fetchone()
        assert page is not None and account is not None
        campaign = conn.execute(
            "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name)"
            " VALUES (%s, %s, 'c9', 'C') RETURNING id",
            (seller.seller_id, account[0]),
        ).fetchone()
        assert campaign is not None
        for day in (OLD_DAY, NEW_DAY):
            conn.execute(
                "INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id,"
                " stat_date, snapshot_fetched_at, ad_account_id, spend_micros, impressions,"
                " clicks, purchases, purchase_value_micros, currency) VALUES (%s, 'net',"
                " 'campaign', 'c9', %s, now(), %s, 1000000, 1, 1, 0, 0, 'USD')",
                (seller.seller_id, day, account[0]),
            )

    linked = await api_client.patch(
        f"/campaigns/{campaign[0]}",
        json={"sellpage_id": str(page[0])},
        headers=seller.headers,
    )

    assert linked.status_code == 200, linked.text
    assert dirty_days(database_owner_dsn, seller.seller_id) == {OLD_DAY, NEW_DAY}
