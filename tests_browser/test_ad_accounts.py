"""The dashboard's "Ad accounts" page in headless Chromium (issue 14 item 7).

Against the API with an in-memory network that has a consent flow
(``tests/ad_accounts/consentads.py``): its consent page is answered inside the browser
(Playwright routes the network's address to a page with an "Approve" link carrying a fresh
code), so the browser really leaves the dashboard and comes back through the API's
callback — which is what the login kept in sessionStorage must survive. States the connect
flow cannot produce quickly (a backfill half done, an expiring token, a refused token) are
rows written as the schema owner in the seller's scope, and the page must show what the
API answers for them.

The whole flow runs once against the Meta plugin and its sandbox on loopback: an empty
seller clicks Connect, approves on the sandbox's Facebook Login dialog, chooses two accounts,
watches them fetch their 28-day history (connecting queued it; a real ``backfill`` worker
runs the jobs on the test's event loop) and finds the spend of every day on the overview.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.sandbox_oauth import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from playwright.async_api import BrowserContext, Dialog, Page, Route, expect
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import AdNetwork, AuthorizationKind
from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_sellpages
from pixecom_core.tenancy import SellerContext
from pixecom_core.testing.loopback import serve
from reference_app.api import create_app
from reference_app.worker.broker import Queue, build_broker
from reference_app.worker.run import drain_seconds, receive_until
from tests.ad_accounts.consentads import CONSENT_PAGE, IDENTIFIER, ConsentAdNetwork, reachable
from tests.db.tenant_rows import seller_scope
from tests.ledger import fakepay
from tests_browser.conftest import Shots, api_get, api_token, log_in, wait_idle
from tests_browser.seed import SeededSeller, sign_up
from tests_browser.test_accessibility import violations

SESSION_KEY = "pixecom.dashboard.session"


class PasteAdNetwork(ConsentAdNetwork):
    """A network without a consent page: sellers paste a token its own UI issued."""

    identifier = "pasteads"
    display_name = "PasteAds"
    authorization_kind = AuthorizationKind.TOKEN

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:  # noqa: ARG002
        return None


class AdNetworksPlugin:
    def __init__(self, *networks: ConsentAdNetwork) -> None:
        self.networks = networks

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return list(self.networks)


@dataclass(frozen=True)
class ConnectWorld:
    """The API with the consent network and a pasted-token network installed, served at
    ``base_url``."""

    base_url: str
    network: ConsentAdNetwork
    paste_network: PasteAdNetwork
    admin_key: str

    async def new_seller(self, name: str) -> SeededSeller:
        return await sign_up(self.base_url, self.admin_key, name, "USD")


@pytest.fixture(scope="session")
async def connect_world(live_settings: Settings, admin_key: str) -> AsyncIterator[ConnectWorld]:
    network = ConsentAdNetwork(
        [reachable("1001", "Shop US"), reachable("1002", "Shop EU"), reachable("1003", "Outlet")]
    )
    paste_network = PasteAdNetwork([reachable("9001", "Pasted Main")])
    manager = create_plugin_manager(
        load_entry_points=False, plugins=[fakepay, AdNetworksPlugin(network, paste_network)]
    )
    async with serve(create_app(live_settings, plugin_manager=manager), lifespan="on") as url:
        yield ConnectWorld(url, network, paste_network, admin_key)


async def route_consent(page: Page, connect_world: ConnectWorld) -> list[str]:
    """Answer the network's consent page in the browser: a page whose "Approve" link goes
    back to the redirect URI with the state and a fresh code. Answers the consent URLs the
    browser opened (filled as it opens them)."""
    opened: list[str] = []

    async def answer(route: Route) -> None:
        opened.append(route.request.url)
        query = parse_qs(urlsplit(route.request.url).query)
        redirect_uri = query["redirect_uri"][0]
        code = connect_world.network.consent(redirect_uri)
        back = f"{redirect_uri}?{urlencode({'state': query['state'][0], 'code': code})}"
        # As networks answer a seller who declines (Meta: error=access_denied).
        cancel = (
            f"{redirect_uri}?{urlencode({'state': query['state'][0], 'error': 'access_denied'})}"
        )
        body = (
            "<!doctype html><html lang='en'><title>ConsentAds</title>"
            "<h1>Allow PixEcom to read your ad accounts?</h1>"
            f"<a id='approve' href='{html.escape(back)}'>Approve</a> "
            f"<a id='cancel' href='{html.escape(cancel)}'>Cancel</a></html>"
        )
        await route.fulfill(status=200, content_type="text/html", body=body)

    await page.route(f"{CONSENT_PAGE}?*", answer)
    return opened


def insert_account(
    owner_dsn: str, seller_id: uuid.UUID, external_id: str, name: str, **columns: Any
) -> uuid.UUID:
    """An ad account of the seller as a connect flow and its syncs would have left it."""
    values = {
        "network": IDENTIFIER,
        "external_id": external_id,
        "name": name,
        "timezone": "UTC",
        "currency": "USD",
        **columns,
    }
    names = ", ".join(["seller_id", *values])
    marks = ", ".join(["%s"] * (len(values) + 1))
    with psycopg.connect(owner_dsn, autocommit=True) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            f"INSERT INTO ad_accounts ({names}) VALUES ({marks}) RETURNING id",  # noqa: S608
            (seller_id, *values.values()),
        ).fetchone()
    assert row is not None
    account_id: uuid.UUID = row[0]
    return account_id


def account_row(page: Page, external_id: str) -> Any:
    return page.get_by_test_id("ad-accounts-table").locator(
        f"tbody tr[data-external-id='{external_id}']"
    )


async def states_by_api(base_url: str, email: str) -> dict[str, dict[str, Any]]:
    token = await api_token(base_url, email)
    listed = await api_get(base_url, token, "/ad-accounts", limit=200)
    return {account["external_id"]: account for account in listed["items"]}


async def test_an_empty_seller_connects_two_accounts_through_the_consent_page(
    page: Page, connect_world: ConnectWorld, shots: Shots
) -> None:
    opened = await route_consent(page, connect_world)
    seller = await connect_world.new_seller("Empty Shop")
    await log_in(page, connect_world.base_url, seller.email, "#/overview")
    await page.get_by_role("link", name="Ad accounts").click()
    await page.wait_for_url("**#/ad-accounts")
    await wait_idle(page)
    assert await page.get_by_test_id("no-ad-accounts").is_visible()
    await shots.take(page, "empty")

    # Connect: the browser leaves for the network's consent page...
    await page.get_by_role("button", name="Connect ConsentAds").click()
    await page.wait_for_url(f"{CONSENT_PAGE}?*")
    assert len(opened) == 1
    await shots.take(page, "consent-page")
    # ...and comes back through the callback to the chooser, still logged in.
    await page.get_by_role("link", name="Approve").click()
    await page.wait_for_url("**/dashboard/#/ad-accounts?connection=*")
    await wait_idle(page)
    chooser = page.get_by_test_id("account-chooser")
    await chooser.wait_for()
    assert await page.get_by_test_id("login-form").count() == 0
    assert await chooser.get_by_role("checkbox").count() == 3
    await shots.take(page, "chooser")

    await chooser.get_by_label("Shop US").check()
    await chooser.get_by_label("Outlet").check()
    await chooser.get_by_role("button", name="Connect selected accounts").click()
    await page.wait_for_url("**#/ad-accounts")
    await wait_idle(page)
    await expect(page.get_by_test_id("ad-accounts-notice")).to_contain_text(
        "Connected Shop US, Outlet"
    )
    await shots.take(page, "connected")

    api = await states_by_api(connect_world.base_url, seller.email)
    assert set(api) == {"1001", "1003"}
    rows = page.get_by_test_id("ad-accounts-table").locator("tbody tr")
    assert await rows.count() == 2
    for external_id, account in api.items():
        state = account_row(page, external_id).locator("[data-column='state'] .badge")
        assert await state.get_attribute("data-state") == account["state"]
        assert account["state"] in ("active", "backfilling")
    # The finished chooser left no entry in the history: Back does not lead to it.
    assert urlsplit(page.url).fragment == "/ad-accounts"


async def test_a_seller_who_cancels_on_the_consent_page_reads_why_nothing_connected(
    page: Page, connect_world: ConnectWorld, shots: Shots
) -> None:
    await route_consent(page, connect_world)
    seller = await connect_world.new_seller("Undecided Shop")
    await log_in(page, connect_world.base_url, seller.email, "#/ad-accounts")
    await wait_idle(page)

    await page.get_by_role("button", name="Connect ConsentAds").click()
    await page.wait_for_url(f"{CONSENT_PAGE}?*")
    await page.get_by_role("link", name="Cancel").click()
    await page.wait_for_url("**/dashboard/#/ad-accounts?error=access_denied")
    await wait_idle(page)

    await expect(page.get_by_test_id("callback-problem")).to_contain_text(
        "You cancelled on the network's page"
    )
    assert await page.get_by_test_id("login-form").count() == 0
    assert await page.get_by_test_id("no-ad-accounts").is_visible()
    await shots.take(page, "cancelled")


async def test_states_progress_and_expiry_are_what_the_api_says(
    page: Page, connect_world: ConnectWorld, database_owner_dsn: str, shots: Shots
) -> None:
    seller = await connect_world.new_seller("States Shop")
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    since = yesterday - timedelta(days=27)  # a 28-day window, 7 days of it done: 25 %
    dsn, sid = database_owner_dsn, seller.seller_id
    insert_account(dsn, sid, "2001", "Shop Active", token_expires_at=now + timedelta(days=50),
                   last_synced_at=now - timedelta(minutes=5))  # fmt: skip
    backfilling = insert_account(
        dsn, sid, "2002", "Shop Backfilling",
        backfill_since=since, backfill_until=yesterday,
        backfill_done_through=since + timedelta(days=6),
    )  # fmt: skip
    insert_account(dsn, sid, "2003", "Shop Refused", needs_reconnect=True,
                   last_sync_error="the network refused the token")  # fmt: skip
    expiring = now + timedelta(days=3)
    insert_account(dsn, sid, "2004", "Shop Expiring", token_expires_at=expiring)
    insert_account(dsn, sid, "2005", "Shop Gone", status="DISCONNECTED", disconnected_at=now)

    await log_in(page, connect_world.base_url, seller.email, "#/ad-accounts")
    await shots.take(page, "states")
    api = await states_by_api(connect_world.base_url, seller.email)
    expected = {
        "2001": ("active", "Active", ["Disconnect"]),
        "2002": ("backfilling", "Fetching history", ["Disconnect"]),
        "2003": ("needs_reconnect", "Needs reconnecting", ["Reconnect", "Disconnect"]),
        "2004": ("token_expiring", "Access ends soon", ["Reconnect", "Disconnect"]),
        "2005": ("disconnected", "Disconnected", ["Reconnect"]),
    }
    for external_id, (state, label, buttons) in expected.items():
        assert api[external_id]["state"] == state
        row = account_row(page, external_id)
        badge = row.locator("[data-column='state'] .badge")
        assert (await badge.get_attribute("data-state"), await badge.inner_text()) == (
            state,
            label,
        )
        assert await row.locator("[data-column='actions'] button").all_inner_texts() == buttons

    # The backfill: a progress bar with its text, as far as the API says it got.
    assert api["2002"]["backfill_progress"] == 0.25
    progress = account_row(page, "2002").get_by_role("progressbar")
    assert await progress.get_attribute("value") == "25"
    assert await progress.get_attribute("aria-label") == "History of Shop Backfilling"
    assert "25 % of history fetched" in await account_row(page, "2002").inner_text()
    assert await page.get_by_test_id("backfill-summary").inner_text() == (
        "Fetching the history of 1 account."
    )
    # The token's end date, and what to do about it.
    access = await account_row(page, "2004").locator("[data-column='access']").inner_text()
    assert access.startswith(f"{expiring:%b} {expiring.day}, {expiring.year}")
    assert access.endswith("reconnect before then")
    assert await account_row(page, "2005").locator("[data-column='access']").inner_text() == (
        "No access"
    )
    assert await violations(page) == []

    # The page follows the backfill without a reload: it finishes, the account is active.
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn, seller_scope(conn, sid):
        conn.execute(
            "UPDATE ad_accounts SET backfill_done_through = backfill_until WHERE id = %s",
            (backfilling,),
        )
    badge = account_row(page, "2002").locator("[data-column='state'] .badge")
    await expect(badge).to_have_attribute("data-state", "active", timeout=10_000)
    assert await account_row(page, "2002").get_by_role("progressbar").count() == 0
    await expect(page.get_by_test_id("backfill-summary")).to_have_text(
        "Every connected account's history is fetched."
    )
    await shots.take(page, "backfill-done")


async def test_disconnect_asks_first_and_keeps_the_account_listed(
    page: Page, connect_world: ConnectWorld, database_owner_dsn: str, shots: Shots
) -> None:
    seller = await connect_world.new_seller("Disconnect Shop")
    insert_account(database_owner_dsn, seller.seller_id, "3001", "Shop To Leave")
    await log_in(page, connect_world.base_url, seller.email, "#/ad-accounts")
    row = account_row(page, "3001")
    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", dismiss)
    await row.get_by_role("button", name="Disconnect Shop To Leave").click()
    await expect(page.get_by_test_id("ad-accounts-table")).to_be_visible()
    assert questions and questions[0].startswith("Disconnect Shop To Leave?")
    assert (await states_by_api(connect_world.base_url, seller.email))["3001"]["state"] == (
        "active"
    )

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await row.get_by_role("button", name="Disconnect Shop To Leave").click()
    await expect(row.locator("[data-column='state'] .badge")).to_have_attribute(
        "data-state", "disconnected"
    )
    assert len(questions) == 2
    await expect(page.get_by_test_id("ad-accounts-notice")).to_have_text(
        "Disconnected Shop To Leave."
    )
    await shots.take(page, "disconnected")
    assert (await states_by_api(connect_world.base_url, seller.email))["3001"]["state"] == (
        "disconnected"
    )


async def test_reconnect_renews_an_account_the_network_refused(
    page: Page, connect_world: ConnectWorld, database_owner_dsn: str, shots: Shots
) -> None:
    await route_consent(page, connect_world)
    seller = await connect_world.new_seller("Reconnect Shop")
    insert_account(database_owner_dsn, seller.seller_id, "1002", "Shop EU", needs_reconnect=True)
    await log_in(page, connect_world.base_url, seller.email, "#/ad-accounts")

    await account_row(page, "1002").get_by_role("button", name="Reconnect Shop EU").click()
    await page.wait_for_url(f"{CONSENT_PAGE}?*")
    await page.get_by_role("link", name="Approve").click()
    await page.wait_for_url("**/dashboard/#/ad-accounts?connection=*")
    chooser = page.get_by_test_id("account-chooser")
    await chooser.wait_for()
    # The account being reconnected is already ticked, and flagged as connected.
    box = chooser.get_by_role("checkbox", name="Shop EU")
    assert await box.is_checked()
    assert not await chooser.get_by_role("checkbox", name="Shop US").is_checked()
    assert "already connected" in await chooser.locator("li[data-external-id='1002']").inner_text()
    assert await violations(page) == []
    await shots.take(page, "reconnect-chooser")

    await chooser.get_by_role("button", name="Connect selected accounts").click()
    await page.wait_for_url("**#/ad-accounts")
    await wait_idle(page)
    badge = account_row(page, "1002").locator("[data-column='state'] .badge")
    assert await badge.get_attribute("data-state") in ("active", "backfilling")
    api = await states_by_api(connect_world.base_url, seller.email)
    assert set(api) == {"1002"} and api["1002"]["state"] in ("active", "backfilling")


async def test_the_chooser_link_needs_a_login_and_the_sellers_own_connection(
    page: Page, connect_world: ConnectWorld, shots: Shots
) -> None:
    seller = await connect_world.new_seller("Chooser Shop")
    other = await connect_world.new_seller("Other Shop")
    # Another seller's authorized connection, made through the API.
    token = await api_token(connect_world.base_url, other.email)
    async with httpx.AsyncClient(base_url=connect_world.base_url) as client:
        started = await client.post(
            "/ad-accounts/connections",
            json={"network": IDENTIFIER},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert started.status_code == 201, started.text
        query = parse_qs(urlsplit(started.json()["authorization_url"]).query)
        redirect_uri = query["redirect_uri"][0]
        code = connect_world.network.consent(redirect_uri)
        back = await client.get(
            urlsplit(redirect_uri).path, params={"state": query["state"][0], "code": code}
        )
    assert back.status_code == 303, back.text
    others = started.json()["id"]

    # Not logged in: the login form first, then the chooser the link named.
    await page.goto(f"{connect_world.base_url}/dashboard/ad-accounts?connection={others}")
    await page.wait_for_url(f"**/dashboard/#/ad-accounts?connection={others}")
    await page.get_by_test_id("login-form").wait_for()
    await page.get_by_label("Email").fill(seller.email)
    await page.get_by_label("Password").fill("correct horse battery staple")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Ad accounts", exact=True).wait_for()
    await wait_idle(page)
    # It is the other seller's: nothing of it is shown.
    assert await page.get_by_test_id("chooser-problem").inner_text() == (
        "There is no such connection for your account. Connect the network again."
    )
    assert await page.get_by_test_id("account-chooser").get_by_role("checkbox").count() == 0
    await shots.take(page, "foreign-connection")

    # A link that names no connection: the server passes no text on, the page says so.
    await page.goto(f"{connect_world.base_url}/dashboard/ad-accounts?connection=%3Cb%3Ex")
    await page.wait_for_url("**/dashboard/#/ad-accounts")
    await wait_idle(page)
    assert await page.get_by_test_id("account-chooser").count() == 0
    await page.goto(f"{connect_world.base_url}/dashboard/#/ad-accounts?connection=nonsense")
    await wait_idle(page)
    assert await page.get_by_test_id("chooser-problem").inner_text() == (
        "This link names no connection. Connect the network again."
    )


async def test_a_network_without_a_consent_page_connects_with_a_pasted_token(
    page: Page, connect_world: ConnectWorld, shots: Shots
) -> None:
    seller = await connect_world.new_seller("Paste Shop")
    connect_world.paste_network.grants["PASTED-TOKEN-9001"] = ("ads_read",)
    await log_in(page, connect_world.base_url, seller.email, "#/ad-accounts")
    field = page.get_by_label("Access token from PasteAds")
    connect = page.get_by_role("button", name="Connect PasteAds")

    # A token the network refuses: said on the page, without the token, nothing stored.
    await field.fill("NOT-A-TOKEN")
    await connect.click()
    problem = page.get_by_test_id("connect-problem")
    await expect(problem).to_contain_text("Could not start connecting")
    assert "NOT-A-TOKEN" not in await problem.inner_text()
    assert await connect.is_enabled()
    await shots.take(page, "token-refused")

    await field.fill("PASTED-TOKEN-9001")
    await connect.click()
    await page.wait_for_url("**#/ad-accounts?connection=*")
    await wait_idle(page)
    chooser = page.get_by_test_id("account-chooser")
    # Nothing ticked: the page asks for a choice instead of sending an empty one.
    await chooser.get_by_role("button", name="Connect selected accounts").click()
    await expect(page.get_by_test_id("chooser-alert")).to_have_text("Choose at least one account.")
    await chooser.get_by_label("Pasted Main").check()
    await chooser.get_by_role("button", name="Connect selected accounts").click()
    await page.wait_for_url("**#/ad-accounts")
    await wait_idle(page)
    assert await account_row(page, "9001").locator("th").inner_text() == (
        "Pasted Main\nPasteAds · 9001 · USD"
    )
    api = await states_by_api(connect_world.base_url, seller.email)
    assert set(api) == {"9001"} and api["9001"]["network"] == "pasteads"


async def test_the_chooser_of_a_connection_never_authorized_says_to_connect_again(
    context: BrowserContext, connect_world: ConnectWorld
) -> None:
    """The seller left the consent page without answering: the connection stays pending
    and its chooser (422 from the API, which the console reports) says what to do."""
    seller = await connect_world.new_seller("Pending Shop")
    token = await api_token(connect_world.base_url, seller.email)
    async with httpx.AsyncClient(base_url=connect_world.base_url) as client:
        started = await client.post(
            "/ad-accounts/connections",
            json={"network": IDENTIFIER},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert started.status_code == 201, started.text
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(
        page,
        connect_world.base_url,
        seller.email,
        f"#/ad-accounts?connection={started.json()['id']}",
    )
    assert await page.get_by_test_id("chooser-problem").inner_text() == (
        "This connection was never authorized: the network's page was left, refused or timed "
        "out. Connect the network again."
    )
    assert await page.get_by_role("button", name="Connect ConsentAds").is_visible()
    assert errors == []


# -- the whole flow against the Meta sandbox ------------------------------------------------


class MetaAtSandbox:
    """The Meta plugin's ad network, pointed at the sandbox (dialog and Graph API)."""

    def __init__(self, network: MetaAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@dataclass(frozen=True)
class MetaWorld:
    """The API with the Meta plugin at the sandbox; ``registry`` and ``settings`` are the
    API's, for a backfill worker of the same deployment."""

    base_url: str
    sandbox_url: str
    registry: ProviderRegistry
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings


@pytest.fixture(scope="session")
async def meta_world(live_settings: Settings, app_engine: AsyncEngine) -> AsyncIterator[MetaWorld]:
    # Queues of its own: the other apps' connect flows queue backfills of their networks.
    settings = live_settings.model_copy(
        update={"redis_key_prefix": f"pixecom-browser-meta:{uuid.uuid4().hex}:"}
    )
    async with serve(create_sandbox_app(MetaSandboxSettings())) as sandbox_url:
        network = MetaAdNetwork(
            MetaAdsSettings(
                graph_base=sandbox_url,
                dialog_base=sandbox_url,
                app_id=DEFAULT_APP_ID,
                app_secret=SecretStr(DEFAULT_APP_SECRET),
            )
        )
        manager = create_plugin_manager(
            load_entry_points=False, plugins=[fakepay, MetaAtSandbox(network)]
        )
        try:
            app = create_app(settings, plugin_manager=manager)
            async with serve(app, lifespan="on") as url:
                yield MetaWorld(
                    url,
                    sandbox_url,
                    ProviderRegistry(manager),
                    create_sessionmaker(app_engine),
                    settings,
                )
        finally:
            await network.aclose()


@asynccontextmanager
async def backfill_worker(world: MetaWorld) -> AsyncIterator[Callable[[], None]]:
    """``pixecom worker --queue backfill`` of the world's deployment, on this event loop.

    Started (its consumer group declared) on entering, as a deployed worker is before any
    seller connects; it takes jobs only once the answered function is called.
    """
    broker = build_broker(world.settings, Queue.BACKFILL, registry=world.registry)
    broker.is_worker_process = True
    await broker.startup()
    stop = asyncio.Event()
    drain = drain_seconds(world.settings)
    receiving: list[asyncio.Task[None]] = []

    def take_jobs() -> None:
        receiving.append(
            asyncio.create_task(receive_until(broker, stop, max_tasks=4, drain_timeout=drain))
        )

    try:
        yield take_jobs
    finally:
        stop.set()
        for task in receiving:
            await asyncio.wait_for(task, drain + 5)
        await broker.shutdown()


async def test_an_empty_seller_connects_meta_and_sees_spend_on_the_overview(
    page: Page, meta_world: MetaWorld, admin_key: str, shots: Shots
) -> None:
    async with backfill_worker(meta_world) as take_jobs:
        await walk(page, meta_world, admin_key, shots, take_jobs)


async def walk(
    page: Page, meta_world: MetaWorld, admin_key: str, shots: Shots, take_jobs: Callable[[], None]
) -> None:
    seller = await sign_up(meta_world.base_url, admin_key, "Walk Shop", "USD")
    await log_in(page, meta_world.base_url, seller.email, "#/overview")
    assert await page.get_by_test_id("total-spend").get_attribute("data-minor") == "0"
    await page.get_by_role("link", name="Ad accounts").click()
    await wait_idle(page)
    assert await page.get_by_test_id("no-ad-accounts").is_visible()

    # Connect → the Meta sandbox's Facebook Login dialog → approve as the sandbox seller.
    await page.get_by_role("button", name="Connect Meta").click()
    await page.wait_for_url(f"{meta_world.sandbox_url}/**/dialog/oauth?*")
    await shots.take(page, "meta-consent")
    await page.get_by_label("Sandbox Seller").check()
    await page.locator("#approve").click()
    await page.wait_for_url("**/dashboard/#/ad-accounts?connection=*")
    chooser = page.get_by_test_id("account-chooser")
    await chooser.wait_for()
    await shots.take(page, "meta-chooser")
    await chooser.get_by_label("Sandbox ad account 1000").check()
    await chooser.get_by_label("Sandbox ad account 1001").check()
    await chooser.get_by_role("button", name="Connect selected accounts").click()
    await page.wait_for_url("**#/ad-accounts")
    await wait_idle(page)
    await expect(page.get_by_test_id("ad-accounts-notice")).to_be_visible()

    # Connecting planned each account's backfill and queued it: the page shows both
    # fetching their history, nothing fetched yet.
    accounts = await states_by_api(meta_world.base_url, seller.email)
    assert set(accounts) == {"1000", "1001"}
    assert {account["state"] for account in accounts.values()} == {"backfilling"}
    for external_id in accounts:
        row = account_row(page, external_id)
        badge = row.locator("[data-column='state'] .badge")
        assert await badge.get_attribute("data-state") == "backfilling"
        assert await row.get_by_role("progressbar").get_attribute("value") == "0"
    assert await page.get_by_test_id("backfill-summary").inner_text() == (
        "Fetching the history of 2 accounts."
    )
    await shots.take(page, "meta-backfilling")

    # The backfill worker takes the queued jobs, a 7-day chunk each, and the page, reading
    # the list again while anything is backfilling, follows.
    take_jobs()
    for external_id in accounts:
        badge = account_row(page, external_id).locator("[data-column='state'] .badge")
        await expect(badge).to_have_attribute("data-state", "active", timeout=60_000)
    await expect(page.get_by_test_id("backfill-summary")).to_have_text(
        "Every connected account's history is fetched."
    )
    await shots.take(page, "meta-active")

    # The seller ties the campaigns the backfill found to a sellpage (the overview is the
    # sellpages' days), through the API: the dashboard has no catalog pages yet.
    token = await api_token(meta_world.base_url, seller.email)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=meta_world.base_url, headers=headers) as client:
        sellpage = await client.post("/sellpages", json={"slug": "walk", "title": "Walk page"})
        assert sellpage.status_code == 201, sellpage.text
        campaigns = (await client.get("/campaigns", params={"limit": 200})).json()["items"]
        assert campaigns
        for campaign in campaigns:
            linked = await client.patch(
                f"/campaigns/{campaign['id']}", json={"sellpage_id": sellpage.json()["id"]}
            )
            assert linked.status_code == 200, linked.text
    # Tying a campaign does not re-aggregate its past days (the next syncs' restatement
    # sweep would): aggregate the backfilled window now, as the sweep does.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    window = [yesterday - timedelta(days=n) for n in range(meta_world.settings.backfill_days + 1)]
    context = SellerContext(
        seller_id=seller.seller_id, sessions=meta_world.sessions, settings=meta_world.settings
    )
    async with context.scope() as scope:
        await aggregate_sellpages(scope, sorted(window))

    await page.get_by_role("link", name="Overview").click()
    await wait_idle(page)
    await shots.take(page, "meta-overview")
    until = datetime.now(UTC).date()
    since = until - timedelta(days=29)
    overview = await api_get(
        meta_world.base_url,
        token,
        "/stats/overview",
        since=since.isoformat(),
        until=until.isoformat(),
    )
    spend_days = [day for day in overview["days"] if day["spend_minor"] > 0]
    assert len(spend_days) >= 20, overview["days"]
    assert await page.get_by_test_id("total-spend").get_attribute("data-minor") == str(
        overview["totals"]["spend_minor"]
    )
    table = page.get_by_test_id("days-table")
    for day in spend_days:
        cell = table.locator(f"tbody tr[data-key='{day['day']}'] [data-column='spend']")
        assert await cell.inner_text() == f"${Decimal(day['spend_minor']).scaleb(-2):,.2f}"
