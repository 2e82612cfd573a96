"""The Graph client on the wire: what it sends, how many calls it has in flight, and how
it keeps the token out of sight."""

import asyncio
import hashlib
import hmac
from datetime import date
from typing import Any

import httpx
from conftest import MakeNetwork
from fastapi import FastAPI, Request
from meta_ads_support import TOKEN, credentials
from pixecom_meta_ads.client import redact_secrets, shared_ssl_context
from pixecom_meta_ads.sandbox import create_sandbox_app
from starlette.applications import Starlette
from starlette.routing import Mount

from pixecom_core.providers import EntityLevel
from pixecom_core.testing.loopback import serve

DAY = date(2026, 3, 10)


async def test_calls_in_flight_never_exceed_max_connections(make_network: MakeNetwork) -> None:
    app = FastAPI()
    in_flight = 0
    peak = 0

    @app.get("/v25.0/{node}/insights")
    async def insights(node: str) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        row = {"campaign_id": node, "date_start": "2026-03-10", "date_stop": "2026-03-10"}
        return {"data": [row | {"account_currency": "USD", "spend": "1"}]}

    async with serve(app) as url:
        network = await make_network(graph_base=url, max_connections=3)

        async def one(number: int) -> int:
            rows = network.fetch_daily_insights(
                credentials(str(number)), level=EntityLevel.CAMPAIGN, since=DAY, until=DAY
            )
            return len([row async for row in rows])

        counts = await asyncio.gather(*(one(number) for number in range(1, 25)))

    assert counts == [1] * 24
    assert peak == 3


async def test_the_app_secret_proof_goes_with_every_call(make_network: MakeNetwork) -> None:
    app = FastAPI()
    seen: list[dict[str, str]] = []

    @app.get("/v25.0/act_1002")
    async def account(request: Request) -> dict[str, Any]:
        seen.append(dict(request.query_params))
        return {"id": "act_1002", "name": "n", "currency": "USD", "timezone_name": "Etc/GMT"}

    async with serve(app) as url:
        network = await make_network(graph_base=url, app_secret="app-secret")
        await network.describe_account(credentials("1002"))

    expected = hmac.new(b"app-secret", TOKEN.encode(), hashlib.sha256).hexdigest()
    assert seen[0]["appsecret_proof"] == expected
    assert seen[0]["access_token"] == TOKEN


async def test_a_report_run_sends_the_token_in_the_body_not_the_url(
    make_network: MakeNetwork,
) -> None:
    app = FastAPI()
    posts: list[tuple[str, bytes]] = []

    @app.post("/v25.0/act_1002/insights")
    async def start(request: Request) -> dict[str, Any]:
        posts.append((str(request.url), await request.body()))
        return {"report_run_id": "55"}

    @app.get("/v25.0/55")
    async def status() -> dict[str, Any]:
        return {"id": "55", "async_status": "Job Completed", "async_percent_completion": 100}

    @app.get("/v25.0/55/insights")
    async def rows() -> dict[str, Any]:
        return {"data": []}

    async with serve(app) as url:
        network = await make_network(graph_base=url, async_report_threshold_days=1)
        result = network.fetch_daily_insights(
            credentials("1002"), level=EntityLevel.AD, since=DAY, until=date(2026, 3, 12)
        )
        assert [row async for row in result] == []

    [(post_url, body)] = posts
    assert TOKEN not in post_url
    assert f"access_token={TOKEN}".encode() in body
    assert b"time_increment=1" in body


def test_secrets_are_masked_in_text() -> None:
    text = f"GET https://graph/v25.0/act_1?access_token={TOKEN}&appsecret_proof=abc&limit=5"

    masked = redact_secrets(text + f" token {TOKEN}", TOKEN)

    assert TOKEN not in masked
    assert "access_token=***&appsecret_proof=***&limit=5" in masked
    assert masked.endswith("token ***")


async def test_a_sandbox_mounted_under_a_path_prefix_pages_through(
    make_network: MakeNetwork,
) -> None:
    # the dev deployment may serve sandboxes under one port, each under its own prefix
    app = Starlette(routes=[Mount("/sandboxes/meta", app=create_sandbox_app())])
    async with serve(app) as url:
        # The days asked for are in the sandbox's past on any date the tests run.
        async with httpx.AsyncClient(
            base_url=f"{url}/sandboxes/meta", verify=shared_ssl_context()
        ) as control:
            pinned = await control.put("/_sandbox/accounts/1002", json={"today": "2026-03-15"})
            assert pinned.status_code == 200, pinned.text
        network = await make_network(graph_base=f"{url}/sandboxes/meta", page_limit=3)
        info = await network.describe_account(credentials("1002"))
        rows = network.fetch_daily_insights(
            credentials("1002"), level=EntityLevel.CAMPAIGN, since=DAY, until=date(2026, 3, 12)
        )
        keys = [(row.entity_id, row.date_start) async for row in rows]

    assert info.currency == "EUR"
    assert len(keys) == len(set(keys)) > 3


async def test_a_closed_pool_is_replaced_and_a_closed_client_connects_again(
    make_network: MakeNetwork,
) -> None:
    network = await make_network(max_connections=60)
    client = network.client

    async def read(number: str) -> int:
        rows = network.fetch_daily_insights(
            credentials(number), level=EntityLevel.CAMPAIGN, since=DAY, until=DAY
        )
        return len([row async for row in rows])

    first = await read("1000")
    # the pool of this account's calls closed behind the client's back
    await client._shard("1000").http.aclose()
    assert await read("1000") == first
    assert not client._shard("1000").http.is_closed

    await client.aclose()
    assert await read("1000") == first
