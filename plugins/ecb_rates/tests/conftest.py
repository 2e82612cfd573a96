"""Fixtures: the ECB sandbox served by uvicorn on a free loopback port with its clock fixed
(``FRIDAY``, published), reset per test, and sources pointed at it over real HTTP."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ecb_support import FRIDAY, HISTORY_STARTS_ON, MakeSource, SandboxHandle
from pixecom_ecb_rates.client import EcbClient
from pixecom_ecb_rates.sandbox import create_sandbox_app
from pixecom_ecb_rates.settings import EcbSandboxSettings, EcbSettings
from pixecom_ecb_rates.source import EcbRateSource

from pixecom_core.testing.loopback import serve

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]


@pytest.fixture(scope="session")
async def sandbox_url() -> AsyncIterator[str]:
    """One sandbox server for the run (starting uvicorn costs ~0.2 s); reset per test."""
    config = EcbSandboxSettings(
        today=FRIDAY, today_published=True, history_starts_on=HISTORY_STARTS_ON
    )
    async with serve(create_sandbox_app(config)) as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxHandle]:
    """The sandbox with its starting configuration: clock on ``FRIDAY``, no faults, no
    withheld days or overrides, an empty request log."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as control:
        (await control.post("/_sandbox/reset")).raise_for_status()
        yield SandboxHandle(url=sandbox_url, control=control)


@pytest.fixture
async def make_source(sandbox: SandboxHandle) -> AsyncIterator[MakeSource]:
    """Build sources on the sandbox with settings overrides."""
    sources: list[EcbRateSource] = []

    async def make(**overrides: Any) -> EcbRateSource:
        values: dict[str, Any] = {"base_url": sandbox.base_url, "timeout_seconds": 5.0}
        values.update(overrides)
        settings = EcbSettings(**values)
        source = EcbRateSource(settings, client=EcbClient(settings))
        sources.append(source)
        return source

    yield make
    for source in sources:
        await source.aclose()


@pytest.fixture
async def source(make_source: MakeSource) -> EcbRateSource:
    return await make_source()
