"""Bad paths over real HTTP: a slow, failing, down or throttling 17TRACK, refused keys and
malformed answers, each mapped to the error class core's breaker and worker act on."""

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import MakeTracker
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pixecom_tracking17.tracker import Tracker17
from tracking17_support import API_KEY, PUSH_KEY, SandboxHandle, all_text

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    TrackingNumber,
)
from pixecom_core.testing.loopback import serve

NUMBER = TrackingNumber(number="RR400000001CN", tag="t")

Operation = Callable[[Tracker17], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {
    "register": lambda tracker: tracker.register([NUMBER]),
    "gettrackinfo": lambda tracker: tracker.fetch_status([NUMBER]),
    "stoptrack": lambda tracker: tracker.stop([NUMBER]),
}


# -- slow and failing 17TRACK (SCALE-9) ------------------------------------------


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_a_hanging_17track_fails_fast_as_transient(
    make_tracker: MakeTracker, sandbox: SandboxHandle, operation: str
) -> None:
    tracker = await make_tracker(timeout_seconds=0.3)
    await sandbox.fault("hang", hang_seconds=10)

    started = time.monotonic()
    with pytest.raises(ProviderTransientError) as raised:
        await OPERATIONS[operation](tracker)
    elapsed = time.monotonic() - started

    assert elapsed <= 0.3 + 0.4
    assert "within 0.3 s" in str(raised.value)
    assert raised.value.provider == "17track"


async def test_a_slow_17track_under_the_timeout_still_answers(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    tracker = await make_tracker(timeout_seconds=1.0)
    await sandbox.configure(latency_seconds=0.2)

    result = await tracker.register([NUMBER])

    assert result.accepted == (NUMBER,)


async def test_latency_over_the_timeout_is_transient(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    tracker = await make_tracker(timeout_seconds=0.2)
    await sandbox.configure(latency_seconds=2)

    started = time.monotonic()
    with pytest.raises(ProviderTransientError):
        await tracker.fetch_status([NUMBER])

    assert time.monotonic() - started <= 0.2 + 0.4


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_is_transient(
    tracker: Tracker17, sandbox: SandboxHandle, status: int
) -> None:
    await sandbox.fault("server_error", status=status)

    with pytest.raises(ProviderTransientError, match=f"HTTP {status}"):
        await tracker.register([NUMBER])


async def test_17tracks_internal_error_code_is_transient(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("transient", status=200)  # HTTP 200, envelope code -18010003

    with pytest.raises(ProviderTransientError, match="-18010003"):
        await tracker.fetch_status([NUMBER])


async def test_an_outage_fails_every_call_as_transient_until_it_is_back(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("server_error", status=503, times=10_000)

    for operation in OPERATIONS.values():
        with pytest.raises(ProviderTransientError, match="HTTP 503"):
            await operation(tracker)

    (await sandbox.control.delete("/_sandbox/faults")).raise_for_status()
    assert (await tracker.register([NUMBER])).accepted == (NUMBER,)


async def test_a_refused_connection_is_transient(make_tracker: MakeTracker) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # nothing listens there any more
    tracker = await make_tracker(api_base=f"http://127.0.0.1:{port}")

    started = time.monotonic()
    with pytest.raises(ProviderTransientError, match="could not reach 17TRACK"):
        await tracker.register([NUMBER])

    assert time.monotonic() - started < 2.0


async def test_a_2xx_that_is_not_json_is_transient(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("malformed")

    with pytest.raises(ProviderTransientError, match="without a JSON envelope"):
        await tracker.fetch_status([NUMBER])


async def test_a_failed_call_is_not_taken_for_success_once_17track_recovers(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("server_error", times=2)
    for _ in range(2):
        with pytest.raises(ProviderTransientError):
            await tracker.register([NUMBER])

    assert (await tracker.register([NUMBER])).accepted == (NUMBER,)
    assert [call["status"] for call in await sandbox.requests("register")] == [502, 502, 200]


# -- throttling ---------------------------------------------------------------------------


async def test_a_429_is_throttled_with_the_default_wait(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(rate_limit_per_second=2)
    tracker = await make_tracker(throttle_backoff_seconds=1.5)

    await tracker.register([NUMBER])
    await tracker.fetch_status([NUMBER])
    with pytest.raises(ProviderThrottled) as raised:
        await tracker.fetch_status([NUMBER])

    assert raised.value.retry_after_seconds == 1.5
    assert not isinstance(raised.value, ProviderTransientError)  # never opens the breaker
    assert "HTTP 429" in str(raised.value)


async def test_a_429_names_the_retry_after_17track_sends(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(rate_limit_per_second=1, retry_after_seconds=4)

    await tracker.register([NUMBER])
    with pytest.raises(ProviderThrottled) as raised:
        await tracker.register([NUMBER])

    assert raised.value.retry_after_seconds == 4


async def test_an_envelope_429_is_throttled_too(tracker: Tracker17, sandbox: SandboxHandle) -> None:
    await sandbox.fault("throttled", status=200)  # HTTP 200, envelope code 429

    with pytest.raises(ProviderThrottled):
        await tracker.register([NUMBER])


async def test_a_throttle_names_the_wait_it_was_given(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("throttled", retry_after_seconds=7)

    with pytest.raises(ProviderThrottled) as raised:
        await tracker.register([NUMBER])

    assert raised.value.retry_after_seconds == 7


# -- keys -----------------------------------------------------------------------------------


async def test_a_wrong_key_is_an_auth_error_without_the_key(
    make_tracker: MakeTracker, sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "t17-WRONG-key-that-must-not-leak"
    tracker = await make_tracker(api_key=wrong)

    with pytest.raises(ProviderAuthError) as raised:
        await tracker.register([NUMBER])

    assert "-18010002" in str(raised.value)
    assert "PIXECOM_TRACKING17_API_KEY" in str(raised.value)
    assert wrong not in all_text(raised.value)
    assert wrong not in "\n".join(record.getMessage() for record in caplog.records)
    [call] = await sandbox.requests()
    assert call["status"] == 401


@pytest.mark.parametrize("code", [-18010001, -18010002, -18010004, -18010005])
async def test_auth_codes_in_a_200_are_auth_errors(
    tracker: Tracker17, sandbox: SandboxHandle, code: int
) -> None:
    await sandbox.fault("auth", status=200, code=code, message="refused")

    with pytest.raises(ProviderAuthError, match=str(code)):
        await tracker.fetch_status([NUMBER])


async def test_a_key_quoted_back_by_17track_is_scrubbed(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("auth", echo_token=True)  # HTTP 401, -18010002, the key quoted

    with pytest.raises(ProviderAuthError) as raised:
        await tracker.register([NUMBER])

    assert API_KEY not in all_text(raised.value)
    assert "***" in str(raised.value)


@pytest.mark.parametrize("fault", ["hang", "server_error", "malformed"])
async def test_the_key_is_in_no_error_of_any_kind(
    make_tracker: MakeTracker, sandbox: SandboxHandle, fault: str
) -> None:
    tracker = await make_tracker(timeout_seconds=0.2)
    await sandbox.fault(fault, hang_seconds=5)

    with pytest.raises(ProviderError) as raised:
        await tracker.register([NUMBER])

    assert API_KEY not in all_text(raised.value)


async def test_the_sandbox_never_logs_the_key(tracker: Tracker17, sandbox: SandboxHandle) -> None:
    await tracker.register([NUMBER])

    assert API_KEY not in str(await sandbox.requests())
    shown = (await sandbox.control.get("/_sandbox/config")).json()
    assert API_KEY not in str(shown) and PUSH_KEY not in str(shown)
    assert (shown["api_keys_configured"], shown["push_key_configured"]) == (1, True)


# -- refused requests -------------------------------------------------------------------------


async def test_an_unknown_envelope_code_is_a_provider_error(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("envelope", code=-18010014, message="Tracking numbers exceed the 40 limit.")

    with pytest.raises(ProviderError) as raised:
        await tracker.register([NUMBER])

    assert type(raised.value) is ProviderError
    assert "-18010014" in str(raised.value)
    assert "exceed the 40 limit" in str(raised.value)


async def test_a_wrong_api_base_path_is_a_provider_error(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    tracker = await make_tracker(api_base=f"{sandbox.url}/not-17track")

    with pytest.raises(ProviderError) as raised:
        await tracker.register([NUMBER])

    assert type(raised.value) is ProviderError
    assert "HTTP 404" in str(raised.value)


async def test_a_retryable_per_number_refusal_to_stop_is_transient(
    make_tracker: MakeTracker,
) -> None:
    app = FastAPI()

    @app.post("/track/v2.2/stoptrack")
    async def stoptrack() -> JSONResponse:
        error = {"code": -18010003, "message": "Internal service error."}
        return JSONResponse(
            {
                "code": 0,
                "data": {"accepted": [], "rejected": [{"number": NUMBER.number, "error": error}]},
            }
        )

    async with serve(app) as url:
        tracker = await make_tracker(api_base=url)
        with pytest.raises(ProviderTransientError, match="could not stop 1 of 1"):
            await tracker.stop([NUMBER])


async def test_a_number_17track_does_not_mention_is_rejected_as_retryable(
    make_tracker: MakeTracker,
) -> None:
    app = FastAPI()

    @app.post("/track/v2.2/register")
    async def register() -> dict[str, Any]:
        return {"code": 0, "data": {"accepted": [], "rejected": []}}

    async with serve(app) as url:
        tracker = await make_tracker(api_base=url)
        result = await tracker.register([NUMBER])

    [rejected] = result.rejected
    assert rejected.number == NUMBER
    assert rejected.retryable is True
