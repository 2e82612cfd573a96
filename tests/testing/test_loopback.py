"""``LoopbackServer``: the one helper tests and the conformance kit serve ASGI apps with."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from pixecom_core.testing.loopback import LoopbackServer, LoopbackServerError, serve, serving


def hello_app(events: list[str] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if events is not None:
            events.append("startup")
        yield
        if events is not None:
            events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def test_a_sync_block_serves_real_http_and_frees_the_port_after() -> None:
    server = LoopbackServer(hello_app())
    url = server.url  # known before the server starts: a sandbox may need its own URL

    with server:
        assert httpx.get(f"{url}/hello").json() == {"hello": "world"}

    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/hello", timeout=2)


async def test_an_async_block_serves_without_blocking_the_loop() -> None:
    async with serve(hello_app()) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/hello")).status_code == 200


def test_lifespan_on_runs_startup_and_shutdown() -> None:
    events: list[str] = []

    with serving(hello_app(events), lifespan="on") as url:
        assert events == ["startup"]
        assert httpx.get(f"{url}/hello").status_code == 200

    assert events == ["startup", "shutdown"]


def test_a_failing_startup_is_reported_not_waited_for() -> None:
    @asynccontextmanager
    async def broken(_: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("the database is not there")
        yield

    server = LoopbackServer(FastAPI(lifespan=broken), lifespan="on", start_timeout_seconds=20)

    with pytest.raises(LoopbackServerError, match="exited before it started"):
        server.start()
    server.stop()  # safe after a failed start


def test_https_needs_both_the_certificate_and_its_key() -> None:
    with pytest.raises(ValueError, match="both ssl_certfile and ssl_keyfile"):
        LoopbackServer(hello_app(), ssl_certfile="server.pem")
