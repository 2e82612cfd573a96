"""Fixtures: the Meta sandbox served by uvicorn on a free loopback port, ad networks
pointed at it over real HTTP with a fake clock that records every sleep, and a real Redis
(``REDIS_URL``, else an embedded Valkey) for the shared pacing state."""

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from meta_ads_support import FakeTime, SandboxHandle
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import MetaGraphClient, shared_ssl_context
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings

from pixecom_core.devservers import EmbeddedServers
from pixecom_core.testing.loopback import serve

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]

#: Small pages, so every fetch crosses several of them.
TEST_PAGE_LIMIT = 7

MakeNetwork = Callable[..., Awaitable[MetaAdNetwork]]


@pytest.fixture(scope="session")
async def sandbox_url() -> AsyncIterator[str]:
    """One sandbox server for the run (starting uvicorn costs ~0.2 s); reset per test."""
    async with serve(create_sandbox_app(MetaSandboxSettings())) as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxHandle]:
    """The sandbox with its starting configuration, no faults, restatements or usage."""
    async with httpx.AsyncClient(
        base_url=sandbox_url, timeout=10, verify=shared_ssl_context()
    ) as control:
        (await control.post("/_sandbox/reset")).raise_for_status()
        yield SandboxHandle(url=sandbox_url, control=control)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def settings_for(url: str, **overrides: Any) -> MetaAdsSettings:
    values: dict[str, Any] = {
        "graph_base": url,
        "page_limit": TEST_PAGE_LIMIT,
        "async_poll_interval_seconds": 1.0,
    }
    values.update(overrides)
    return MetaAdsSettings(**values)


@pytest.fixture
async def make_network(sandbox: SandboxHandle, fake_time: FakeTime) -> AsyncIterator[MakeNetwork]:
    """Build ad networks on the sandbox with settings overrides; sleeps go to ``fake_time``."""
    clients: list[MetaGraphClient] = []

    async def make(**overrides: Any) -> MetaAdNetwork:
        settings = settings_for(sandbox.url, **overrides)
        client = MetaGraphClient(settings, sleep=fake_time.sleep, clock=fake_time.clock)
        clients.append(client)
        return MetaAdNetwork(settings, client=client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def network(make_network: MakeNetwork) -> MetaAdNetwork:
    return await make_network()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The Redis the shared pacing tests use: ``REDIS_URL`` when set (CI's system lane),
    else an embedded Valkey started for the run."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with (
        tempfile.TemporaryDirectory(prefix="pixecom-meta-valkey-") as folder,
        EmbeddedServers(data_dir=Path(folder), ephemeral=True) as servers,
    ):
        yield servers.start_valkey()


@pytest.fixture
def redis_key_prefix() -> str:
    """A deployment key prefix of this test's own, so runs sharing a server never meet."""
    return f"pixecom-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client(redis_url: str, redis_key_prefix: str) -> AsyncIterator[redis.Redis]:
    """A client to look at (and spoil) what the pacing state stored; this test's keys are
    deleted afterwards."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{redis_key_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
