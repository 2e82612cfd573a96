"""Campaigns, ad sets and ads over HTTP: filters, the sellpage link, tenant isolation."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx

from pixecom_core.settings import Settings
from tests.app.sellers_data.conftest import Tenant
from tests.app.sellers_data.rows import assert_error


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _sellpage_of(tenant: Tenant, campaign_id: uuid.UUID) -> object:
    row = tenant.rows.fetch_one("SELECT sellpage_id FROM campaigns WHERE id = %s", campaign_id)
    assert row is not None
    return row[0]


# -- campaigns ------------------------------------------------------------------------------


async def test_campaign_filters_narrow_the_list(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    rows = seller_a.rows
    account, other_account = rows.ad_account(), rows.ad_account()
    page = rows.sellpage()
    linked_active = rows.campaign(account, sellpage_id=page)
    unlinked_paused = rows.campaign(account, status="PAUSED")
    other_account_active = rows.campaign(other_account)

    async def listed(**params: str) -> list[str]:
        return _ids(await api_client.get("/campaigns", params=params, headers=seller_a.headers))

    assert await listed() == [str(linked_active), str(unlinked_paused), str(other_account_active)]
    assert await listed(status="PAUSED") == [str(unlinked_paused)]
    assert await listed(status="ARCHIVED") == []
    assert await listed(ad_account_id=str(account)) == [str(linked_active), str(unlinked_paused)]
    assert await listed(sellpage_id=str(page)) == [str(linked_active)]
    assert await listed(linked="true") == [str(linked_active)]
    assert await listed(linked="false") == [str(unlinked_paused), str(other_account_active)]
    assert await listed(linked="false", status="ACTIVE") == [str(other_account_active)]
    assert await listed(ad_account_id=str(uuid.uuid4())) == []


async def test_campaign_answers_its_fields_and_never_the_account_token(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    account = seller_a.rows.ad_account(token_ciphertext=b"gAAAA-secret-ciphertext")
    campaign = seller_a.rows.campaign(account, name="Spring sale")

    one = await api_client.get(f"/campaigns/{campaign}", headers=seller_a.headers)
    listed = await api_client.get("/campaigns", headers=seller_a.headers)

    assert one.status_code == 200, one.text
    body = one.json()
    assert body["id"] == str(campaign)
    assert body["ad_account_id"] == str(account)
    assert body["name"] == "Spring sale"
    assert body["status"] == "ACTIVE"
    assert body["sellpage_id"] is None
    for response in (one, listed):
        assert "token" not in response.text
        assert "secret-ciphertext" not in response.text
        assert "seller_id" not in response.text


async def test_campaign_lists_are_bounded_and_walk_with_cursors(
    api_client: httpx.AsyncClient, app_settings: Settings, seller_a: Tenant
) -> None:
    account = seller_a.rows.ad_account()
    seller_a.rows.fetch_all(
        "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name)"
        " SELECT %s, %s, 'cmp_' || g, 'Campaign ' || g FROM generate_series(1, %s) AS g"
        " RETURNING id",
        seller_a.api.seller_id,
        account,
        app_settings.max_page_size + 5,
    )

    first = await api_client.get("/campaigns", params={"limit": 10_000}, headers=seller_a.headers)
    assert len(_ids(first)) == app_settings.max_page_size
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await api_client.get(
        "/campaigns", params={"limit": 10_000, "cursor": cursor}, headers=seller_a.headers
    )
    assert len(_ids(second)) == 5
    assert second.json()["next_cursor"] is None
    assert not set(_ids(first)) & set(_ids(second))


async def test_link_and_unlink_a_campaign(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    campaign = seller_a.rows.campaign(seller_a.rows.ad_account())
    page = seller_a.rows.sellpage()

    linked = await api_client.patch(
        f"/campaigns/{campaign}", json={"sellpage_id": str(page)}, headers=seller_a.headers
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["sellpage_id"] == str(page)
    assert _sellpage_of(seller_a, campaign) == page
    moments = [datetime.fromisoformat(linked.json()[key]) for key in ("created_at", "updated_at")]
    assert moments[1] > moments[0]

    unlinked = await api_client.patch(
        f"/campaigns/{campaign}", json={"sellpage_id": None}, headers=seller_a.headers
    )
    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json()["sellpage_id"] is None
    assert _sellpage_of(seller_a, campaign) is None


async def test_linking_to_another_sellers_sellpage_is_404_and_changes_nothing(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    own_page = seller_a.rows.sellpage()
    campaign = seller_a.rows.campaign(seller_a.rows.ad_account(), sellpage_id=own_page)
    foreign_page = seller_b.rows.sellpage()

    response = await api_client.patch(
        f"/campaigns/{campaign}", json={"sellpage_id": str(foreign_page)}, headers=seller_a.headers
    )

    assert_error(response, 404, "sellpage_not_found")
    assert _sellpage_of(seller_a, campaign) == own_page
    unknown = await api_client.patch(
        f"/campaigns/{campaign}", json={"sellpage_id": str(uuid.uuid4())}, headers=seller_a.headers
    )
    assert_error(unknown, 404, "sellpage_not_found")


async def test_another_sellers_campaign_cannot_be_read_or_linked(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    campaign = seller_a.rows.campaign(seller_a.rows.ad_account())
    b_page = seller_b.rows.sellpage()

    read = await api_client.get(f"/campaigns/{campaign}", headers=seller_b.headers)
    link = await api_client.patch(
        f"/campaigns/{campaign}", json={"sellpage_id": str(b_page)}, headers=seller_b.headers
    )
    listed = await api_client.get("/campaigns", headers=seller_b.headers)

    assert_error(read, 404, "not_found")
    assert_error(link, 404, "not_found")
    assert _ids(listed) == []
    assert _sellpage_of(seller_a, campaign) is None


async def test_bad_campaign_requests_are_refused(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    campaign = seller_a.rows.campaign(seller_a.rows.ad_account())
    headers = seller_a.headers

    for params in [{"status": "RUNNING"}, {"linked": "perhaps"}, {"ad_account_id": "x"}]:
        response = await api_client.get("/campaigns", params=params, headers=headers)
        assert_error(response, 422, "validation_failed")
    contradictory = await api_client.get(
        "/campaigns", params={"sellpage_id": str(uuid.uuid4()), "linked": "false"}, headers=headers
    )
    assert_error(contradictory, 422, "contradictory_filters")
    for body in [{}, {"sellpage_id": "nope"}, {"sellpage_id": None, "name": "renamed"}]:
        response = await api_client.patch(f"/campaigns/{campaign}", json=body, headers=headers)
        assert_error(response, 422, "validation_failed")
    assert_error(
        await api_client.get("/campaigns", params={"cursor": "%%%"}, headers=headers),
        400,
        "invalid_cursor",
    )
    assert_error(await api_client.get("/campaigns/123", headers=headers), 422, "validation_failed")
    assert_error(await api_client.get("/campaigns"), 401, "unauthenticated")


# -- ad sets and ads ------------------------------------------------------------------------


async def test_adsets_filter_by_campaign_and_status(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    account = seller_a.rows.ad_account()
    first, second = seller_a.rows.campaign(account), seller_a.rows.campaign(account)
    active = seller_a.rows.adset(first)
    paused = seller_a.rows.adset(first, status="PAUSED")
    elsewhere = seller_a.rows.adset(second)

    async def listed(**params: str) -> list[str]:
        return _ids(await api_client.get("/adsets", params=params, headers=seller_a.headers))

    assert await listed() == [str(active), str(paused), str(elsewhere)]
    assert await listed(campaign_id=str(first)) == [str(active), str(paused)]
    assert await listed(campaign_id=str(first), status="PAUSED") == [str(paused)]
    assert await listed(status="DELETED") == []

    one = await api_client.get(f"/adsets/{paused}", headers=seller_a.headers)
    assert one.status_code == 200, one.text
    assert one.json()["campaign_id"] == str(first)
    assert one.json()["status"] == "PAUSED"


async def test_ads_filter_by_adset_and_status(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    campaign = seller_a.rows.campaign(seller_a.rows.ad_account())
    adset, other_adset = seller_a.rows.adset(campaign), seller_a.rows.adset(campaign)
    creative = seller_a.rows.creative()
    live = seller_a.rows.ad(adset, creative_id=creative)
    archived = seller_a.rows.ad(adset, status="ARCHIVED")
    elsewhere = seller_a.rows.ad(other_adset)

    async def listed(**params: str) -> list[str]:
        return _ids(await api_client.get("/ads", params=params, headers=seller_a.headers))

    assert await listed() == [str(live), str(archived), str(elsewhere)]
    assert await listed(adset_id=str(adset)) == [str(live), str(archived)]
    assert await listed(adset_id=str(adset), status="ACTIVE") == [str(live)]
    assert await listed(status="ARCHIVED") == [str(archived)]

    one = await api_client.get(f"/ads/{live}", headers=seller_a.headers)
    assert one.status_code == 200, one.text
    assert one.json()["adset_id"] == str(adset)
    assert one.json()["creative_id"] == str(creative)


async def test_another_sellers_adsets_and_ads_are_not_found(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    campaign = seller_a.rows.campaign(seller_a.rows.ad_account())
    adset = seller_a.rows.adset(campaign)
    ad = seller_a.rows.ad(adset)

    assert_error(
        await api_client.get(f"/adsets/{adset}", headers=seller_b.headers), 404, "not_found"
    )
    assert_error(await api_client.get(f"/ads/{ad}", headers=seller_b.headers), 404, "not_found")
    by_campaign = await api_client.get(
        "/adsets", params={"campaign_id": str(campaign)}, headers=seller_b.headers
    )
    by_adset = await api_client.get(
        "/ads", params={"adset_id": str(adset)}, headers=seller_b.headers
    )
    assert _ids(by_campaign) == [] and _ids(by_adset) == []
    # A still sees them.
    assert _ids(await api_client.get("/ads", headers=seller_a.headers)) == [str(ad)]


async def test_bad_adset_and_ad_requests_are_refused(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    headers = seller_a.headers
    for path, params in [
        ("/adsets", {"status": "LIVE"}),
        ("/adsets", {"campaign_id": "42"}),
        ("/ads", {"status": "active"}),
        ("/ads", {"adset_id": "x"}),
    ]:
        response = await api_client.get(path, params=params, headers=headers)
        assert_error(response, 422, "validation_failed")
    for path in ["/adsets", "/ads"]:
        bad_cursor = await api_client.get(path, params={"cursor": "bm90IGpzb24"}, headers=headers)
        assert_error(bad_cursor, 400, "invalid_cursor")
    assert_error(await api_client.get(f"/adsets/{uuid.uuid4()}", headers=headers), 404, "not_found")
    assert_error(await api_client.get(f"/ads/{uuid.uuid4()}", headers=headers), 404, "not_found")
