"""The dashboard's "Payments" page in headless Chromium (issue 15 item 4, connections).

Against the API with the two test gateways that take payments into sellers' own accounts
(``tests/app/payments/fakeconnect.py``): ``fakeconnect`` connects through a consent page,
``fakecreds`` with credentials. The consent page lives at https://fakeconnect.test, which
the browser cannot reach: Playwright answers it inside the browser with a page whose
"Approve" link goes back to the API's callback with the state and a good code
(``ok-<account>.<nonce>``) and whose "Cancel" link comes back with ``error=access_denied``,
as gateways answer a seller who declines. So the browser really leaves the dashboard and
comes back through the callback, with the cookie that binds the flow to it.

A revoked connection (the gateway told PixEcom the seller took its access away) is a row
written as the schema owner in the seller's scope: the page must show what the API
answers for it.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest
from playwright.async_api import Dialog, Locator, Page, Route, expect

from pixecom_core.plugins import create_plugin_manager
from pixecom_core.settings import Settings
from pixecom_core.testing.loopback import serve
from reference_app.api import create_app
from tests.app.payments import fakeconnect
from tests.db.tenant_rows import seller_scope
from tests.ledger import fakepay
from tests_browser.conftest import Shots, api_token, log_in, wait_idle
from tests_browser.seed import SeededSeller, sign_up
from tests_browser.test_accessibility import violations

CONSENT_PAGE = "https://fakeconnect.test/authorize"


@dataclass(frozen=True)
class PaymentsWorld:
    """The API with fakepay and both connectable test gateways, served at ``base_url``."""

    base_url: str
    admin_key: str

    async def new_seller(self, name: str) -> SeededSeller:
        return await sign_up(self.base_url, self.admin_key, name, "USD")


@pytest.fixture(scope="session")
async def payments_world(live_settings: Settings, admin_key: str) -> AsyncIterator[PaymentsWorld]:
    manager = create_plugin_manager(load_entry_points=False, plugins=[fakepay, fakeconnect])
    async with serve(create_app(live_settings, plugin_manager=manager), lifespan="on") as url:
        yield PaymentsWorld(url, admin_key)


def new_account() -> str:
    """A FakeConnect account id no other seller of the run has connected."""
    return f"acct{uuid.uuid4().hex[:8]}"


async def route_consent(page: Page, account: str) -> list[str]:
    """Play FakeConnect's consent page in the browser: "Approve" returns a code for
    ``account``, "Cancel" returns ``error=access_denied``. Answers the URLs opened."""
    opened: list[str] = []

    async def answer(route: Route) -> None:
        opened.append(route.request.url)
        query = parse_qs(urlsplit(route.request.url).query)
        redirect_uri, state = query["redirect_uri"][0], query["state"][0]
        code = f"ok-{account}.{uuid.uuid4().hex[:6]}"
        approve = f"{redirect_uri}?{urlencode({'state': state, 'code': code})}"
        cancel = f"{redirect_uri}?{urlencode({'state': state, 'error': 'access_denied'})}"
        body = (
            "<!doctype html><html lang='en'><title>FakeConnect</title>"
            "<h1>Let PixEcom take payments into your FakeConnect account?</h1>"
            f"<a id='approve' href='{html.escape(approve)}'>Approve</a> "
            f"<a id='cancel' href='{html.escape(cancel)}'>Cancel</a></html>"
        )
        await route.fulfill(status=200, content_type="text/html", body=body)

    await page.route(f"{CONSENT_PAGE}?*", answer)
    return opened


async def connections_by_api(base_url: str, email: str) -> list[dict[str, Any]]:
    token = await api_token(base_url, email)
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.get(
            "/payments/connections", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


def card(page: Page, gateway: str) -> Locator:
    return page.locator(f"section[data-gateway='{gateway}']")


async def state_of(page: Page, gateway: str) -> str | None:
    return await card(page, gateway).get_by_test_id("gateway-state").get_attribute("data-state")


async def open_payments(page: Page, world: PaymentsWorld, seller: SeededSeller) -> None:
    await log_in(page, world.base_url, seller.email, "#/overview")
    await page.get_by_role("link", name="Payments").click()
    await page.wait_for_url("**#/payments")
    await wait_idle(page)


async def test_a_seller_connects_through_the_consent_page(
    page: Page, payments_world: PaymentsWorld, shots: Shots
) -> None:
    account = new_account()
    opened = await route_consent(page, account)
    seller = await payments_world.new_seller("Consent Pay Shop")
    await open_payments(page, payments_world, seller)
    assert await state_of(page, "fakeconnect") == "NONE"
    assert await state_of(page, "fakecreds") == "NONE"
    assert await page.get_by_role("link", name="Payments").get_attribute("aria-current") == "page"
    await shots.take(page, "not-connected")

    # Connect: the browser leaves for the gateway's consent page...
    await page.get_by_role("button", name="Connect FakeConnect").click()
    await page.wait_for_url(f"{CONSENT_PAGE}?*")
    assert len(opened) == 1
    await shots.take(page, "consent-page")
    # ...and the API's callback, with the cookie binding the flow to this browser,
    # connects the account and sends the browser to /dashboard/payments?connection=…,
    # which opens the shell's Payments route with the id.
    await page.get_by_role("link", name="Approve").click()
    outcome = page.get_by_test_id("payments-outcome")
    await expect(outcome).to_be_visible()
    [connection] = await connections_by_api(payments_world.base_url, seller.email)
    assert (connection["status"], connection["account_id"]) == ("ACTIVE", account)
    await wait_idle(page)
    await expect(outcome).to_have_text(
        f"Connected FakeConnect: payments now go to Shop {account} ({account})."
    )
    assert await outcome.get_attribute("role") == "status"
    assert await page.get_by_test_id("login-form").count() == 0
    # Said once: the query is gone from the address bar, a reload does not repeat it.
    assert urlsplit(page.url).fragment == "/payments"
    assert await state_of(page, "fakeconnect") == "ACTIVE"
    assert f"Payments go to Shop {account} ({account}), connected since" in (
        await card(page, "fakeconnect").get_by_test_id("connected-account").inner_text()
    )
    assert await card(page, "fakeconnect").get_by_role("button").all_inner_texts() == ["Disconnect"]
    await shots.take(page, "connected")
    await page.reload()
    await wait_idle(page)
    assert await page.get_by_test_id("payments-outcome").is_hidden()
    assert await state_of(page, "fakeconnect") == "ACTIVE"


async def test_the_callback_address_opens_the_payments_page(
    page: Page, payments_world: PaymentsWorld
) -> None:
    seller = await payments_world.new_seller("Address Shop")
    await log_in(page, payments_world.base_url, seller.email, "#/overview")
    answer = await page.goto(f"{payments_world.base_url}/dashboard/payments?error=access_denied")
    assert answer is not None and answer.ok, (
        f"/dashboard/payments answered {answer and answer.status}"
    )
    await page.wait_for_url("**/dashboard/#/payments*")
    await wait_idle(page)
    await expect(page.get_by_test_id("payments-outcome-problem")).to_have_text(
        "You cancelled on the gateway's page, so no account was connected."
    )


async def test_a_seller_who_cancels_on_the_consent_page_reads_why(
    page: Page, payments_world: PaymentsWorld, shots: Shots
) -> None:
    await route_consent(page, new_account())
    seller = await payments_world.new_seller("Cancel Pay Shop")
    await open_payments(page, payments_world, seller)

    await page.get_by_role("button", name="Connect FakeConnect").click()
    await page.wait_for_url(f"{CONSENT_PAGE}?*")
    await page.get_by_role("link", name="Cancel").click()
    problem = page.get_by_test_id("payments-outcome-problem")
    await expect(problem).to_be_visible()
    [connection] = await connections_by_api(payments_world.base_url, seller.email)
    assert connection["status"] == "REFUSED" and connection["account_id"] is None
    await wait_idle(page)
    await expect(problem).to_have_text(
        "You cancelled on the gateway's page, so no account was connected."
    )
    assert await problem.get_attribute("role") == "alert"
    assert urlsplit(page.url).fragment == "/payments"
    assert await state_of(page, "fakeconnect") == "REFUSED"
    assert await card(page, "fakeconnect").get_by_role("button").all_inner_texts() == [
        "Connect FakeConnect"
    ]
    await shots.take(page, "cancelled")


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        ("state_used", "That connection link was already used. Connect again."),
        ("state_expired", "Connecting took longer than 10 minutes. Connect again."),
        ("state_not_bound", "That connection was started in another browser."),
        ("code_refused", "The gateway refused the authorization. Connect again."),
        ("payment_account_taken", "That account is connected to another PixEcom seller."),
        ("made_up_code", "Connecting did not work. Connect again."),
    ],
)
async def test_every_callback_error_reads_as_a_sentence(
    page: Page, payments_world: PaymentsWorld, code: str, sentence: str
) -> None:
    seller = await payments_world.new_seller("Error Shop")
    await log_in(page, payments_world.base_url, seller.email, f"#/payments?error={code}")
    await expect(page.get_by_test_id("payments-outcome-problem")).to_contain_text(sentence)
    assert urlsplit(page.url).fragment == "/payments"


async def test_a_link_naming_no_connection_of_the_seller_says_so(
    page: Page, payments_world: PaymentsWorld
) -> None:
    seller = await payments_world.new_seller("Foreign Link Shop")
    other = await payments_world.new_seller("Other Pay Shop")
    token = await api_token(payments_world.base_url, other.email)
    async with httpx.AsyncClient(base_url=payments_world.base_url) as client:
        others = await client.post(
            "/payments/connections",
            json={"gateway": "fakecreds", "credentials": {
                "client_id": uuid.uuid4().hex[:8], "client_secret": "right-secret"}},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
    assert others.status_code == 201, others.text

    await log_in(page, payments_world.base_url, seller.email, "#/overview")
    for connection in (others.json()["id"], "%3Cb%3Ex"):
        await page.goto(f"{payments_world.base_url}/dashboard/#/payments?connection={connection}")
        await wait_idle(page)
        await expect(page.get_by_test_id("payments-outcome-problem")).to_have_text(
            "This link names no connection of your account. Connect again."
        )
        assert await page.get_by_test_id("payments-outcome").is_hidden()
        assert await state_of(page, "fakecreds") == "NONE"
        assert urlsplit(page.url).fragment == "/payments"


async def test_credentials_refused_then_accepted(
    page: Page, payments_world: PaymentsWorld, shots: Shots
) -> None:
    seller = await payments_world.new_seller("Creds Shop")
    client_id = f"app{uuid.uuid4().hex[:8]}"
    await open_payments(page, payments_world, seller)
    form = page.get_by_test_id("credentials-fakecreds")
    client_id_field = form.get_by_label("Client id")
    secret_field = form.get_by_label("Client secret")
    assert await secret_field.get_attribute("type") == "password"
    assert await client_id_field.get_attribute("type") == "text"
    assert await violations(page) == []

    # Wrong credentials: the refusal is said, the secret is gone from the page, nothing
    # was stored.
    await client_id_field.fill(client_id)
    await secret_field.fill("WRONG-SECRET-123")
    await form.get_by_role("button", name="Connect FakeCreds").click()
    problem = page.get_by_test_id("problem-fakecreds")
    await expect(problem).to_have_text(
        "Could not connect FakeCreds: FakeCreds did not accept these credentials. "
        "Check them in your FakeCreds account and try again."
    )
    assert await secret_field.input_value() == ""
    assert await client_id_field.input_value() == client_id
    assert "WRONG-SECRET-123" not in await page.content()
    assert await form.get_by_role("button", name="Connect FakeCreds").is_enabled()
    assert await connections_by_api(payments_world.base_url, seller.email) == []
    assert await state_of(page, "fakecreds") == "NONE"
    assert await violations(page) == []
    await shots.take(page, "credentials-refused")

    # The right ones: connected, and the secret is nowhere on the page.
    await secret_field.fill("right-secret")
    await form.get_by_role("button", name="Connect FakeCreds").click()
    notice = page.get_by_test_id("payments-notice")
    await expect(notice).to_have_text(
        f"Connected FakeCreds: payments now go to merchant-{client_id}."
    )
    assert await state_of(page, "fakecreds") == "ACTIVE"
    assert await page.get_by_test_id("credentials-fakecreds").count() == 0
    assert "right-secret" not in await page.content()
    [connection] = await connections_by_api(payments_world.base_url, seller.email)
    assert (connection["gateway"], connection["status"], connection["account_id"]) == (
        "fakecreds",
        "ACTIVE",
        f"merchant-{client_id}",
    )
    # Another seller cannot connect the same account.
    other = await payments_world.new_seller("Copycat Shop")
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_test_id("login-form").wait_for()
    # A fresh load for the next login: going to /dashboard/#/overview from #/login would
    # only change the hash, and the login view re-rendering on it could clear the form
    # while the test fills it (a flaky timeout in CI).
    await page.goto("about:blank")
    await open_payments(page, payments_world, other)
    form = page.get_by_test_id("credentials-fakecreds")
    await form.get_by_label("Client id").fill(client_id)
    await form.get_by_label("Client secret").fill("right-secret")
    await form.get_by_role("button", name="Connect FakeCreds").click()
    await expect(page.get_by_test_id("problem-fakecreds")).to_contain_text(
        "This FakeCreds account is connected to another PixEcom seller."
    )
    await shots.take(page, "account-taken")


async def test_disconnect_asks_first(
    page: Page, payments_world: PaymentsWorld, shots: Shots
) -> None:
    seller = await payments_world.new_seller("Leaving Pay Shop")
    client_id = f"app{uuid.uuid4().hex[:8]}"
    await open_payments(page, payments_world, seller)
    form = page.get_by_test_id("credentials-fakecreds")
    await form.get_by_label("Client id").fill(client_id)
    await form.get_by_label("Client secret").fill("right-secret")
    await form.get_by_role("button", name="Connect FakeCreds").click()
    disconnect = card(page, "fakecreds").get_by_role("button", name="Disconnect FakeCreds")
    await disconnect.wait_for()
    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", dismiss)
    await disconnect.click()
    assert questions == [
        f"Disconnect merchant-{client_id} from FakeCreds? Shoppers cannot pay with FakeCreds "
        "until you connect an account again, and refunds of its payments need it connected."
    ]
    [kept] = await connections_by_api(payments_world.base_url, seller.email)
    assert kept["status"] == "ACTIVE"
    assert await state_of(page, "fakecreds") == "ACTIVE"

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)
    await disconnect.click()
    await expect(page.get_by_test_id("payments-notice")).to_have_text(
        f"Disconnected merchant-{client_id} from FakeCreds."
    )
    assert await state_of(page, "fakecreds") == "DISCONNECTED"
    [ended] = await connections_by_api(payments_world.base_url, seller.email)
    assert (ended["id"], ended["status"]) == (kept["id"], "DISCONNECTED")
    # The form is back, empty, to connect an account again.
    form = page.get_by_test_id("credentials-fakecreds")
    assert await form.get_by_label("Client secret").input_value() == ""
    assert await violations(page) == []
    await shots.take(page, "disconnected")


async def test_a_revoked_connection_calls_for_reconnecting(
    page: Page, payments_world: PaymentsWorld, database_owner_dsn: str, shots: Shots
) -> None:
    seller = await payments_world.new_seller("Revoked Pay Shop")
    account = new_account()
    now = datetime.now(UTC)
    with (
        psycopg.connect(database_owner_dsn, autocommit=True) as conn,
        seller_scope(conn, seller.seller_id),
    ):
        conn.execute(
            "INSERT INTO payment_connections (seller_id, id, gateway, status, state_nonce,"
            " state_expires_at, consumed_at, created_at, account_id, display_name,"
            " connected_at, ended_at) VALUES (%s, %s, 'fakeconnect', 'REVOKED', %s, %s, %s,"
            " %s, %s, %s, %s, %s)",
            (
                seller.seller_id,
                uuid.uuid4(),
                uuid.uuid4().hex,
                now - timedelta(days=3),
                now - timedelta(days=3),
                now - timedelta(days=3),
                account,
                f"Shop {account}",
                now - timedelta(days=3),
                now - timedelta(hours=2),
            ),
        )
    await route_consent(page, account)
    await open_payments(page, payments_world, seller)
    assert await state_of(page, "fakeconnect") == "REVOKED"
    revoked = card(page, "fakeconnect").get_by_test_id("revoked")
    text = await revoked.inner_text()
    assert text.startswith(
        f"PixEcom's access to Shop {account} ({account}) was revoked at FakeConnect on "
    )
    assert text.endswith(
        "Shoppers cannot pay with FakeConnect until you connect your account again."
    )
    assert await violations(page) == []
    await shots.take(page, "revoked")

    # The problems feed names it too, with the way to the Payments page.
    await page.get_by_role("link", name="Sync & problems").click()
    await wait_idle(page)
    row = page.get_by_test_id("problems-table").locator("tbody tr[data-kind='payment_connection']")
    assert "Payment account" in await row.inner_text()
    await row.get_by_role("link", name="Connect it again under Payments").click()
    await wait_idle(page)

    # Reconnect: through the consent page, the same account is connected again.
    await page.get_by_role("button", name="Reconnect FakeConnect").click()
    await page.wait_for_url(f"{CONSENT_PAGE}?*")
    await page.get_by_role("link", name="Approve").click()
    await expect(page.get_by_test_id("payments-outcome")).to_be_visible()
    statuses = [
        c["status"] for c in await connections_by_api(payments_world.base_url, seller.email)
    ]
    assert statuses == ["ACTIVE", "REVOKED"]
