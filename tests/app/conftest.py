"""Fixtures for API tests: an app with its lifespan running, driven over ASGI."""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from pixecom_core.plugins import create_plugin_manager
from pixecom_core.settings import Settings
from reference_app.api import create_app
from tests.ledger import fakepay

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]

#: A password that passes sign-up's length rule.
PASSWORD = "correct horse battery staple"


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def admin_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def app_settings(settings: Settings, admin_key: str) -> Settings:
    """The run's settings with a Redis key prefix of this test's own, so counters,
    lockouts and caches of one test never meet another's (or another run's)."""
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(admin_key),
        }
    )


@pytest.fixture
def api_client_for() -> ClientFactory:
    """Build an app for the given settings, run its lifespan, yield an HTTP client."""

    @asynccontextmanager
    async def open_client(
        settings: Settings, *, plugins: Sequence[object] | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        # Core's tests never depend on which plugin distributions happen to be installed:
        # the app gets the fakepay test gateway unless a test says otherwise.
        manager = create_plugin_manager(
            load_entry_points=False, plugins=[fakepay] if plugins is None else plugins
        )
        app = create_app(settings, plugin_manager=manager)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                # An unhandled error must come back as the 500 a client would see, not
                # be raised into the test.
                transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
                base_url="http://pixecom.test",
            ) as client,
        ):
            yield client

    return open_client


@pytest.fixture
async def api_client(
    app_settings: Settings, api_client_for: ClientFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the API on this run's test database and Redis."""
    async with api_client_for(app_settings) as client:
        yield client


@dataclass(frozen=True)
class SignedUpSeller:
    """A seller created through the API, logged in."""

    seller_id: uuid.UUID
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


NewSeller = Callable[..., Awaitable[SignedUpSeller]]


@pytest.fixture
def new_seller(api_client: httpx.AsyncClient, admin_key: str) -> NewSeller:
    """Sign a fresh seller up through the API and log it in."""

    async def create(
        *, currency: str = "USD", client: httpx.AsyncClient | None = None
    ) -> SignedUpSeller:
        http = client or api_client
        email = f"owner-{uuid.uuid4().hex[:12]}@example.com"
        created = await http.post(
            "/auth/signup",
            json={
                "seller_name": f"Seller {email}",
                "reporting_currency": currency,
                "email": email,
                "password": PASSWORD,
            },
            headers={"X-Admin-Key": admin_key},
        )
        assert created.status_code == 201, created.text
        tokens = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        body = tokens.json()
        return SignedUpSeller(
            seller_id=uuid.UUID(created.json()["seller"]["id"]),
            email=email,
            password=PASSWORD,
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
        )

    return create
