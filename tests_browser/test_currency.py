"""The dashboard's "Currency" page in headless Chromium (issue 16 item 1): a seller's own
exchange rates, their audit, and the reporting currency.

Each test has a seller of its own (``attributed_seller``: USD, with numbers on fixed days
in March 2026) and reads the rates of a fixed range through the page's address, so
nothing depends on today's date. What the page shows is checked against what the API
answers; nothing runs the worker, so a day marked for recomputing stays marked.
"""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Dialog, Page, expect

from tests_browser.conftest import (
    AttributedSellerFactory,
    Shots,
    api_get,
    api_token,
    log_in,
    wait_idle,
)
from tests_browser.test_accessibility import violations

RANGE_QUERY = "since=2026-03-01&until=2026-03-31"


async def api_list(base_url: str, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


async def open_currency(page: Page, base_url: str, email: str) -> None:
    await log_in(page, base_url, email, f"#/overview?{RANGE_QUERY}")
    await page.goto(f"{base_url}/dashboard/#/currency?{RANGE_QUERY}")
    await wait_idle(page)


async def fill_rate(page: Page, day: str, base: str, quote: str, rate: str, note: str) -> None:
    form = page.get_by_test_id("rate-form")
    await form.get_by_label("Day").fill(day)
    await form.get_by_label("Currency", exact=True).fill(base)
    await form.get_by_label("Into").fill(quote)
    await form.get_by_label("Rate").fill(rate)
    await form.get_by_label("Note (optional, kept in the changes below)").fill(note)
    await form.get_by_role("button", name="Save rate").click()


async def test_a_seller_sets_replaces_and_removes_a_rate_and_sees_the_audit(
    page: Page, base_url: str, attributed_seller: AttributedSellerFactory, shots: Shots
) -> None:
    seller, numbers = await attributed_seller("Elm Traders")
    token = await api_token(base_url, seller.email)
    day = numbers.days[2].isoformat()  # the day whose UAH spend waits for a rate
    await open_currency(page, base_url, seller.email)
    nav = page.get_by_role("navigation", name="Dashboard sections")
    assert await nav.get_by_role("link", name="Currency").get_attribute("aria-current") == "page"
    assert await page.title() == "Currency — PixEcom"
    assert await page.get_by_test_id("reporting-currency").inner_text() == "USD"
    await expect(page.get_by_test_id("no-rates")).to_be_visible()
    await expect(page.get_by_test_id("no-rate-changes")).to_be_visible()
    # The pair's second currency starts as the reporting currency.
    assert await page.get_by_test_id("rate-form").get_by_label("Into").input_value() == "USD"
    await shots.take(page, "empty")

    # Set: the rate is listed, said, and audited as the seller's.
    await fill_rate(page, day, "uah", "USD", "0.0245", "Bank statement 4 March")
    notice = page.get_by_test_id("currency-notice")
    await expect(notice).to_have_text(
        "Saved: on Mar 4, 2026, 1 UAH = 0.0245 USD. That day is being recomputed."
    )
    rates = page.get_by_test_id("rates-table")
    row = rates.locator(f"tbody tr[data-key='{day}/UAH/USD']")
    await expect(row).to_be_visible()
    assert await row.locator("[data-column='rate']").inner_text() == "1 UAH = 0.0245 USD"
    assert await row.locator("[data-column='note']").inner_text() == "Bank statement 4 March"
    changes = page.get_by_test_id("rate-changes-table").locator("tbody tr")
    await expect(changes).to_have_count(1)
    first = changes.nth(0)
    assert await first.get_attribute("data-kind") == "set"
    assert [
        await first.locator(f"[data-column='{c}']").inner_text()
        for c in ("pair", "old", "new", "note", "by")
    ] == ["UAH/USD", "None", "0.0245", "Bank statement 4 March", f"You ({seller.email})"]
    [stored] = await api_list(base_url, token, "/fx/rates", since="2026-03-01", until="2026-03-31")
    assert (stored["day"], stored["base_currency"], stored["rate"]) == (day, "UAH", "0.0245000000")
    await shots.take(page, "set")
    assert await violations(page) == []

    # Replace: still one rate; the audit says from what to what, newest first.
    await fill_rate(page, day, "UAH", "USD", "0.025", "Corrected")
    await expect(notice).to_contain_text("1 UAH = 0.025 USD")
    await expect(rates.locator("tbody tr")).to_have_count(1)
    await expect(row.locator("[data-column='rate']")).to_have_text("1 UAH = 0.025 USD")
    await expect(changes).to_have_count(2)
    assert await changes.nth(0).get_attribute("data-kind") == "replaced"
    assert [
        await changes.nth(0).locator(f"[data-column='{c}']").inner_text() for c in ("old", "new")
    ] == ["0.0245", "0.025"]

    # Remove: asked first; dismissing keeps it, accepting removes it.
    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", dismiss)
    await row.get_by_role("button", name="Remove the rate UAH/USD on Mar 4, 2026").click()
    await expect(rates.locator("tbody tr[data-key]")).to_have_count(1)
    assert questions and "recomputed with the reference rate" in questions[0]

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)
    await row.get_by_role("button", name="Remove the rate UAH/USD on Mar 4, 2026").click()
    await expect(page.get_by_test_id("no-rates")).to_be_visible()
    await expect(notice).to_contain_text("Removed your UAH/USD rate of Mar 4, 2026")
    await expect(changes).to_have_count(3)
    assert await changes.nth(0).get_attribute("data-kind") == "removed"
    assert await changes.nth(0).locator("[data-column='new']").inner_text() == "Removed"
    assert (
        await api_list(base_url, token, "/fx/rates", since="2026-03-01", until="2026-03-31") == []
    )
    audit = await api_list(base_url, token, "/fx/rates/changes")
    assert [(c["old_rate"], c["new_rate"]) for c in audit] == [
        ("0.0250000000", None),
        ("0.0245000000", "0.0250000000"),
        (None, "0.0245000000"),
    ]
    await shots.take(page, "removed")


async def test_what_the_api_refuses_is_shown_next_to_the_rate_form(
    page: Page, base_url: str, attributed_seller: AttributedSellerFactory, shots: Shots
) -> None:
    seller, _ = await attributed_seller("Fir Imports")
    token = await api_token(base_url, seller.email)
    await open_currency(page, base_url, seller.email)
    problem = page.get_by_test_id("rate-problem")
    rate_error = page.get_by_test_id("rate-value-error")

    # A rate with more decimals than the API keeps: the API's 422 names the field.
    await fill_rate(page, "2026-03-02", "CZK", "USD", "0.04123456789", "")
    await expect(rate_error).to_be_visible()
    assert "10 decimal places" in await rate_error.inner_text()
    rate_input = page.get_by_test_id("rate-form").get_by_label("Rate")
    assert await rate_input.get_attribute("aria-invalid") == "true"
    assert "rate-value-error" in (await rate_input.get_attribute("aria-describedby") or "")
    await expect(problem).to_have_text("The rate was not saved: check Rate")
    await shots.take(page, "too-many-decimals")
    assert await violations(page) == []

    # The same currency twice: refused as a whole, said beside the form.
    await fill_rate(page, "2026-03-02", "USD", "USD", "1.5", "")
    await expect(problem).to_have_text(
        "The rate was not saved: a rate needs two different currencies"
    )
    await expect(rate_error).to_be_hidden()
    assert await rate_input.get_attribute("aria-invalid") is None

    # A field left empty is said before anything is sent.
    await page.get_by_test_id("rate-form").get_by_label("Rate").fill("")
    await page.get_by_test_id("rate-form").get_by_role("button", name="Save rate").click()
    await expect(rate_error).to_have_text("Fill this in.")

    await expect(page.get_by_test_id("no-rates")).to_be_visible()
    assert await api_list(base_url, token, "/fx/rates/changes") == []


async def test_changing_the_reporting_currency_is_confirmed_and_recomputes_history(
    page: Page, base_url: str, attributed_seller: AttributedSellerFactory, shots: Shots
) -> None:
    seller, numbers = await attributed_seller("Gum Tree Co")
    token = await api_token(base_url, seller.email)
    await open_currency(page, base_url, seller.email)
    form = page.get_by_test_id("reporting-currency-form")
    field = form.get_by_label("New reporting currency")
    submit = form.get_by_role("button", name="Change reporting currency…")
    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    # Not a currency code, or the current one: said at the field, nothing asked or sent.
    page.on("dialog", dismiss)
    await field.fill("E1")
    await submit.click()
    await expect(page.get_by_test_id("reporting-currency-input-error")).to_have_text(
        "Enter the three-letter code of a currency, like EUR."
    )
    assert await field.get_attribute("aria-invalid") == "true"
    await field.fill("usd")
    await submit.click()
    await expect(page.get_by_test_id("reporting-currency-input-error")).to_have_text(
        "Your figures are already reported in USD."
    )
    assert questions == []
    page.remove_listener("dialog", dismiss)

    # Declined: nothing changes.
    page.once("dialog", dismiss)
    await field.fill("eur")
    await submit.click()
    assert questions == [
        "Report your figures in EUR instead of USD? The whole history is recomputed in EUR,"
        " each day at its own rate; until that is done, the overview shows those days as"
        " being recomputed."
    ]
    assert await page.get_by_test_id("reporting-currency").inner_text() == "USD"
    me = await api_get(base_url, token, "/auth/me")
    assert me["seller"]["reporting_currency"] == "USD"

    # Confirmed: the API changes it and says how many days are recomputed.
    page.once("dialog", accept)
    await submit.click()
    await expect(page.get_by_test_id("reporting-currency")).to_have_text("EUR")
    assert len(questions) == 2
    await expect(page.get_by_test_id("currency-notice")).to_have_text(
        f"Your figures are now reported in EUR. {len(numbers.days)} days of history are being"
        ' recomputed; until that is done, those days (marked "Recomputing" on the overview)'
        " still hold USD amounts."
    )
    assert await page.get_by_test_id("reporting-currency-input-error").is_hidden()
    me = await api_get(base_url, token, "/auth/me")
    assert me["seller"]["reporting_currency"] == "EUR"
    await shots.take(page, "changed")
    assert await violations(page) == []

    # The overview now reads in EUR, every day marked as being recomputed (no worker runs
    # here to finish it).
    await page.goto(f"{base_url}/dashboard/#/overview?{RANGE_QUERY}")
    await wait_idle(page)
    assert (await page.get_by_test_id("total-spend").inner_text()).startswith("€")
    pending = page.get_by_test_id("pending-days")
    items = await pending.locator("li").all_inner_texts()
    assert len(items) == len(numbers.days)
    assert items[0] == "Mar 2, 2026: being recomputed."
    assert await page.locator("[data-pending='recompute']").count() == 2
    assert "waiting for the UAH/EUR rate" in items[2] and "being recomputed" in items[2]
    await shots.take(page, "overview-recomputing")
