"""Each dashboard page passes axe-core's WCAG 2.x A and AA rules, on a desktop and a phone.

axe-core (Deque's rules engine, shipped inside the ``axe-playwright-python`` wheel) runs in
the page after it has rendered real data. A violation names the rule, its impact and the
elements, so a failure says what to fix.
"""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page

from tests_browser.conftest import Shots, World, log_in, wait_idle

#: WCAG 2.0, 2.1 and 2.2 at levels A and AA: what public-sector and most shop
#: accessibility rules ask for.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SECTIONS = (
    "overview",
    "campaigns",
    "sellpages",
    "orders",
    "sync",
    "ad-accounts",
    "payments",
    "currency",
)


async def violations(page: Page) -> list[str]:
    """axe-core's WCAG A/AA violations on the page as it is now, one line per element."""
    results = await Axe().run(
        page, options={"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    )
    found: list[dict[str, Any]] = results.response["violations"]
    return [
        f"{violation['id']} ({violation['impact']}): {node['target']} — {node['failureSummary']}"
        for violation in found
        for node in violation["nodes"]
    ]


@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 900}, {"width": 375, "height": 740}],
    ids=["desktop", "phone"],
)
async def test_every_page_passes_wcag_aa_checks(
    browser: Browser, world: World, shots: Shots, viewport: dict[str, int]
) -> None:
    context = await browser.new_context(locale="en-US", timezone_id="UTC", viewport=viewport)
    try:
        page = await context.new_page()
        await page.goto(f"{world.base_url}/dashboard/")
        await page.get_by_test_id("login-form").wait_for()
        found = {"login": await violations(page)}
        await log_in(page, world.base_url, world.a.email)
        for section in SECTIONS:
            await page.goto(f"{world.base_url}/dashboard/#/{section}")
            await wait_idle(page)
            found[section] = await violations(page)
        campaign = next(iter(world.a.campaigns.values()))
        await page.goto(f"{world.base_url}/dashboard/#/campaigns/{campaign}")
        await wait_idle(page)
        await shots.take(page, "campaign")
        found["campaign"] = await violations(page)
        # An order with money captured and partly refunded, and its Refund form.
        await page.goto(f"{world.base_url}/dashboard/#/orders/{world.a.order_ids[2]}")
        await wait_idle(page)
        await page.get_by_test_id("money-table").wait_for()
        await shots.take(page, "order")
        found["order"] = await violations(page)
    finally:
        await context.close()

    assert {section: lines for section, lines in found.items() if lines} == {}
    assert set(found) == {"login", *SECTIONS, "campaign", "order"}  # every page was checked


async def test_the_check_finds_a_violation_when_there_is_one(page: Page, world: World) -> None:
    """The check above is not vacuous: axe runs in the dashboard's page (under its CSP)
    and reports a control without a name and an image without alternative text."""
    await page.goto(f"{world.base_url}/dashboard/")
    await page.get_by_test_id("login-form").wait_for()
    await page.evaluate(
        """() => {
            const main = document.getElementById("main");
            main.append(document.createElement("img"));
            main.append(document.createElement("button"));
        }"""
    )

    rules = {line.split(" ", 1)[0] for line in await violations(page)}

    assert {"image-alt", "button-name"} <= rules, rules
