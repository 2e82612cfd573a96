"""Bad paths over real HTTP: throttling, refused tokens, transient failures, "too much data",
malformed answers, and paging links that must not be followed."""

import logging
from datetime import date, timedelta
from typing import Any

import pytest
from conftest import MakeNetwork
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from meta_ads_support import TOKEN, FakeTime, SandboxHandle, credentials, raw_daily_rows
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import MetaReportRunFailed

from pixecom_core.providers import (
    EntityLevel,
    InsightRow,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
)
from pixecom_core.testing.loopback import serve

TODAY = date(2026, 3, 15)
SINCE = TODAY - timedelta(days=6)
UNTIL = TODAY - timedelta(days=1)
ACCOUNT = "1002"


@pytest.fixture(autouse=True)
async def fixed_today(sandbox: SandboxHandle) -> None:
    await sandbox.change_account(ACCOUNT, today=TODAY.isoformat())


async def fetch(
    network: MetaAdNetwork,
    *,
    level: EntityLevel = EntityLevel.AD,
    since: date = SINCE,
    until: date = UNTIL,
    token: str = TOKEN,
    account_id: str = ACCOUNT,
) -> list[InsightRow]:
    return [
        row
        async for row in network.fetch_daily_insights(
            credentials(account_id, token), level=level, since=since, until=until
        )
    ]


def _keys(rows: list[InsightRow]) -> list[tuple[str, date, int]]:
    return sorted((row.entity_id, row.date_start, row.spend_micros) for row in rows)


async def _expected(sandbox: SandboxHandle, since: date = SINCE, until: date = UNTIL) -> list[Any]:
    raw = await raw_daily_rows(sandbox, ACCOUNT, "ad", since, until)
    await sandbox.control.delete("/_sandbox/requests")
    return sorted(
        (item["ad_id"], date.fromisoformat(item["date_start"]), _micros(item["spend"]))
        for item in raw
    )


def _micros(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int((fraction + "000000")[:6])


def _all_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args and its whole chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), *map(str, current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


# -- throttling ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [17, 80000, 4, 613])
async def test_a_throttling_error_waits_the_minutes_the_header_names(
    network: MetaAdNetwork, sandbox: SandboxHandle, code: int
) -> None:
    await sandbox.fault("throttled", code=code, retry_after_seconds=300)

    with pytest.raises(ProviderThrottled) as raised:
        await fetch(network)

    # estimated_time_to_regain_access is in minutes
    assert raised.value.retry_after_seconds == 300
    assert raised.value.provider == "meta"
    assert f"code {code}" in str(raised.value)


async def test_a_throttled_account_is_not_called_again_before_the_wait(
    network: MetaAdNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    await sandbox.fault("throttled", code=80000, retry_after_seconds=300)
    with pytest.raises(ProviderThrottled):
        await fetch(network)
    calls_before = len(await sandbox.requests())

    fake_time.now += 120
    with pytest.raises(ProviderThrottled) as raised:
        await fetch(network)

    assert len(await sandbox.requests()) == calls_before  # refused without a call
    assert raised.value.retry_after_seconds == pytest.approx(180)
    fake_time.now += 181
    assert await fetch(network)


async def test_a_spent_call_budget_answers_80000_with_the_window_reset(
    make_network: MakeNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(budget_window_seconds=600)
    await sandbox.change_account(ACCOUNT, call_budget=2)
    network = await make_network()

    with pytest.raises(ProviderThrottled) as raised:
        await fetch(network)  # more than two pages

    assert "code 80000/2446079" in str(raised.value)
    assert raised.value.retry_after_seconds == 600  # ceil(~600 s / 60) minutes


async def test_a_throttling_error_without_a_named_wait_backs_off_by_default(
    make_network: MakeNetwork, sandbox: SandboxHandle
) -> None:
    network = await make_network(throttle_backoff_seconds=90)
    await sandbox.fault("throttled", code=17, retry_after_seconds=0)

    with pytest.raises(ProviderThrottled) as raised:
        await fetch(network)

    assert raised.value.retry_after_seconds == 90


async def test_a_short_throttle_is_slept_through_and_the_rows_complete(
    make_network: MakeNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    expected = await _expected(sandbox)
    network = await make_network(max_inline_wait_seconds=120)
    await sandbox.fault("throttled", code=17, retry_after_seconds=60, operation="insights")

    rows = await fetch(network)

    assert _keys(rows) == expected
    assert 60 in fake_time.sleeps  # waited the full minute before calling again


async def test_usage_headers_are_read_from_error_answers(
    network: MetaAdNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    # a token error carries usage headers too; at 100 % the pacer must slow the next call
    await sandbox.change_account(ACCOUNT, usage_floor_pct=100)
    await sandbox.fault("auth")
    with pytest.raises(ProviderAuthError):
        await fetch(network)
    assert fake_time.sleeps == []

    await sandbox.change_account(ACCOUNT, usage_floor_pct=0)
    await fetch(network, since=UNTIL)

    assert fake_time.sleeps[0] == 30.0  # max_pace_delay_seconds at 100 %


# -- tokens ------------------------------------------------------------------------------------


async def test_an_expired_token_asks_for_reconnection_without_showing_the_token(
    network: MetaAdNetwork, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sandbox.fault("auth", echo_token=True)  # the message quotes the token back

    with pytest.raises(ProviderAuthError) as raised:
        await fetch(network)

    assert "code 190/463" in str(raised.value)
    assert "reconnect" in str(raised.value)
    assert TOKEN not in _all_text(raised.value)
    assert TOKEN not in "\n".join(record.getMessage() for record in caplog.records)


async def test_the_token_never_reaches_the_logs_of_a_good_fetch(
    network: MetaAdNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await fetch(network)

    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "access_token=***" in messages  # httpx logged the URLs, masked
    assert TOKEN not in messages


async def test_a_revoked_token_is_an_auth_error(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.control.post(
        "/_sandbox/oauth/tokens/revoke", json={"token": "EAArevoked", "reason": "password_changed"}
    )

    with pytest.raises(ProviderAuthError) as raised:
        await network.describe_account(credentials(ACCOUNT, "EAArevoked"))

    assert "code 190/460" in str(raised.value)
    assert "EAArevoked" not in _all_text(raised.value)


async def test_a_missing_permission_is_an_auth_error(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("permission")

    with pytest.raises(ProviderAuthError):
        await fetch(network)


async def test_an_empty_token_is_refused_before_any_call(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    with pytest.raises(ProviderAuthError):
        await fetch(network, token="")

    assert await sandbox.requests() == []


# -- transient failures ------------------------------------------------------------------------


async def test_a_persistent_transient_error_is_raised_after_the_retries(
    network: MetaAdNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    await sandbox.fault("transient", times=10)

    with pytest.raises(ProviderTransientError) as raised:
        await fetch(network)

    assert "code 2" in str(raised.value)
    assert len(await sandbox.requests()) == 3  # one call and transient_retries=2 retries
    assert fake_time.sleeps == [1.0, 2.0]  # backoff doubles


async def test_a_passing_transient_error_is_retried_and_no_row_is_lost(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = await _expected(sandbox)
    await sandbox.fault("transient", operation="insights")
    await sandbox.fault("server_error", operation="insights")

    assert _keys(await fetch(network)) == expected


@pytest.mark.parametrize("kind", ["server_error", "malformed", "hang"])
async def test_answers_that_are_not_graph_json_are_transient(
    make_network: MakeNetwork, sandbox: SandboxHandle, kind: str
) -> None:
    # hang: a proxy's 504 page after the wait
    network = await make_network(transient_retries=0)
    await sandbox.fault(kind, hang_seconds=0.01)

    with pytest.raises(ProviderTransientError):
        await fetch(network)


async def test_an_unreachable_graph_is_transient(make_network: MakeNetwork) -> None:
    network = await make_network(graph_base="http://127.0.0.1:9", transient_retries=0)

    with pytest.raises(ProviderTransientError) as raised:
        await network.describe_account(credentials(ACCOUNT))

    assert TOKEN not in _all_text(raised.value)


async def test_a_slow_graph_times_out_as_transient(
    make_network: MakeNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(latency_seconds=0.5)
    network = await make_network(timeout_seconds=0.05, transient_retries=0)

    with pytest.raises(ProviderTransientError) as raised:
        await network.describe_account(credentials(ACCOUNT))

    assert "did not answer" in str(raised.value)


async def test_an_invalid_parameter_is_a_plain_provider_error(make_network: MakeNetwork) -> None:
    app = FastAPI()

    @app.get("/v25.0/act_1002/insights")
    async def insights() -> JSONResponse:
        error = {"message": "(#100) level must be one of …", "type": "OAuthException", "code": 100}
        return JSONResponse({"error": error | {"fbtrace_id": "T1"}}, status_code=400)

    async with serve(app) as url:
        network = await make_network(graph_base=url)
        with pytest.raises(ProviderError) as raised:
            await fetch(network)

    assert type(raised.value) is ProviderError  # neither retried nor a reconnect
    assert "code 100: (#100) level must be one of" in str(raised.value)
    assert "[fbtrace_id T1]" in str(raised.value)


# -- too much data -------------------------------------------------------------------------------


async def test_too_much_data_splits_the_window_and_the_rows_complete(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = await _expected(sandbox)
    ads = len((await sandbox.account(ACCOUNT))["ad_ids"])
    await sandbox.configure(max_rows_per_query=ads * 3)  # three days pass, six do not

    rows = await fetch(network)

    assert _keys(rows) == expected
    ranges = {call["params"]["time_range"] for call in await sandbox.requests("/insights")}
    assert f'{{"since":"{SINCE}","until":"{UNTIL}"}}' in ranges
    assert f'{{"since":"{SINCE}","until":"{SINCE + timedelta(days=2)}"}}' in ranges


async def test_reduce_the_amount_of_data_as_http_500_code_1_also_splits(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = await _expected(sandbox)
    await sandbox.fault("too_much_data", variant="code1", operation="insights")

    rows = await fetch(network)

    assert _keys(rows) == expected
    assert len({c["params"]["time_range"] for c in await sandbox.requests("/insights")}) == 3


async def test_too_much_data_on_a_later_page_yields_no_row_twice(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = await _expected(sandbox)
    rows: list[InsightRow] = []
    async for row in network.fetch_daily_insights(
        credentials(ACCOUNT), level=EntityLevel.AD, since=SINCE, until=UNTIL
    ):
        rows.append(row)
        if len(rows) == 1:
            # page one is in hand: the call for page two is refused, the window is split,
            # and the halves bring page one's rows again
            await sandbox.fault("too_much_data", operation="insights")

    assert _keys(rows) == expected
    assert len({c["params"]["time_range"] for c in await sandbox.requests("/insights")}) == 3


async def test_one_day_that_is_still_too_large_goes_through_a_report_run(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    expected = await _expected(sandbox, UNTIL, UNTIL)
    await sandbox.configure(max_rows_per_query=1)

    rows = await fetch(network, since=UNTIL, until=UNTIL)

    assert _keys(rows) == expected
    assert [c["method"] for c in await sandbox.requests("/insights")][:2] == ["GET", "POST"]


# -- async report runs --------------------------------------------------------------------------


async def test_a_failed_report_run_is_transient(
    make_network: MakeNetwork, sandbox: SandboxHandle
) -> None:
    network = await make_network(async_report_threshold_days=2)
    await sandbox.fault("report_failed")

    with pytest.raises(MetaReportRunFailed) as raised:
        await fetch(network)

    assert isinstance(raised.value, ProviderTransientError)
    assert "Job Failed" in str(raised.value)


async def test_a_report_run_that_never_completes_times_out(
    make_network: MakeNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    await sandbox.configure(report_polls_to_complete=50)
    network = await make_network(
        async_report_threshold_days=2, async_poll_interval_seconds=5, async_poll_timeout_seconds=20
    )

    with pytest.raises(ProviderTransientError) as raised:
        await fetch(network)

    assert "still 'Job Running'" in str(raised.value)
    assert fake_time.sleeps == [5, 5, 5]
    assert not [c for c in await sandbox.requests("/insights") if c["method"] == "GET"]


# -- malformed answers and paging links -----------------------------------------------------------


def _stub_graph(pages: dict[str, tuple[list[dict[str, Any]], str | None]]) -> FastAPI:
    """A Graph stand-in: ``pages[after or ""]`` is (rows, the ``after`` of the next page or
    ``None`` on the last page); every call's query is recorded in ``app.state.calls``."""
    app = FastAPI()
    app.state.calls = []

    @app.get("/v25.0/act_1002/insights")
    async def insights(request: Request) -> dict[str, Any]:
        app.state.calls.append(dict(request.query_params))
        rows, next_after = pages[request.query_params.get("after", "")]
        body: dict[str, Any] = {"data": rows, "paging": {"cursors": {"after": "END"}}}
        if next_after is not None:
            body["paging"]["next"] = str(request.url.include_query_params(after=next_after))
        return body

    return app


def _item(ad_id: str, day: str, **extra: Any) -> dict[str, Any]:
    return {
        "ad_id": ad_id,
        "date_start": day,
        "date_stop": day,
        "account_currency": "USD",
        "spend": "1.5",
        "impressions": "10",
        "inline_link_clicks": "1",
        **extra,
    }


async def test_paging_next_to_another_host_is_refused(make_network: MakeNetwork) -> None:
    app = FastAPI()
    calls: list[str] = []

    @app.get("/v25.0/act_1002/insights")
    async def insights(request: Request) -> dict[str, Any]:
        calls.append(str(request.url))
        next_link = f"https://attacker.example/v25.0/act_1002/insights?after=X&access_token={TOKEN}"
        return {
            "data": [_item("1", "2026-03-10")],
            "paging": {"cursors": {"after": "X"}, "next": next_link},
        }

    async with serve(app) as url:
        network = await make_network(graph_base=url)
        with pytest.raises(ProviderError) as raised:
            await fetch(network, since=date(2026, 3, 10), until=date(2026, 3, 10))

    assert "attacker.example" in str(raised.value)
    assert TOKEN not in _all_text(raised.value)
    assert len(calls) == 1


async def test_a_paging_loop_is_stopped(make_network: MakeNetwork) -> None:
    app = _stub_graph({"": ([_item("1", "2026-03-10")], "A"), "A": ([], "A")})
    async with serve(app) as url:
        network = await make_network(graph_base=url)
        with pytest.raises(ProviderError, match="already read"):
            await fetch(network, since=date(2026, 3, 10), until=date(2026, 3, 10))

    assert len(app.state.calls) == 2  # the repeated link is never requested


async def test_paging_stops_on_an_absent_next_though_after_is_present(
    make_network: MakeNetwork,
) -> None:
    app = _stub_graph(
        {
            "": ([_item("1", "2026-03-10")], "B"),
            "B": ([_item("2", "2026-03-10")], None),
        }
    )
    async with serve(app) as url:
        network = await make_network(graph_base=url)
        rows = await fetch(network, since=date(2026, 3, 10), until=date(2026, 3, 10))

    assert [row.entity_id for row in rows] == ["1", "2"]
    assert [call.get("after") for call in app.state.calls] == [None, "B"]
    # the link's query is kept, its token replaced by the seller's own
    assert app.state.calls[1]["access_token"] == TOKEN
    assert app.state.calls[1]["time_increment"] == "1"


async def test_a_row_repeated_on_two_pages_is_yielded_once(make_network: MakeNetwork) -> None:
    app = _stub_graph(
        {
            "": ([_item("1", "2026-03-10"), _item("2", "2026-03-10")], "B"),
            "B": ([_item("2", "2026-03-10"), _item("3", "2026-03-10")], None),
        }
    )
    async with serve(app) as url:
        network = await make_network(graph_base=url)
        rows = await fetch(network, since=date(2026, 3, 10), until=date(2026, 3, 10))

    assert [row.entity_id for row in rows] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (_item("1", "2026-03-09") | {"date_stop": "2026-03-10"}, "one day"),
        (_item("1", "2026-03-11"), "outside the window"),
        ({k: v for k, v in _item("1", "2026-03-10").items() if k != "ad_id"}, "no ad_id"),
        (_item("1", "2026-03-10") | {"spend": "-1.00"}, "non-negative"),
        (_item("1", "2026-03-10") | {"spend": 1.5}, "decimal string"),
        (_item("1", "2026-03-10") | {"impressions": "many"}, "not a decimal"),
        (_item("1", "2026-03-10") | {"account_currency": "dollars"}, "currency"),
        (_item("1", "2026-03-10") | {"actions": "purchase"}, "actions must be a list"),
    ],
)
async def test_an_unusable_row_fails_the_fetch(
    make_network: MakeNetwork, item: dict[str, Any], problem: str
) -> None:
    app = _stub_graph({"": ([item], None)})
    async with serve(app) as url:
        network = await make_network(graph_base=url)
        with pytest.raises(ProviderError) as raised:
            await fetch(network, since=date(2026, 3, 9), until=date(2026, 3, 10))

    assert problem in str(raised.value)


async def test_a_list_answer_without_data_is_refused(make_network: MakeNetwork) -> None:
    app = FastAPI()

    @app.get("/v25.0/act_1002/insights")
    async def insights() -> dict[str, Any]:
        return {"rows": []}

    async with serve(app) as url:
        network = await make_network(graph_base=url)
        with pytest.raises(ProviderError, match="without a data array"):
            await fetch(network, since=date(2026, 3, 10), until=date(2026, 3, 10))


async def test_a_window_ending_before_it_starts_is_a_caller_error(network: MetaAdNetwork) -> None:
    with pytest.raises(ValueError, match="after until"):
        await fetch(network, since=UNTIL, until=SINCE)


@pytest.mark.parametrize("account_id", ["../1002", "act_", "1002/insights", "act_12a"])
async def test_an_account_id_that_is_not_metas_is_refused(
    network: MetaAdNetwork, sandbox: SandboxHandle, account_id: str
) -> None:
    with pytest.raises(ProviderError, match="ad account id"):
        await network.describe_account(credentials(account_id))
    with pytest.raises(ProviderError, match="ad account id"):
        await fetch(network, account_id=account_id)

    assert await sandbox.requests() == []
