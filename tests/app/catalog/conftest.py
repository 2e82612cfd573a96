"""Fixtures for catalog and storefront API tests: sellers, small factories, and an app
whose SQL statements a test can count."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from starlette.types import ASGIApp, Receive, Scope, Send

from pixecom_core.settings import Settings
from reference_app.api import create_app
from reference_app.api.resources import AppResources
from tests.app.conftest import NewSeller, SignedUpSeller

Json = dict[str, Any]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """``response`` is an error of ``status`` in the one error shape, with ``code``."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"]


def unique_slug(prefix: str = "page") -> str:
    """A slug no other test (or run) uses: slugs are unique across all sellers."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unique_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:10].upper()}"


async def create_product(client: httpx.AsyncClient, seller: SignedUpSeller, **fields: Any) -> Json:
    """A product created through the API (201 asserted)."""
    body = {"sku": unique_sku(), "name": "Linen shirt", **fields}
    response = await client.post("/products", json=body, headers=seller.headers)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


async def create_sellpage(client: httpx.AsyncClient, seller: SignedUpSeller, **fields: Any) -> Json:
    """A sellpage created through the API (201 asserted)."""
    body = {"slug": unique_slug(), "title": "Summer sale", **fields}
    response = await client.post("/sellpages", json=body, headers=seller.headers)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


async def set_price(
    client: httpx.AsyncClient,
    seller: SignedUpSeller,
    product_id: str,
    price_minor: int,
    **fields: Any,
) -> Json:
    """A pricing rule appended through the API (201 asserted)."""
    body = {"price_minor": price_minor, "currency": "USD", **fields}
    response = await client.post(
        f"/products/{product_id}/prices", json=body, headers=seller.headers
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


@pytest.fixture
async def seller(new_seller: NewSeller) -> SignedUpSeller:
    return await new_seller()


@pytest.fixture
async def other_seller(new_seller: NewSeller) -> SignedUpSeller:
    return await new_seller()


class LifespanStateProbe:
    """An ASGI wrapper that keeps the lifespan state the server hands the app.

    Starlette fills that dict with what the lifespan yields (``{"resources": ...}``), so
    a test can reach the app's own engine and Redis client after startup without
    private attributes or patched globals.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.state = scope["state"]
        await self.app(scope, receive, send)

    @property
    def resources(self) -> AppResources:
        assert self.state is not None, "the app has not started"
        resources: AppResources = self.state["resources"]
        return resources


@dataclass(frozen=True)
class InstrumentedApi:
    """An HTTP client for a running app, and that app's resources."""

    client: httpx.AsyncClient
    resources: AppResources

    @contextmanager
    def sql_statements(self) -> Iterator[list[str]]:
        """Collect every SQL statement the app's engine sends while the block runs."""
        statements: list[str] = []

        def record(
            _conn: object,
            _cursor: object,
            statement: str,
            _parameters: object,
            _context: object,
            _executemany: bool,
        ) -> None:
            statements.append(statement)

        engine = self.resources.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", record)

    @contextmanager
    def redis_commands(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
        """Every command the app's Redis client sends while the block runs, by name (a
        pipeline's commands would not show: the hot paths use none)."""
        sent: list[Any] = []
        client = self.resources.redis
        original: Callable[..., Awaitable[Any]] = client.execute_command

        async def recording(*args: Any, **options: Any) -> Any:
            sent.append(args[0])
            return await original(*args, **options)

        with monkeypatch.context() as patch:
            patch.setattr(client, "execute_command", recording)
            yield sent


InstrumentedFactory = Callable[[Settings], AbstractAsyncContextManager[InstrumentedApi]]


@pytest.fixture
def instrumented_api_for() -> InstrumentedFactory:
    """Build an app for the given settings, run its lifespan, yield client and resources."""

    @asynccontextmanager
    async def open_api(settings: Settings) -> AsyncIterator[InstrumentedApi]:
        probe = LifespanStateProbe(create_app(settings))
        async with (
            LifespanManager(probe) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
                base_url="http://pixecom.test",
            ) as client,
        ):
            yield InstrumentedApi(client=client, resources=probe.resources)

    return open_api


@pytest.fixture
async def instrumented_api(
    app_settings: Settings, instrumented_api_for: InstrumentedFactory
) -> AsyncIterator[InstrumentedApi]:
    async with instrumented_api_for(app_settings) as api:
        yield api
