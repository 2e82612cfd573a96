"""Orders over HTTP: filters, newest-first keyset paging across partitions, isolation."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixecom_core.settings import Settings
from tests.app.sellers_data.conftest import Tenant
from tests.app.sellers_data.rows import assert_error


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def _walk(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paginated list, following next_cursor; and the number of pages."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "the cursor walk does not end"


# -- lists: order, bounds, cursors ----------------------------------------------------------


async def test_huge_limit_is_clamped_and_a_cursor_walk_sees_every_order_once(
    api_client: httpx.AsyncClient, app_settings: Settings, seller_a: Tenant
) -> None:
    maximum = app_settings.max_page_size
    count = 2 * maximum + 50
    # Three orders per moment, going back 7 hours per moment: the ids break ties and the
    # orders span more than one monthly partition.
    arranged = seller_a.rows.orders(
        count, newest=datetime.now(UTC), step=timedelta(hours=7), per_moment=3
    )

    first = await api_client.get("/orders", params={"limit": 10_000}, headers=seller_a.headers)
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == maximum
    assert first.json()["limit"] == maximum
    assert first.json()["next_cursor"]

    items, pages = await _walk(api_client, "/orders", seller_a.headers, limit=10_000)

    assert pages == 3
    seen = [uuid.UUID(item["id"]) for item in items]
    assert len(seen) == len(set(seen)) == count
    newest_first = sorted(arranged, key=lambda row: (row[0], row[1]), reverse=True)
    assert seen == [order_id for _, order_id in newest_first]


async def test_orders_are_newest_first_with_the_default_page_size(
    api_client: httpx.AsyncClient, app_settings: Settings, seller_a: Tenant
) -> None:
    now = datetime.now(UTC)
    old = seller_a.rows.order(now - timedelta(days=3))
    new = seller_a.rows.order(now - timedelta(minutes=1))
    middle = seller_a.rows.order(now - timedelta(days=1))

    response = await api_client.get("/orders", headers=seller_a.headers)

    assert _ids(response) == [str(new), str(middle), str(old)]
    assert response.json()["next_cursor"] is None
    assert response.json()["limit"] == app_settings.default_page_size


async def test_a_small_page_size_walks_in_order(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    now = datetime.now(UTC)
    ordered = [seller_a.rows.order(now - timedelta(hours=hours)) for hours in range(7)]

    items, pages = await _walk(api_client, "/orders", seller_a.headers, limit=2)

    assert pages == 4
    assert [item["id"] for item in items] == [str(order_id) for order_id in ordered]


# -- filters --------------------------------------------------------------------------------


async def test_status_filter_takes_one_or_several_statuses(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    now = datetime.now(UTC)
    paid = seller_a.rows.order(now - timedelta(hours=1), status="PAID")
    shipped = seller_a.rows.order(now - timedelta(hours=2), status="SHIPPED")
    seller_a.rows.order(now - timedelta(hours=3), status="CANCELLED")

    only_paid = await api_client.get("/orders", params={"status": "PAID"}, headers=seller_a.headers)
    paid_or_shipped = await api_client.get(
        "/orders", params=[("status", "PAID"), ("status", "SHIPPED")], headers=seller_a.headers
    )
    refunded = await api_client.get(
        "/orders", params={"status": "REFUNDED"}, headers=seller_a.headers
    )

    assert _ids(only_paid) == [str(paid)]
    assert _ids(paid_or_shipped) == [str(paid), str(shipped)]
    assert _ids(refunded) == []


async def test_date_range_includes_from_and_excludes_to(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    start = datetime(2026, 3, 10, tzinfo=UTC)
    end = datetime(2026, 3, 12, tzinfo=UTC)
    seller_a.rows.order(start - timedelta(microseconds=1))
    at_start = seller_a.rows.order(start)
    inside = seller_a.rows.order(start + timedelta(days=1))
    just_before_end = seller_a.rows.order(end - timedelta(microseconds=1))
    seller_a.rows.order(end)
    seller_a.rows.order(end + timedelta(days=1))

    response = await api_client.get(
        "/orders",
        params={"created_from": start.isoformat(), "created_to": end.isoformat()},
        headers=seller_a.headers,
    )

    assert _ids(response) == [str(just_before_end), str(inside), str(at_start)]


async def test_open_ended_ranges(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    pivot = datetime(2026, 5, 20, 8, 30, tzinfo=UTC)
    before = seller_a.rows.order(pivot - timedelta(hours=1))
    at_pivot = seller_a.rows.order(pivot)

    since = await api_client.get(
        "/orders", params={"created_from": "2026-05-20T08:30:00Z"}, headers=seller_a.headers
    )
    until = await api_client.get(
        "/orders", params={"created_to": "2026-05-20T10:30:00+02:00"}, headers=seller_a.headers
    )

    assert _ids(since) == [str(at_pivot)]
    # 10:30 at +02:00 is the pivot itself in UTC: excluded.
    assert _ids(until) == [str(before)]


async def test_a_range_spanning_two_monthly_partitions_returns_both_months(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    this_month = _month_start(datetime.now(UTC))
    last_month = _month_start(this_month - timedelta(days=1))
    in_last_month = seller_a.rows.order(last_month + timedelta(days=14, hours=12))
    in_this_month = seller_a.rows.order(this_month + timedelta(hours=1))
    seller_a.rows.order(last_month - timedelta(days=3))  # before the range

    response = await api_client.get(
        "/orders",
        params={
            "created_from": last_month.isoformat(),
            "created_to": (this_month + timedelta(days=1)).isoformat(),
        },
        headers=seller_a.headers,
    )

    assert _ids(response) == [str(in_this_month), str(in_last_month)]
    partitions = seller_a.rows.fetch_all(
        "SELECT DISTINCT tableoid::regclass::text FROM orders WHERE id = ANY(%s)",
        [in_last_month, in_this_month],
    )
    assert len(partitions) == 2, partitions


async def test_sellpage_filter_combines_with_status(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    page = seller_a.rows.sellpage()
    other_page = seller_a.rows.sellpage()
    now = datetime.now(UTC)
    paid_on_page = seller_a.rows.order(now - timedelta(hours=1), sellpage_id=page)
    seller_a.rows.order(now - timedelta(hours=2), sellpage_id=page, status="CANCELLED")
    seller_a.rows.order(now - timedelta(hours=3), sellpage_id=other_page)
    seller_a.rows.order(now - timedelta(hours=4))

    on_page = await api_client.get(
        "/orders", params={"sellpage_id": str(page)}, headers=seller_a.headers
    )
    paid = await api_client.get(
        "/orders", params={"sellpage_id": str(page), "status": "PAID"}, headers=seller_a.headers
    )

    assert len(_ids(on_page)) == 2
    assert _ids(paid) == [str(paid_on_page)]


# -- one order, its events --------------------------------------------------------------------


async def test_get_order_answers_its_fields(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    page = seller_a.rows.sellpage()
    created = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    order_id = seller_a.rows.order(created, status="SHIPPED", sellpage_id=page, total_minor=4200)

    response = await api_client.get(f"/orders/{order_id}", headers=seller_a.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(order_id)
    assert body["status"] == "SHIPPED"
    assert body["sellpage_id"] == str(page)
    assert body["total_minor"] == 4200
    assert body["currency"] == "USD"
    assert datetime.fromisoformat(body["created_at"]) == created
    assert "seller_id" not in body


async def test_order_events_are_oldest_first_and_paginated(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = datetime.now(UTC) - timedelta(days=40)
    order_id = seller_a.rows.order(created, status="SHIPPED")
    other_order = seller_a.rows.order(created)
    steps: list[tuple[str, str | None, str | None]] = [
        ("CREATED", None, "PENDING"),
        ("STATUS_CHANGED", "PENDING", "PAID"),
        ("STATUS_CHANGED", "PAID", "SHIPPED"),
        ("NOTE", None, None),
    ]
    # Inserted out of order, and the last one a month later (another partition).
    offsets = [timedelta(0), timedelta(hours=1), timedelta(days=2), timedelta(days=35)]
    events = {}
    for index in (2, 0, 3, 1):
        kind, from_status, to_status = steps[index]
        events[index] = seller_a.rows.order_event(
            order_id,
            created + offsets[index],
            event_type=kind,
            from_status=from_status,
            to_status=to_status,
        )
    seller_a.rows.order_event(other_order, created, event_type="CREATED")

    items, pages = await _walk(api_client, f"/orders/{order_id}/events", seller_a.headers, limit=3)

    assert pages == 2
    assert [item["id"] for item in items] == [str(events[index]) for index in range(4)]
    assert {item["order_id"] for item in items} == {str(order_id)}
    assert items[1]["from_status"] == "PENDING" and items[1]["to_status"] == "PAID"
    assert items[3]["event_type"] == "NOTE" and items[3]["payload"] == {}


async def test_an_order_without_events_has_an_empty_history(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    order_id = seller_a.rows.order(datetime.now(UTC))

    response = await api_client.get(f"/orders/{order_id}/events", headers=seller_a.headers)

    assert response.status_code == 200, response.text
    assert response.json()["items"] == [] and response.json()["next_cursor"] is None


# -- isolation ------------------------------------------------------------------------------


async def test_another_sellers_order_is_not_found_and_stays_unchanged(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    order_id = seller_a.rows.order(datetime.now(UTC) - timedelta(hours=1), status="PAID")
    seller_a.rows.order_event(order_id, datetime.now(UTC), event_type="CREATED")
    seller_b.rows.order(datetime.now(UTC))
    before = seller_a.rows.fetch_one("SELECT orders.* FROM orders WHERE id = %s", order_id)

    as_b = await api_client.get(f"/orders/{order_id}", headers=seller_b.headers)
    events_as_b = await api_client.get(f"/orders/{order_id}/events", headers=seller_b.headers)
    list_as_b = await api_client.get("/orders", headers=seller_b.headers)

    assert_error(as_b, 404, "not_found")
    assert_error(events_as_b, 404, "not_found")
    assert str(order_id) not in list_as_b.text
    assert len(_ids(list_as_b)) == 1
    # A's order is still there, unchanged, and A still reads it.
    assert seller_a.rows.fetch_one("SELECT orders.* FROM orders WHERE id = %s", order_id) == before
    as_a = await api_client.get(f"/orders/{order_id}", headers=seller_a.headers)
    assert as_a.status_code == 200 and as_a.json()["status"] == "PAID"


async def test_an_unknown_order_is_not_found(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    unknown = uuid.uuid4()
    assert_error(
        await api_client.get(f"/orders/{unknown}", headers=seller_a.headers), 404, "not_found"
    )
    events = await api_client.get(f"/orders/{unknown}/events", headers=seller_a.headers)
    assert_error(events, 404, "not_found")


# -- bad requests ---------------------------------------------------------------------------


async def test_a_malformed_cursor_is_400(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    order_id = seller_a.rows.order(datetime.now(UTC))
    for cursor in ["not-a-cursor!", "W10", base64.urlsafe_b64encode(b"[1]").decode()]:
        listed = await api_client.get(
            "/orders", params={"cursor": cursor}, headers=seller_a.headers
        )
        events = await api_client.get(
            f"/orders/{order_id}/events", params={"cursor": cursor}, headers=seller_a.headers
        )
        assert_error(listed, 400, "invalid_cursor")
        assert_error(events, 400, "invalid_cursor")


async def test_a_cursor_with_values_of_the_wrong_type_is_400(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    # Well-formed, but a text where the created_at of an order should be.
    forged = json.dumps([["s", "yesterday"], ["u", str(uuid.uuid4())]]).encode()
    cursor = base64.urlsafe_b64encode(forged).decode().rstrip("=")

    response = await api_client.get("/orders", params={"cursor": cursor}, headers=seller_a.headers)

    assert_error(response, 400, "invalid_cursor")


async def test_bad_filter_values_are_422(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    bad_queries: list[dict[str, str]] = [
        {"status": "LOST"},
        {"status": "paid"},
        {"created_from": "yesterday"},
        {"created_to": "2026-13-01T00:00:00Z"},
        {"sellpage_id": "not-a-uuid"},
        {"limit": "0"},
        {"limit": "many"},
    ]
    for params in bad_queries:
        response = await api_client.get("/orders", params=params, headers=seller_a.headers)
        error = assert_error(response, 422, "validation_failed")
        assert error["details"], params
    bad_id = await api_client.get("/orders/42", headers=seller_a.headers)
    assert_error(bad_id, 422, "validation_failed")


async def test_a_datetime_without_offset_is_422(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    response = await api_client.get(
        "/orders", params={"created_from": "2026-03-01T00:00:00"}, headers=seller_a.headers
    )

    error = assert_error(response, 422, "validation_failed")
    assert error["details"][0]["location"] == ["query", "created_from"]


async def test_an_empty_or_reversed_range_is_422(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    for start, end in [
        ("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),
    ]:
        response = await api_client.get(
            "/orders", params={"created_from": start, "created_to": end}, headers=seller_a.headers
        )
        assert_error(response, 422, "empty_date_range")


async def test_orders_need_authentication(api_client: httpx.AsyncClient) -> None:
    assert_error(await api_client.get("/orders"), 401, "unauthenticated")
    assert_error(await api_client.get(f"/orders/{uuid.uuid4()}"), 401, "unauthenticated")
    assert_error(await api_client.get(f"/orders/{uuid.uuid4()}/events"), 401, "unauthenticated")


# -- property: a range returns exactly the orders inside it -------------------------------

_RANGE_START = datetime(2026, 1, 25, tzinfo=UTC)
_STATUS_CYCLE = ["PAID", "SHIPPED", "CANCELLED"]


@pytest.fixture
def orders_over_two_months(seller_a: Tenant) -> list[tuple[datetime, str, uuid.UUID]]:
    """45 orders of seller A every 32 hours from 25 January, statuses in turn; arranged
    once per test, not once per hypothesis example."""
    arranged = []
    for index in range(45):
        created_at = _RANGE_START + timedelta(hours=32 * index)
        status = _STATUS_CYCLE[index % 3]
        arranged.append((created_at, status, seller_a.rows.order(created_at, status=status)))
    return arranged


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    bounds=st.tuples(
        st.integers(min_value=0, max_value=60 * 24), st.integers(min_value=0, max_value=60 * 24)
    ),
    statuses=st.sets(st.sampled_from(_STATUS_CYCLE), max_size=3),
)
async def test_any_range_and_statuses_return_exactly_the_matching_orders(
    api_client: httpx.AsyncClient,
    seller_a: Tenant,
    orders_over_two_months: list[tuple[datetime, str, uuid.UUID]],
    bounds: tuple[int, int],
    statuses: set[str],
) -> None:
    start_hours, end_hours = sorted(bounds)
    start = _RANGE_START + timedelta(hours=start_hours)
    end = _RANGE_START + timedelta(hours=end_hours + 1)

    params = httpx.QueryParams(
        [
            ("created_from", start.isoformat()),
            ("created_to", end.isoformat()),
            ("limit", "1000"),
            *[("status", status) for status in sorted(statuses)],
        ]
    )
    response = await api_client.get("/orders", params=params, headers=seller_a.headers)

    expected = [
        str(order_id)
        for created_at, status, order_id in reversed(orders_over_two_months)
        if start <= created_at < end and (not statuses or status in statuses)
    ]
    assert _ids(response) == expected
