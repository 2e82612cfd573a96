"""Daily insights through the sandbox over real HTTP: paging, one row per entity and day,
purchases counted once, exact micros, levels that never collapse, restated days."""

import math
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import TEST_PAGE_LIMIT, MakeNetwork
from meta_ads_support import SandboxHandle, credentials, raw_daily_rows
from pixecom_meta_ads.ad_network import MetaAdNetwork

from pixecom_core.providers import AdNetwork, EntityLevel, InsightRow

TODAY = date(2026, 3, 15)
SINCE = TODAY - timedelta(days=3)
UNTIL = TODAY - timedelta(days=1)


async def fetch(
    network: MetaAdNetwork,
    account_id: str,
    level: EntityLevel = EntityLevel.AD,
    since: date = SINCE,
    until: date = UNTIL,
) -> list[InsightRow]:
    return [
        row
        async for row in network.fetch_daily_insights(
            credentials(account_id), level=level, since=since, until=until
        )
    ]


@pytest.fixture(autouse=True)
async def fixed_today(sandbox: SandboxHandle) -> None:
    for number in ("1000", "1002", "1003", "1004"):
        await sandbox.change_account(number, today=TODAY.isoformat())


def test_the_network_implements_the_protocol(network: MetaAdNetwork) -> None:
    assert isinstance(network, AdNetwork)
    assert network.identifier == "meta"


async def test_pages_are_followed_until_next_is_absent(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = await raw_daily_rows(sandbox, "1002", "ad", SINCE, UNTIL)
    await sandbox.control.delete("/_sandbox/requests")

    rows = await fetch(network, "1002")

    calls = await sandbox.requests("/insights")
    assert len(expected) > 2 * TEST_PAGE_LIMIT  # several pages, or this proves nothing
    assert len(calls) == math.ceil(len(expected) / TEST_PAGE_LIMIT)
    assert "after" not in calls[0]["params"]
    assert all("after" in call["params"] for call in calls[1:])
    assert len(rows) == len(expected)


async def test_a_last_page_ending_exactly_on_the_limit_stops_too(
    make_network: MakeNetwork, sandbox: SandboxHandle
) -> None:
    expected = await raw_daily_rows(sandbox, "1002", "ad", SINCE, UNTIL)
    network = await make_network(page_limit=len(expected))
    await sandbox.control.delete("/_sandbox/requests")

    rows = await fetch(network, "1002")

    assert len(rows) == len(expected)
    assert len(await sandbox.requests("/insights")) == 1


async def test_one_row_per_entity_per_day(network: MetaAdNetwork, sandbox: SandboxHandle) -> None:
    account = await sandbox.account("1002")

    rows = await fetch(network, "1002")

    keys = Counter((row.entity_id, row.date_start) for row in rows)
    assert set(keys.values()) == {1}
    assert all(row.date_start == row.date_stop for row in rows)
    assert {row.date_start for row in rows} == {SINCE, SINCE + timedelta(days=1), UNTIL}
    assert {row.entity_id for row in rows} <= set(account["ad_ids"])
    assert all(row.network == "meta" and row.entity_type is EntityLevel.AD for row in rows)


async def test_rows_carry_the_numbers_on_the_wire(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = {
        (item["ad_id"], item["date_start"]): item
        for item in await raw_daily_rows(sandbox, "1002", "ad", SINCE, UNTIL)
    }

    rows = await fetch(network, "1002")

    for row in rows:
        item = expected[(row.entity_id, row.date_start.isoformat())]
        assert row.spend_micros == Decimal(item["spend"]) * 1_000_000
        assert row.impressions == int(item["impressions"])
        # link clicks, as InsightRow asks, not all clicks
        assert row.clicks == int(item["inline_link_clicks"])
        assert row.currency == "EUR"


async def test_purchases_count_once_though_several_action_types_carry_them(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    raw = await raw_daily_rows(sandbox, "1002", "ad", SINCE, UNTIL)
    with_purchases = [item for item in raw if "action_values" in item]
    assert with_purchases, "the sandbox should report some purchases"
    carriers = {entry["action_type"] for entry in with_purchases[0]["action_values"]}
    assert {"purchase", "omni_purchase", "offsite_conversion.fb_pixel_purchase"} <= carriers

    rows = {
        (row.entity_id, row.date_start.isoformat()): row for row in await fetch(network, "1002")
    }

    for item in with_purchases:
        row = rows[(item["ad_id"], item["date_start"])]
        [count] = [a["value"] for a in item["actions"] if a["action_type"] == "omni_purchase"]
        [value] = [a["value"] for a in item["action_values"] if a["action_type"] == "omni_purchase"]
        assert row.purchases == int(count)
        assert row.purchase_value_micros == Decimal(value) * 1_000_000
    total = sum(row.purchase_value_micros for row in rows.values())
    wire_total = sum(
        Decimal(entry["value"]) * 1_000_000
        for item in with_purchases
        for entry in item["action_values"]
        if entry["action_type"] == "purchase"
    )
    assert total == wire_total


@pytest.mark.parametrize("action_type", ["purchase", "offsite_conversion.fb_pixel_purchase"])
async def test_the_counted_purchase_type_is_configurable(
    make_network: MakeNetwork, action_type: str
) -> None:
    default = await fetch(await make_network(), "1002")
    chosen = await fetch(await make_network(purchase_action_type=action_type), "1002")

    assert [row.purchases for row in chosen] == [row.purchases for row in default]
    assert sum(row.purchases for row in chosen) > 0


async def test_an_action_type_nobody_reports_counts_zero(make_network: MakeNetwork) -> None:
    rows = await fetch(await make_network(purchase_action_type="lead"), "1002")

    assert rows and all(row.purchases == 0 and row.purchase_value_micros == 0 for row in rows)


async def test_zero_decimal_currency_spend_becomes_micros_exactly(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    raw = await raw_daily_rows(sandbox, "1003", "campaign", SINCE, UNTIL)
    assert all("." not in item["spend"] for item in raw)

    rows = await fetch(network, "1003", EntityLevel.CAMPAIGN)

    assert {row.currency for row in rows} == {"JPY"}
    spends = {(item["campaign_id"], item["date_start"]): item["spend"] for item in raw}
    for row in rows:
        assert row.spend_micros == int(spends[(row.entity_id, row.date_start.isoformat())]) * 10**6


async def test_levels_key_rows_by_their_own_ids(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    account = await sandbox.account("1002")

    by_level = {
        level: await fetch(network, "1002", level)
        for level in (EntityLevel.CAMPAIGN, EntityLevel.ADSET, EntityLevel.AD)
    }

    ids = {level: {row.entity_id for row in rows} for level, rows in by_level.items()}
    assert ids[EntityLevel.CAMPAIGN] == set(account["campaign_ids"])
    assert ids[EntityLevel.ADSET] == set(account["adset_ids"])
    assert ids[EntityLevel.AD] <= set(account["ad_ids"])
    assert len(ids[EntityLevel.AD]) > len(ids[EntityLevel.ADSET]) > len(ids[EntityLevel.CAMPAIGN])
    assert not ids[EntityLevel.CAMPAIGN] & ids[EntityLevel.ADSET]
    assert not ids[EntityLevel.ADSET] & ids[EntityLevel.AD]
    for level, rows in by_level.items():
        assert {row.entity_type for row in rows} == {level}
    # the levels describe the same spend: nothing was lost or counted twice
    daily = {
        level: {
            day: sum(row.spend_micros for row in rows if row.date_start == day)
            for day in (SINCE, UNTIL)
        }
        for level, rows in by_level.items()
    }
    assert daily[EntityLevel.CAMPAIGN] == daily[EntityLevel.ADSET] == daily[EntityLevel.AD]


async def test_ad_rows_add_up_to_their_campaign(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    response = await sandbox.graph(
        "GET",
        "/v25.0/act_1004/insights",
        level="ad",
        fields="ad_id,campaign_id",
        time_range=f'{{"since":"{SINCE}","until":"{UNTIL}"}}',
        limit="5000",
    )
    campaign_of = {item["ad_id"]: item["campaign_id"] for item in response.json()["data"]}

    ads = await fetch(network, "1004", EntityLevel.AD)
    campaigns = await fetch(network, "1004", EntityLevel.CAMPAIGN)

    summed: defaultdict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in ads:
        totals = summed[(campaign_of[row.entity_id], row.date_start)]
        totals[0] += row.spend_micros
        totals[1] += row.purchases
        totals[2] += row.purchase_value_micros
    assert {
        (row.entity_id, row.date_start): [
            row.spend_micros,
            row.purchases,
            row.purchase_value_micros,
        ]
        for row in campaigns
    } == dict(summed)


async def test_fetched_at_is_when_the_answer_arrived(network: MetaAdNetwork) -> None:
    before = datetime.now(UTC)

    rows = await fetch(network, "1002")

    after = datetime.now(UTC)
    assert all(before <= row.fetched_at <= after for row in rows)
    assert all(row.fetched_at.utcoffset() == timedelta(0) for row in rows)


async def test_a_single_day_window_asks_since_equal_until(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    rows = await fetch(network, "1002", since=UNTIL, until=UNTIL)

    [call] = await sandbox.requests("/insights")
    assert call["params"]["time_range"] == f'{{"since":"{UNTIL}","until":"{UNTIL}"}}'
    assert call["params"]["time_increment"] == "1"
    assert {row.date_start for row in rows} == {UNTIL}


async def test_days_after_the_accounts_today_have_no_rows(network: MetaAdNetwork) -> None:
    rows = await fetch(network, "1002", since=TODAY, until=TODAY + timedelta(days=5))

    assert {row.date_start for row in rows} == {TODAY}


async def test_act_prefixed_account_ids_read_the_same_account(network: MetaAdNetwork) -> None:
    plain = _numbers(await fetch(network, "1002"))
    prefixed = _numbers(await fetch(network, "act_1002"))

    assert plain == prefixed


# -- describe_account ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account_id", "currency", "timezone"),
    [
        ("1000", "USD", "Etc/GMT"),
        ("1002", "EUR", "Europe/Berlin"),
        ("act_1003", "JPY", "Asia/Tokyo"),
        ("1006", "INR", "Asia/Kolkata"),
    ],
)
async def test_describe_account_reports_currency_and_time_zone(
    network: MetaAdNetwork, account_id: str, currency: str, timezone: str
) -> None:
    info = await network.describe_account(credentials(account_id))

    assert info.account_id == account_id
    assert info.currency == currency
    assert info.timezone == timezone
    assert info.name.startswith("Sandbox ad account")


async def test_describe_account_follows_the_accounts_profile(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.change_account(
        "4242", name="Shop DE", currency="CHF", timezone_name="Pacific/Chatham"
    )

    info = await network.describe_account(credentials("4242"))

    assert (info.name, info.currency, info.timezone) == ("Shop DE", "CHF", "Pacific/Chatham")


# -- restatement -------------------------------------------------------------------------------


def _numbers(rows: list[InsightRow]) -> dict[tuple[str, date], tuple[int, int, int, int]]:
    return {
        (row.entity_id, row.date_start): (
            row.spend_micros,
            row.impressions,
            row.clicks,
            row.purchase_value_micros,
        )
        for row in rows
    }


async def test_a_restated_day_reads_back_with_new_numbers(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    day = TODAY - timedelta(days=5)
    first = await fetch(network, "1002", since=day, until=day)

    response = await sandbox.restate("1002", day)
    assert response.status_code == 200, response.text
    second = await fetch(network, "1002", since=day, until=day)

    assert _numbers(first) != _numbers(second)
    assert all(row.date_start == day for row in second)
    assert min(row.fetched_at for row in second) >= max(row.fetched_at for row in first)


async def test_restating_one_day_leaves_the_others_alone(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    before = _numbers(await fetch(network, "1002"))

    await sandbox.restate("1002", SINCE)
    after = _numbers(await fetch(network, "1002"))

    changed_days = {key[1] for key in before if before[key] != after.get(key)}
    changed_days |= {key[1] for key in after if key not in before}
    assert changed_days == {SINCE}


async def test_days_older_than_28_days_never_restate(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    old_day = TODAY - timedelta(days=40)
    recent_day = TODAY - timedelta(days=2)
    old_before = _numbers(await fetch(network, "1002", since=old_day, until=old_day))
    recent_before = _numbers(await fetch(network, "1002", since=recent_day, until=recent_day))

    refused = await sandbox.restate("1002", old_day)
    assert refused.status_code == 409
    accepted = await sandbox.restate("1002")  # every day of the last 28
    assert accepted.status_code == 200

    assert _numbers(await fetch(network, "1002", since=old_day, until=old_day)) == old_before
    assert (
        _numbers(await fetch(network, "1002", since=recent_day, until=recent_day)) != recent_before
    )
