"""With ``today_grows`` (``pixecom dev``), an account's today grows with the wall clock, so
each sync sees more spend; other days, and every day with the setting off, stay whole."""

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from meta_ads_support import SandboxHandle
from pixecom_meta_ads.sandbox import AdDay, delivered_so_far, elapsed_share_of_day

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager

#: USD, Etc/GMT (profile 0 of the sandbox).
ACCOUNT = "1000"

days = st.builds(
    AdDay,
    spend_minor=st.integers(0, 10**7),
    impressions=st.integers(0, 10**7),
    clicks=st.integers(0, 10**6),
    link_clicks=st.integers(0, 10**6),
    purchases=st.integers(0, 50),
    purchase_value_minor=st.integers(0, 10**7),
)


@given(days, st.floats(0, 1), st.floats(0, 1))
def test_a_day_delivered_so_far_never_shrinks_and_ends_whole(
    day: AdDay, first: float, second: float
) -> None:
    earlier, later = sorted((first, second))
    before, after = delivered_so_far(day, earlier), delivered_so_far(day, later)

    for name in ("spend_minor", "impressions", "clicks", "link_clicks", "purchases"):
        assert 0 <= getattr(before, name) <= getattr(after, name) <= getattr(day, name)
    assert before.purchase_value_minor <= after.purchase_value_minor <= day.purchase_value_minor
    assert delivered_so_far(day, 1.0) == day
    assert delivered_so_far(day, 0.0).spend_minor == 0


def test_the_share_of_the_day_is_measured_from_local_midnight() -> None:
    zone = ZoneInfo("America/New_York")
    assert elapsed_share_of_day(datetime(2026, 3, 15, 0, 0, tzinfo=zone)) == 0.0
    assert elapsed_share_of_day(datetime(2026, 3, 15, 6, 0, tzinfo=zone)) == 0.25
    assert elapsed_share_of_day(datetime(2026, 3, 15, 18, 0, tzinfo=zone)) == 0.75


async def _spend_by_day(sandbox: SandboxHandle, since: date, until: date) -> dict[str, Decimal]:
    response = await sandbox.graph(
        "GET",
        f"/v25.0/act_{ACCOUNT}/insights",
        level="account",
        fields="spend",
        time_range=f'{{"since":"{since}","until":"{until}"}}',
        time_increment="1",
    )
    assert response.status_code == 200, response.text
    return {row["date_start"]: Decimal(row["spend"]) for row in response.json()["data"]}


async def test_today_grows_between_reads_and_past_days_stay_whole(
    sandbox: SandboxHandle,
) -> None:
    today = date.fromisoformat((await sandbox.account(ACCOUNT))["today"])
    yesterday = today - timedelta(days=1)
    whole = await _spend_by_day(sandbox, yesterday, today)

    await sandbox.configure(today_grows=True)
    first = await _spend_by_day(sandbox, yesterday, today)
    await asyncio.sleep(3)  # a few minor units of spend per second across the account's ads
    second = await _spend_by_day(sandbox, yesterday, today)

    assert first[str(yesterday)] == second[str(yesterday)] == whole[str(yesterday)]
    assert first[str(today)] < second[str(today)] < whole[str(today)]


async def test_a_pinned_today_is_reported_whole(sandbox: SandboxHandle) -> None:
    pinned = date(2026, 3, 15)
    await sandbox.change_account(ACCOUNT, today=pinned.isoformat())
    whole = await _spend_by_day(sandbox, pinned, pinned)

    await sandbox.configure(today_grows=True)

    assert await _spend_by_day(sandbox, pinned, pinned) == whole


def test_the_dev_deployment_turns_growth_on() -> None:
    sandbox = ProviderRegistry(create_plugin_manager(allow={"meta_ads"})).sandbox("meta")
    assert sandbox.environment is not None

    environment = sandbox.environment("http://127.0.0.1:1", "http://127.0.0.1:2")

    assert environment["PIXECOM_META_SANDBOX_TODAY_GROWS"] == "true"
