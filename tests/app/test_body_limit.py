"""Request-body limits (SEC-3): oversized bodies are refused unread.

The 20 MiB tests run the real app under uvicorn on a loopback socket, so the client
really streams and the server really could buffer; a wrapper outside the app counts the
body bytes the app pulled from the server, which is what would grow if the body were
read whole.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixecom_core.settings import Settings
from pixecom_core.testing.loopback import serving
from reference_app.api import create_app
from reference_app.api.body_limit import (
    BODY_LIMIT_EXTENSION,
    BodyLimitMiddleware,
    MiB,
    body_limit,
    route_body_limits,
)
from tests.app.conftest import PASSWORD

KiB = 1024
BIG = 20 * MiB
PIECE = 64 * KiB


class BodyBytesCounter:
    """ASGI wrapper counting the request-body bytes the wrapped app received."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.body_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.body_bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


class Sender:
    """A request body of ``size`` bytes, yielded in pieces; remembers how much went out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        piece = b"x" * PIECE
        while self.sent < self.size:
            chunk = piece[: self.size - self.sent]
            self.sent += len(chunk)
            yield chunk


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"]
    return error


@pytest.fixture
def served(app_settings: Settings) -> Iterator[tuple[str, BodyBytesCounter]]:
    """The real app, behind a body-byte counter, on a loopback port."""
    counter = BodyBytesCounter(create_app(app_settings))
    with serving(counter, lifespan="on") as base_url:
        yield base_url, counter


def still_serves(base_url: str, admin_key: str) -> None:
    """A fresh connection gets normal answers, body-carrying requests included."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        email = f"after-413-{uuid.uuid4().hex[:12]}@example.com"
        created = client.post(
            "/auth/signup",
            json={"seller_name": "After", "email": email, "password": PASSWORD},
            headers={"X-Admin-Key": admin_key},
        )
        assert created.status_code == 201, created.text
        login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text


def test_a_20_mib_body_with_content_length_is_refused_unread(
    served: tuple[str, BodyBytesCounter], app_settings: Settings, admin_key: str
) -> None:
    base_url, counter = served
    body = Sender(BIG)

    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        response = client.post(
            "/auth/login",
            content=iter(body),
            headers={"Content-Type": "application/json", "Content-Length": str(BIG)},
        )
    elapsed = time.monotonic() - started

    error = assert_error(response, 413, "payload_too_large")
    assert str(app_settings.max_body_bytes) in error["message"]
    assert response.headers["connection"] == "close"
    # The app read nothing, and the server answered and hung up long before the client
    # could push 20 MiB (the socket buffers on loopback hold a few MiB at most).
    assert counter.body_bytes == 0
    assert body.sent < BIG
    assert elapsed < 5
    still_serves(base_url, admin_key)


def test_a_20_mib_chunked_body_is_cut_off_at_the_limit(
    served: tuple[str, BodyBytesCounter], app_settings: Settings, admin_key: str
) -> None:
    base_url, counter = served
    body = Sender(BIG)

    with httpx.Client(base_url=base_url, timeout=10) as client:
        request = client.build_request(
            "POST",
            "/auth/login",
            content=iter(body),
            headers={"Content-Type": "application/json"},
        )
        assert request.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in request.headers
        response = client.send(request)

    assert_error(response, 413, "payload_too_large")
    assert response.headers["connection"] == "close"
    # Reading stopped at the message that crossed the limit; uvicorn hands the body over
    # as it arrives (its flow control holds some 64 KiB), so little lies past the limit.
    limit = app_settings.max_body_bytes
    assert limit < counter.body_bytes <= limit + 4 * PIECE, counter.body_bytes
    assert body.sent < BIG
    still_serves(base_url, admin_key)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_within_the_limit_are_served(
    served: tuple[str, BodyBytesCounter], app_settings: Settings, chunked: bool
) -> None:
    base_url, _ = served
    # Just under the limit: read whole and judged by the route (the password is too long).
    padding = app_settings.max_body_bytes - 100
    body = json.dumps({"email": "a@example.com", "password": "p" * padding}).encode()
    assert len(body) <= app_settings.max_body_bytes

    with httpx.Client(base_url=base_url, timeout=10) as client:
        response = client.post(
            "/auth/login",
            content=iter([body]) if chunked else body,
            headers={"Content-Type": "application/json"},
        )

    error = assert_error(response, 422, "validation_failed")
    assert [problem["location"] for problem in error["details"]] == [["body", "password"]]


# -- the middleware on its own: per-route limits, malformed lengths -------------------

SMALL = 2 * KiB


def tiny_app() -> FastAPI:
    """A default limit of 2 KiB; /uploads/{name} takes 64 KiB, /tight only 100 bytes, and
    /v1/files/{path} (in an included router, hidden from the schema) 8 KiB."""
    app = FastAPI()
    app.state.calls = 0

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        app.state.calls += 1
        return {"bytes": len(await request.body())}

    @app.post("/uploads/{name}", openapi_extra=body_limit(64 * KiB))
    async def upload(name: str, request: Request) -> dict[str, Any]:
        app.state.calls += 1
        return {"name": name, "bytes": len(await request.body())}

    @app.post("/tight", openapi_extra=body_limit(100))
    async def tight(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    files = APIRouter(prefix="/files")

    @files.put("/{path:path}", openapi_extra=body_limit(8 * KiB), include_in_schema=False)
    async def put_file(path: str, request: Request) -> dict[str, Any]:
        return {"path": path, "bytes": len(await request.body())}

    app.include_router(files, prefix="/v1")
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=SMALL,
        route_limits=lambda: route_body_limits(app.routes),
    )
    return app


@pytest.fixture
async def tiny_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tiny_app()), base_url="http://tiny.test"
    ) as client:
        yield client


async def test_a_route_limit_allows_larger_bodies_on_that_route_only(
    tiny_client: httpx.AsyncClient,
) -> None:
    ten_kib = b"y" * (10 * KiB)

    upload = await tiny_client.post("/uploads/logo.png", content=ten_kib)
    echo = await tiny_client.post("/echo", content=ten_kib)
    too_big = await tiny_client.post("/uploads/logo.png", content=b"y" * (65 * KiB))
    other_path = await tiny_client.post("/uploads/a/b", content=ten_kib)  # no such route

    assert upload.status_code == 200, upload.text
    assert upload.json() == {"name": "logo.png", "bytes": 10 * KiB}
    assert_error(echo, 413, "payload_too_large")
    assert str(SMALL) in echo.json()["error"]["message"]
    assert_error(too_big, 413, "payload_too_large")
    assert str(64 * KiB) in too_big.json()["error"]["message"]
    assert_error(other_path, 413, "payload_too_large")


async def test_a_route_limit_can_also_be_tighter(tiny_client: httpx.AsyncClient) -> None:
    assert (await tiny_client.post("/tight", content=b"z" * 100)).status_code == 200
    assert_error(await tiny_client.post("/tight", content=b"z" * 101), 413, "payload_too_large")


async def test_route_limits_hold_in_included_routers_with_path_converters(
    tiny_client: httpx.AsyncClient,
) -> None:
    within = await tiny_client.put("/v1/files/a/b/c.txt", content=b"f" * (8 * KiB))
    over = await tiny_client.put("/v1/files/a/b/c.txt", content=b"f" * (8 * KiB + 1))
    other_method = await tiny_client.post("/v1/files/a/b/c.txt", content=b"f" * (4 * KiB))

    assert within.json() == {"path": "a/b/c.txt", "bytes": 8 * KiB}
    assert_error(over, 413, "payload_too_large")
    assert_error(other_method, 413, "payload_too_large")  # the default: POST declares none


def test_route_body_limits_lists_every_declaration() -> None:
    declared = {(r.method, r.path): r.max_bytes for r in route_body_limits(tiny_app().routes)}

    assert declared == {
        ("POST", "/uploads/{name}"): 64 * KiB,
        ("POST", "/tight"): 100,
        ("PUT", "/v1/files/{path:path}"): 8 * KiB,
    }


async def test_route_limits_are_published_in_openapi(tiny_client: httpx.AsyncClient) -> None:
    paths = (await tiny_client.get("/openapi.json")).json()["paths"]

    assert paths["/uploads/{name}"]["post"][BODY_LIMIT_EXTENSION] == 64 * KiB
    assert BODY_LIMIT_EXTENSION not in paths["/echo"]["post"]


async def test_a_chunked_body_over_a_route_limit_is_refused(
    tiny_client: httpx.AsyncClient,
) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"w" * (2 * KiB)

    within = await tiny_client.post("/uploads/x", content=b"".join([b"w" * (2 * KiB)] * 20))
    over = await tiny_client.post("/uploads/x", content=pieces())

    assert within.status_code == 200
    assert_error(over, 413, "payload_too_large")


def test_body_limit_refuses_nonsense() -> None:
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="number of bytes"):
            body_limit(bad)  # type: ignore[arg-type]


async def call(app: ASGIApp, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Message:
    """Call ``app`` directly (no HTTP parser in between); the response start message."""
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"tiny.test"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("tiny.test", 80),
    }
    await app(scope, receive, send)
    start = sent[0]
    start["body"] = b"".join(m.get("body", b"") for m in sent[1:])
    return start


@pytest.mark.parametrize(
    "values",
    [[b"abc"], [b"-5"], [b""], [b"1e3"], [b"12", b"13"], [b"12, 13"], [b"\xd9\xa3"]],
    ids=["letters", "negative", "empty", "exponent", "two-headers", "list", "arabic-digit"],
)
async def test_a_malformed_content_length_is_400(values: list[bytes]) -> None:
    app = tiny_app()

    start = await call(app, [(b"content-length", value) for value in values])

    assert start["status"] == 400
    assert json.loads(start["body"])["error"]["code"] == "invalid_content_length"
    assert app.state.calls == 0


async def test_repeated_equal_content_lengths_are_accepted() -> None:
    app = tiny_app()

    start = await call(app, [(b"content-length", b"3"), (b"content-length", b"3, 3")], b"abc")

    assert start["status"] == 200
    assert json.loads(start["body"]) == {"bytes": 3}


async def test_an_absurd_content_length_is_413_not_a_crash() -> None:
    app = tiny_app()

    start = await call(app, [(b"content-length", b"9" * 5000)])

    assert start["status"] == 413
    assert app.state.calls == 0


async def test_a_body_longer_than_its_declared_length_is_still_counted() -> None:
    # A server that does not enforce Content-Length cannot smuggle a bigger body past us.
    app = tiny_app()

    start = await call(app, [(b"content-length", b"10")], b"v" * (SMALL + 1))

    assert start["status"] == 413
