"""Fixtures for the schemathesis run: the real app on a loopback port, and a seller.

The server runs once for the whole run (a Hypothesis test may only use fixtures that
outlive it), on this run's test database (``settings`` from ``tests/conftest.py``).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from pixecom_core.settings import Settings
from pixecom_core.testing.loopback import serving
from reference_app.api import create_app
from tests.app.conftest import PASSWORD

# Installed by the `api_fuzz` nox session, not by the `test` extra: without it this
# folder is skipped (the `tests` session ignores it anyway).
schemathesis = pytest.importorskip("schemathesis", reason='run it: nox -s "api_fuzz(system)"')

if TYPE_CHECKING:
    from schemathesis import BaseSchema

#: Limits high enough that the fuzzer sees the routes' answers, not 429s (the limits
#: themselves are tested in tests/app).
GENEROUS_RATE = "1000000/minute"


@pytest.fixture(scope="session")
def fuzz_settings(settings: Settings) -> Settings:
    """The run's settings with Redis keys of their own and limits out of the way."""
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-fuzz:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(secrets.token_urlsafe(48)),
            "seller_request_rate": GENEROUS_RATE,
            "public_ip_rate": GENEROUS_RATE,
            "login_ip_rate": GENEROUS_RATE,
        }
    )


@pytest.fixture(scope="session")
def api_base_url(fuzz_settings: Settings) -> Iterator[str]:
    """The real app served by uvicorn on a free loopback port."""
    with serving(create_app(fuzz_settings), lifespan="on") as base_url:
        yield base_url


@pytest.fixture(scope="session")
def seller_headers(api_base_url: str, fuzz_settings: Settings) -> dict[str, str]:
    """An ``Authorization`` header of a freshly signed-up seller."""
    assert fuzz_settings.admin_api_key is not None
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=api_base_url, timeout=10) as client:
        created = client.post(
            "/auth/signup",
            json={"seller_name": "Fuzz seller", "email": email, "password": PASSWORD},
            headers={"X-Admin-Key": fuzz_settings.admin_api_key.get_secret_value()},
        )
        assert created.status_code == 201, created.text
        login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture(scope="session")
def api_schema(api_base_url: str) -> BaseSchema:
    """The app's OpenAPI document, as the server publishes it."""
    schema: BaseSchema = schemathesis.openapi.from_url(f"{api_base_url}/openapi.json")
    return schema


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's ``from_fixture`` reads ``Node._nodeid``, which pytest 9.2 no
    longer has (``AttributeError: 'Function' object has no attribute '_nodeid'``);
    give it one. Drop this once schemathesis reads the public ``nodeid``."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
