"""The seller dashboard in headless Chromium: real numbers, isolation, sessions.

Each test logs in through the login form as a seeded seller (tests_browser/seed.py: the
numbers come from core's stats pipeline and payment ledger) and checks what the page
shows against what the API answers the same seller for the same range — the audit's
"frontend that's 100% fake data" is closed only if those are equal.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import psycopg
from playwright.async_api import Browser, BrowserContext, Page, Request

from pixecom_core.security.access_tokens import AccessTokenKeyring
from pixecom_core.settings import Settings
from tests.ledger.conftest import insert_order
from tests_browser.conftest import Shots, World, api_get, api_token, log_in, wait_idle
from tests_browser.seed import PASSWORD, sign_up

# en-US Intl shows a currency without a symbol of its own by its code and a no-break space.
SYMBOLS = {"USD": "$", "EUR": "€", "UAH": "UAH\u00a0"}
SESSION_KEY = "pixecom.dashboard.session"


def money(minor: int, currency: str) -> str:
    """``minor`` as en-US Intl formats it (both test currencies have 2 decimals)."""
    amount = Decimal(abs(minor)).scaleb(-2)
    return f"{'-' if minor < 0 else ''}{SYMBOLS[currency]}{amount:,.2f}"


def roas(value: str | None) -> str:
    if value is None:
        return "—"
    return f"{Decimal(value).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}×"


def today() -> date:
    return datetime.now(UTC).date()


async def text(page: Page, testid: str) -> str:
    return (await page.get_by_test_id(testid).inner_text()).strip()


async def assert_overview_matches_api(
    page: Page, world: World, token: str, since: date, until: date
) -> dict[str, Any]:
    api = await api_get(
        world.base_url, token, "/stats/overview", since=since.isoformat(), until=until.isoformat()
    )
    currency = str(api["reporting_currency"])
    totals: dict[str, Any] = api["totals"]
    assert await text(page, "total-spend") == money(totals["spend_minor"], currency)
    assert await text(page, "total-revenue") == money(totals["net_revenue_minor"], currency)
    assert await text(page, "total-orders") == f"{totals['orders']:,}"
    assert await text(page, "total-roas") == roas(totals["roas"])
    assert await page.get_by_test_id("total-spend").get_attribute("data-minor") == str(
        totals["spend_minor"]
    )
    # Every day of the API's answer is a row of the days table, with the same figures.
    days: list[dict[str, Any]] = api["days"]
    rows = page.get_by_test_id("days-table").locator("tbody tr")
    assert await rows.count() == len(days)
    for day in days:
        row = page.get_by_test_id("days-table").locator(f"tbody tr[data-key='{day['day']}']")
        assert await row.locator("[data-column='spend']").inner_text() == money(
            day["spend_minor"], currency
        )
        assert await row.locator("[data-column='net']").inner_text() == money(
            day["net_revenue_minor"], currency
        )
        assert await row.locator("[data-column='orders']").inner_text() == str(day["orders"])
        assert await row.locator("[data-column='roas']").inner_text() == roas(day["roas"])
    # The chart has a bar pair for every day of the range.
    assert (
        await page.locator("[data-testid='overview-chart'] g.day").count()
        == (until - since).days + 1
    )
    return api


async def test_overview_equals_the_api_and_follows_the_range(
    page: Page, world: World, shots: Shots
) -> None:
    token = await api_token(world.base_url, world.a.email)
    await log_in(page, world.base_url, world.a.email)
    await shots.take(page, "overview")

    # The default range: the seller's last 30 days.
    until = today()
    since = until - timedelta(days=29)
    first = await assert_overview_matches_api(page, world, token, since, until)
    totals = first["totals"]
    assert totals["spend_minor"] > 0 and totals["orders"] == 8
    assert totals["refunds_minor"] == 1_500  # the refund is net out of revenue
    # A day with revenue and no spend shows ROAS "—", never a division by zero.
    no_spend = page.get_by_test_id("days-table").locator(
        f"tbody tr[data-key='{(until - timedelta(days=1)).isoformat()}']"
    )
    assert await no_spend.locator("[data-column='roas']").inner_text() == "—"

    new_since, new_until = until - timedelta(days=6), until - timedelta(days=3)
    await page.get_by_label("From", exact=True).fill(new_since.isoformat())
    await page.get_by_label("To", exact=True).fill(new_until.isoformat())
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url(f"**#/overview?since={new_since}&until={new_until}")
    await wait_idle(page)
    await shots.take(page, "overview-new-range")

    second = await assert_overview_matches_api(page, world, token, new_since, new_until)
    assert second["totals"] != first["totals"]
    assert second["totals"]["spend_minor"] < first["totals"]["spend_minor"]


async def test_campaigns_sort_and_a_campaign_opens_with_its_days(
    page: Page, world: World, shots: Shots
) -> None:
    token = await api_token(world.base_url, world.a.email)
    since, until = today() - timedelta(days=29), today()
    await log_in(page, world.base_url, world.a.email, f"#/campaigns?since={since}&until={until}")
    await shots.take(page, "campaigns")

    entities = await api_get(
        world.base_url,
        token,
        "/stats/entities",
        since=since.isoformat(),
        until=until.isoformat(),
        level="campaign",
    )
    spend_by_name = {e["name"]: e["spend_minor"] for e in entities["items"]}
    table = page.get_by_test_id("campaigns-table")
    # the name (a network id may follow it in small print)
    names = await table.locator("tbody tr th .entity-name").all_inner_texts()
    assert names == sorted(spend_by_name, key=lambda n: -spend_by_name[n])  # by spend, descending
    for name, spend in spend_by_name.items():
        row = table.locator("tbody tr", has_text=name)
        assert await row.locator("[data-column='spend']").inner_text() == money(spend, "USD")

    # Sort by name with the keyboard: the header is a button, aria-sort follows.
    await table.locator("button[data-sort='name']").focus()
    await page.keyboard.press("Enter")
    assert (
        await table.locator("th:has(button[data-sort='name'])").get_attribute("aria-sort")
        == "ascending"
    )
    assert await table.locator("tbody tr th .entity-name").all_inner_texts() == sorted(
        spend_by_name
    )
    await page.keyboard.press("Enter")
    assert await table.locator("tbody tr th .entity-name").all_inner_texts() == sorted(
        spend_by_name, reverse=True
    )
    assert (
        await table.locator("th:has(button[data-sort='name'])").get_attribute("aria-sort")
        == "descending"
    )

    await table.get_by_role("link", name="Acme Beta Hats").click()
    campaign_id = world.a.campaigns["Acme Beta Hats"]
    await page.wait_for_url(f"**#/campaigns/{campaign_id}?*")
    await wait_idle(page)
    await shots.take(page, "campaign")
    days = await api_get(
        world.base_url,
        token,
        f"/stats/campaigns/{campaign_id}/days",
        since=since.isoformat(),
        until=until.isoformat(),
    )
    assert await text(page, "campaign-name") == "Acme Beta Hats"
    assert await text(page, "campaign-spend") == money(days["totals"]["spend_minor"], "USD")
    assert days["totals"]["spend_minor"] == spend_by_name["Acme Beta Hats"]
    rows = page.get_by_test_id("campaign-days-table").locator("tbody tr")
    assert await rows.count() == len(days["days"]) == 3


async def test_sellpages_table_sorts_and_pages(page: Page, world: World, shots: Shots) -> None:
    token = await api_token(world.base_url, world.a.email)
    since, until = today() - timedelta(days=29), today()
    await log_in(page, world.base_url, world.a.email, f"#/sellpages?since={since}&until={until}")
    table = page.get_by_test_id("sellpages-table")
    api = await api_get(
        world.base_url,
        token,
        "/stats/sellpages",
        since=since.isoformat(),
        until=until.isoformat(),
        limit=200,
    )
    items: list[dict[str, Any]] = api["items"]
    assert len(items) == 12

    # Default: by net revenue, highest first; ten rows a page.
    by_net = sorted(items, key=lambda p: -p["net_revenue_minor"])
    first_page = await table.locator("tbody tr th").all_inner_texts()
    assert first_page[:4] == [p["title"] for p in by_net[:4]]
    assert len(first_page) == 10
    assert await text(page, "sellpages-table-page") == "Page 1 of 2 · 12 rows"
    top = table.locator("tbody tr").first
    assert await top.locator("[data-column='net']").inner_text() == money(
        by_net[0]["net_revenue_minor"], "USD"
    )
    assert await top.locator("[data-column='roas']").inner_text() == roas(by_net[0]["roas"])
    await shots.take(page, "sellpages")

    await table.locator("button[data-sort='title']").click()
    titles = sorted(p["title"] for p in items)
    assert await table.locator("tbody tr th").all_inner_texts() == titles[:10]
    await page.get_by_test_id("sellpages-table-next").click()
    assert await table.locator("tbody tr th").all_inner_texts() == titles[10:]
    assert await text(page, "sellpages-table-page") == "Page 2 of 2 · 12 rows"
    assert await page.get_by_test_id("sellpages-table-next").is_disabled()
    await shots.take(page, "sellpages-page-2")
    await page.get_by_test_id("sellpages-table-previous").click()
    assert await table.locator("tbody tr th").all_inner_texts() == titles[:10]


async def test_sync_status_and_problems_are_shown(page: Page, world: World, shots: Shots) -> None:
    await log_in(page, world.base_url, world.a.email, "#/sync")
    await shots.take(page, "sync")

    sync = page.get_by_test_id("sync-table")
    healthy = sync.locator("tbody tr", has_text="Acme Main account")
    throttled = sync.locator("tbody tr", has_text="Acme Throttled account")
    assert await healthy.locator("[data-column='state']").inner_text() == "OK"
    assert (await healthy.locator("[data-column='lag']").inner_text()).endswith("min")
    assert (await throttled.locator("[data-column='state']").inner_text()).startswith(
        "Throttled until"
    )
    assert (
        await throttled.locator("[data-column='error']").inner_text()
        == "Acme rate limited (code 17)"
    )

    problems = page.get_by_test_id("problems-table")
    failed_job = problems.locator("tbody tr[data-kind='dead_letter']")
    assert await failed_job.count() == 1
    # The seller reads what happened in words; the raw error stays with the operator.
    failed_text = await failed_job.inner_text()
    assert "A background job failed because of an error on PixEcom's side" in failed_text
    assert "Acme sync crashed" not in failed_text and "ProviderError" not in failed_text
    sync_problem = problems.locator("tbody tr[data-kind='sync_error']")
    assert "Acme rate limited (code 17)" in await sync_problem.inner_text()


async def test_orders_show_status_and_tracking(page: Page, world: World, shots: Shots) -> None:
    token = await api_token(world.base_url, world.a.email)
    await log_in(page, world.base_url, world.a.email, "#/orders")
    await shots.take(page, "orders")

    api = await api_get(world.base_url, token, "/orders", limit=20)
    orders: list[dict[str, Any]] = api["items"]
    table = page.get_by_test_id("orders-table")
    assert await table.locator("tbody tr").count() == len(orders) == 8
    for order in orders:
        row = table.locator(f"tbody tr[data-key='{order['id']}']")
        assert await row.locator("[data-column='status']").inner_text() == order["status"]
    statuses = {o["id"]: o["status"] for o in orders}
    assert "PARTIALLY_REFUNDED" in statuses.values() and "PAID" in statuses.values()
    in_transit, delivered = world.a.order_ids[:2]
    transit_cell = table.locator(f"tbody tr[data-key='{in_transit}'] [data-column='tracking']")
    assert await transit_cell.inner_text() == f"In transit (usps {world.a.tracking_numbers[0]})"
    delivered_cell = table.locator(f"tbody tr[data-key='{delivered}'] [data-column='tracking']")
    assert await delivered_cell.inner_text() == f"Delivered (usps {world.a.tracking_numbers[1]})"
    untracked = table.locator(
        f"tbody tr[data-key='{world.a.order_ids[2]}'] [data-column='tracking']"
    )
    assert await untracked.inner_text() == "No tracking"


async def test_logout_returns_to_login_and_back_shows_no_data(
    page: Page, world: World, shots: Shots
) -> None:
    await log_in(page, world.base_url, world.a.email, "#/overview")
    for section in ("Campaigns", "Sellpages"):
        await page.get_by_role("link", name=section).click()
        await wait_idle(page)
    assert "Acme Page 01" in await page.content()

    await page.get_by_role("button", name="Log out").click()
    await page.get_by_test_id("login-form").wait_for()
    await shots.take(page, "logged-out")
    assert await page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')") is None

    # Back to the campaigns page, then to the overview: the login form, none of A's data.
    for expected in ("#/campaigns", "#/overview"):
        await page.go_back()
        await page.wait_for_url(f"**{expected}")
        await wait_idle(page)
        assert await page.get_by_test_id("login-form").is_visible()
        content = await page.content()
        leaked = [private for private in world.a.private_strings if private in content]
        assert not leaked, leaked
    await shots.take(page, "back-after-logout")

    # The next person at this browser logs in as seller B: nothing of A's comes back.
    await page.get_by_label("Email").fill(world.b.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Overview").wait_for()
    await wait_idle(page)
    for section in ("Campaigns", "Sellpages", "Overview"):
        await page.get_by_role("link", name=section).click()
        await wait_idle(page)
        content = await page.content()
        leaked = [private for private in world.a.private_strings if private in content]
        assert not leaked, leaked
    assert world.b.name in await text(page, "seller-name")


async def test_seller_b_never_sees_seller_a(
    context: BrowserContext, page: Page, world: World, shots: Shots
) -> None:
    token_b = await api_token(world.base_url, world.b.email)
    a_campaign = world.a.campaigns["Acme Alpha Boots"]
    since, until = today() - timedelta(days=29), today()
    # B follows a link to A's campaign: not found, nothing of A's.
    await log_in(
        page, world.base_url, world.b.email, f"#/campaigns/{a_campaign}?since={since}&until={until}"
    )
    await page.get_by_test_id("not-found").wait_for()
    await shots.take(page, "b-a-campaign-not-found")

    seen = [await page.content()]
    for section in ("overview", "campaigns", "sellpages", "orders", "sync"):
        await page.goto(f"{world.base_url}/dashboard/#/{section}?since={since}&until={until}")
        await wait_idle(page)
        await page.get_by_role("heading", level=1).wait_for()
        await shots.take(page, f"b-{section}")
        seen.append(await page.content())
        if section == "overview":
            await assert_overview_matches_api(page, world, token_b, since, until)
            assert (await text(page, "total-spend")).startswith("€")
        if section == "campaigns":
            assert "Bravo Only Campaign" in seen[-1]
    everything = "\n".join(seen)
    leaked = [private for private in world.a.private_strings if private in everything]
    assert not leaked, leaked
    # And B's pages do show B's own names: the probe looks at real pages.
    assert world.b.name in everything and "Bravo Page 01" in everything
    assert context.pages == [page]


def decode_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def expired_copy(token: str, settings: Settings) -> str:
    """A correctly signed access token of the same login, expired a minute ago."""
    claims = decode_claims(token)
    keyring = AccessTokenKeyring(settings.jwt_signing_keys, ttl=timedelta(seconds=30))
    return keyring.issue(
        user_id=uuid.UUID(claims["sub"]),
        seller_id=uuid.UUID(claims["sid"]),
        family_id=uuid.UUID(claims["fid"]),
        now=datetime.now(UTC) - timedelta(minutes=2),
    )


async def stored_session(page: Page) -> dict[str, Any]:
    raw = await page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')")
    assert raw is not None
    session: dict[str, Any] = json.loads(raw)
    return session


async def put_session(page: Page, session: dict[str, Any]) -> None:
    await page.evaluate(
        "([key, value]) => sessionStorage.setItem(key, value)", [SESSION_KEY, json.dumps(session)]
    )


async def test_an_expired_access_token_is_refreshed_transparently(
    page: Page, world: World, live_settings: Settings, shots: Shots
) -> None:
    await log_in(page, world.base_url, world.a.email)
    session = await stored_session(page)
    expired = expired_copy(session["access"], live_settings)
    async with httpx.AsyncClient(base_url=world.base_url) as client:
        refused = await client.get("/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401  # the token really is expired

    refreshes: list[Request] = []
    unauthorised: list[str] = []
    page.on("request", lambda r: refreshes.append(r) if r.url.endswith("/auth/refresh") else None)
    page.on("response", lambda r: unauthorised.append(r.url) if r.status == 401 else None)

    # The server says expired while the page still believes the token valid (clock skew):
    # a 401, one refresh, the same request again, and the page shows its data.
    await put_session(page, {**session, "access": expired})
    await page.reload()
    await wait_idle(page)
    await page.get_by_role("link", name="Campaigns").click()
    await page.wait_for_url("**#/campaigns")
    await wait_idle(page)
    assert await page.get_by_test_id("campaigns-table").locator("tbody tr").count() == 3
    assert len(unauthorised) == 1 and len(refreshes) == 1, (unauthorised, refreshes)
    rotated = await stored_session(page)
    assert rotated["access"] != expired and rotated["refresh"] != session["refresh"]
    await shots.take(page, "after-refresh")

    # Three requests at once meet the expired token: one refresh serves them all (a second
    # refresh with the same token would be a reuse and end the login). A second instance
    # of the page's own api module (another URL) starts from the stored, expired session.
    await put_session(page, {**rotated, "access": expired})
    answers = await page.evaluate(
        """async () => {
            const api = await import("./js/api.js?concurrency-probe");
            const all = await Promise.all(
                ["/auth/me", "/stats/sync-status", "/problems"].map((path) => api.get(path)));
            return all.length;
        }"""
    )
    assert answers == 3
    assert len(unauthorised) == 4 and len(refreshes) == 2, (unauthorised, refreshes)
    rotated = await stored_session(page)
    # The shell's own module adopted the rotated login (BroadcastChannel): it still works.
    await page.get_by_role("link", name="Sync & problems").click()
    await wait_idle(page)
    assert await page.get_by_test_id("sync-table").is_visible()
    assert len(refreshes) == 2

    # The page knows the token has expired: it refreshes before sending anything.
    unauthorised.clear()
    await put_session(
        page, {**(await stored_session(page)), "access": expired, "accessExpiresAt": 1_000}
    )
    await page.reload()
    await wait_idle(page)
    assert await page.get_by_test_id("sync-table").is_visible()
    assert unauthorised == [] and len(refreshes) == 3


async def test_a_session_revoked_elsewhere_returns_to_login(
    page: Page, world: World, shots: Shots
) -> None:
    await log_in(page, world.base_url, world.a.email)
    session = await stored_session(page)

    # The login is ended from somewhere else (another device's logout of this login).
    async with httpx.AsyncClient(base_url=world.base_url) as client:
        ended = await client.post("/auth/logout", json={"refresh_token": session["refresh"]})
    assert ended.status_code == 204

    await page.get_by_role("link", name="Orders").click()
    await page.get_by_test_id("login-form").wait_for()
    assert await page.get_by_test_id("session-ended").is_visible()
    await shots.take(page, "revoked")
    content = await page.content()
    assert not [p for p in world.a.private_strings if p in content]
    assert await page.evaluate(f"sessionStorage.getItem('{SESSION_KEY}')") is None


async def test_a_reused_refresh_token_ends_the_session(
    page: Page, world: World, live_settings: Settings
) -> None:
    await log_in(page, world.base_url, world.a.email)
    session = await stored_session(page)
    # Someone else spends the page's refresh token first (a stolen copy)...
    async with httpx.AsyncClient(base_url=world.base_url) as client:
        stolen = await client.post("/auth/refresh", json={"refresh_token": session["refresh"]})
    assert stolen.status_code == 200

    # ...so when the page's access token expires, its refresh is a reuse: the whole login
    # is revoked and the page returns to the login form.
    await put_session(page, {**session, "access": expired_copy(session["access"], live_settings)})
    await page.reload()
    await page.get_by_test_id("login-form").wait_for()
    assert await page.get_by_test_id("session-ended").is_visible()
    async with httpx.AsyncClient(base_url=world.base_url) as client:
        thief = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {stolen.json()['access_token']}"}
        )
    assert thief.status_code == 401  # the thief's tokens died with the login


async def test_orders_page_through_the_api_cursors_on_a_phone(
    browser: Browser, world: World, admin_key: str, database_owner_dsn: str, shots: Shots
) -> None:
    seller = await sign_up(world.base_url, admin_key, "Cursor Shop", "USD")
    newest = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        for index in range(45):
            order = insert_order(
                conn,
                seller.seller_id,
                total_minor=100 + index,
                created_at=newest - timedelta(minutes=index),
            )
            seller.order_ids.append(order.order_id)
    phone = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 375, "height": 740}, is_mobile=True
    )
    try:
        page = await phone.new_page()
        await log_in(page, world.base_url, seller.email, "#/orders")
        table = page.get_by_test_id("orders-table")
        pages = []
        for number in range(3):
            keys = [
                await row.get_attribute("data-key") for row in await table.locator("tbody tr").all()
            ]
            pages.append(keys)
            # Responsive: the page never scrolls sideways; wide tables scroll in their region.
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375
            await shots.take(page, f"orders-phone-page-{number + 1}")
            if number < 2:
                await page.get_by_test_id("orders-next").click()
                await wait_idle(page)
        assert [len(keys) for keys in pages] == [20, 20, 5]
        assert [k for keys in pages for k in keys] == [str(i) for i in seller.order_ids]
        assert await page.get_by_test_id("orders-next").count() == 0
        # Newer orders walks back, and so does the browser's back button.
        await page.get_by_test_id("orders-previous").click()
        await wait_idle(page)
        assert await table.locator("tbody tr").first.get_attribute("data-key") == pages[1][0]
        await page.go_back()
        await wait_idle(page)
        assert await table.locator("tbody tr").first.get_attribute("data-key") == pages[2][0]
        await page.get_by_test_id("orders-previous").click()
        await wait_idle(page)
        await page.get_by_test_id("orders-previous").click()
        await wait_idle(page)
        assert await table.locator("tbody tr").first.get_attribute("data-key") == pages[0][0]
        assert await page.get_by_test_id("orders-previous").count() == 0
    finally:
        await phone.close()
