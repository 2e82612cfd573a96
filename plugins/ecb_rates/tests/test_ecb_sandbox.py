"""The sandbox's wire format and control API, read as a client would: the three files under
the ECB's layout, what they hold for the sandbox's clock, withheld days, overrides, faults,
and the same bytes for the same state."""

from datetime import date, timedelta
from decimal import Decimal
from xml.etree import ElementTree

import httpx
import pytest
from ecb_support import FRIDAY, HISTORY_STARTS_ON, SandboxHandle
from pixecom_ecb_rates.eurofxref import (
    EUROFXREF_NAMESPACE,
    GESMES_NAMESPACE,
    ReferenceRatesFile,
)
from pixecom_ecb_rates.sandbox import CURRENCIES, create_sandbox_app, generated_rate
from pixecom_ecb_rates.settings import EcbSandboxSettings, EcbSettings
from pixecom_ecb_rates.source import EcbRateSource
from pixecom_ecb_rates.target_calendar import business_days

from pixecom_core.testing.loopback import serve


async def test_the_daily_file_is_the_ecbs_envelope_with_one_day(sandbox: SandboxHandle) -> None:
    response = await sandbox.file(ReferenceRatesFile.DAILY)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.content)
    assert root.tag == f"{{{GESMES_NAMESPACE}}}Envelope"
    assert root.findtext(f"{{{GESMES_NAMESPACE}}}subject") == "Reference rates"
    days = root.find(f"{{{EUROFXREF_NAMESPACE}}}Cube")
    assert days is not None
    [day] = list(days)
    assert day.get("time") == FRIDAY.isoformat()
    assert [cube.get("currency") for cube in day] == [c for c in CURRENCIES if c != "BGN"]
    assert b"<Cube time='2026-03-20'>" in response.content  # single quotes, as the ECB's


async def test_rates_have_the_ecbs_decimals_and_plausible_levels(sandbox: SandboxHandle) -> None:
    [publication] = await sandbox.oracle(ReferenceRatesFile.DAILY)

    for currency, rate in publication.rates.items():
        level, decimals = CURRENCIES[currency]
        assert -rate.as_tuple().exponent == decimals, (currency, rate)  # type: ignore[operator]
        assert abs(rate * 10**decimals / level - 1) < 0.1, (currency, rate)


async def test_history_files_list_every_business_day_newest_first(
    sandbox: SandboxHandle,
) -> None:
    hist = (await sandbox.file(ReferenceRatesFile.HISTORY)).content
    ninety = (await sandbox.file(ReferenceRatesFile.NINETY_DAYS)).content

    hist_days = [date.fromisoformat(d.decode()) for d in _times(hist)]
    ninety_days = [date.fromisoformat(d.decode()) for d in _times(ninety)]
    assert hist_days == sorted(business_days(HISTORY_STARTS_ON, FRIDAY), reverse=True)
    assert ninety_days == [day for day in hist_days if day > FRIDAY - timedelta(days=90)]
    assert ninety_days[-1] == date(2025, 12, 22)


def _times(body: bytes) -> list[bytes]:
    return [line.split(b"'")[1] for line in body.splitlines() if b"<Cube time=" in line]


async def test_the_files_agree_on_every_day_they_share(sandbox: SandboxHandle) -> None:
    hist = {p.published_on: p for p in await sandbox.oracle(ReferenceRatesFile.HISTORY)}
    ninety = await sandbox.oracle(ReferenceRatesFile.NINETY_DAYS)
    [daily] = await sandbox.oracle(ReferenceRatesFile.DAILY)

    assert all(hist[p.published_on] == p for p in ninety)
    assert hist[daily.published_on] == daily == ninety[-1]


async def test_today_is_served_only_once_published(sandbox: SandboxHandle) -> None:
    await sandbox.set_today(FRIDAY, published=False)
    [before] = await sandbox.oracle(ReferenceRatesFile.DAILY)
    await sandbox.set_today(FRIDAY, published=True)
    [after] = await sandbox.oracle(ReferenceRatesFile.DAILY)

    assert before.published_on == FRIDAY - timedelta(days=1)
    assert after.published_on == FRIDAY


async def test_withholding_and_publishing_a_day(sandbox: SandboxHandle) -> None:
    await sandbox.withhold(FRIDAY)
    withheld = (await sandbox.control.get(f"/_sandbox/days/{FRIDAY}")).json()
    [daily] = await sandbox.oracle(ReferenceRatesFile.DAILY)
    hist = await sandbox.oracle(ReferenceRatesFile.HISTORY)
    await sandbox.publish(FRIDAY)
    published = (await sandbox.control.get(f"/_sandbox/days/{FRIDAY}")).json()

    assert (withheld["withheld"], withheld["published"]) == (True, False)
    assert daily.published_on == FRIDAY - timedelta(days=1)
    assert FRIDAY not in {p.published_on for p in hist}
    assert (published["withheld"], published["published"]) == (False, True)
    assert published["rates"]["USD"] == generated_rate(16, "USD", FRIDAY)


async def test_an_override_changes_one_rate_of_one_day_and_can_be_undone(
    sandbox: SandboxHandle,
) -> None:
    day = FRIDAY - timedelta(days=3)
    await sandbox.override(day, "JPY", "160.00")

    hist = {p.published_on: p for p in await sandbox.oracle(ReferenceRatesFile.HISTORY)}
    restored = await sandbox.control.delete(f"/_sandbox/days/{day}/rates/JPY")

    assert str(hist[day].rates["JPY"]) == "160.00"
    assert str(hist[day].rates["USD"]) == generated_rate(16, "USD", day)
    assert str(hist[day - timedelta(days=1)].rates["JPY"]) == generated_rate(
        16, "JPY", day - timedelta(days=1)
    )
    assert restored.json()["rates"]["JPY"] == generated_rate(16, "JPY", day)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_sandbox/days/2026-03-21/withhold", None, 409),  # a Saturday
        ("PUT", "/_sandbox/days/2026-04-03/rates/USD", {"rate": "1.1"}, 409),  # Good Friday
        ("PUT", "/_sandbox/days/2026-03-20/rates/XAU", {"rate": "1.1"}, 404),
        ("PUT", "/_sandbox/days/2026-03-20/rates/BGN", {"rate": "1.1"}, 404),  # gone in 2026
        ("PUT", "/_sandbox/days/2026-03-20/rates/USD", {"rate": "0.000"}, 422),
        ("PUT", "/_sandbox/days/2026-03-20/rates/USD", {"rate": "1,1"}, 422),
        ("PUT", "/_sandbox/days/2026-03-20/rates/USD", {"rate": 1.1}, 422),
        ("GET", "/_sandbox/days/yesterday", None, 422),
    ],
)
async def test_the_control_api_refuses_what_the_ecb_would_never_publish(
    sandbox: SandboxHandle, method: str, path: str, body: object, status: int
) -> None:
    response = await sandbox.control.request(method, path, json=body)

    assert response.status_code == status, response.text


async def test_reset_forgets_withheld_days_overrides_and_the_clock(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.withhold(FRIDAY)
    await sandbox.override(FRIDAY - timedelta(days=1), "USD", "2.0000")
    await sandbox.set_today(date(2026, 4, 7), published=False)

    (await sandbox.control.post("/_sandbox/reset")).raise_for_status()
    [daily] = await sandbox.oracle(ReferenceRatesFile.DAILY)
    hist = {p.published_on: p for p in await sandbox.oracle(ReferenceRatesFile.HISTORY)}

    assert daily.published_on == FRIDAY
    assert str(hist[FRIDAY - timedelta(days=1)].rates["USD"]) != "2.0000"


async def test_requests_are_logged_with_their_operation_and_status(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.fault("transient", operation="hist")
    for file in ReferenceRatesFile:
        await sandbox.file(file)

    logged = (await sandbox.control.get("/_sandbox/requests")).json()

    assert [(e["operation"], e["path"], e["status"]) for e in logged] == [
        ("daily", "/stats/eurofxref/eurofxref-daily.xml", 200),
        ("hist-90d", "/stats/eurofxref/eurofxref-hist-90d.xml", 200),
        ("hist", "/stats/eurofxref/eurofxref-hist.xml", 503),
    ]


async def test_a_throttle_sends_retry_after_from_the_fault_or_the_settings(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.configure(retry_after_seconds=12)
    await sandbox.fault("throttled")
    await sandbox.fault("throttled", retry_after_seconds=3)

    first = await sandbox.file(ReferenceRatesFile.DAILY)
    second = await sandbox.file(ReferenceRatesFile.DAILY)

    assert (first.status_code, first.headers["retry-after"]) == (429, "12")
    assert (second.status_code, second.headers["retry-after"]) == (429, "3")
    assert first.headers["content-type"].startswith("text/html")


async def test_the_same_seed_and_clock_serve_the_same_bytes() -> None:
    config = EcbSandboxSettings(today=FRIDAY, today_published=True, history_starts_on=FRIDAY)
    bodies = []
    for _ in range(2):
        async with serve(create_sandbox_app(config)) as url, httpx.AsyncClient() as http:
            response = await http.get(f"{url}/stats/eurofxref/eurofxref-hist-90d.xml")
            bodies.append(response.content)

    assert bodies[0] == bodies[1]
    assert len(_times(bodies[0])) == 1


async def test_the_default_history_reaches_back_to_4_january_1999() -> None:
    config = EcbSandboxSettings(today=FRIDAY, today_published=True)
    async with serve(create_sandbox_app(config)) as url:
        settings = EcbSettings(base_url=f"{url}/stats/eurofxref")
        source = EcbRateSource(settings)
        try:
            answer = await source.fetch_rates(date(1998, 12, 1), date(1999, 1, 8))
        finally:
            await source.aclose()

    assert [p.published_on for p in answer.publications] == [
        date(1999, 1, 4),
        date(1999, 1, 5),
        date(1999, 1, 6),
        date(1999, 1, 7),
        date(1999, 1, 8),
    ]
    assert answer.publications[0].rates["BGN"] == Decimal("1.9558")
    assert answer.complete_through == FRIDAY + timedelta(days=2)
