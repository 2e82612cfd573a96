"""Fixtures: the Stripe sandbox on a free loopback port and the reference app's settings on
this run's database (the ``database`` and ``settings`` fixtures of ``tests/conftest.py``)."""

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from pixecom_stripe.client import shared_ssl_context
from pixecom_stripe.sandbox import SandboxConfig, create_sandbox_app
from pixecom_stripe.testing import (
    CONNECT_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    RunningSandbox,
    running_sandbox,
)
from pydantic import SecretStr

from pixecom_core.settings import Settings
from pixecom_core.testing.loopback import serve

#: Only loopback HTTP here, but httpx builds a TLS context per client unless given one.
TLS = shared_ssl_context()


@pytest.fixture(scope="session")
async def sandbox_url() -> AsyncIterator[str]:
    """One sandbox server for the run (starting and stopping uvicorn costs ~0.2 s)."""
    config = SandboxConfig(
        webhook_secrets=[WEBHOOK_SECRET],
        connect_webhook_secrets=[CONNECT_WEBHOOK_SECRET],
        include_v0_signature=True,
        seed=7,
    )
    async with serve(create_sandbox_app(config)) as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[RunningSandbox]:
    """The sandbox, reset to its starting configuration with no objects or events."""
    async with running_sandbox(sandbox_url) as running:
        yield running


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """The reference app's settings for one test: its own Redis keys and admin API key."""
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-stripe-test:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(secrets.token_urlsafe(48)),
        }
    )
