"""Fixtures: the Stripe sandbox and a webhook receiver, each served by uvicorn on a free
loopback port, and a gateway pointed at the sandbox over real HTTP. (The tests through the
reference app live with the project's tests, in ``tests/stripe/``.)"""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pixecom_stripe.client import shared_ssl_context
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox import SandboxConfig, create_sandbox_app
from pixecom_stripe.testing import running_sandbox
from stripe_support import CONNECT_WEBHOOK_SECRET, WEBHOOK_SECRET, RunningSandbox, settings_for

from pixecom_core.providers import PaymentRequest
from pixecom_core.testing.loopback import serve
from pixecom_core.testing.sandbox_kit import WebhookReceiver

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]

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
async def private_sandbox() -> AsyncIterator[RunningSandbox]:
    """A sandbox server of the test's own, for tests that leave requests running (latency)
    which must not land in the next test's shared sandbox."""
    config = SandboxConfig(webhook_secrets=[WEBHOOK_SECRET])
    async with serve(create_sandbox_app(config)) as url, running_sandbox(url) as running:
        yield running


@pytest.fixture
async def gateway(sandbox: RunningSandbox) -> AsyncIterator[StripeGateway]:
    gateway = StripeGateway(settings_for(sandbox.url))
    yield gateway
    await gateway.client.aclose()


@pytest.fixture
def make_request() -> Callable[..., PaymentRequest]:
    def make(**overrides: Any) -> PaymentRequest:
        values: dict[str, Any] = {
            "idempotency_key": f"checkout-{uuid.uuid4()}",
            "seller_id": uuid.uuid4(),
            "order_id": uuid.uuid4(),
            "amount_minor": 5_000,
            "currency": "EUR",
            "return_url": "https://shop.example/paid",
            "cancel_url": "https://shop.example/cart",
        }
        values.update(overrides)
        return PaymentRequest(**values)

    return make


@pytest.fixture(scope="session")
async def receiver_server() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver("/webhooks/stripe")
    async with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    """A webhook endpoint on loopback that answers 200 and records every request."""
    receiver_server.clear()
    return receiver_server
