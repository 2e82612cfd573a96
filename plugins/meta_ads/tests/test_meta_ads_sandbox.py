"""The sandbox speaks Meta's wire format: string numbers, paging, usage headers, Graph
errors, restatement rules, and the controls tests and the dev deployment use."""

import json
from datetime import date
from typing import Any

import httpx
import pytest
from meta_ads_support import SandboxHandle

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager

TODAY = date(2026, 3, 15)
WINDOW = '{"since":"2026-03-10","until":"2026-03-12"}'
USAGE_HEADERS = ("x-business-use-case-usage", "x-ad-account-usage", "x-fb-ads-insights-throttle")


@pytest.fixture(autouse=True)
async def fixed_today(sandbox: SandboxHandle) -> None:
    await sandbox.change_account("1002", today=TODAY.isoformat())


async def _insights(sandbox: SandboxHandle, **params: str) -> httpx.Response:
    values = {"level": "ad", "time_range": WINDOW, "time_increment": "1"}
    values.update(params)
    return await sandbox.graph("GET", "/v25.0/act_1002/insights", **values)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    return error


async def test_every_number_on_the_wire_is_a_string(sandbox: SandboxHandle) -> None:
    response = await _insights(
        sandbox, fields="ad_id,spend,impressions,clicks,inline_link_clicks,actions,action_values"
    )

    assert response.status_code == 200
    for row in response.json()["data"]:
        for name in ("spend", "impressions", "clicks", "inline_link_clicks"):
            assert isinstance(row[name], str)
        for entry in row.get("actions", []) + row.get("action_values", []):
            assert set(entry) == {"action_type", "value"}
            assert isinstance(entry["value"], str)


async def test_the_last_page_has_cursors_but_no_next(sandbox: SandboxHandle) -> None:
    pages = []
    params = {"fields": "ad_id", "limit": "10"}
    while True:
        body = (await _insights(sandbox, **params)).json()
        pages.append(body)
        if "next" not in body["paging"]:
            break
        params["after"] = body["paging"]["cursors"]["after"]

    assert len(pages) > 1
    assert "after" in pages[-1]["paging"]["cursors"]
    assert all("previous" in page["paging"] for page in pages[1:])
    first_next = httpx.URL(pages[0]["paging"]["next"])
    assert first_next.params["time_increment"] == "1"  # the link repeats the whole query
    ids = [row["ad_id"] for page in pages for row in page["data"]]
    assert len(ids) == len(
        set(zip(ids, [r["date_start"] for p in pages for r in p["data"]], strict=True))
    )


async def test_without_time_increment_a_row_covers_the_whole_window(
    sandbox: SandboxHandle,
) -> None:
    # what a client that forgets time_increment=1 would get: one row per ad for three days
    response = await sandbox.graph(
        "GET", "/v25.0/act_1002/insights", level="ad", fields="ad_id", time_range=WINDOW
    )

    rows = response.json()["data"]
    assert {(row["date_start"], row["date_stop"]) for row in rows} == {("2026-03-10", "2026-03-12")}


async def test_a_curl_style_time_range_and_a_json_field_list_are_accepted(
    sandbox: SandboxHandle,
) -> None:
    response = await sandbox.graph(
        "GET",
        "/v25.0/act_1002/insights",
        level="campaign",
        fields='["campaign_id","spend"]',
        **{"time_range[since]": "2026-03-12", "time_range[until]": "2026-03-12"},
        time_increment="1",
    )

    assert response.status_code == 200
    assert {row["date_start"] for row in response.json()["data"]} == {"2026-03-12"}


async def test_usage_headers_are_on_answers_and_errors(sandbox: SandboxHandle) -> None:
    good = await _insights(sandbox, fields="ad_id")
    await sandbox.fault("transient")
    bad = await _insights(sandbox, fields="ad_id")

    for response in (good, bad):
        for name in USAGE_HEADERS:
            assert name in response.headers
    business = json.loads(good.headers["x-business-use-case-usage"])
    [entry] = business["1002"]
    assert entry["type"] == "ads_insights"
    assert {"call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"} <= set(
        entry
    )
    assert json.loads(bad.headers["x-ad-account-usage"])["acc_id_util_pct"] > 0
    assert _error(bad)["is_transient"] is True


async def test_a_spent_budget_names_the_wait_in_minutes_and_seconds(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.configure(budget_window_seconds=300)
    await sandbox.change_account("1002", call_budget=1)
    await sandbox.graph("GET", "/v25.0/act_1002", fields="name")

    insights = await _insights(sandbox, fields="ad_id")
    account = await sandbox.graph("GET", "/v25.0/act_1002", fields="name")

    assert insights.status_code == account.status_code == 400
    assert (_error(insights)["code"], _error(insights)["error_subcode"]) == (80000, 2446079)
    assert _error(account)["code"] == 80004
    [entry] = json.loads(insights.headers["x-business-use-case-usage"])["1002"]
    assert entry["estimated_time_to_regain_access"] == 5
    assert json.loads(insights.headers["x-ad-account-usage"])["reset_time_duration"] <= 300


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"level": "everything"}, "level must be"),
        ({"fields": "ad_id,revenue"}, "revenue is not valid"),
        ({"time_range": '{"since":"2026-03-12","until":"2026-03-10"}'}, "since must be"),
        ({"time_range": "yesterday"}, "JSON object"),
        ({"time_increment": "weekly"}, "time_increment"),
        ({"limit": "-1"}, "limit"),
        ({"after": "%%%"}, "Invalid cursor"),
    ],
)
async def test_invalid_parameters_are_code_100(
    sandbox: SandboxHandle, params: dict[str, str], message: str
) -> None:
    response = await _insights(sandbox, **params)

    assert response.status_code == 400
    assert all(name in response.headers for name in USAGE_HEADERS)
    error = _error(response)
    assert error["code"] == 100
    assert message in error["message"]


async def test_a_call_without_a_token_is_code_104(sandbox: SandboxHandle) -> None:
    response = await sandbox.control.get("/v25.0/act_1002", params={"fields": "name"})

    assert response.status_code == 400
    assert _error(response)["code"] == 104


async def test_an_unknown_object_is_code_100_subcode_33(sandbox: SandboxHandle) -> None:
    response = await sandbox.graph("GET", "/v25.0/123456")

    assert (_error(response)["code"], _error(response)["error_subcode"]) == (100, 33)


async def test_too_much_data_is_code_100_subcode_1487534(sandbox: SandboxHandle) -> None:
    await sandbox.configure(max_rows_per_query=3)

    response = await _insights(sandbox, fields="ad_id")

    assert (_error(response)["code"], _error(response)["error_subcode"]) == (100, 1487534)
    assert "reduce the amount of data" in _error(response)["message"]


async def test_bearer_tokens_are_accepted_and_never_logged(sandbox: SandboxHandle) -> None:
    response = await sandbox.control.get(
        "/v25.0/act_1002",
        params={"fields": "name,currency"},
        headers={"Authorization": "Bearer EAAheader"},
    )

    assert response.json() == {
        "id": "act_1002",
        "name": "Sandbox ad account 1002",
        "currency": "EUR",
    }
    assert "EAAheader" not in json.dumps(await sandbox.requests())


async def test_restating_a_future_day_is_refused(sandbox: SandboxHandle) -> None:
    response = await sandbox.restate("1002", date(2026, 3, 16))

    assert response.status_code == 409


async def test_the_same_account_always_has_the_same_data(sandbox: SandboxHandle) -> None:
    first = (await _insights(sandbox, fields="ad_id,spend", limit="500")).json()["data"]
    await sandbox.control.post("/_sandbox/reset")
    await sandbox.change_account("1002", today=TODAY.isoformat())
    second = (await _insights(sandbox, fields="ad_id,spend", limit="500")).json()["data"]

    assert first == second


async def test_a_fault_scoped_to_act_1002_answers_only_that_accounts_calls(
    sandbox: SandboxHandle,
) -> None:
    # the conformance kit names the account as the plugin does; Graph paths use the digits
    await sandbox.fault("transient", times=2, scope="act_1002")
    await sandbox.fault("auth", scope="999")

    codes = [(await _insights(sandbox, fields="ad_id")).status_code for _ in range(3)]
    left = (await sandbox.control.get("/_sandbox/faults")).json()

    assert codes == [500, 500, 200]
    assert [(fault["kind"], fault["scope"]) for fault in left] == [("auth", "999")]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "auth", "scope": "act_"},
        {"kind": "auth", "scope": "me"},
        {"kind": "permission", "operation": "campaigns"},
        {"kind": "too_much_data", "variant": "huge"},
    ],
)
async def test_faults_name_an_ad_account_and_a_graph_operation(
    sandbox: SandboxHandle, fault: dict[str, Any]
) -> None:
    response = await sandbox.control.post("/_sandbox/faults", json=fault)

    assert response.status_code == 422


async def test_control_endpoints_refuse_bad_accounts(sandbox: SandboxHandle) -> None:
    assert (await sandbox.control.get("/_sandbox/accounts/act_1")).status_code == 404
    bad_zone = await sandbox.control.put(
        "/_sandbox/accounts/1002", json={"timezone_name": "Mars/Olympus"}
    )
    assert bad_zone.status_code == 422


async def test_the_sandbox_hook_builds_independent_apps() -> None:
    sandbox = ProviderRegistry(create_plugin_manager(allow={"meta_ads"})).sandbox("meta")

    first, second = sandbox.create_app(), sandbox.create_app()

    assert first is not second
