"""Fixtures: the 17TRACK sandbox and a push receiver served by uvicorn on free loopback
ports, and trackers pointed at the sandbox over real HTTP."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pixecom_tracking17.client import Track17Client, shared_ssl_context
from pixecom_tracking17.sandbox import create_sandbox_app
from pixecom_tracking17.settings import Track17SandboxSettings, Track17Settings
from pixecom_tracking17.tracker import Tracker17
from pydantic import SecretStr
from tracking17_support import API_KEY, PUSH_KEY, SandboxHandle

from pixecom_core.testing.loopback import serve
from pixecom_core.testing.sandbox_kit import WebhookReceiver

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]

#: Fast enough that tests which are not about the rate limit never wait for it.
FAST_RATE = 1_000

MakeTracker = Callable[..., Awaitable[Tracker17]]


@pytest.fixture(scope="session")
async def push_receiver_session() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver("/webhooks/tracking/17track")
    async with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture
def push_receiver(push_receiver_session: WebhookReceiver) -> WebhookReceiver:
    """The push receiver, with nothing received and answering 200."""
    push_receiver_session.clear()
    return push_receiver_session


@pytest.fixture(scope="session")
async def sandbox_url(push_receiver_session: WebhookReceiver) -> AsyncIterator[str]:
    """One sandbox server for the run (starting uvicorn costs ~0.2 s); reset per test."""
    config = Track17SandboxSettings(
        api_keys=[SecretStr(API_KEY)],
        push_key=SecretStr(PUSH_KEY),
        push_url=push_receiver_session.endpoint,
        rate_limit_per_second=FAST_RATE,
    )
    async with serve(create_sandbox_app(config)) as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str, push_receiver: WebhookReceiver) -> AsyncIterator[SandboxHandle]:
    """The sandbox with its starting configuration: no parcels, faults or calls."""
    del push_receiver  # cleared for the test as well
    async with httpx.AsyncClient(
        base_url=sandbox_url, timeout=10, verify=shared_ssl_context()
    ) as control:
        (await control.post("/_sandbox/reset")).raise_for_status()
        yield SandboxHandle(url=sandbox_url, control=control)


def settings_for(url: str, **overrides: Any) -> Track17Settings:
    values: dict[str, Any] = {
        "api_base": url,
        "api_key": API_KEY,
        "push_key": PUSH_KEY,
        "timeout_seconds": 2.0,
        "requests_per_second": FAST_RATE,
    }
    values.update(overrides)
    return Track17Settings(**values)


@pytest.fixture
async def make_tracker(sandbox: SandboxHandle) -> AsyncIterator[MakeTracker]:
    """Build trackers on the sandbox with settings overrides (``client_options`` go to the
    client: ``clock``, ``sleep``, ``transport``)."""
    trackers: list[Tracker17] = []

    async def make(client_options: dict[str, Any] | None = None, **overrides: Any) -> Tracker17:
        settings = settings_for(sandbox.url, **overrides)
        client = Track17Client(settings, **(client_options or {}))
        tracker = Tracker17(settings, client=client)
        trackers.append(tracker)
        return tracker

    yield make
    for tracker in trackers:
        await tracker.aclose()


@pytest.fixture
async def tracker(make_tracker: MakeTracker) -> Tracker17:
    return await make_tracker()
