"""Fixtures: the Stripe sandbox and a webhook receiver, each served by uvicorn on a free
loopback port, and a gateway pointed at the sandbox over real HTTP. (The tests through the
reference app live with the project's tests, in ``tests/stripe/``.)"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from pixecom_stripe.client import shared_ssl_context
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox import SandboxConfig, create_sandbox_app
from pixecom_stripe.testing import running_sandbox
from stripe_support import WEBHOOK_SECRET, Receiver, RunningSandbox, settings_for

from pixecom_core.providers import PaymentRequest
from pixecom_core.testing.loopback import serve

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]

#: Only loopback HTTP here, but httpx builds a TLS context per client unless given one.
TLS = shared_ssl_context()


@pytest.fixture(scope="session")
async def sandbox_url() -> AsyncIterator[str]:
    """One sandbox server for the run (starting and stopping uvicorn costs ~0.2 s)."""
    config = SandboxConfig(webhook_secrets=[WEBHOOK_SECRET], include_v0_signature=True, seed=7)
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
async def receiver_server() -> AsyncIterator[Receiver]:
    app = FastAPI()
    state = Receiver(url="")

    @app.post("/webhooks/stripe")
    async def receive(request: Request) -> Response:
        state.requests.append(
            ({k.lower(): v for k, v in request.headers.items()}, await request.body())
        )
        answer = state.next_answer()
        if answer.delay_seconds:
            await asyncio.sleep(answer.delay_seconds)
        return Response(status_code=answer.status_code)

    async with serve(app) as url:
        state.url = f"{url}/webhooks/stripe"
        yield state


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    """A webhook endpoint on loopback that answers 200 and records every request."""
    receiver_server.requests.clear()
    receiver_server.status_code = 200
    receiver_server.script.clear()
    return receiver_server
