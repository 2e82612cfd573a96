"""The reads the seller dashboard adds: open problems, a campaign's days, tracking of many
orders. Each answers only the seller's own rows, is bounded, and refuses bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from tests.app.sellers_data.conftest import Tenant
from tests.app.sellers_data.rows import assert_error

NOW = datetime.now(UTC).replace(microsecond=0)
D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)


def dead_letter(tenant: Tenant, failed_at: datetime, *, resolved: bool = False) -> int:
    row = tenant.rows.conn.execute(
        "INSERT INTO dead_letters (task_name, task_id, seller_id, arguments, error, attempts,"
        " failed_at, resolved_at) VALUES ('pixecom.sync_seller', %s, %s, '{\"secret\": \"x\"}', %s,"
        " 3, %s, %s) RETURNING id",
        (
            uuid.uuid4().hex,
            tenant.api.seller_id,
            "ProviderError: " + "e" * 900,
            failed_at,
            failed_at if resolved else None,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def webhook(tenant: Tenant, received_at: datetime, status: str, *, seller: uuid.UUID | None) -> int:
    row = tenant.rows.conn.execute(
        "INSERT INTO webhook_inbox (gateway, event_id, event_type, received_at, headers, body,"
        " status, attempts, last_error, seller_id) VALUES ('fakepay', %s, 'charge.refunded',"
        " %s, '{\"signature\": \"s\"}', 'body-secret', %s, 4, 'UnknownPaymentError', %s)"
        " RETURNING id",
        (f"evt_{uuid.uuid4().hex}", received_at, status, seller),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def test_problems_lists_the_sellers_open_problems_newest_first(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    a = seller_a.api.seller_id
    open_letter = dead_letter(seller_a, NOW - timedelta(minutes=5))
    dead_letter(seller_a, NOW - timedelta(minutes=4), resolved=True)
    failed = webhook(seller_a, NOW - timedelta(minutes=3), "FAILED", seller=a)
    deferred = webhook(seller_a, NOW - timedelta(minutes=2), "DEFERRED", seller=a)
    webhook(seller_a, NOW - timedelta(minutes=1), "PROCESSED", seller=a)
    webhook(seller_a, NOW, "FAILED", seller=None)  # nobody's yet: shown to no seller
    failing = seller_a.rows.ad_account()
    with seller_a.rows.conn.transaction():
        seller_a.rows.conn.execute(
            "SELECT set_config('app.current_seller_id', %s, true)", (str(a),)
        )
        seller_a.rows.conn.execute(
            "UPDATE ad_accounts SET last_sync_error = 'token expired', sync_failures = 2,"
            " needs_reconnect = true, last_sync_attempt_at = %s WHERE id = %s",
            (NOW - timedelta(minutes=6), failing),
        )
    seller_a.rows.ad_account()  # a healthy account is no problem
    theirs = dead_letter(seller_b, NOW - timedelta(seconds=30))

    answer = await api_client.get("/problems", headers=seller_a.headers)

    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [(p["kind"], p["key"], p["state"]) for p in items] == [
        ("webhook", str(deferred), "DEFERRED"),
        ("webhook", str(failed), "FAILED"),
        ("dead_letter", str(open_letter), "open"),
        ("sync_error", str(failing), "needs_reconnect"),
    ]
    assert items[0]["subject"] == "fakepay charge.refunded" and items[0]["attempts"] == 4
    # A job's raw error is the operator's; the seller reads what happened, in words.
    assert items[2]["error"].startswith("The ad statistics sync failed because of an error")
    assert items[3]["error"] == "token expired" and items[3]["attempts"] == 2
    # Job arguments, webhook bodies and headers never reach the seller.
    assert "secret" not in answer.text and "signature" not in answer.text
    b_items = (await api_client.get("/problems", headers=seller_b.headers)).json()["items"]
    assert [(p["kind"], p["key"]) for p in b_items] == [("dead_letter", str(theirs))]


async def test_a_token_ending_within_seven_days_is_a_problem_until_reconnected(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    """Issue 14 item 6: access ending within 7 days shows with its date; later, already
    ended (the sync's refusal reports that), disconnected or reconnected accounts do not."""
    a = seller_a.api.seller_id
    expiring, later, ended, disconnected = (
        seller_a.rows.ad_account(token_ciphertext=b"sealed token") for _ in range(4)
    )
    ends = {
        expiring: "now() + interval '3 days'",
        later: "now() + interval '30 days'",
        ended: "now() - interval '1 hour'",
        disconnected: "now() + interval '2 days'",
    }
    with seller_a.rows.conn.transaction():
        seller_a.rows.conn.execute(
            "SELECT set_config('app.current_seller_id', %s, true)", (str(a),)
        )
        for account, expression in ends.items():
            seller_a.rows.conn.execute(
                f"UPDATE ad_accounts SET token_expires_at = {expression} WHERE id = %s",
                (account,),
            )
        seller_a.rows.conn.execute(
            "UPDATE ad_accounts SET status = 'DISCONNECTED', token_ciphertext = NULL WHERE id = %s",
            (disconnected,),
        )
        day = seller_a.rows.conn.execute(
            "SELECT to_char(token_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            " FROM ad_accounts WHERE id = %s",
            (expiring,),
        ).fetchone()
    assert day is not None

    items = (await api_client.get("/problems", headers=seller_a.headers)).json()["items"]
    theirs = (await api_client.get("/problems", headers=seller_b.headers)).json()["items"]

    expiring_items = [p for p in items if p["kind"] == "token_expiring"]
    assert [(p["key"], p["state"]) for p in expiring_items] == [(str(expiring), "expiring")]
    assert day[0] in expiring_items[0]["error"] and "Reconnect" in expiring_items[0]["error"]
    assert not [p for p in theirs if p["kind"] == "token_expiring"]

    with seller_a.rows.conn.transaction():
        seller_a.rows.conn.execute(
            "SELECT set_config('app.current_seller_id', %s, true)", (str(a),)
        )
        seller_a.rows.conn.execute(
            "UPDATE ad_accounts SET token_expires_at = now() + interval '60 days' WHERE id = %s",
            (expiring,),
        )
    after = (await api_client.get("/problems", headers=seller_a.headers)).json()["items"]
    assert not [p for p in after if p["kind"] == "token_expiring"]


async def test_problems_show_sellers_no_sql_stack_traces_or_internal_names(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    """Issue 12 item 5: a sync that died on a database error used to show its SQL."""
    a = seller_a.api.seller_id
    database_error = (
        "DataError: (psycopg.errors.NumericValueOutOfRange) bigint out of range\n"
        "[SQL: INSERT INTO ad_stats_raw (seller_id, spend_micros) VALUES (%(seller_id)s::UUID,"
        " %(spend_micros)s::BIGINT)]\n(Background on this error at: https://sqlalche.me/e/20/9h9h)"
    )
    letter = seller_a.rows.conn.execute(
        "INSERT INTO dead_letters (task_name, task_id, seller_id, error, attempts)"
        " VALUES ('pixecom.sync_seller', %s, %s, %s, 3) RETURNING id",
        (uuid.uuid4().hex, a, database_error),
    ).fetchone()
    parked = seller_a.rows.conn.execute(
        "INSERT INTO webhook_inbox (gateway, event_id, event_type, body, status, attempts,"
        " last_error, seller_id) VALUES ('fakepay', %s, 'charge.refunded', 'b', 'FAILED', 5,"
        " %s, %s) RETURNING id",
        (
            f"evt_{uuid.uuid4().hex}",
            'Traceback (most recent call last):\n  File "pixecom_core/ledger/inbox.py", line 9\n'
            "KeyError: 'amount'",
            a,
        ),
    ).fetchone()
    waiting = webhook(seller_a, NOW, "DEFERRED", seller=a)
    with seller_a.rows.conn.transaction():
        seller_a.rows.conn.execute(
            "SELECT set_config('app.current_seller_id', %s, true)", (str(a),)
        )
        seller_a.rows.conn.execute(
            "UPDATE ad_accounts SET last_sync_error = %s, sync_failures = 1,"
            " last_sync_attempt_at = now() WHERE id = %s",
            (database_error, seller_a.rows.ad_account()),
        )
    assert letter is not None and parked is not None

    answer = await api_client.get("/problems", headers=seller_a.headers)

    assert answer.status_code == 200, answer.text
    errors = {(p["kind"], p["key"]): p["error"] for p in answer.json()["items"]}
    for leaked in (
        "SQL",
        "INSERT",
        "ad_stats_raw",
        "psycopg",
        "bigint",
        "Traceback",
        "pixecom_core",
        "KeyError",
        "DataError",
        "sqlalche",
    ):
        assert leaked not in answer.text, leaked
    assert "error on PixEcom's side" in errors[("dead_letter", str(letter[0]))]
    assert "set aside after repeated attempts" in errors[("webhook", str(parked[0]))]
    assert "retried automatically" in errors[("webhook", str(waiting))]
    assert any(
        kind == "sync_error" and "error on PixEcom's side" in (error or "")
        for (kind, _), error in errors.items()
    )
    # The raw text stays where the operator reads it.
    stored = seller_a.rows.conn.execute(
        "SELECT error FROM dead_letters WHERE id = %s", (letter[0],)
    ).fetchone()
    assert stored == (database_error,)


async def test_problems_pages_walk_every_problem_once(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    same_moment = NOW - timedelta(hours=1)
    keys = {str(dead_letter(seller_a, same_moment)) for _ in range(3)}
    keys |= {str(dead_letter(seller_a, NOW - timedelta(minutes=m))) for m in range(4)}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api_client.get("/problems", params=params, headers=seller_a.headers)).json()
        seen += [p["key"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(keys) and len(seen) == len(keys)


async def test_problems_refuses_a_cursor_it_did_not_issue_and_needs_a_login(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    from pixecom_core.tenancy.pagination import encode_cursor

    forged = encode_cursor(["not-a-time", "dead_letter", "1"])
    wrong_kind = encode_cursor([NOW, "payments", "1"])
    for cursor in ("garbage!!", forged, wrong_kind):
        answer = await api_client.get(
            "/problems", params={"cursor": cursor}, headers=seller_a.headers
        )
        assert_error(answer, 400, "invalid_cursor")
    assert_error(await api_client.get("/problems"), 401, "unauthenticated")


def campaign_stats(tenant: Tenant, currency: str = "USD") -> tuple[uuid.UUID, str]:
    account = tenant.rows.insert(
        "ad_accounts",
        network="meta",
        external_id=f"act_{uuid.uuid4().hex[:10]}",
        name="Main",
        timezone="UTC",
        currency=currency,
    )
    campaign = tenant.rows.campaign(account, name="Winter hats")
    found = tenant.rows.fetch_one("SELECT external_id FROM campaigns WHERE id = %s", campaign)
    assert found is not None
    external: str = found[0]
    for day, spend_micros in ((D1, 12_340_000), (D3, 5_000_000)):
        tenant.rows.insert(
            "ad_stats_daily",
            network="meta",
            entity_type="campaign",
            entity_id=external,
            stat_date=day,
            snapshot_fetched_at=NOW,
            spend_micros=spend_micros,
            impressions=1000,
            clicks=25,
            purchases=2,
            purchase_value_micros=0,
            currency=currency,
        )
    return campaign, external


async def test_campaign_days_answers_each_day_and_the_totals(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    campaign, external = campaign_stats(seller_a)
    other_network = seller_a.rows.ad_account()  # same entity id on another account's stats
    assert other_network

    answer = await api_client.get(
        f"/stats/campaigns/{campaign}/days",
        params={"since": D1.isoformat(), "until": D2.isoformat()},
        headers=seller_a.headers,
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["name"], body["external_id"], body["currency"]) == ("Winter hats", external, "USD")
    assert body["days"] == [
        {
            "day": "2026-11-18",
            "spend_minor": 1234,
            "impressions": 1000,
            "clicks": 25,
            "purchases": 2,
        }
    ]
    wide = await api_client.get(
        f"/stats/campaigns/{campaign}/days",
        params={"since": D1.isoformat(), "until": D3.isoformat()},
        headers=seller_a.headers,
    )
    assert wide.json()["totals"] == {
        "spend_minor": 1734,
        "impressions": 2000,
        "clicks": 50,
        "purchases": 4,
    }


async def test_campaign_days_uses_the_currencys_exponent(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    campaign, _ = campaign_stats(seller_a, currency="JPY")

    body = (
        await api_client.get(
            f"/stats/campaigns/{campaign}/days",
            params={"since": D1.isoformat(), "until": D3.isoformat()},
            headers=seller_a.headers,
        )
    ).json()

    assert body["currency"] == "JPY" and body["totals"]["spend_minor"] == 17  # ¥12.34 + ¥5


async def test_campaign_days_of_another_seller_or_a_bad_range_is_refused(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    campaign, _ = campaign_stats(seller_a)
    query = {"since": D1.isoformat(), "until": D3.isoformat()}

    as_b = await api_client.get(
        f"/stats/campaigns/{campaign}/days", params=query, headers=seller_b.headers
    )
    unknown = await api_client.get(
        f"/stats/campaigns/{uuid.uuid4()}/days", params=query, headers=seller_a.headers
    )
    reversed_range = await api_client.get(
        f"/stats/campaigns/{campaign}/days",
        params={"since": D3.isoformat(), "until": D1.isoformat()},
        headers=seller_a.headers,
    )

    assert_error(as_b, 404, "not_found")
    assert_error(unknown, 404, "not_found")
    assert_error(reversed_range, 422, "empty_date_range")
    assert "Winter hats" not in as_b.text


def tracked_order(tenant: Tenant, number: str, status: str = "in_transit") -> uuid.UUID:
    order = tenant.rows.order(NOW - timedelta(hours=1))
    tenant.rows.insert(
        "tracking_records",
        order_id=order,
        carrier="usps",
        tracking_number=number,
        status=status,
    )
    return order


async def test_tracking_of_many_orders_in_one_request(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    first = tracked_order(seller_a, "TRACK0001")
    second = tracked_order(seller_a, "TRACK0002", "delivered")
    tracked_order(seller_a, "TRACK0003")  # not asked for
    untracked = seller_a.rows.order(NOW)
    theirs = tracked_order(seller_b, "THEIRS0001")

    answer = await api_client.get(
        "/tracking",
        params={"order_id": [str(first), str(second), str(untracked), str(theirs)]},
        headers=seller_a.headers,
    )

    assert answer.status_code == 200, answer.text
    found = {(r["order_id"], r["tracking_number"], r["status"]) for r in answer.json()["items"]}
    assert found == {
        (str(first), "TRACK0001", "in_transit"),
        (str(second), "TRACK0002", "delivered"),
    }
    everything = await api_client.get("/tracking", headers=seller_a.headers)
    assert len(everything.json()["items"]) == 3
    assert "THEIRS0001" not in everything.text


async def test_tracking_pages_and_limits(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    orders = [tracked_order(seller_a, f"PAGE{i:04d}") for i in range(3)]
    params: dict[str, Any] = {"order_id": [str(o) for o in orders], "limit": 2}

    first = (await api_client.get("/tracking", params=params, headers=seller_a.headers)).json()
    rest = (
        await api_client.get(
            "/tracking",
            params={**params, "cursor": first["next_cursor"]},
            headers=seller_a.headers,
        )
    ).json()
    too_many = await api_client.get(
        "/tracking",
        params={"order_id": [str(uuid.uuid4()) for _ in range(201)]},
        headers=seller_a.headers,
    )
    not_a_uuid = await api_client.get(
        "/tracking", params={"order_id": "nope"}, headers=seller_a.headers
    )

    numbers = [r["tracking_number"] for r in first["items"] + rest["items"]]
    assert sorted(numbers) == ["PAGE0000", "PAGE0001", "PAGE0002"]
    assert rest["next_cursor"] is None
    assert_error(too_many, 422, "validation_failed")
    assert_error(not_a_uuid, 422, "validation_failed")


def test_problems_read_only_the_sellers_open_rows_through_indexes(seller_a: Tenant) -> None:
    """A grown inbox and dead-letter table (processed deliveries and resolved letters of
    many sellers) are not scanned per call: the plan reaches the seller's open problems
    through the partial indexes of migration 0008."""
    from sqlalchemy.dialects import postgresql

    from pixecom_core.problems.service import _PROBLEMS

    conn = seller_a.rows.conn
    bulk = uuid.uuid4().hex
    # One transaction, rolled back: the bulk rows (and the statistics ANALYZE takes of
    # them) never reach the database other tests share.
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO webhook_inbox (gateway, event_id, event_type, received_at, headers,"
            " body, status, attempts) SELECT 'fakepay', 'evt_bulk_' || n || %s,"
            " 'charge.succeeded', now() - n * interval '1 second', '{}', 'b', 'PROCESSED', 1"
            " FROM generate_series(1, 20000) AS n",
            (bulk,),
        )
        conn.execute(
            "INSERT INTO dead_letters (task_name, task_id, arguments, error, attempts,"
            " failed_at, resolved_at) SELECT 'sync_seller', 'bulk-' || n || %s, '{}', 'e', 3,"
            " now() - n * interval '1 second', now() FROM generate_series(1, 20000) AS n",
            (uuid.uuid4().hex,),
        )
        dead_letter(seller_a, NOW)
        webhook(seller_a, NOW, "FAILED", seller=seller_a.api.seller_id)
        conn.execute("ANALYZE webhook_inbox")
        conn.execute("ANALYZE dead_letters")
        query = _PROBLEMS.bindparams(
            seller_id=seller_a.api.seller_id,
            after_at=None,
            after_kind=None,
            after_key=None,
            limit=50,
        ).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})

        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {query}").fetchall())
        # The inbox is partitioned by month (0019): each partition has its own copy of
        # the partial index, named after the partition.
        inbox_index_copies = [
            str(name)
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c"
                " ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'ix_webhook_inbox_seller_problems'::regclass"
            ).fetchall()
        ]

        # An empty month may be scanned for nothing; the months holding the bulk may not.
        bulk_homes = {
            str(name)
            for (name,) in conn.execute(
                "SELECT DISTINCT tableoid::regclass::text FROM webhook_inbox"
                " WHERE event_id LIKE 'evt\\_bulk\\_%%' || %s",
                (bulk,),
            ).fetchall()
        }

    assert any(name in plan for name in inbox_index_copies), plan
    assert "ix_dead_letters_seller_open" in plan, plan
    assert bulk_homes and not any(f"Seq Scan on {name} " in plan for name in bulk_homes), plan
    assert "Seq Scan on dead_letters" not in plan, plan
