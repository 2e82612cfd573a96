"""Fixtures for API tests: an app with its lifespan running, driven over ASGI."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from pixecom_core.settings import Settings
from reference_app.api import create_app

ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def api_client_for() -> ClientFactory:
    """Build an app for the given settings, run its lifespan, yield an HTTP client."""

    @asynccontextmanager
    async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://pixecom.test"
            ) as client,
        ):
            yield client

    return open_client


@pytest.fixture
async def api_client(
    settings: Settings, api_client_for: ClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the API on this run's test database and Redis."""
    async with api_client_for(settings) as client:
        yield client
