"""One order in the dashboard, and refunding it (issue 15 item 4), in headless Chromium.

Each test signs up a seller of its own through the live API, with one order whose payment
was captured through the payment ledger (``Ledger.record``, as webhook processing records
it), so refunds never touch the numbers other tests read. Refunds go through the real
``POST /orders/{id}/refunds`` to the ``fakepay`` test gateway; what the page shows is
checked against what the API answers afterwards, and against the requests that reached the
gateway.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger
from pixecom_core.plugins import create_plugin_manager
from pixecom_core.providers import GatewayPaymentEvent, PaymentEventKind
from pixecom_core.settings import Settings
from tests.ledger import fakepay
from tests.ledger.conftest import insert_order
from tests_browser.conftest import Shots, api_get, api_token, log_in, wait_idle
from tests_browser.seed import SeededSeller, sign_up
from tests_browser.test_accessibility import violations

CAPTURED_MINOR = 4_999
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def euros(minor: int) -> str:
    """``minor`` euro cents as en-US Intl formats them."""
    return f"€{Decimal(minor).scaleb(-2):,.2f}"


@dataclass(frozen=True)
class Shop:
    """A seller with one captured EUR order, served at ``base_url``."""

    base_url: str
    seller: SeededSeller
    order_id: uuid.UUID
    token: str

    async def order(self) -> dict[str, Any]:
        return await api_get(self.base_url, self.token, f"/orders/{self.order_id}")

    def gateway_requests(self) -> list[Any]:
        """The refund requests of this order that reached the gateway."""
        return [r for r in fakepay.GATEWAY.refund_requests if r.order_id == self.order_id]


@pytest.fixture(scope="session")
def ledger(app_engine: AsyncEngine, live_settings: Settings) -> Ledger:
    return Ledger(
        create_sessionmaker(app_engine),
        live_settings,
        create_plugin_manager(load_entry_points=False, plugins=[fakepay]),
    )


@pytest.fixture
async def shop(
    base_url: str, admin_key: str, database_owner_dsn: str, ledger: Ledger
) -> AsyncIterator[Shop]:
    seller = await sign_up(base_url, admin_key, "Refund Shop", "EUR")
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        order = insert_order(conn, seller.seller_id, total_minor=CAPTURED_MINOR, currency="EUR")
    seller.order_ids.append(order.order_id)
    await ledger.record(
        [
            GatewayPaymentEvent(
                gateway="fakepay",
                event_id=f"evt_{uuid.uuid4().hex}",
                gateway_reference=order.payment,
                fact_reference=f"ch_{uuid.uuid4().hex}",
                kind=PaymentEventKind.CAPTURED,
                amount_minor=CAPTURED_MINOR,
                currency="EUR",
                occurred_at=datetime.now(UTC),
            )
        ]
    )
    fakepay.GATEWAY.reset_refunds()
    yield Shop(base_url, seller, order.order_id, await api_token(base_url, seller.email))
    fakepay.GATEWAY.reset_refunds()


async def open_order(page: Page, shop: Shop) -> None:
    """Log in, and open the order from the orders list as a seller would."""
    await log_in(page, shop.base_url, shop.seller.email, "#/orders")
    await page.get_by_test_id("orders-table").locator(f"tr[data-key='{shop.order_id}'] a").click()
    await wait_idle(page)
    await expect(page.get_by_test_id("order-title")).to_have_text(f"Order {str(shop.order_id)[:8]}")


def money_cell(page: Page, column: str) -> Any:
    table = page.get_by_test_id("money-table")
    return table.locator(f"tr[data-currency='EUR'] [data-column='{column}']")


async def assert_money(page: Page, *, refunded: int, refundable: int) -> None:
    """The money table shows these (and captured, net to match), as the API does."""
    await expect(money_cell(page, "captured")).to_have_text(euros(CAPTURED_MINOR))
    await expect(money_cell(page, "refunded")).to_have_text(euros(refunded))
    await expect(money_cell(page, "net")).to_have_text(euros(CAPTURED_MINOR - refunded))
    await expect(money_cell(page, "refundable")).to_have_text(euros(refundable))


async def focused_testid(page: Page) -> str | None:
    testid: str | None = await page.evaluate("document.activeElement?.dataset.testid ?? null")
    return testid


def is_refund_post(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith("/refunds")


def refund_posts(page: Page) -> list[Request]:
    """Every refund request the page sends from now on."""
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if is_refund_post(r) else None)
    return posts


async def review(page: Page, amount: str, reason: str = "") -> None:
    """Fill the Refund form and ask for the confirmation."""
    await page.get_by_label("Amount to refund").fill(amount)
    await page.get_by_label(re.compile(r"^Reason")).fill(reason)
    await page.get_by_role("button", name="Refund…").click()


async def test_the_order_shows_its_money_and_a_part_refund_is_confirmed_then_shown(
    page: Page, shop: Shop, shots: Shots
) -> None:
    await open_order(page, shop)
    await assert_money(page, refunded=0, refundable=CAPTURED_MINOR)
    assert await page.get_by_test_id("order-total").inner_text() == euros(CAPTURED_MINOR)
    await expect(page.get_by_test_id("order-status")).to_have_text("PAID")
    await expect(page.get_by_test_id("no-refunds")).to_be_visible()
    history = page.get_by_test_id("history-table")
    await expect(history.locator("tr[data-event='PAYMENT_RECORDED']")).to_contain_text(
        f"Captured {euros(CAPTURED_MINOR)}"
    )
    # The form offers what is refundable, in major units.
    await expect(page.get_by_label("Amount to refund")).to_have_value("49.99")
    await shots.take(page, "order")

    # 19.99 × 100 is 1998.9999999999998 in floating point: the amount sent must be 1999.
    await review(page, "19.99", "Arrived damaged")
    question = page.get_by_test_id("refund-question")
    await expect(question).to_have_text("Refund €19.99 to the buyer? Reason: Arrived damaged")
    assert await focused_testid(page) == "refund-question"
    assert (await shop.order())["refunds"] == []  # reviewing sends nothing
    assert await violations(page) == []
    await shots.take(page, "confirmation")

    async with page.expect_request(is_refund_post) as sent:
        await page.get_by_test_id("refund-confirm").click()
    request = await sent.value
    key = (await request.all_headers())["idempotency-key"]
    assert UUID.match(key), key
    assert request.post_data_json == {"amount_minor": 1_999, "reason": "Arrived damaged"}

    result = page.get_by_test_id("refund-result")
    await expect(result).to_have_attribute("data-status", "SUCCEEDED")
    await expect(page.get_by_test_id("refund-outcome")).to_have_text(
        "Refunded €19.99 to the buyer."
    )
    assert await focused_testid(page) == "refund-result"
    await assert_money(page, refunded=1_999, refundable=CAPTURED_MINOR - 1_999)
    await expect(page.get_by_label("Amount to refund")).to_have_value("30.00")
    row = page.get_by_test_id("refunds-table").locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.locator("[data-column='status']")).to_have_text("Succeeded")
    await expect(row.locator("[data-column='amount']")).to_have_text("€19.99")
    await expect(row.locator("[data-column='reason']")).to_have_text("Arrived damaged")
    await expect(history).to_contain_text("Refund of €19.99 requested: Arrived damaged")
    assert await violations(page) == []
    await shots.take(page, "refunded")

    # The API agrees: one refund, of exactly what was typed, done; the money moved.
    order = await shop.order()
    assert [(r["amount_minor"], r["reason"], r["status"]) for r in order["refunds"]] == [
        (1_999, "Arrived damaged", "SUCCEEDED")
    ]
    [money] = order["money"]
    assert (money["refunded_minor"], money["refundable_minor"]) == (1_999, 3_000)
    assert [(r.amount_minor, r.currency) for r in shop.gateway_requests()] == [(1_999, "EUR")]


async def test_more_than_refundable_shows_the_api_message_and_changes_nothing(
    page: Page, shop: Shop, shots: Shots
) -> None:
    # What the API says to this request (a 409 changes nothing, so asking it is harmless).
    async with httpx.AsyncClient(base_url=shop.base_url) as client:
        refused = await client.post(
            f"/orders/{shop.order_id}/refunds",
            json={"amount_minor": CAPTURED_MINOR + 1, "reason": None},
            headers={"Authorization": f"Bearer {shop.token}", "Idempotency-Key": uuid.uuid4().hex},
        )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "refund_exceeds_refundable"
    message = refused.json()["error"]["message"]

    await open_order(page, shop)
    await review(page, "50.00")
    await expect(page.get_by_test_id("refund-question")).to_have_text("Refund €50.00 to the buyer?")
    await page.get_by_test_id("refund-confirm").click()

    problem = page.get_by_test_id("refund-problem")
    await expect(problem).to_have_text(f"The refund was not made: {message}")
    assert await problem.get_attribute("role") == "alert"
    assert await focused_testid(page) == "refund-problem"
    await expect(page.get_by_test_id("refund-confirmation")).to_be_hidden()
    await expect(page.get_by_test_id("refund-result")).to_be_hidden()
    await shots.take(page, "refused")

    await assert_money(page, refunded=0, refundable=CAPTURED_MINOR)
    await expect(page.get_by_test_id("no-refunds")).to_be_visible()
    order = await shop.order()
    assert order["refunds"] == []
    assert order["money"][0]["refundable_minor"] == CAPTURED_MINOR
    assert shop.gateway_requests() == []


async def test_cancel_at_the_confirmation_sends_nothing_with_the_keyboard_only(
    page: Page, shop: Shop
) -> None:
    posts = refund_posts(page)
    await open_order(page, shop)

    amount = page.get_by_label("Amount to refund")
    await amount.focus()
    await amount.press("Control+A")
    await page.keyboard.type("12.50")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Changed my mind")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("refund-question")).to_have_text(
        "Refund €12.50 to the buyer? Reason: Changed my mind"
    )
    assert await focused_testid(page) == "refund-question"
    await page.keyboard.press("Tab")
    assert await focused_testid(page) == "refund-confirm"
    await page.keyboard.press("Tab")
    assert await focused_testid(page) == "refund-cancel"
    await page.keyboard.press("Enter")

    await expect(page.get_by_test_id("refund-confirmation")).to_be_hidden()
    assert await focused_testid(page) == "refund-review"
    await expect(amount).to_be_enabled()
    await expect(amount).to_have_value("12.50")  # what was typed stays, to correct it
    assert posts == []
    order = await shop.order()
    assert order["refunds"] == []
    assert order["money"][0]["refunded_minor"] == 0
    assert shop.gateway_requests() == []
    await assert_money(page, refunded=0, refundable=CAPTURED_MINOR)


async def test_a_lost_answer_is_retried_with_the_same_key_and_refunds_once(
    context: BrowserContext, shop: Shop, shots: Shots
) -> None:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    keys: list[str] = []

    async def lose_the_first_answer(route: Route) -> None:
        keys.append((await route.request.all_headers())["idempotency-key"])
        if len(keys) == 1:
            await route.fetch()  # the API makes the refund ...
            await route.abort("connectionreset")  # ... and its answer never arrives
        else:
            await route.continue_()

    await page.route("**/orders/*/refunds", lose_the_first_answer)
    await open_order(page, shop)
    await review(page, "10", "Wrong size")
    await page.get_by_test_id("refund-confirm").click()

    problem = page.get_by_test_id("refund-problem")
    await expect(problem).to_contain_text("it is not known whether the refund was made")
    assert await focused_testid(page) == "refund-problem"
    retry = page.get_by_test_id("refund-confirm")
    await expect(retry).to_have_text("Try again: refund €10.00")
    await expect(retry).to_be_enabled()
    await shots.take(page, "lost-answer")
    # The first attempt did reach the API: the refund exists once.
    assert [r["amount_minor"] for r in (await shop.order())["refunds"]] == [1_000]

    await retry.click()
    await expect(page.get_by_test_id("refund-result")).to_have_attribute("data-status", "SUCCEEDED")
    await expect(problem).to_be_hidden()
    assert len(keys) == 2 and keys[0] == keys[1], keys
    await assert_money(page, refunded=1_000, refundable=CAPTURED_MINOR - 1_000)
    order = await shop.order()
    assert [(r["amount_minor"], r["status"]) for r in order["refunds"]] == [(1_000, "SUCCEEDED")]
    assert len(shop.gateway_requests()) == 1

    # A new refund after that is a new attempt with a new key.
    await review(page, "1")
    async with page.expect_request(is_refund_post) as sent:
        await page.get_by_test_id("refund-confirm").click()
    assert (await (await sent.value).all_headers())["idempotency-key"] != keys[0]
    await expect(page.get_by_test_id("refunds-table").locator("tbody tr")).to_have_count(2)
    assert errors == []


async def test_a_failed_refund_shows_the_gateway_reason_and_refunds_nothing(
    page: Page, shop: Shop, shots: Shots
) -> None:
    fakepay.GATEWAY.reset_refunds("failed")
    await open_order(page, shop)
    await review(page, "10.00", "Duplicate order")
    await page.get_by_test_id("refund-confirm").click()

    await expect(page.get_by_test_id("refund-result")).to_have_attribute("data-status", "FAILED")
    await expect(page.get_by_test_id("refund-outcome")).to_have_text(
        "The refund of €10.00 failed: fakepay: declined. Nothing was refunded."
    )
    assert await focused_testid(page) == "refund-result"
    row = page.get_by_test_id("refunds-table").locator("tbody tr")
    await expect(row.locator("[data-column='status']")).to_have_text("Failed")
    await expect(row.locator("[data-column='failure']")).to_have_text("fakepay: declined")
    await assert_money(page, refunded=0, refundable=CAPTURED_MINOR)
    await shots.take(page, "failed")
    order = await shop.order()
    assert [(r["status"], r["failure_reason"]) for r in order["refunds"]] == [
        ("FAILED", "fakepay: declined")
    ]
    assert order["money"][0]["refundable_minor"] == CAPTURED_MINOR


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("12.345", "EUR amounts have at most 2 digits after the decimal point."),
        ("12.5€", "Enter the amount as a number, like 12.50."),
        ("1,250.00", "Enter the amount as a number, like 12.50."),
        ("0.00", "Enter an amount greater than zero."),
        ("", "Enter the amount as a number, like 12.50."),
    ],
)
async def test_an_amount_that_is_not_one_is_said_and_nothing_is_sent(
    page: Page, shop: Shop, typed: str, said: str
) -> None:
    posts = refund_posts(page)
    await open_order(page, shop)
    await review(page, typed)

    await expect(page.get_by_test_id("refund-amount-error")).to_have_text(said)
    amount = page.get_by_label("Amount to refund")
    assert await amount.get_attribute("aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "refund-amount"
    await expect(page.get_by_test_id("refund-confirmation")).to_be_hidden()
    assert posts == []
    assert (await shop.order())["refunds"] == []


async def test_an_order_with_nothing_paid_offers_no_refund(
    page: Page, shop: Shop, database_owner_dsn: str
) -> None:
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        unpaid = insert_order(conn, shop.seller.seller_id, total_minor=1_500, currency="EUR")
    await log_in(page, shop.base_url, shop.seller.email, f"#/orders/{unpaid.order_id}")
    await expect(page.get_by_test_id("order-total")).to_have_text("€15.00")
    await expect(page.get_by_test_id("no-money")).to_be_visible()
    await expect(page.get_by_test_id("refund-unavailable")).to_have_text(
        "Nothing was paid on this order yet, so there is nothing to refund."
    )
    await expect(page.get_by_test_id("refund-form")).to_be_hidden()


async def test_the_order_and_its_confirmation_fit_a_phone(
    browser: Browser, shop: Shop, shots: Shots
) -> None:
    phone = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 375, "height": 740}, is_mobile=True
    )
    try:
        page = await phone.new_page()
        await open_order(page, shop)
        await review(page, "5", "Late delivery")
        await expect(page.get_by_test_id("refund-question")).to_have_text(
            "Refund €5.00 to the buyer? Reason: Late delivery"
        )
        # The page never scrolls sideways (long payment ids wrap); wide tables scroll in
        # their own region.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        assert await violations(page) == []
        await shots.take(page, "phone-confirmation")
    finally:
        await phone.close()


async def test_another_sellers_order_is_not_found(
    page: Page, shop: Shop, admin_key: str, database_owner_dsn: str
) -> None:
    other = await sign_up(shop.base_url, admin_key, "Other Shop", "EUR")
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        theirs = insert_order(conn, other.seller_id, total_minor=2_000, currency="EUR")
    await log_in(page, shop.base_url, shop.seller.email, f"#/orders/{theirs.order_id}")
    await expect(page.get_by_test_id("not-found")).to_be_visible()
    assert await page.get_by_test_id("refund-form").count() == 0
    await page.goto(f"{shop.base_url}/dashboard/#/orders/not-an-order")
    await wait_idle(page)
    await expect(page.get_by_test_id("not-found")).to_be_visible()


@pytest.mark.parametrize(
    ("gateway_answer", "status", "outcome"),
    [
        (
            "pending",
            "PENDING",
            "The gateway accepted the refund of €10.00; the money is on its way back to the buyer.",
        ),
        (
            "timeout",
            "REQUESTED",
            "The refund of €10.00 is asked for, but the gateway has not answered yet. PixEcom"
            " asks it again; the amount stays reserved meanwhile.",
        ),
    ],
)
async def test_an_open_refund_is_said_and_its_amount_stays_reserved(
    page: Page, shop: Shop, gateway_answer: str, status: str, outcome: str
) -> None:
    fakepay.GATEWAY.reset_refunds(gateway_answer)
    await open_order(page, shop)
    await review(page, "10.00")
    await page.get_by_test_id("refund-confirm").click()

    await expect(page.get_by_test_id("refund-result")).to_have_attribute("data-status", status)
    await expect(page.get_by_test_id("refund-outcome")).to_have_text(outcome)
    # Not refunded yet, but no longer refundable either: it is in an open refund.
    await assert_money(page, refunded=0, refundable=CAPTURED_MINOR - 1_000)
    await expect(money_cell(page, "open-refunds")).to_have_text("€10.00")
    row = page.get_by_test_id("refunds-table").locator("tbody tr")
    await expect(row).to_have_attribute("data-status", status)
    [money] = (await shop.order())["money"]
    assert (money["open_refunds_minor"], money["refundable_minor"]) == (1_000, 3_999)
