"""The HTTP pieces plugins share (pixecom_core.providers.http, issue 13 item 8)."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pixecom_core.providers import ProviderTransientError
from pixecom_core.providers.http import (
    FailedCall,
    LoopLocalClient,
    json_object,
    parse_retry_after,
    shared_ssl_context,
    transient_error_for,
    transport_errors_as_transient,
)

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
CALL: FailedCall = {
    "provider": "acme",
    "service": "Acme",
    "call": "GET /v1/things",
    "base_url": "https://api.acme.test",
    "timeout_seconds": 2.5,
    "timeout_setting": "PIXECOM_ACME_TIMEOUT_SECONDS",
}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 0 ", 0.0), ("1.5", 1.5)],
)
def test_retry_after_as_delay_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 07 Dec 2026 12:00:30 GMT",  # IMF-fixdate
        "Monday, 07-Dec-26 12:00:30 GMT",  # RFC 850
        "Mon Dec  7 12:00:30 2026",  # asctime
    ],
)
def test_retry_after_as_a_future_http_date(value: str) -> None:
    assert parse_retry_after(value, NOW) == 30.0


def test_retry_after_as_a_past_http_date_means_now() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW) == 0.0


def test_retry_after_date_is_measured_from_the_current_time_by_default() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=60)
    waited = parse_retry_after(soon.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert waited is not None and 55 <= waited <= 60


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "nan", "inf", "Mon, 99 Foo 2026 12:00:00 GMT"]
)
def test_retry_after_garbage_says_nothing(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_ssl_context_is_built_once() -> None:
    assert shared_ssl_context() is shared_ssl_context()


def test_client_holder_gives_one_client_per_loop_and_closes_it() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=dict(request.headers))

    holder = LoopLocalClient(
        "https://api.acme.test/v1",
        timeout_seconds=3,
        user_agent="pixecom-acme",
        headers={"Accept": "application/json"},
        transport=httpx.MockTransport(answer),
    )

    async def twice() -> httpx.AsyncClient:
        first = holder.get()
        assert holder.get() is first
        return first

    first_loop = asyncio.run(twice())
    second_loop = asyncio.run(twice())
    assert second_loop is not first_loop
    assert str(second_loop.base_url) == "https://api.acme.test/v1/"
    assert second_loop.timeout == httpx.Timeout(3)
    assert not second_loop.follow_redirects

    async def call_close_and_reopen() -> None:
        current = holder.get()
        sent = (await current.get("/things")).json()
        assert sent["user-agent"] == "pixecom-acme"
        assert sent["accept"] == "application/json"
        await holder.aclose()
        assert current.is_closed
        await holder.aclose()  # idempotent
        reopened = holder.get()
        assert reopened is not current and not reopened.is_closed
        await holder.aclose()

    asyncio.run(call_close_and_reopen())


def test_client_holder_never_closes_a_callers_client() -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as given:
            holder = LoopLocalClient("https://api.acme.test", timeout_seconds=1, client=given)
            assert holder.get() is given
            await holder.aclose()
            assert not given.is_closed

    asyncio.run(run())


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), TimeoutError()])
def test_a_timeout_is_transient_and_says_which_setting_to_raise(exc: Exception) -> None:
    with pytest.raises(ProviderTransientError) as raised:
        with transport_errors_as_transient(**CALL):
            raise exc
    message = str(raised.value)
    assert message.startswith("Acme did not answer GET /v1/things within 2.5 s")
    assert "PIXECOM_ACME_TIMEOUT_SECONDS" in message
    assert raised.value.provider == "acme"
    assert raised.value.__cause__ is exc


def test_a_connection_failure_is_transient_names_the_url_and_scrubs() -> None:
    exc = httpx.ConnectError("refused with key sk_secret")
    scrubbing: FailedCall = {**CALL, "scrub": lambda text: text.replace("sk_secret", "***")}
    error = transient_error_for(exc, **scrubbing)
    message = str(error)
    assert message.startswith("could not reach Acme at https://api.acme.test for GET /v1/things")
    assert "ConnectError: refused with key ***" in message
    assert "sk_secret" not in message
    assert "reachable" in message


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError):
        with transport_errors_as_transient(**CALL):
            raise KeyError("not a transport problem")


def test_json_object_only_accepts_objects() -> None:
    assert json_object(httpx.Response(200, json={"a": 1})) == {"a": 1}
    assert json_object(httpx.Response(200, json=[1])) is None
    assert json_object(httpx.Response(502, text="<html>bad gateway</html>")) is None
