"""Issue 16's numbers in headless Chromium: every cent of spend and revenue on the overview,
what no sellpage or campaign can claim, and revenue and ROAS per campaign.

The seller's numbers come from core's own roll-up (``seed_attributed_numbers``: spend of
a campaign linked to a sellpage and of one linked to none, orders naming a campaign, a
sellpage, or neither, and a day whose currency has no rate yet), on fixed days read
through the pages' own range in the address. Each page is checked against the figures
the seed was written for and against what the API answers the same seller.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, Page

from tests_browser.conftest import (
    AttributedSellerFactory,
    Shots,
    api_get,
    api_token,
    log_in,
    wait_idle,
)
from tests_browser.test_accessibility import violations
from tests_browser.test_dashboard import money, roas

RANGE = {"since": "2026-03-01", "until": "2026-03-07"}
RANGE_QUERY = "since=2026-03-01&until=2026-03-07"


async def text(scope: Page | Locator, testid: str) -> str:
    return (await scope.get_by_test_id(testid).inner_text()).strip()


async def cell(row: Locator, column: str) -> str:
    return (await row.locator(f"[data-column='{column}']").inner_text()).strip()


async def open_route(page: Page, base_url: str, route: str) -> None:
    await page.goto(f"{base_url}/dashboard/#/{route}")
    await wait_idle(page)


async def test_the_overview_counts_all_spend_and_names_what_nothing_claims(
    page: Page, base_url: str, attributed_seller: AttributedSellerFactory, shots: Shots
) -> None:
    seller, numbers = await attributed_seller("Cedar Goods")
    token = await api_token(base_url, seller.email)
    api = await api_get(base_url, token, "/stats/overview", **RANGE)
    # The API's answer for the seeded days (see seed_attributed_numbers).
    assert (api["totals"]["spend_minor"], api["totals"]["net_revenue_minor"]) == (8_000, 19_500)
    assert api["unattributed"] == {
        "spend_minor": 3_000,
        "no_sellpage_net_revenue_minor": 1_500,
        "no_sellpage_orders": 1,
        "no_campaign_net_revenue_minor": 4_500,
        "no_campaign_orders": 2,
    }
    assert api["pending_days"] == 1

    await log_in(page, base_url, seller.email, f"#/overview?{RANGE_QUERY}")
    await shots.take(page, "overview")

    # Totals over all spend, the unlinked campaign's included.
    assert await text(page, "total-spend") == "$80.00"
    assert await page.get_by_test_id("total-spend").get_attribute("data-minor") == "8000"
    assert await text(page, "total-revenue") == "$195.00"
    assert await text(page, "total-orders") == "4"
    assert await text(page, "total-roas") == roas(api["totals"]["roas"]) == "2.44×"
    unattributed = page.get_by_test_id("overview-unattributed")
    assert await unattributed.get_by_role("heading").inner_text() == "Unattributed"
    assert await text(unattributed, "unattributed-spend") == "$30.00"
    assert await text(unattributed, "no-campaign-orders") == "2"
    assert await text(unattributed, "no-campaign-revenue") == "$45.00"
    assert await text(unattributed, "no-sellpage-orders") == "1"
    assert await text(unattributed, "no-sellpage-revenue") == "$15.00"

    # The day whose UAH spend waits for a rate is named, with the pair, and marked.
    pending = page.get_by_test_id("pending-days")
    assert "1 day of this range is not final yet" in await pending.inner_text()
    third = numbers.days[2].isoformat()
    assert (await pending.locator("li").all_inner_texts()) == [
        "Mar 4, 2026: converted provisionally, waiting for the UAH/USD rate of the day."
    ]
    assert await pending.get_by_role("link", name="Currency").get_attribute("href") == "#/currency"
    pending_row = page.get_by_test_id("days-table").locator(f"tbody tr[data-key='{third}']")
    assert await pending_row.locator("[data-pending='fx']").inner_text() == "Provisional"
    first_row = page.get_by_test_id("days-table").locator(
        f"tbody tr[data-key='{numbers.days[0].isoformat()}']"
    )
    assert await first_row.locator("[data-pending]").count() == 0
    assert await cell(first_row, "spend") == "$65.00"  # linked 40 + unlinked 25
    assert await violations(page) == []

    # Sellpages: the foot holds what no sellpage claims, and the overview's totals; the
    # rows and the unattributed line add up to them.
    await open_route(page, base_url, f"sellpages?{RANGE_QUERY}")
    await shots.take(page, "sellpages")
    table = page.get_by_test_id("sellpages-table")
    lamp = table.locator(f"tbody tr[data-key='{seller.sellpages['Cedar Lamp']}']")
    rug = table.locator(f"tbody tr[data-key='{seller.sellpages['Cedar Rug']}']")
    assert [await cell(lamp, c) for c in ("spend", "net", "orders", "roas")] == [
        "$50.00",
        "$130.00",
        "2",
        "2.60×",
    ]
    # The Rug's campaign spent only UAH, on the day without a rate: nothing converted yet.
    assert [await cell(rug, c) for c in ("spend", "net", "orders", "roas")] == [
        "$0.00",
        "$50.00",
        "1",
        "—",
    ]
    foot = table.locator("tfoot tr")
    assert await foot.count() == 2
    line = table.locator("tfoot tr[data-key='unattributed']")
    assert (await line.locator("th").inner_text()).startswith("Unattributed")
    assert [await cell(line, c) for c in ("spend", "net", "orders", "roas")] == [
        "$30.00",
        "$15.00",
        "1",
        "—",
    ]
    total = table.locator("tfoot tr[data-key='overview-totals']")
    assert [await cell(total, c) for c in ("spend", "net", "orders", "roas")] == [
        "$80.00",
        "$195.00",
        "4",
        "2.44×",
    ]
    sellpages = await api_get(base_url, token, "/stats/sellpages", **RANGE)
    spend = sum(p["spend_minor"] for p in sellpages["items"])
    net = sum(p["net_revenue_minor"] for p in sellpages["items"])
    assert spend + sellpages["unattributed"]["spend_minor"] == api["totals"]["spend_minor"]
    assert (
        net + sellpages["unattributed"]["no_sellpage_net_revenue_minor"]
        == api["totals"]["net_revenue_minor"]
    )
    # The foot stays put while the rows sort.
    await table.locator("button[data-sort='title']").click()
    assert await table.locator("tbody tr th").all_inner_texts() == ["Cedar Lamp", "Cedar Rug"]
    assert await table.locator("tfoot tr").count() == 2
    assert await violations(page) == []


async def test_campaigns_show_revenue_orders_and_roas_beside_account_spend(
    page: Page, base_url: str, attributed_seller: AttributedSellerFactory, shots: Shots
) -> None:
    seller, _ = await attributed_seller("Dune Supply")
    token = await api_token(base_url, seller.email)
    entities = await api_get(base_url, token, "/stats/entities", level="campaign", **RANGE)
    by_name: dict[str, dict[str, Any]] = {e["name"]: e for e in entities["items"]}

    await log_in(page, base_url, seller.email, f"#/campaigns?{RANGE_QUERY}")
    await shots.take(page, "campaigns")
    table = page.get_by_test_id("campaigns-table")
    headers = await table.locator("thead th").all_inner_texts()
    assert [h.rstrip("↕▲▼").strip() for h in headers[:7]] == [
        "Campaign",
        "Status",
        "Spend (account)",
        "Spend (USD)",
        "Net revenue",
        "Orders",
        "ROAS",
    ]

    def row(name: str) -> Locator:
        return table.locator(f"tbody tr[data-key='{seller.campaigns[name]}']")

    columns = ("spend", "spend-reporting", "net", "orders", "roas")
    # Revenue of the orders whose landing URL named the campaign: 120 − 20 refunded.
    assert [await cell(row("Dune Linked"), c) for c in columns] == [
        "$50.00",
        "$50.00",
        "$100.00",
        "1",
        "2.00×",
    ]
    # Linked to no sellpage, yet the order naming it counts for it.
    assert [await cell(row("Dune Unlinked"), c) for c in columns] == [
        "$30.00",
        "$30.00",
        "$50.00",
        "1",
        "1.67×",
    ]
    # The page shows exactly what the API answered for each campaign.
    for name, item in by_name.items():
        assert await cell(row(name), "spend") == money(item["spend_minor"], item["currency"])
        assert await cell(row(name), "spend-reporting") == money(
            item["spend_reporting_minor"], item["reporting_currency"]
        )
        assert await cell(row(name), "net") == money(item["net_revenue_minor"], "USD")
        assert await cell(row(name), "orders") == str(item["orders"])
        assert await cell(row(name), "roas") == roas(item["roas"])
    # By spend in the reporting currency, highest first.
    names = await table.locator("tbody tr th .entity-name").all_inner_texts()
    assert names[:2] == ["Dune Linked", "Dune Unlinked"]

    # The foot: orders no campaign claims, and the overview's totals; the campaigns'
    # reporting spend adds up to the overview's, their revenue with the foot's too.
    without = table.locator("tfoot tr[data-key='no-campaign']")
    assert (await without.locator("th").inner_text()).startswith("Orders without a campaign")
    assert [await cell(without, c) for c in columns] == ["—", "—", "$45.00", "2", "—"]
    total = table.locator("tfoot tr[data-key='overview-totals']")
    assert [await cell(total, c) for c in columns] == ["—", "$80.00", "$195.00", "4", "2.44×"]
    assert entities["unattributed"]["no_campaign_orders"] == 2
    overview = await api_get(base_url, token, "/stats/overview", **RANGE)
    assert (
        sum(e["spend_reporting_minor"] for e in entities["items"])
        == overview["totals"]["spend_minor"]
    )
    assert (
        sum(e["net_revenue_minor"] for e in entities["items"])
        + entities["unattributed"]["no_campaign_net_revenue_minor"]
        == overview["totals"]["net_revenue_minor"]
    )

    # Sorting by ROAS keeps campaigns without spend last, and the foot in place.
    await table.locator("button[data-sort='roas']").click()
    assert (await table.locator("tbody tr th .entity-name").all_inner_texts())[:2] == [
        "Dune Linked",
        "Dune Unlinked",
    ]
    assert await table.locator("tfoot tr").count() == 2
    assert await violations(page) == []
