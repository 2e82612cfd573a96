"""Every failure answers in the one error shape, and none leaks server internals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from pixecom_core.settings import Settings
from reference_app.api import create_app

LOGIN = "/auth/login"
SECRET_DETAIL = "connection string postgresql://admin:hunter2@db.internal/prod"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "request_id", "details"}
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"]
    return error


async def test_malformed_json_is_422_with_details(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(
        LOGIN,
        content=b'{"email": "a@example.com", "password": ',
        headers={"Content-Type": "application/json"},
    )

    error = assert_error(response, 422, "validation_failed")
    [problem] = error["details"]
    assert problem["type"] == "json_invalid"
    assert problem["location"][0] == "body"
    assert problem["message"]


async def test_invalid_fields_are_listed_one_by_one(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(LOGIN, json={"email": "not-an-email"})

    error = assert_error(response, 422, "validation_failed")
    by_field = {tuple(problem["location"]): problem["type"] for problem in error["details"]}
    assert by_field[("body", "email")] == "value_error"
    assert by_field[("body", "password")] == "missing"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_json_body_under_another_content_type_is_not_parsed(
    api_client: httpx.AsyncClient, content_type: str | None
) -> None:
    # JSON is only read as JSON when declared so (no content sniffing): the body is
    # then one opaque value, which is not the object the route needs.
    headers = {"Content-Type": content_type} if content_type else {}
    response = await api_client.post(
        LOGIN, content=b'{"email": "a@example.com", "password": "x"}', headers=headers
    )

    error = assert_error(response, 422, "validation_failed")
    assert [problem["location"] for problem in error["details"]] == [["body"]]


async def test_an_unknown_route_is_404(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/no/such/route")

    assert_error(response, 404, "not_found")


async def test_a_wrong_method_is_405_with_allow(api_client: httpx.AsyncClient) -> None:
    response = await api_client.delete(LOGIN)

    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_the_clients_request_id_is_echoed(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/no/such/route", headers={"X-Request-ID": "req-42"})

    assert assert_error(response, 404, "not_found")["request_id"] == "req-42"


@pytest.fixture
async def failing_client(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus one test-only route that fails with an unexpected error."""
    app = create_app(app_settings)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_DETAIL)

    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False),
            base_url="http://pixecom.test",
        ) as client,
    ):
        yield client


async def test_an_unhandled_error_is_a_bare_500(
    failing_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await failing_client.get("/test-only/boom", headers={"X-Request-ID": "req-500"})

    error = assert_error(response, 500, "internal_error")
    assert error["request_id"] == "req-500"
    assert error["details"] == []
    for leak in ("RuntimeError", "hunter2", "Traceback", "boom", ".py"):
        assert leak not in response.text
    # The details went to the server log instead, under the same request id.
    logged = [r for r in caplog.records if r.levelname == "ERROR" and "req-500" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert logged[0].exc_info[1] is not None
    assert SECRET_DETAIL in str(logged[0].exc_info[1])
    # And the app keeps serving.
    assert (await failing_client.get("/healthz")).status_code == 200
