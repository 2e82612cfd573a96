"""Pricing rules over HTTP: append-only history, one open rule, refusals."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from tests.app.catalog.conftest import assert_error, create_product, create_sellpage, set_price
from tests.app.conftest import SignedUpSeller
from tests.db.tenant_rows import seller_scope


def stored_rules(
    owner_dsn: str, seller_id: uuid.UUID, product_id: str
) -> list[tuple[uuid.UUID, uuid.UUID | None, int, datetime, datetime | None]]:
    """The product's rules as the database holds them, oldest first (read as the owner)."""
    with psycopg.connect(owner_dsn, autocommit=True) as conn, seller_scope(conn, seller_id):
        return conn.execute(
            "SELECT id, sellpage_id, price_minor, effective_from, effective_until"
            " FROM pricing_rules WHERE seller_id = %s AND product_id = %s"
            " ORDER BY effective_from, created_at",
            (seller_id, product_id),
        ).fetchall()


async def test_setting_a_price_closes_the_open_rule_and_appends_one(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, database_owner_dsn: str
) -> None:
    product = await create_product(api_client, seller)
    first = await set_price(api_client, seller, product["id"], 1999)
    second = await set_price(api_client, seller, product["id"], 2499, currency="EUR")

    assert first["effective_until"] is None
    assert second["effective_until"] is None
    assert second["currency"] == "EUR"
    rows = stored_rules(database_owner_dsn, seller.seller_id, product["id"])
    assert [row[2] for row in rows] == [1999, 2499]
    old, new = rows
    assert old[4] == new[3]  # the old rule ends where the new one starts
    assert [row for row in rows if row[4] is None] == [new]

    closed = await api_client.get(f"/pricing-rules/{first['id']}", headers=seller.headers)
    assert closed.status_code == 200, closed.text
    assert datetime.fromisoformat(closed.json()["effective_until"]) == new[3]
    history = await api_client.get(f"/products/{product['id']}/prices", headers=seller.headers)
    assert [rule["id"] for rule in history.json()["items"]] == [second["id"], first["id"]]


async def test_sellpage_and_product_wide_rules_each_have_one_open_rule(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, database_owner_dsn: str
) -> None:
    product = await create_product(api_client, seller)
    sellpage = await create_sellpage(api_client, seller, product_id=product["id"])
    await set_price(api_client, seller, product["id"], 1000)
    await set_price(api_client, seller, product["id"], 900, sellpage_id=sellpage["id"])
    await set_price(api_client, seller, product["id"], 800, sellpage_id=sellpage["id"])
    await set_price(api_client, seller, product["id"], 1100)

    rows = stored_rules(database_owner_dsn, seller.seller_id, product["id"])
    open_rules = {(row[1], row[2]) for row in rows if row[4] is None}
    assert open_rules == {(None, 1100), (uuid.UUID(sellpage["id"]), 800)}
    assert len(rows) == 4


async def test_a_scheduled_price_closes_the_current_one_at_its_start(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    current = await set_price(api_client, seller, product["id"], 1000)
    starts = datetime.now(UTC) + timedelta(days=7)

    scheduled = await set_price(
        api_client, seller, product["id"], 700, effective_from=starts.isoformat()
    )
    earlier = await api_client.post(
        f"/products/{product['id']}/prices",
        json={
            "price_minor": 800,
            "currency": "USD",
            "effective_from": (starts - timedelta(days=1)).isoformat(),
        },
        headers=seller.headers,
    )

    assert datetime.fromisoformat(scheduled["effective_from"]) == starts
    closed = await api_client.get(f"/pricing-rules/{current['id']}", headers=seller.headers)
    assert datetime.fromisoformat(closed.json()["effective_until"]) == starts
    # History is append-only: a price cannot start before the open one, "now" included.
    assert_error(earlier, 422, "effective_from_too_early")
    now = await api_client.post(
        f"/products/{product['id']}/prices",
        json={"price_minor": 900, "currency": "USD"},
        headers=seller.headers,
    )
    assert_error(now, 422, "effective_from_too_early")


async def test_invalid_prices_are_refused(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, database_owner_dsn: str
) -> None:
    product = await create_product(api_client, seller)
    path = f"/products/{product['id']}/prices"
    for body in [
        {"price_minor": -1, "currency": "USD"},
        {"price_minor": 2**63, "currency": "USD"},
        {"price_minor": 10**15, "currency": "USD"},
        {"price_minor": "100", "currency": "USD"},
        {"price_minor": True, "currency": "USD"},
        {"price_minor": 10, "currency": "usd"},
        {"price_minor": 10, "currency": "DOLLAR"},
        {"price_minor": "ten", "currency": "USD"},
        {"price_minor": 10.5, "currency": "USD"},
        {"price_minor": 10, "currency": "USD", "effective_from": "2026-01-01T00:00:00"},
        {"price_minor": 10, "currency": "USD", "effective_until": "2030-01-01T00:00:00Z"},
        {"currency": "USD"},
    ]:
        response = await api_client.post(path, json=body, headers=seller.headers)
        assert_error(response, 422, "validation_failed")
    assert stored_rules(database_owner_dsn, seller.seller_id, product["id"]) == []


async def test_prices_need_a_known_product_and_a_sellpage_showing_it(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, database_owner_dsn: str
) -> None:
    product = await create_product(api_client, seller)
    another = await create_product(api_client, seller)
    elsewhere = await create_sellpage(api_client, seller, product_id=another["id"])
    body = {"price_minor": 500, "currency": "USD"}

    unknown_product = await api_client.post(
        f"/products/{uuid.uuid4()}/prices", json=body, headers=seller.headers
    )
    unknown_sellpage = await api_client.post(
        f"/products/{product['id']}/prices",
        json={**body, "sellpage_id": str(uuid.uuid4())},
        headers=seller.headers,
    )
    wrong_sellpage = await api_client.post(
        f"/products/{product['id']}/prices",
        json={**body, "sellpage_id": elsewhere["id"]},
        headers=seller.headers,
    )

    assert_error(unknown_product, 404, "not_found")
    assert_error(unknown_sellpage, 404, "not_found")
    assert_error(wrong_sellpage, 422, "sellpage_shows_another_product")
    assert stored_rules(database_owner_dsn, seller.seller_id, product["id"]) == []
    unknown_list = await api_client.get(f"/products/{uuid.uuid4()}/prices", headers=seller.headers)
    assert_error(unknown_list, 404, "not_found")
    unknown_rule = await api_client.get(f"/pricing-rules/{uuid.uuid4()}", headers=seller.headers)
    assert_error(unknown_rule, 404, "not_found")


async def test_pricing_rules_cannot_be_edited_or_deleted(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    rule = await set_price(api_client, seller, product["id"], 1000)
    path = f"/pricing-rules/{rule['id']}"

    patched = await api_client.patch(path, json={"price_minor": 1}, headers=seller.headers)
    deleted = await api_client.delete(path, headers=seller.headers)

    assert_error(patched, 405, "method_not_allowed")
    assert_error(deleted, 405, "method_not_allowed")
    assert (await api_client.get(path, headers=seller.headers)).json() == rule


async def test_price_history_pages_newest_first(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    rules = [(await set_price(api_client, seller, product["id"], p))["id"] for p in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await api_client.get(
            f"/products/{product['id']}/prices", params=params, headers=seller.headers
        )
        assert len(page.json()["items"]) <= 2
        seen.extend(rule["id"] for rule in page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(rules))


async def test_concurrent_price_changes_leave_one_open_rule_and_a_gapless_history(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, database_owner_dsn: str
) -> None:
    product = await create_product(api_client, seller)
    path = f"/products/{product['id']}/prices"

    responses = await asyncio.gather(
        *(
            api_client.post(
                path, json={"price_minor": 100 + i, "currency": "USD"}, headers=seller.headers
            )
            for i in range(8)
        )
    )

    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    rows = stored_rules(database_owner_dsn, seller.seller_id, product["id"])
    assert len(rows) == 8
    assert [row[4] is None for row in rows] == [False] * 7 + [True]
    for earlier, later in itertools.pairwise(rows):
        assert earlier[4] == later[3]  # each rule ends where the next starts
