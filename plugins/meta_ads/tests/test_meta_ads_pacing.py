"""Pacing from the usage headers: reading them, slowing down above the threshold, waiting
when blocked, refusing when the wait is long, and the state behind it."""

import json
from datetime import date, timedelta

import pytest
from conftest import MakeNetwork
from meta_ads_support import FakeTime, SandboxHandle, credentials
from pixecom_meta_ads.pacing import (
    AccountPacer,
    AccountUsage,
    InMemoryPacerState,
    RateLimitUsage,
    read_usage_headers,
)

from pixecom_core.providers import EntityLevel, ProviderThrottled

TODAY = date(2026, 3, 15)


def _pacer(fake_time: FakeTime, **overrides: float) -> AccountPacer:
    options = {
        "slow_down_at_pct": 75.0,
        "max_pace_delay_seconds": 20.0,
        "max_inline_wait_seconds": 60.0,
    }
    options.update(overrides)
    return AccountPacer(
        InMemoryPacerState(), sleep=fake_time.sleep, clock=fake_time.clock, **options
    )


# -- the headers ------------------------------------------------------------------------------


def test_business_use_case_minutes_become_seconds() -> None:
    usage = read_usage_headers(
        {
            "x-business-use-case-usage": json.dumps(
                {
                    "1002": [
                        {
                            "type": "ads_insights",
                            "call_count": 101,
                            "total_cputime": 20,
                            "total_time": 30,
                            "estimated_time_to_regain_access": 7,
                        }
                    ]
                }
            )
        }
    )

    assert usage == RateLimitUsage(highest_pct=101, regain_access_seconds=420)


def test_the_highest_percentage_of_every_header_counts() -> None:
    usage = read_usage_headers(
        {
            "x-ad-account-usage": json.dumps({"acc_id_util_pct": 12.5, "reset_time_duration": 50}),
            "x-fb-ads-insights-throttle": json.dumps({"app_id_util_pct": 81, "acc_id_util_pct": 3}),
            "x-app-usage": json.dumps({"call_count": "40", "total_cputime": 2, "total_time": 1}),
        }
    )

    # reset_time_duration is not a block while the account is under 100 %
    assert usage == RateLimitUsage(highest_pct=81, regain_access_seconds=None)


def test_an_account_at_100_percent_waits_its_reset_time_in_seconds() -> None:
    usage = read_usage_headers(
        {"x-ad-account-usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": 95})}
    )

    assert usage.regain_access_seconds == 95


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-business-use-case-usage": "not json"},
        {"x-business-use-case-usage": json.dumps(["a"])},
        {"x-business-use-case-usage": json.dumps({"1": "nope"})},
        {"x-business-use-case-usage": json.dumps({"1": [{"call_count": None}]})},
        {"x-ad-account-usage": json.dumps({"acc_id_util_pct": True})},
        {"x-fb-ads-insights-throttle": json.dumps({"acc_id_util_pct": "NaN"})},
    ],
)
def test_missing_or_malformed_headers_say_nothing(headers: dict[str, str]) -> None:
    assert read_usage_headers(headers) == RateLimitUsage()


# -- the pacer --------------------------------------------------------------------------------


def test_the_pace_grows_linearly_above_the_threshold(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time)

    delays = [pacer.pace_delay(pct) for pct in (0, 50, 75, 80, 87.5, 100, 140)]

    assert delays == [0, 0, 0, 4.0, 10.0, 20.0, 20.0]


async def test_a_call_below_the_threshold_is_not_delayed(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time)
    await pacer.observe("1", RateLimitUsage(highest_pct=75))

    await pacer.before_call("1")

    assert fake_time.sleeps == []


async def test_a_call_above_the_threshold_is_delayed_proportionally(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time)
    await pacer.observe("1", RateLimitUsage(highest_pct=95))

    await pacer.before_call("1")
    await pacer.before_call("2")  # another account is not slowed down

    assert fake_time.sleeps == [16.0]


async def test_an_old_usage_no_longer_slows_calls(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time)
    await pacer.observe("1", RateLimitUsage(highest_pct=95))
    fake_time.now += 301

    await pacer.before_call("1")

    assert fake_time.sleeps == []


async def test_a_short_block_is_waited_out(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time)
    await pacer.observe("1", RateLimitUsage(highest_pct=100, regain_access_seconds=45))
    fake_time.now += 5

    await pacer.before_call("1")

    assert fake_time.sleeps == [40.0]


async def test_a_long_block_refuses_the_call_with_the_time_left(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time)
    await pacer.observe("1", RateLimitUsage(highest_pct=100, regain_access_seconds=600))
    fake_time.now += 100

    with pytest.raises(ProviderThrottled) as raised:
        await pacer.before_call("1")

    assert raised.value.retry_after_seconds == 500
    assert fake_time.sleeps == []


async def test_a_later_answer_never_shortens_a_block(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time, max_inline_wait_seconds=0)
    await pacer.observe("1", RateLimitUsage(highest_pct=100, regain_access_seconds=600))
    await pacer.observe("1", RateLimitUsage(highest_pct=10, regain_access_seconds=None))
    await pacer.block("1", 30)

    with pytest.raises(ProviderThrottled) as raised:
        await pacer.before_call("1")

    assert raised.value.retry_after_seconds == 600


async def test_a_block_without_any_usage_seen_still_holds(fake_time: FakeTime) -> None:
    pacer = _pacer(fake_time, max_inline_wait_seconds=0)
    await pacer.block("1", 30)

    with pytest.raises(ProviderThrottled):
        await pacer.before_call("1")
    fake_time.now += 31
    await pacer.before_call("1")


def test_the_pacer_refuses_a_threshold_of_100_or_more(fake_time: FakeTime) -> None:
    with pytest.raises(ValueError, match="slow_down_at_pct"):
        _pacer(fake_time, slow_down_at_pct=100)


async def test_the_in_memory_state_is_bounded() -> None:
    state = InMemoryPacerState(max_accounts=2)
    for key in ("a", "b", "c"):
        await state.save(key, AccountUsage(usage_pct=1, observed_at=0))

    assert await state.load("a") is None
    assert await state.load("c") == AccountUsage(usage_pct=1, observed_at=0)


# -- through the sandbox ------------------------------------------------------------------------


async def test_calls_slow_down_when_the_sandbox_reports_high_usage(
    make_network: MakeNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    await sandbox.change_account("1002", today=TODAY.isoformat(), usage_floor_pct=90)
    network = await make_network(slow_down_at_pct=75, max_pace_delay_seconds=20)
    since, until = TODAY - timedelta(days=3), TODAY - timedelta(days=1)

    rows = [
        row
        async for row in network.fetch_daily_insights(
            credentials("1002"), level=EntityLevel.AD, since=since, until=until
        )
    ]

    calls = await sandbox.requests("/insights")
    assert rows and len(calls) > 2
    # every call after the first waits 20 × (90 − 75) / 25 = 12 s
    assert fake_time.sleeps == [12.0] * (len(calls) - 1)


async def test_calls_are_not_slowed_under_the_threshold(
    make_network: MakeNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    await sandbox.change_account("1002", today=TODAY.isoformat(), usage_floor_pct=70)
    network = await make_network(slow_down_at_pct=75)

    await network.describe_account(credentials("1002"))
    await network.describe_account(credentials("1002"))

    assert fake_time.sleeps == []


async def test_a_blocked_account_waits_before_its_next_call(
    make_network: MakeNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    network = await make_network(max_inline_wait_seconds=300)
    await sandbox.fault("throttled", code=80000, retry_after_seconds=120, operation="account")

    info = await network.describe_account(credentials("1002"))

    assert info.currency == "EUR"
    assert fake_time.sleeps == [120.0]
    assert len(await sandbox.requests()) == 2
