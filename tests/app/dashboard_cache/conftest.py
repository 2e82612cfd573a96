"""Fixtures for the dashboard cache tests: an app (with the fakepay gateway) whose SQL
statements and resources a test can reach, and sellers whose rows tests arrange."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager

from pixecom_core.plugins import create_plugin_manager
from pixecom_core.settings import Settings
from reference_app.api import create_app
from tests.app.catalog.conftest import InstrumentedApi, LifespanStateProbe
from tests.app.conftest import PASSWORD, SignedUpSeller
from tests.app.sellers_data.conftest import Tenant
from tests.app.sellers_data.rows import Connection, SellerRows
from tests.ledger import fakepay

ApiFactory = Callable[[Settings], AbstractAsyncContextManager[InstrumentedApi]]


@pytest.fixture
def api_for() -> ApiFactory:
    """Build the API (with the fakepay test gateway) for the given settings, run its
    lifespan, yield its client and resources."""

    @asynccontextmanager
    async def open_api(settings: Settings) -> AsyncIterator[InstrumentedApi]:
        manager = create_plugin_manager(load_entry_points=False, plugins=[fakepay])
        probe = LifespanStateProbe(create_app(settings, plugin_manager=manager))
        async with (
            LifespanManager(probe) as lifespan,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=lifespan.app, raise_app_exceptions=False),
                base_url="http://pixecom.test",
            ) as client,
        ):
            yield InstrumentedApi(client=client, resources=probe.resources)

    return open_api


@pytest.fixture
async def api(app_settings: Settings, api_for: ApiFactory) -> AsyncIterator[InstrumentedApi]:
    """The API on this test's settings."""
    async with api_for(app_settings) as instrumented:
        yield instrumented


@pytest.fixture
def owner(database_owner_dsn: str) -> Iterator[Connection]:
    """An autocommit owner connection (rows written behind the API's back)."""
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        yield conn


NewTenant = Callable[[], Awaitable[Tenant]]


@pytest.fixture
def new_tenant(api: InstrumentedApi, admin_key: str, owner: Connection) -> NewTenant:
    """Sign a seller up through ``api``, log it in, and give it a row writer."""

    async def create() -> Tenant:
        email = f"owner-{uuid.uuid4().hex[:12]}@example.com"
        created = await api.client.post(
            "/auth/signup",
            json={
                "seller_name": f"Seller {email}",
                "reporting_currency": "USD",
                "email": email,
                "password": PASSWORD,
            },
            headers={"X-Admin-Key": admin_key},
        )
        assert created.status_code == 201, created.text
        login = await api.client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        signed_up = SignedUpSeller(
            seller_id=uuid.UUID(created.json()["seller"]["id"]),
            email=email,
            password=PASSWORD,
            access_token=login.json()["access_token"],
            refresh_token=login.json()["refresh_token"],
        )
        return Tenant(api=signed_up, rows=SellerRows(owner, signed_up.seller_id))

    return create
