"""Automatic deliveries the endpoint does not answer with 2xx are retried, as Stripe retries
them: on a (compressed) schedule, until answered, and never after shutdown (the kit's own
tests cover reset). Real HTTP on loopback; waits poll with a deadline."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
import stripe
from fastapi import FastAPI
from pixecom_stripe.sandbox import SandboxConfig, create_sandbox_app
from pixecom_stripe.settings import SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS
from stripe_support import WEBHOOK_SECRET, RunningSandbox, received_events

from pixecom_core.testing.loopback import serve
from pixecom_core.testing.sandbox_kit import WebhookReceiver

INTENT_FORM = {"amount": "2000", "currency": "usd"}
#: A schedule short enough for tests: three retries 50 ms apart.
QUICK: list[float] = [0.05, 0.05, 0.05]
#: How long nothing must arrive for "no more attempts": several times any delay used.
QUIET_SECONDS = 0.6
DEADLINE_SECONDS = 5.0


async def new_event(sandbox: RunningSandbox) -> str:
    """Create a PaymentIntent: exactly one event (``payment_intent.created``); its id."""
    created = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM)
    assert created.status_code == 200, created.text
    [event] = await sandbox.events("payment_intent.created")
    assert event["data"]["object"]["id"] == created.json()["id"]
    return str(event["id"])


async def attempts(receiver: WebhookReceiver, event_id: str, count: int) -> int:
    """Wait until ``count`` attempts to deliver ``event_id`` arrived; how many did."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while len(received_events(receiver, event_id)) < count:
            await asyncio.sleep(0.01)
    return len(received_events(receiver, event_id))


async def quiet_attempts(receiver: WebhookReceiver, event_id: str) -> int:
    """The number of attempts once none arrived for ``QUIET_SECONDS``."""
    await asyncio.sleep(QUIET_SECONDS)
    return len(received_events(receiver, event_id))


async def retrying_event(sandbox: RunningSandbox, receiver: WebhookReceiver) -> str:
    """An event whose first automatic delivery the receiver refused (500), with retries
    scheduled every 0.2 s; the receiver still answers 500."""
    await sandbox.configure(
        webhook_url=receiver.endpoint, auto_deliver=True, retry_delays_seconds=[0.2] * 10
    )
    receiver.status_code = 500
    event_id = await new_event(sandbox)
    await attempts(receiver, event_id, 1)
    return event_id


async def listed(sandbox: RunningSandbox, *, pending_only: bool = False) -> dict[str, Any]:
    """The event log by id, with the sandbox's ``delivered`` flag."""
    response = await sandbox.control.get(
        "/_sandbox/events", params={"pending_only": str(pending_only).lower()}
    )
    response.raise_for_status()
    return {event["id"]: event for event in response.json()["data"]}


async def delivered(sandbox: RunningSandbox, event_id: str) -> bool:
    """Wait (with a deadline) for the sandbox to count ``event_id`` as delivered."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if (await listed(sandbox))[event_id]["delivered"]:
            return True
        await asyncio.sleep(0.01)
    return False


# -- retries ------------------------------------------------------------------------------


async def test_a_refused_delivery_is_retried_until_the_endpoint_answers_2xx(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(
        webhook_url=receiver.endpoint, auto_deliver=True, retry_delays_seconds=QUICK
    )
    receiver.script = [500, 503]

    event_id = await new_event(sandbox)

    assert await attempts(receiver, event_id, 3) == 3
    assert await delivered(sandbox, event_id)
    assert await quiet_attempts(receiver, event_id) == 3
    assert await listed(sandbox, pending_only=True) == {}
    # every attempt is signed like the first
    for webhook in receiver.received:
        assert stripe.WebhookSignature.verify_header(
            webhook.body.decode("utf-8"),
            webhook.headers["stripe-signature"],
            WEBHOOK_SECRET,
            tolerance=300,
        )


async def test_an_endpoint_that_never_answers_2xx_gets_every_retry_then_none(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(
        webhook_url=receiver.endpoint, auto_deliver=True, retry_delays_seconds=QUICK
    )
    receiver.status_code = 500

    event_id = await new_event(sandbox)

    assert await attempts(receiver, event_id, 1 + len(QUICK)) == 1 + len(QUICK)
    assert await quiet_attempts(receiver, event_id) == 1 + len(QUICK)
    pending = await listed(sandbox, pending_only=True)
    assert list(pending) == [event_id]
    assert pending[event_id]["delivered"] is False
    [sent] = await sandbox.events()
    assert sent["pending_webhooks"] == 1
    # The event can still be sent on demand, which reports the answer and retries nothing.
    receiver.status_code = 200
    response = await sandbox.control.post("/_sandbox/deliver", json={})
    assert [(d["event_id"], d["status_code"]) for d in response.json()["deliveries"]] == [
        (event_id, 200)
    ]
    assert await listed(sandbox, pending_only=True) == {}
    assert await quiet_attempts(receiver, event_id) == 2 + len(QUICK)


async def test_an_empty_schedule_means_a_single_attempt(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(
        webhook_url=receiver.endpoint, auto_deliver=True, retry_delays_seconds=[]
    )
    receiver.status_code = 500

    event_id = await new_event(sandbox)

    assert await attempts(receiver, event_id, 1) == 1
    assert await quiet_attempts(receiver, event_id) == 1
    assert list(await listed(sandbox, pending_only=True)) == [event_id]


async def test_a_delivery_not_answered_in_time_is_retried(receiver: WebhookReceiver) -> None:
    app = create_sandbox_app(_retrying_config(receiver, QUICK))
    app.state.account.outbox.timeout_seconds = 0.2
    # The first answer comes long after the sandbox stopped waiting for it.
    receiver.script = [(200, 1.0)]

    async with _sandbox_at(app) as sandbox:
        event_id = await new_event(sandbox)

        assert await attempts(receiver, event_id, 2) == 2
        assert await delivered(sandbox, event_id)
        assert await quiet_attempts(receiver, event_id) == 2


async def test_a_dropped_connection_is_retried(sandbox: RunningSandbox) -> None:
    async with _dropping_endpoint(drops=2) as (url, received):
        await sandbox.configure(webhook_url=url, auto_deliver=True, retry_delays_seconds=QUICK)

        event_id = await new_event(sandbox)

        assert await delivered(sandbox, event_id)
        assert [f'"id": "{event_id}"'.encode() in body for body in received] == [True] * 3


async def test_an_event_delivered_on_demand_meanwhile_is_not_retried(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    event_id = await retrying_event(sandbox, receiver)

    receiver.status_code = 200
    response = await sandbox.control.post("/_sandbox/deliver", json={"event_ids": [event_id]})
    assert [d["status_code"] for d in response.json()["deliveries"]] == [200]
    sent = len(received_events(receiver, event_id))

    assert await quiet_attempts(receiver, event_id) == sent


async def test_deliveries_on_demand_are_never_retried(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint, retry_delays_seconds=QUICK)
    event_id = await new_event(sandbox)
    receiver.status_code = 500

    response = await sandbox.control.post("/_sandbox/deliver", json={})

    assert [(d["event_id"], d["status_code"]) for d in response.json()["deliveries"]] == [
        (event_id, 500)
    ]
    assert await quiet_attempts(receiver, event_id) == 1


async def test_turning_auto_delivery_off_stops_the_retries(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    event_id = await retrying_event(sandbox, receiver)

    await sandbox.configure(auto_deliver=False)
    sent = len(received_events(receiver, event_id))

    assert await quiet_attempts(receiver, event_id) == sent
    assert list(await listed(sandbox, pending_only=True)) == [event_id]


# -- shutdown -----------------------------------------------------------------------------


async def test_shutdown_cancels_pending_retries(receiver: WebhookReceiver) -> None:
    app = create_sandbox_app(_retrying_config(receiver, [0.2] * 10))
    receiver.status_code = 500

    async with _sandbox_at(app, lifespan="on") as sandbox:
        event_id = await new_event(sandbox)
        await attempts(receiver, event_id, 1)
    sent = len(received_events(receiver, event_id))

    assert app.state.account.outbox.automatic_deliveries == 0
    assert sent < 1 + 10
    assert await quiet_attempts(receiver, event_id) == sent


# -- configuration ------------------------------------------------------------------------


async def test_the_schedule_is_configurable_and_reset_restores_it(
    sandbox: RunningSandbox,
) -> None:
    shown = (await sandbox.control.get("/_sandbox/config")).json()
    assert shown["retry_delays_seconds"] == list(SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS)

    await sandbox.configure(retry_delays_seconds=[0.5, 1.5])
    changed = (await sandbox.control.get("/_sandbox/config")).json()
    refused = await sandbox.control.post("/_sandbox/config", json={"retry_delays_seconds": [-1]})
    await sandbox.control.post("/_sandbox/reset")
    restored = (await sandbox.control.get("/_sandbox/config")).json()

    assert changed["retry_delays_seconds"] == [0.5, 1.5]
    assert refused.status_code == 422
    assert restored["retry_delays_seconds"] == list(SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [("0.5, 1,2", [0.5, 1.0, 2.0]), ("[3, 6]", [3.0, 6.0]), ("[]", []), ("", [])],
)
def test_the_schedule_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str, expected: list[float]
) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_RETRY_DELAYS_SECONDS", variable)

    assert SandboxConfig.from_environment().retry_delays_seconds == expected


def test_the_default_schedule_is_a_compressed_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIXECOM_STRIPE_SANDBOX_RETRY_DELAYS_SECONDS", raising=False)

    delays = SandboxConfig.from_environment().retry_delays_seconds

    assert delays == list(SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS) == [1, 2, 4, 8, 16, 30, 60]
    assert delays == SandboxConfig().retry_delays_seconds


# -- helpers ------------------------------------------------------------------------------


def _retrying_config(receiver: WebhookReceiver, delays: list[float]) -> SandboxConfig:
    """A sandbox of a test's own that delivers to ``receiver`` from the start."""
    return SandboxConfig(
        webhook_url=receiver.endpoint,
        webhook_secrets=[WEBHOOK_SECRET],
        auto_deliver=True,
        retry_delays_seconds=delays,
    )


@asynccontextmanager
async def _sandbox_at(
    app: FastAPI, *, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[RunningSandbox]:
    """Serve a sandbox app of the test's own (stopped, with its lifespan's shutdown when
    ``lifespan`` is on, when the block ends)."""
    async with (
        serve(app, lifespan=lifespan) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as control,
        httpx.AsyncClient(
            base_url=url,
            timeout=10,
            headers={"Authorization": "Bearer sk_test_retries_0000"},
        ) as api,
    ):
        yield RunningSandbox(url=url, control=control, api=api)


@asynccontextmanager
async def _dropping_endpoint(*, drops: int) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An endpoint that reads each request and, for the first ``drops`` of them, closes the
    connection without answering (a transport error for the sender); then answers 200.
    Yields its URL and the bodies it read."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length[1])) if length else b""
            received.append(body)
            if len(received) > drops:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/webhooks/stripe", received
    finally:
        server.close()
        await server.wait_closed()
