"""The REST client against the sandbox: the OAuth token's life, and PayPal's errors mapped."""

import socket
from collections.abc import Callable

import pytest
from paypal_sandbox_control import SandboxControl
from pixecom_paypal.client import PayPalAPIError, PayPalRateLimited
from pixecom_paypal.gateway import PayPalGateway

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
)


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_token_is_fetched_once_and_reused(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    for _ in range(3):
        await gateway.client.list_disputes(disputed_transaction_id="NOTHING")

    assert sandbox.calls("token") == 1
    assert sandbox.calls("list_disputes") == 3


async def test_concurrent_first_calls_share_one_token(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    import asyncio

    await asyncio.gather(
        *(gateway.client.list_disputes(disputed_transaction_id="X") for _ in range(5))
    )

    assert sandbox.calls("token") == 1


async def test_token_is_renewed_shortly_before_it_expires(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl
) -> None:
    clock = FakeClock()
    gateway = make_gateway(clock=clock)
    await gateway.client.access_token()

    clock.now += 32400 - 120  # two minutes before PayPal's expiry: still cached
    await gateway.client.access_token()
    assert sandbox.calls("token") == 1

    clock.now += 90  # inside the last minute: renewed before PayPal would refuse it
    await gateway.client.access_token()
    assert sandbox.calls("token") == 2


async def test_a_401_refreshes_the_token_once_and_the_call_succeeds(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    first = await gateway.client.access_token()
    sandbox.revoke_tokens()

    await gateway.client.list_disputes(disputed_transaction_id="X")

    assert sandbox.calls("token") == 2
    assert await gateway.client.access_token() != first


async def test_a_token_expired_on_paypals_clock_is_replaced(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    await gateway.client.access_token()
    sandbox.advance_clock(32400 + 1)  # PayPal considers it expired; the client does not yet

    await gateway.client.list_disputes(disputed_transaction_id="X")

    assert sandbox.calls("token") == 2
    assert sandbox.calls(refused="invalid_token") == 1


async def test_a_second_401_is_an_auth_error_not_a_loop(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    sandbox.fault("auth", "list_disputes", times=5)

    with pytest.raises(ProviderAuthError, match="refused a fresh access token"):
        await gateway.client.list_disputes(disputed_transaction_id="X")

    assert sandbox.calls("token") == 2
    assert sandbox.calls("list_disputes") == 2


async def test_wrong_client_secret_is_an_auth_error(
    make_gateway: Callable[..., PayPalGateway],
) -> None:
    gateway = make_gateway(client_secret="not-the-secret")

    with pytest.raises(ProviderAuthError, match="invalid_client"):
        await gateway.client.access_token()


async def test_missing_credentials_fail_before_any_request(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl
) -> None:
    gateway = make_gateway(client_id=None, client_secret=None)

    with pytest.raises(ProviderAuthError, match="PIXECOM_PAYPAL_CLIENT_ID and PIXECOM_PAYPAL_"):
        await gateway.client.access_token()

    assert sandbox.calls("token") == 0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    gateway: PayPalGateway, sandbox: SandboxControl, status: int
) -> None:
    sandbox.fault("transient", "get_order", status=status)

    with pytest.raises(ProviderTransientError, match=f"with {status}"):
        await gateway.client.get_order("ANY")


async def test_rate_limit_is_transient_and_carries_the_pause(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    sandbox.fault("throttled", "get_order", retry_after_seconds=7)

    with pytest.raises(PayPalRateLimited) as raised:
        await gateway.client.get_order("ANY")

    assert isinstance(raised.value, ProviderTransientError)
    assert isinstance(raised.value, ProviderThrottled)
    assert raised.value.retry_after_seconds == 7.0
    assert "RATE_LIMIT_REACHED" in str(raised.value)


async def test_a_slow_paypal_is_a_transient_timeout(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl
) -> None:
    gateway = make_gateway(timeout_seconds=0.2)
    await gateway.client.access_token()
    sandbox.configure(latency_seconds=1.0)

    with pytest.raises(ProviderTransientError, match="did not answer GET"):
        await gateway.client.get_order("ANY")


async def test_an_unreachable_paypal_is_transient(
    make_gateway: Callable[..., PayPalGateway],
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    gateway = make_gateway(api_base=f"https://127.0.0.1:{closed_port}")

    with pytest.raises(ProviderTransientError, match="could not reach PayPal"):
        await gateway.client.access_token()


async def test_an_untrusted_tls_certificate_is_refused(
    make_gateway: Callable[..., PayPalGateway],
) -> None:
    # Without the sandbox CA the loopback certificate is not trusted: no token is sent.
    gateway = make_gateway(tls_ca_file=None)

    with pytest.raises(ProviderTransientError, match="CERTIFICATE_VERIFY_FAILED"):
        await gateway.client.access_token()


async def test_unknown_resource_keeps_paypals_name_and_debug_id(
    gateway: PayPalGateway,
) -> None:
    with pytest.raises(PayPalAPIError) as raised:
        await gateway.client.get_order("NO-SUCH-ORDER")

    error = raised.value
    assert error.status_code == 404
    assert error.name == "RESOURCE_NOT_FOUND"
    assert error.issues == ("INVALID_RESOURCE_ID",)
    assert error.debug_id and error.debug_id in str(error)
    assert not isinstance(error, ProviderTransientError | ProviderAuthError)


async def test_invalid_request_is_a_provider_error_with_the_issue(
    gateway: PayPalGateway,
) -> None:
    with pytest.raises(PayPalAPIError) as raised:
        await gateway.client.create_order(
            {
                "intent": "CAPTURE",
                "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.001"}}],
            },
            request_id="bad-amount",
        )

    assert raised.value.status_code == 400
    assert raised.value.name == "INVALID_REQUEST"
    assert raised.value.issues == ("DECIMAL_PRECISION",)
    assert isinstance(raised.value, ProviderError)


async def test_forbidden_is_a_provider_error(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    sandbox.fault("not_authorized", "get_capture")

    with pytest.raises(PayPalAPIError, match="NOT_AUTHORIZED") as raised:
        await gateway.client.get_capture("ANY")

    assert raised.value.status_code == 403
