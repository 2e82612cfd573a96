"""Per-seller request quotas (SEC-1: "no per-seller request quotas"), held on Redis."""

from __future__ import annotations

import httpx
import pytest

from pixecom_core.security.rate_limits import limits_storage_url
from pixecom_core.settings import Settings
from tests.app.conftest import PASSWORD, ClientFactory, NewSeller

ME = "/auth/me"


def assert_rate_limited(response: httpx.Response, *, window_seconds: int = 60) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["request_id"]
    assert 0 < int(response.headers["Retry-After"]) <= window_seconds


async def test_a_seller_over_its_quota_gets_429_and_others_do_not(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    settings = app_settings.model_copy(update={"seller_request_rate": "3/minute"})
    async with api_client_for(settings) as client:
        busy = await new_seller(client=client)
        quiet = await new_seller(client=client)

        codes = [(await client.get(ME, headers=busy.headers)).status_code for _ in range(3)]
        over = await client.get(ME, headers=busy.headers)
        other = await client.get(ME, headers=quiet.headers)

    assert codes == [200, 200, 200]
    assert_rate_limited(over)
    assert other.status_code == 200, other.text


async def test_logging_in_again_does_not_reset_the_quota(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    # The quota is the seller's, not the token's or the user's session.
    settings = app_settings.model_copy(update={"seller_request_rate": "2/minute"})
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        for _ in range(2):
            assert (await client.get(ME, headers=seller.headers)).status_code == 200
        again = await client.post("/auth/login", json={"email": seller.email, "password": PASSWORD})
        assert again.status_code == 200, again.text
        fresh = {"Authorization": f"Bearer {again.json()['access_token']}"}

        assert_rate_limited(await client.get(ME, headers=fresh))


async def test_unauthenticated_requests_do_not_use_a_sellers_quota(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    settings = app_settings.model_copy(update={"seller_request_rate": "2/minute"})
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        forged = {"Authorization": "Bearer not.a.token"}
        for _ in range(5):
            assert (await client.get(ME, headers=forged)).status_code == 401

        assert (await client.get(ME, headers=seller.headers)).status_code == 200


async def test_the_quota_holds_across_api_processes(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    # Two apps (separate pools, Redis clients and limiters) share one Redis: requests on
    # either count against the one quota (SEC-1), so adding API instances does not
    # multiply what one seller may send.
    settings = app_settings.model_copy(update={"seller_request_rate": "4/minute"})
    async with api_client_for(settings) as first, api_client_for(settings) as second:
        seller = await new_seller(client=first)
        codes = [
            (await client.get(ME, headers=seller.headers)).status_code
            for client in (first, second, first, second)
        ]
        over_first = await first.get(ME, headers=seller.headers)
        over_second = await second.get(ME, headers=seller.headers)

    assert codes == [200, 200, 200, 200]
    assert_rate_limited(over_first)
    assert_rate_limited(over_second)


@pytest.mark.parametrize(
    ("redis_url", "storage_url"),
    [
        ("redis://127.0.0.1:6379/0", "async+redis://127.0.0.1:6379/0"),
        ("redis://:pw@cache.internal:6380/2", "async+redis://:pw@cache.internal:6380/2"),
        (
            "rediss://user:pw@cache.example.com:6380/0",
            "async+rediss://user:pw@cache.example.com:6380/0",
        ),
        ("valkey://127.0.0.1:6379/1", "async+redis://127.0.0.1:6379/1"),
        ("valkeys://cache.example.com/0", "async+rediss://cache.example.com/0"),
    ],
    ids=["redis", "password", "rediss-keeps-tls", "valkey", "valkeys-keeps-tls"],
)
def test_limits_storage_url_keeps_host_and_tls(redis_url: str, storage_url: str) -> None:
    assert limits_storage_url(redis_url) == storage_url


@pytest.mark.parametrize(
    "redis_url",
    ["http://127.0.0.1:6379", "memcached://127.0.0.1", "127.0.0.1:6379", ""],
)
def test_limits_storage_url_refuses_other_schemes(redis_url: str) -> None:
    with pytest.raises(ValueError, match="unsupported Redis URL scheme"):
        limits_storage_url(redis_url)
