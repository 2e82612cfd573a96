"""Load shedding (SCALE-8): past ``max_in_flight`` requests, 503 at once with
``Retry-After`` and the shed header; webhooks and probes are never shed; the count never
leaks, also when a handler raises."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pixecom_core.settings import Settings
from reference_app.api import create_app
from reference_app.api.shedding import SHED_HEADER, LoadSheddingMiddleware, install_load_shedding


def _app(release: asyncio.Event, started: asyncio.Queue[str]) -> Starlette:
    async def slow(request: Request) -> Response:
        await started.put(request.url.path)
        await release.wait()
        return JSONResponse({"ok": True})

    async def boom(_request: Request) -> Response:
        raise RuntimeError("handler failed")

    return Starlette(
        routes=[
            Route("/orders", slow),
            Route("/webhooks/stripe", slow, methods=["POST"]),
            Route("/healthz", slow),
            Route("/boom", boom),
        ]
    )


async def test_requests_past_the_limit_are_shed_with_retry_after() -> None:
    release, started = asyncio.Event(), asyncio.Queue[str]()
    shedder = LoadSheddingMiddleware(_app(release, started), max_in_flight=2, retry_after_seconds=3)
    transport = httpx.ASGITransport(app=shedder)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        admitted = [asyncio.create_task(client.get("/orders")) for _ in range(2)]
        for _ in range(2):
            await asyncio.wait_for(started.get(), 5)
        assert shedder.in_flight == 2
        shed = await client.get("/orders")
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "3"
        assert shed.headers[SHED_HEADER] == "1"
        assert shed.json()["error"]["code"] == "overloaded"
        release.set()
        assert [r.status_code for r in await asyncio.gather(*admitted)] == [200, 200]
        assert shedder.in_flight == 0 and shedder.shed_total == 1
        assert (await client.get("/orders")).status_code == 200  # admitted again


async def test_webhooks_and_probes_are_never_shed() -> None:
    release, started = asyncio.Event(), asyncio.Queue[str]()
    shedder = LoadSheddingMiddleware(_app(release, started), max_in_flight=1)
    transport = httpx.ASGITransport(app=shedder)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        busy = asyncio.create_task(client.get("/orders"))
        await asyncio.wait_for(started.get(), 5)
        exempt = [
            asyncio.create_task(client.post("/webhooks/stripe", content=b"{}")),
            asyncio.create_task(client.get("/healthz")),
        ]
        for _ in exempt:
            await asyncio.wait_for(started.get(), 5)
        assert shedder.in_flight == 1  # exempt requests are not counted either
        release.set()
        answers = await asyncio.gather(busy, *exempt)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert shedder.shed_total == 0


async def test_a_failing_handler_releases_its_slot() -> None:
    shedder = LoadSheddingMiddleware(_app(asyncio.Event(), asyncio.Queue()), max_in_flight=1)
    transport = httpx.ASGITransport(app=shedder, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for _ in range(3):
            assert (await client.get("/boom")).status_code == 500
    assert shedder.in_flight == 0 and shedder.shed_total == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        LoadSheddingMiddleware(Starlette(), max_in_flight=0)


def test_zero_turns_shedding_off() -> None:
    app = Starlette()
    install_load_shedding(app, 0)
    assert not any(m.cls is LoadSheddingMiddleware for m in app.user_middleware)
    install_load_shedding(app, 5)
    assert [m.kwargs for m in app.user_middleware if m.cls is LoadSheddingMiddleware] == [
        {"max_in_flight": 5}
    ]


def test_the_api_sheds_at_the_configured_level(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"shed_max_in_flight": 7}))
    assert [m.kwargs for m in app.user_middleware if m.cls is LoadSheddingMiddleware] == [
        {"max_in_flight": 7}
    ]
    unshed = create_app(settings.model_copy(update={"shed_max_in_flight": 0}))
    assert not any(m.cls is LoadSheddingMiddleware for m in unshed.user_middleware)
