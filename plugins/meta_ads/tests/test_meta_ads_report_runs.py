"""Long windows through async report runs: POST → poll until "Job Completed" → read."""

from collections.abc import AsyncIterator
from datetime import date, timedelta

from conftest import MakeNetwork
from meta_ads_support import FakeTime, SandboxHandle, credentials

from pixecom_core.providers import EntityLevel, InsightRow

TODAY = date(2026, 3, 15)
ACCOUNT = "1004"


async def _fetch(rows: AsyncIterator[InsightRow]) -> list[InsightRow]:
    return [row async for row in rows]


def _keys(rows: list[InsightRow]) -> list[tuple[str, date, int, int]]:
    return sorted((r.entity_id, r.date_start, r.spend_micros, r.purchases) for r in rows)


async def test_a_long_window_is_read_through_a_report_run(
    make_network: MakeNetwork, sandbox: SandboxHandle, fake_time: FakeTime
) -> None:
    await sandbox.change_account(ACCOUNT, today=TODAY.isoformat())
    since, until = TODAY - timedelta(days=10), TODAY - timedelta(days=1)
    synchronous = await make_network(async_report_threshold_days=31)
    through_run = await make_network(async_report_threshold_days=5)
    expected = await _fetch(
        synchronous.fetch_daily_insights(
            credentials(ACCOUNT), level=EntityLevel.ADSET, since=since, until=until
        )
    )
    await sandbox.control.delete("/_sandbox/requests")

    rows = await _fetch(
        through_run.fetch_daily_insights(
            credentials(ACCOUNT), level=EntityLevel.ADSET, since=since, until=until
        )
    )

    assert _keys(rows) == _keys(expected)
    assert all(row.date_start == row.date_stop for row in rows)
    calls = await sandbox.requests()
    [start] = [c for c in calls if c["method"] == "POST"]
    assert start["path"] == f"/v25.0/act_{ACCOUNT}/insights"
    assert start["params"]["time_increment"] == "1"
    assert start["params"]["level"] == "adset"
    polls = [c for c in calls if c["method"] == "GET" and not c["path"].endswith("/insights")]
    reads = [c for c in calls if c["method"] == "GET" and c["path"].endswith("/insights")]
    # "Job Running" at 100 % on poll 2 is not taken for done: poll 3 says "Job Completed"
    assert len(polls) == 3
    assert fake_time.sleeps == [1.0, 1.0]  # async_poll_interval_seconds between polls
    assert len(reads) > 1 and all(c["path"] == reads[0]["path"] for c in reads)
    assert reads[0]["path"] != f"/v25.0/act_{ACCOUNT}/insights"


async def test_the_report_status_shows_100_percent_before_it_is_done(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.change_account(ACCOUNT, today=TODAY.isoformat())
    started = await sandbox.graph(
        "POST",
        f"/v25.0/act_{ACCOUNT}/insights",
        level="campaign",
        fields="campaign_id,spend",
        time_range='{"since":"2026-03-01","until":"2026-03-02"}',
        time_increment="1",
    )
    run_id = started.json()["report_run_id"]

    statuses = [(await sandbox.graph("GET", f"/v25.0/{run_id}")).json() for _ in range(3)]

    assert [s["async_status"] for s in statuses] == [
        "Job Not Started",
        "Job Running",
        "Job Completed",
    ]
    assert statuses[1]["async_percent_completion"] == 100
    early = await sandbox.graph("POST", f"/v25.0/act_{ACCOUNT}/insights", level="ad")
    early_id = early.json()["report_run_id"]
    refused = await sandbox.graph("GET", f"/v25.0/{early_id}/insights")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == 100
    done = await sandbox.graph("GET", f"/v25.0/{run_id}/insights")
    assert done.status_code == 200
    assert {row["date_start"] for row in done.json()["data"]} == {"2026-03-01", "2026-03-02"}
