"""Liveness and readiness probes against the real test database and Redis."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from pixecom_core.db.urls import conninfo
from pixecom_core.settings import Settings

# Matches the `api_client_for` fixture in conftest.py (fixtures are not imported).
ClientFactory = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_healthz_answers_alive(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_readyz_is_ready_when_database_and_redis_answer(
    api_client: httpx.AsyncClient,
) -> None:
    response = await api_client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["error"] is None
        assert check["duration_ms"] >= 0


async def test_readyz_is_503_and_names_redis_when_redis_is_unreachable(
    settings: Settings, api_client_for: ClientFactory, closed_port: int
) -> None:
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})

    async with api_client_for(unreachable) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["status"] == "failed"
    assert body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


async def test_readyz_is_503_and_names_database_when_postgres_is_unreachable(
    settings: Settings, api_client_for: ClientFactory, closed_port: int
) -> None:
    assert settings.database_url is not None
    dead_server = conninfo(settings.database_url, host="127.0.0.1", port=closed_port)
    unreachable = settings.model_copy(update={"database_url": dead_server})

    async with api_client_for(unreachable) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["status"] == "failed"
    assert body["checks"]["redis"]["status"] == "ok"


async def test_readyz_does_not_leak_connection_details(
    settings: Settings, api_client_for: ClientFactory, closed_port: int
) -> None:
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})

    async with api_client_for(unreachable) as client:
        response = await client.get("/readyz")

    assert str(closed_port) not in response.text
    assert "127.0.0.1" not in response.text


async def test_healthz_stays_200_while_dependencies_are_down(
    settings: Settings, api_client_for: ClientFactory, closed_port: int
) -> None:
    unreachable = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port}/0"})

    async with api_client_for(unreachable) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200


async def test_probes_are_documented_with_typed_models(api_client: httpx.AsyncClient) -> None:
    schema = (await api_client.get("/openapi.json")).json()

    readyz = schema["paths"]["/readyz"]["get"]["responses"]
    assert {"200", "503"} <= set(readyz)
    assert "ReadinessReport" in schema["components"]["schemas"]
    assert "LivenessReport" in schema["components"]["schemas"]
