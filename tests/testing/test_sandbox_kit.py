"""The sandbox kit's machinery, over real HTTP: the fault queue, settings and reset, and a
webhook outbox that signs, retries, duplicates and shuffles deliveries.

The control API as a plugin's sandbox exposes it is checked by the conformance kit
(``SandboxKitChecks``) for every plugin; these tests pin the parts a conformance run cannot
see: retry schedules, probabilities, what a delivery reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, SecretStr

from pixecom_core.testing.loopback import LoopbackServer
from pixecom_core.testing.sandbox_kit import (
    Answered,
    DeliverRequest,
    DeliveryRefused,
    Fault,
    FaultQueue,
    OutboxEvent,
    SandboxClock,
    SandboxKit,
    WebhookOutbox,
    WebhookReceiver,
    consent_error_page,
    consent_page,
    labelled_input,
    pause,
    public_settings,
    redirect_with,
    submit_consent,
)

SECRET = b"whsec_kit"


class Settings(BaseModel):
    latency_seconds: float = Field(default=0.0, ge=0, le=5)
    api_keys: list[str] = Field(default_factory=lambda: ["k1", "k2"])
    signing_secret: SecretStr = SecretStr("s3cret")
    webhook_url: str | None = None


class KitFault(Fault):
    kind: Literal["throttled", "transient", "auth", "server_error", "malformed", "hang"]


def receiver_answering(statuses: list[int] | None = None) -> WebhookReceiver:
    """A webhook endpoint at ``/hooks`` that answers with the next scripted status (then
    200)."""
    receiver = WebhookReceiver("/hooks")
    receiver.script.extend(statuses or [])
    return receiver


def sign(event: OutboxEvent, options: Mapping[str, Any]) -> Mapping[str, str]:
    secret = str(options.get("secret", SECRET.decode())).encode()
    digest = hmac.new(secret, event.body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-signature": digest}


def event_body(number: int) -> bytes:
    return json.dumps({"id": f"evt_{number}", "n": number}).encode()


async def wait_until(condition: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- faults ---------------------------------------------------------------------------------


def test_a_fault_answers_its_calls_then_is_used_up() -> None:
    queue: FaultQueue[KitFault] = FaultQueue()
    queue.add(KitFault(kind="throttled", operation="report", scope="42", times=2))

    assert queue.take("report", "7") is None  # another account
    assert queue.take("info", "42") is None  # another operation
    assert [queue.take("report", "42") is not None for _ in range(3)] == [True, True, False]
    assert len(queue) == 0


def test_faults_are_taken_in_order_and_the_queue_is_bounded() -> None:
    queue: FaultQueue[KitFault] = FaultQueue(limit=2)
    queue.add(KitFault(kind="auth"))
    queue.add(KitFault(kind="transient", operation="report"))

    with pytest.raises(Exception, match="at most 2"):
        queue.add(KitFault(kind="throttled"))
    assert queue.take("report").kind == "auth"  # type: ignore[union-attr]
    assert queue.take("report").kind == "transient"  # type: ignore[union-attr]


def test_a_probable_fault_fails_the_share_its_seed_decides() -> None:
    draws = iter([0.1, 0.9, 0.2, 0.8])
    queue: FaultQueue[KitFault] = FaultQueue(chance=lambda: next(draws))
    queue.add(KitFault(kind="transient", probability=0.5, times=10))

    outcomes = [queue.take() is not None for _ in range(4)]

    assert outcomes == [True, False, True, False]
    assert queue.pending()[0].times == 8  # only the calls that failed count


def test_a_fault_with_a_field_the_kit_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="colour"):
        KitFault.model_validate({"kind": "auth", "colour": "red"})
    with pytest.raises(ValueError):
        KitFault.model_validate({"kind": "meltdown"})


# -- the control API and transport faults, served ------------------------------------------


def kit_app(kit: SandboxKit[Settings, KitFault]) -> FastAPI:
    app = FastAPI()
    app.include_router(kit.router())

    def render(fault: KitFault) -> Response:
        return JSONResponse({"error": fault.kind}, fault.status or 500)

    @app.post("/v1/things")
    async def create_thing(request: Request) -> Response:
        refused, logged = await kit.intercept(request, "create", render=render, has_token=True)
        if refused is not None:
            return refused
        logged["body"] = (await request.body()).decode()  # still readable after the pause
        return JSONResponse({"id": "thing_1"})

    return app


@pytest.mark.asyncio
async def test_transport_faults_look_the_same_from_every_sandbox() -> None:
    kit = SandboxKit(config=Settings(), fault_model=KitFault)
    async with (
        LoopbackServer(kit_app(kit)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for fault in (
            {"kind": "server_error"},
            {"kind": "malformed"},
            {"kind": "hang", "hang_seconds": 0.05},
        ):
            assert (await http.post("/_sandbox/faults", json=fault)).status_code == 200

        answers = [await http.post("/v1/things") for _ in range(4)]

        assert [a.status_code for a in answers] == [502, 200, 504, 200]
        assert answers[0].headers["content-type"].startswith("text/html")
        with pytest.raises(ValueError):
            answers[1].json()
        assert answers[3].json() == {"id": "thing_1"}
        logged = (await http.get("/_sandbox/requests")).json()
        assert [(e["method"], e["path"], e["operation"]) for e in logged] == [
            ("POST", "/v1/things", "create")
        ] * 4


@pytest.mark.asyncio
async def test_intercept_renders_the_sandbox_s_faults_and_keeps_the_body_after_a_pause() -> None:
    kit = SandboxKit(config=Settings(latency_seconds=0.3), fault_model=KitFault)
    async with (
        LoopbackServer(kit_app(kit)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await http.post("/_sandbox/faults", json={"kind": "throttled", "status": 429})
        refused = await http.post("/v1/things", content=b"first")
        answered = await http.post("/v1/things", content=b"second")

    assert (refused.status_code, refused.json()) == (429, {"error": "throttled"})
    assert answered.json() == {"id": "thing_1"}
    logged = kit.requests.entries()
    assert [e.get("body") for e in logged] == [None, "second"]
    assert all(e["has_token"] and "scope" not in e for e in logged)


@pytest.mark.asyncio
async def test_a_call_still_waiting_when_the_sandbox_is_reset_takes_nothing_queued_after() -> None:
    """A client gave up on a slow call and the test moved on (reset, a new fault): the call
    waking up afterwards is answered 503 and leaves the new fault to the call it was
    queued for (it used to take it, a flaky failure of the next test)."""
    kit = SandboxKit(config=Settings(latency_seconds=0.5), fault_model=KitFault)
    async with (
        LoopbackServer(kit_app(kit)) as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        stale = asyncio.create_task(http.post("/v1/things", content=b"stale"))
        await wait_until(lambda: len(kit.requests.entries()) == 1)
        assert (await http.post("/_sandbox/reset")).status_code == 200
        assert (
            await http.post("/_sandbox/faults", json={"kind": "server_error"})
        ).status_code == 200

        gone = await stale
        fresh = await http.post("/v1/things", content=b"fresh")

    assert gone.status_code == 503
    assert fresh.status_code == 502  # the fault queued after the reset answered its call
    assert [e.get("body") for e in kit.requests.entries()] == [None]


@pytest.mark.asyncio
async def test_settings_hide_secrets_refuse_unknown_names_and_reset_restores() -> None:
    resets: list[str] = []
    kit = SandboxKit(
        config=Settings(),
        fault_model=KitFault,
        secret_fields=("api_keys",),
        on_reset=lambda: resets.append("own state cleared"),
    )
    async with (
        LoopbackServer(kit_app(kit)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        shown = (await http.get("/_sandbox/config")).json()
        refused = await http.post("/_sandbox/config", json={"latency_seconds": 99})
        unknown = await http.post("/_sandbox/config", json={"latencyseconds": 1})
        changed = await http.post("/_sandbox/config", json={"webhook_url": "http://x/h"})
        await http.post("/_sandbox/faults", json={"kind": "auth"})
        reset = await http.post("/_sandbox/reset")

        assert shown == {
            "latency_seconds": 0.0,
            "api_keys_configured": 2,
            "signing_secret_configured": True,
            "webhook_url": None,
        }
        assert "s3cret" not in json.dumps(shown) and "k1" not in json.dumps(shown)
        assert refused.status_code == 422
        assert unknown.status_code == 422 and "latencyseconds" in unknown.text
        assert changed.json()["webhook_url"] == "http://x/h"
        assert reset.json() == {"status": "reset"}
        assert kit.config == Settings() and len(kit.faults) == 0
        assert resets == ["own state cleared"]


@pytest.mark.asyncio
async def test_the_clock_is_set_or_moved_forward_and_reset_puts_it_back() -> None:
    real = [1_000.0]
    clock = SandboxClock(lambda: real[0])
    kit = SandboxKit(config=Settings(), fault_model=KitFault, clock=clock)
    async with (
        LoopbackServer(kit_app(kit)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        set_to = await http.post("/_sandbox/clock", json={"now": 5_000})
        real[0] += 10
        moved = await http.post("/_sandbox/clock", json={"advance_seconds": 90})
        both = await http.post("/_sandbox/clock", json={"now": 1, "advance_seconds": 1})
        backwards = await http.post("/_sandbox/clock", json={"advance_seconds": -1})
        await http.post("/_sandbox/reset")

        assert set_to.json() == {"now": 5_000}
        assert moved.json() == {"now": 5_100}
        assert both.status_code == 422 and backwards.status_code == 422
        assert clock() == real[0]


def consent_app() -> FastAPI:
    """An authorization endpoint: a form preselecting one account and a name field."""
    app = FastAPI()

    @app.get("/authorize")
    async def page(client_id: str = "", redirect_uri: str = "") -> Response:
        if client_id != "app":
            return consent_error_page("Sandbox: error", "Unknown <client>")
        return HTMLResponse(
            '<form method="post" action="/authorize">'
            f'<input type="hidden" name="redirect_uri" value="{redirect_uri}">'
            '<input type="radio" name="account" value="a1" checked>'
            '<input type="radio" name="account" value="a2">'
            '<input type="text" name="name" value="Shop">'
            '<input type="checkbox" name="scope" value="read">'
            '<button name="decision" value="approve">OK</button></form>'
        )

    @app.post("/authorize")
    async def answer(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        chosen = {"code": f"{form['account']}-{form['name']}-{'scope' in form}", "state": "s"}
        denied = {"error": "access_denied"}
        return redirect_with(
            form["redirect_uri"], chosen if form["decision"] == "approve" else denied
        )

    return app


@pytest.mark.asyncio
async def test_submit_consent_sends_what_the_page_preselects_and_follows_no_redirect() -> None:
    async with LoopbackServer(consent_app()) as server:
        back = "https://shop.example/cb?x=1"
        url = f"{server.url}/authorize?{urlencode({'client_id': 'app', 'redirect_uri': back})}"

        approved = await submit_consent(url)
        denied = await submit_consent(url, decision="deny")
        with pytest.raises(RuntimeError, match="refused: .*Unknown &lt;client&gt;"):
            await submit_consent(f"{server.url}/authorize?client_id=other")

    assert approved == "https://shop.example/cb?x=1&code=a1-Shop-False&state=s"
    assert denied == "https://shop.example/cb?x=1&error=access_denied"


@pytest.mark.asyncio
async def test_a_kit_built_consent_page_is_escaped_and_submitted_as_a_browser_would() -> None:
    app = FastAPI()

    @app.get("/authorize")
    async def page(redirect_uri: str) -> Response:
        return consent_page(
            title="Sandbox <login>",
            heading="Shop & Co wants access",
            action="/authorize",
            hidden={"redirect_uri": redirect_uri, "state": 'a"b'},
            fieldsets=[
                (
                    "Account",
                    [
                        labelled_input("radio", "account", "a1", "First <one>", checked=True),
                        labelled_input("radio", "account", "a2", "Second"),
                        labelled_input("text", "name", "Shop", "Name"),
                    ],
                ),
                ("Scopes", [labelled_input("checkbox", "scope", "read", "read", element_id="s")]),
            ],
            approve="Allow",
        )

    @app.post("/authorize")
    async def answer(request: Request) -> Response:
        form = parse_qsl((await request.body()).decode())
        return redirect_with(dict(form)["redirect_uri"], {"code": urlencode(form)})

    async with LoopbackServer(app) as server, httpx.AsyncClient() as browser:
        url = f"{server.url}/authorize?{urlencode({'redirect_uri': 'https://shop.example/cb'})}"
        shown = (await browser.get(url)).text
        location = await submit_consent(url)

    submitted = parse_qsl(dict(parse_qsl(location.partition("?")[2]))["code"])
    assert submitted == [
        ("redirect_uri", "https://shop.example/cb"),
        ("state", 'a"b'),
        ("account", "a1"),
        ("name", "Shop"),
        ("decision", "approve"),
    ]  # the unchecked box is not sent, as a browser leaves it out
    assert "First &lt;one&gt;" in shown and "<title>Sandbox &lt;login&gt;</title>" in shown
    assert 'id="s" type="checkbox"' in shown and ">Allow</button>" in shown


def test_ids_are_drawn_from_the_seeded_random() -> None:
    def kit(seed: int) -> SandboxKit[Settings, KitFault]:
        return SandboxKit(config=Settings(), fault_model=KitFault, seed=seed)

    first, again, other = kit(7), kit(7), kit(8)

    assert [first.new_id("pi_") for _ in range(3)] == [again.new_id("pi_") for _ in range(3)]
    assert first.new_id("pi_") != other.new_id("pi_")
    digits = first.new_id("7", 12, "0123456789")
    assert len(digits) == 13 and digits.isdigit() and digits.startswith("7")


class SeededSettings(BaseModel):
    seed: int | None = 7


@pytest.mark.asyncio
async def test_a_reset_restarts_the_ids_and_a_seed_setting_restarts_them_from_itself() -> None:
    kit = SandboxKit(config=SeededSettings(), fault_model=KitFault)
    first = [kit.new_id("pi_") for _ in range(3)]
    await kit.reset()
    after_reset = [kit.new_id("pi_") for _ in range(3)]
    kit.update_config({"seed": 8})
    reseeded = kit.new_id("pi_")
    kit.update_config({"seed": 8})  # the same seed again: the sequence goes on
    going_on = kit.new_id("pi_")

    assert after_reset == first
    assert reseeded == SandboxKit(config=SeededSettings(seed=8), fault_model=KitFault).new_id("pi_")
    assert going_on != reseeded


@pytest.mark.asyncio
async def test_the_kit_s_app_mounts_the_controls_renders_answered_and_runs_background_loops() -> (
    None
):
    kit = SandboxKit(config=Settings(), fault_model=KitFault)
    rounds: list[int] = []
    stopped = asyncio.Event()

    async def tick() -> None:
        try:
            while True:
                rounds.append(1)
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    app = kit.app("Test sandbox", background=[tick])

    @app.get("/v1/refused")
    async def refused() -> Response:
        raise Answered(JSONResponse({"error": "in the provider's words"}, 418))

    async with (
        LoopbackServer(app, lifespan="on") as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        answer = await http.get("/v1/refused")
        await wait_until(lambda: len(rounds) >= 2)
        controls = await http.get("/_sandbox/config")
        docs = await http.get("/docs")

    assert (answer.status_code, answer.json()) == (418, {"error": "in the provider's words"})
    assert controls.status_code == 200 and docs.status_code == 404
    assert stopped.is_set()  # the server's shutdown cancelled the loop


def test_public_settings_counts_secret_lists() -> None:
    assert public_settings(Settings(api_keys=[]), ("api_keys",))["api_keys_configured"] == 0


# -- the webhook outbox ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_automatic_delivery_is_retried_until_answered_2xx() -> None:
    receiver = receiver_answering([500, 503])
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(
            sign=sign,
            url=f"{server.url}/hooks",
            auto_deliver=True,
            retry_delays=(0.01, 0.01, 0.01, 0.01),
        )
        outbox.emit("evt_1", "payment.succeeded", event_body(1))

        await wait_until(lambda: outbox.event("evt_1").delivered)  # type: ignore[union-attr]
        await asyncio.sleep(0.1)  # no attempt after the one answered 2xx

    assert len(receiver.received) == 3
    assert [a.status_code for a in outbox.attempts] == [500, 503, 200]
    body, headers = receiver.received[-1].body, receiver.received[-1].headers
    assert body == event_body(1)
    assert headers["x-signature"] == hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert outbox.events(pending_only=True) == []


@pytest.mark.asyncio
async def test_an_event_stays_pending_once_its_retries_run_out() -> None:
    receiver = receiver_answering([500] * 10)
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(
            sign=sign, url=f"{server.url}/hooks", auto_deliver=True, retry_delays=(0.01,)
        )
        outbox.emit("evt_1", "payment.succeeded", event_body(1))
        await wait_until(lambda: outbox.automatic_deliveries == 0)

        assert len(receiver.received) == 2
        assert [e.id for e in outbox.events(pending_only=True)] == ["evt_1"]

        receiver.script.clear()
        attempts = await outbox.deliver()

    assert [(a.event_id, a.status_code) for a in attempts] == [("evt_1", 200)]
    assert outbox.events(pending_only=True) == []


@pytest.mark.asyncio
async def test_delivery_on_demand_duplicates_shuffles_and_signs_with_other_secrets() -> None:
    receiver = receiver_answering()
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(sign=sign, url=f"{server.url}/hooks")
        for number in range(5):
            outbox.emit(f"evt_{number}", "thing.updated", event_body(number))

        attempts = await outbox.deliver(
            DeliverRequest(duplicates=1, shuffle=True, seed=7, signing={"secret": "other"})
        )

    sent = [json.loads(push.body)["id"] for push in receiver.received]
    assert sorted(sent) == sorted([f"evt_{n}" for n in range(5)] * 2)
    assert sent != sorted(sent), "seed 7 shuffles these ten"
    assert [a.event_id for a in attempts] == sent
    for push in receiver.received:
        assert (
            push.headers["x-signature"] == hmac.new(b"other", push.body, hashlib.sha256).hexdigest()
        )


@pytest.mark.asyncio
async def test_a_delivery_without_url_or_to_an_unknown_event_is_refused() -> None:
    outbox = WebhookOutbox(sign=sign)
    outbox.emit("evt_1", "thing.updated", event_body(1))

    with pytest.raises(DeliveryRefused, match="no webhook URL"):
        await outbox.deliver()
    with pytest.raises(DeliveryRefused, match="evt_9"):
        await outbox.deliver(DeliverRequest(url="http://127.0.0.1:9/h", event_ids=["evt_9"]))


@pytest.mark.asyncio
async def test_an_unreachable_endpoint_is_an_attempt_with_an_error_not_a_crash() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outbox = WebhookOutbox(sign=sign, url=f"http://127.0.0.1:{port}/hooks")
    outbox.emit("evt_1", "thing.updated", event_body(1))

    attempts = await outbox.deliver(DeliverRequest(timeout_seconds=2))

    assert attempts[0].status_code is None and attempts[0].error == "ConnectError"
    assert outbox.events(pending_only=True)[0].id == "evt_1"


@pytest.mark.asyncio
async def test_reset_cancels_scheduled_retries_and_forgets_events() -> None:
    receiver = receiver_answering([500] * 10)
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(
            sign=sign, url=f"{server.url}/hooks", auto_deliver=True, retry_delays=(30.0,)
        )
        kit = SandboxKit(config=Settings(), fault_model=KitFault, outbox=outbox)
        outbox.emit("evt_1", "thing.updated", event_body(1))
        await wait_until(lambda: len(receiver.received) == 1)

        await kit.reset()

    assert outbox.automatic_deliveries == 0
    assert outbox.events() == []


@pytest.mark.asyncio
async def test_the_outbox_drops_delivered_events_first_then_counts_dropped_pending_ones() -> None:
    receiver = receiver_answering()
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(sign=sign, url=f"{server.url}/hooks", max_events=3)
        outbox.emit("evt_0", "thing.updated", event_body(0))
        outbox.emit("evt_1", "thing.updated", event_body(1))
        await outbox.deliver(DeliverRequest(event_ids=["evt_1"]))
        outbox.emit("evt_2", "thing.updated", event_body(2))
        outbox.emit("evt_3", "thing.updated", event_body(3))  # drops evt_1, delivered

        assert [e.id for e in outbox.events()] == ["evt_0", "evt_2", "evt_3"]
        assert outbox.dropped_pending == 0

        outbox.emit("evt_0", "thing.updated", event_body(0))  # the same id: replaced, newest
        outbox.emit("evt_4", "thing.updated", event_body(4))  # drops evt_2, pending

        assert [e.id for e in outbox.events()] == ["evt_3", "evt_0", "evt_4"]
        assert outbox.dropped_pending == 1
        kit = SandboxKit(config=Settings(), fault_model=KitFault, outbox=outbox)
        async with (
            LoopbackServer(kit_app(kit)) as sandbox,
            httpx.AsyncClient(base_url=sandbox.url) as http,
        ):
            listed = (await http.get("/_sandbox/events")).json()
            await http.post("/_sandbox/reset")
            after_reset = (await http.get("/_sandbox/events")).json()

    assert [e["id"] for e in listed["data"]] == ["evt_3", "evt_0", "evt_4"]
    assert listed["dropped_pending"] == 1
    assert after_reset == {"data": [], "dropped_pending": 0}


@pytest.mark.asyncio
async def test_an_event_is_shown_as_sent_and_every_attempt_is_listed() -> None:
    receiver = receiver_answering([500])
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(sign=sign, url=f"{server.url}/hooks")
        kit = SandboxKit(config=Settings(), fault_model=KitFault, outbox=outbox)
        pretty = b'{\n  "id": "evt_1"\n}'
        outbox.emit("evt_1", "thing.updated", pretty, scope="acct_1")
        outbox.emit("evt_2", "thing.note", b"plain words", content_type="text/plain")
        async with (
            LoopbackServer(kit_app(kit)) as sandbox,
            httpx.AsyncClient(base_url=sandbox.url) as http,
        ):
            await http.post("/_sandbox/deliver", json={"event_ids": ["evt_1"]})
            await http.post("/_sandbox/deliver", json={"event_ids": ["evt_1", "evt_2"]})
            sent = await http.get("/_sandbox/events/evt_1")
            text = await http.get("/_sandbox/events/evt_2")
            missing = await http.get("/_sandbox/events/evt_9")
            every = (await http.get("/_sandbox/deliveries")).json()
            first = (await http.get("/_sandbox/deliveries", params={"event_id": "evt_1"})).json()

    assert sent.content == pretty == receiver.received[0].body
    assert sent.headers["content-type"] == "application/json"
    assert (text.text, text.headers["content-type"]) == ("plain words", "text/plain; charset=utf-8")
    assert missing.status_code == 404
    assert [(a["event_id"], a["status_code"]) for a in every] == [
        ("evt_1", 500),
        ("evt_1", 200),
        ("evt_2", 200),
    ]
    assert [a["status_code"] for a in first] == [500, 200]
    assert first[0]["scope"] == "acct_1" and first[0]["url"] == f"{server.url}/hooks"
    assert first[0]["at"] <= first[1]["at"]


class Signing(BaseModel):
    model_config = {"extra": "forbid"}

    secret: str = Field(default=SECRET.decode(), min_length=1)


@pytest.mark.asyncio
async def test_signing_options_a_model_rejects_are_refused_before_anything_is_sent() -> None:
    seen: list[Mapping[str, Any]] = []

    def checked_sign(event: OutboxEvent, options: Mapping[str, Any]) -> Mapping[str, str]:
        seen.append(options)
        return sign(event, options)

    receiver = receiver_answering()
    async with LoopbackServer(receiver.app()) as server:
        outbox = WebhookOutbox(sign=checked_sign, signing=Signing, url=f"{server.url}/hooks")
        kit = SandboxKit(config=Settings(), fault_model=KitFault, outbox=outbox)
        outbox.emit("evt_1", "thing.updated", event_body(1))
        async with (
            LoopbackServer(kit_app(kit)) as sandbox,
            httpx.AsyncClient(base_url=sandbox.url) as http,
        ):
            unknown = await http.post("/_sandbox/deliver", json={"signing": {"colour": "red"}})
            empty = await http.post("/_sandbox/deliver", json={"signing": {"secret": ""}})
            assert receiver.received == [] and seen == []
            sent = await http.post("/_sandbox/deliver", json={})

    assert (unknown.status_code, empty.status_code) == (422, 422)
    assert "colour" in unknown.json()["detail"] and "secret" in empty.json()["detail"]
    assert sent.json()["deliveries"][0]["status_code"] == 200
    assert seen == [{"secret": SECRET.decode()}]  # the model's defaults filled in


@pytest.mark.asyncio
async def test_a_pause_ends_soon_after_its_client_gives_up() -> None:
    ended: list[tuple[float, bytes]] = []
    app = FastAPI()

    @app.post("/slow")
    async def slow(request: Request) -> Response:
        await pause(request, 30.0)
        # the pause read the body before watching for a disconnect; it is still there
        ended.append((asyncio.get_running_loop().time(), await request.body()))
        return Response()

    async with LoopbackServer(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/slow", content=b"payload", timeout=0.3)
        await wait_until(lambda: ended, seconds=5.0)

    [(at, body)] = ended
    assert at - started < 0.3 + 1.0  # a poll interval (0.25 s) after the client left
    assert body == b"payload"
