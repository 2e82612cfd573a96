"""Campaigns, ad sets and ads with their names and statuses, through the sandbox's
``/campaigns``, ``/adsets`` and ``/ads`` edges over real HTTP: paging, parents, Meta's
``effective_status`` mapped to core's four statuses, renames, and errors."""

import math
from datetime import date, timedelta

import pytest
from conftest import TEST_PAGE_LIMIT, MakeNetwork
from meta_ads_support import SandboxHandle, credentials
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.entities import ad_entity, entity_status

from pixecom_core.providers import (
    AdEntity,
    AdEntityStatus,
    AdNetworkEntities,
    EntityLevel,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
)

TODAY = date(2026, 3, 15)
ACCOUNT = "1002"


async def listed(network: MetaAdNetwork, level: EntityLevel) -> list[AdEntity]:
    return [e async for e in network.list_entities(credentials(ACCOUNT), level=level)]


@pytest.fixture(autouse=True)
async def fixed_today(sandbox: SandboxHandle) -> None:
    # more campaigns than a page holds, so every level crosses pages
    await sandbox.change_account(ACCOUNT, today=TODAY.isoformat(), campaigns=2 * TEST_PAGE_LIMIT)


def test_the_network_names_its_entities(network: MetaAdNetwork) -> None:
    assert isinstance(network, AdNetworkEntities)


async def test_every_level_lists_the_sandboxs_entities_with_their_parents(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    account = await sandbox.account(ACCOUNT)

    campaigns = await listed(network, EntityLevel.CAMPAIGN)
    adsets = await listed(network, EntityLevel.ADSET)
    ads = await listed(network, EntityLevel.AD)

    assert [c.entity_id for c in campaigns] == account["campaign_ids"]
    assert [s.entity_id for s in adsets] == account["adset_ids"]
    assert sorted(a.entity_id for a in ads) == sorted(account["ad_ids"])
    assert all(c.name == f"Campaign {c.entity_id}" and c.parent_id is None for c in campaigns)
    assert {s.parent_id for s in adsets} == set(account["campaign_ids"])
    assert {a.parent_id for a in ads} == set(account["adset_ids"])
    assert all(a.name == f"Ad {a.entity_id}" for a in ads)
    assert {e.status for e in campaigns + adsets + ads} == {AdEntityStatus.ACTIVE}


async def test_pages_are_followed_and_archived_objects_asked_for(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.control.delete("/_sandbox/requests")

    campaigns = await listed(network, EntityLevel.CAMPAIGN)

    calls = await sandbox.requests("/campaigns")
    assert len(calls) == math.ceil(len(campaigns) / TEST_PAGE_LIMIT) > 1
    assert all(call["operation"] == "entities" and call["has_token"] for call in calls)
    assert calls[0]["params"]["fields"] == "id,name,effective_status"
    assert "ARCHIVED" in calls[0]["params"]["effective_status"]


async def test_a_rename_and_a_pause_show_in_the_next_listing_and_in_insights(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    campaign = (await sandbox.account(ACCOUNT))["campaign_ids"][0]
    changed = await sandbox.control.put(
        f"/_sandbox/accounts/{ACCOUNT}/entities/{campaign}",
        json={"name": "Summer sale", "status": "PAUSED"},
    )
    assert changed.status_code == 200, changed.text

    campaigns = {c.entity_id: c for c in await listed(network, EntityLevel.CAMPAIGN)}
    adsets = [s for s in await listed(network, EntityLevel.ADSET) if s.parent_id == campaign]

    assert (campaigns[campaign].name, campaigns[campaign].status) == (
        "Summer sale",
        AdEntityStatus.PAUSED,
    )
    # Meta reports CAMPAIGN_PAUSED below a paused campaign
    assert adsets and {s.status for s in adsets} == {AdEntityStatus.PAUSED}
    day = (TODAY - timedelta(days=1)).isoformat()
    insights = await sandbox.graph(
        "GET",
        f"/v25.0/act_{ACCOUNT}/insights",
        level="campaign",
        fields="campaign_id,campaign_name",
        time_range=f'{{"since":"{day}","until":"{day}"}}',
        limit="5000",
    )
    names = {row["campaign_id"]: row["campaign_name"] for row in insights.json()["data"]}
    assert names.get(campaign, "Summer sale") == "Summer sale"


async def test_archived_objects_are_listed_because_they_are_asked_for(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    campaign = (await sandbox.account(ACCOUNT))["campaign_ids"][1]
    await sandbox.control.put(
        f"/_sandbox/accounts/{ACCOUNT}/entities/{campaign}", json={"status": "ARCHIVED"}
    )
    default_listing = await sandbox.graph(
        "GET", f"/v25.0/act_{ACCOUNT}/campaigns", fields="id", limit="5000"
    )

    campaigns = {c.entity_id: c for c in await listed(network, EntityLevel.CAMPAIGN)}

    assert campaign not in {o["id"] for o in default_listing.json()["data"]}  # as Graph does
    assert campaigns[campaign].status is AdEntityStatus.ARCHIVED


async def test_a_field_the_object_lacks_is_refused_as_graph_does(sandbox: SandboxHandle) -> None:
    response = await sandbox.graph(
        "GET", f"/v25.0/act_{ACCOUNT}/campaigns", fields="id,adset_id", limit="5"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("auth", ProviderAuthError),
        ("throttled", ProviderThrottled),
        ("permission", ProviderAuthError),
    ],
)
async def test_faults_of_the_entities_operation_raise_core_errors(
    make_network: MakeNetwork, sandbox: SandboxHandle, kind: str, error: type[ProviderError]
) -> None:
    network = await make_network(max_inline_wait_seconds=0)
    await sandbox.fault(kind, operation="entities", scope=ACCOUNT)

    with pytest.raises(error):
        await listed(network, EntityLevel.AD)


@pytest.mark.parametrize(
    ("effective_status", "status"),
    [
        ("ACTIVE", AdEntityStatus.ACTIVE),
        ("WITH_ISSUES", AdEntityStatus.ACTIVE),
        ("PENDING_REVIEW", AdEntityStatus.ACTIVE),
        ("IN_PROCESS", AdEntityStatus.ACTIVE),
        ("PAUSED", AdEntityStatus.PAUSED),
        ("CAMPAIGN_PAUSED", AdEntityStatus.PAUSED),
        ("ADSET_PAUSED", AdEntityStatus.PAUSED),
        ("ARCHIVED", AdEntityStatus.ARCHIVED),
        ("DELETED", AdEntityStatus.DELETED),
        ("SOMETHING_NEW", AdEntityStatus.ACTIVE),
    ],
)
def test_effective_status_maps_to_core_statuses(
    effective_status: str, status: AdEntityStatus
) -> None:
    assert entity_status(effective_status) is status


def test_an_unnamed_object_is_named_by_its_id_and_one_without_parent_refused() -> None:
    entity = ad_entity({"id": "42", "name": "", "campaign_id": "7"}, level=EntityLevel.ADSET)

    assert (entity.name, entity.parent_id) == ("42", "7")
    with pytest.raises(ProviderError, match="adset_id"):
        ad_entity({"id": "43", "name": "x", "campaign_id": "7"}, level=EntityLevel.AD)
