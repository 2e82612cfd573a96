"""Webhook verification, offline (certificate) and through PayPal's API, good and forged."""

import base64
import json
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from paypal_sandbox_control import SandboxControl
from pixecom_paypal.gateway import TRANSMISSION_HEADERS, PayPalGateway
from pixecom_paypal.settings import PayPalSettings

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderTransientError,
    WebhookVerificationError,
)


@pytest.fixture
def signed(sandbox: SandboxControl) -> tuple[bytes, dict[str, str]]:
    """A genuine PayPal transmission: an approved order's event, signed by the sandbox."""
    return _approved_order_transmission(sandbox)


def _approved_order_transmission(sandbox: SandboxControl) -> tuple[bytes, dict[str, str]]:
    sandbox.approve(sandbox.create_order("5.00"))
    return sandbox.last_transmission("CHECKOUT.ORDER.APPROVED")


def _with(headers: dict[str, str], **changes: str) -> dict[str, str]:
    updated = dict(headers)
    for name, value in changes.items():
        updated[name.upper().replace("_", "-")] = value
    return updated


async def test_a_genuine_transmission_is_verified(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed

    webhook = await gateway.verify_webhook(body=body, headers=headers)

    event = json.loads(body)
    assert webhook.gateway == "paypal"
    assert webhook.event_id == event["id"]
    assert webhook.event_type == "CHECKOUT.ORDER.APPROVED"
    assert webhook.body == body
    assert webhook.headers["paypal-transmission-id"] == headers["PAYPAL-TRANSMISSION-ID"]
    assert all(name == name.lower() for name in webhook.headers)
    assert webhook.received_at.tzinfo is not None


async def test_the_signed_message_is_the_documented_one(
    sandbox: SandboxControl, signed: tuple[bytes, dict[str, str]]
) -> None:
    # An independent reading of PayPal's documentation, against the sandbox's certificate.
    body, headers = signed
    certificate = x509.load_pem_x509_certificate(sandbox.state.identity.certificate_pem)
    message = "|".join(
        [
            headers["PAYPAL-TRANSMISSION-ID"],
            headers["PAYPAL-TRANSMISSION-TIME"],
            sandbox.settings.webhook_id,
            str(zlib.crc32(body) & 0xFFFFFFFF),
        ]
    ).encode()
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)

    public_key.verify(
        base64.b64decode(headers["PAYPAL-TRANSMISSION-SIG"]),
        message,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


async def test_the_certificate_is_downloaded_once(
    gateway: PayPalGateway, sandbox: SandboxControl, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed
    await gateway.verify_webhook(body=body, headers=headers)
    again_body, again_headers = sandbox.last_transmission("CHECKOUT.ORDER.APPROVED")

    await gateway.verify_webhook(body=again_body, headers=again_headers)

    assert sandbox.calls("get_certificate") == 1


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body: body.replace(b"5.00", b"9.00"), id="amount changed"),
        pytest.param(lambda body: body + b" ", id="byte appended"),
        pytest.param(lambda body: body.replace(b'"id":"WH-', b'"id":"WX-'), id="event id"),
    ],
)
async def test_a_tampered_body_is_refused(
    gateway: PayPalGateway,
    signed: tuple[bytes, dict[str, str]],
    tamper: Callable[[bytes], bytes],
) -> None:
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="does not match"):
        await gateway.verify_webhook(body=tamper(body), headers=headers)


async def test_a_delivery_for_another_webhook_id_is_refused(
    make_gateway: Callable[..., PayPalGateway], signed: tuple[bytes, dict[str, str]]
) -> None:
    gateway = make_gateway(webhook_id="SOMEONEELSESWEBHOOK")
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="does not match"):
        await gateway.verify_webhook(body=body, headers=headers)


async def test_a_signature_from_another_key_is_refused(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = "|".join(
        [
            headers["PAYPAL-TRANSMISSION-ID"],
            headers["PAYPAL-TRANSMISSION-TIME"],
            gateway.settings.webhook_id or "",
            str(zlib.crc32(body) & 0xFFFFFFFF),
        ]
    ).encode()
    forged = base64.b64encode(forger.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()

    with pytest.raises(WebhookVerificationError, match="does not match"):
        await gateway.verify_webhook(
            body=body, headers=_with(headers, paypal_transmission_sig=forged)
        )


async def test_a_signature_that_is_not_base64_is_refused(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="not base64"):
        await gateway.verify_webhook(
            body=body, headers=_with(headers, paypal_transmission_sig="not*base64!")
        )


@pytest.mark.parametrize(
    "cert_url",
    [
        pytest.param("http://{host}/v1/notifications/certs/CERT-1", id="plain http, allowed host"),
        pytest.param("http://api.paypal.com/v1/notifications/certs/CERT-1", id="plain http paypal"),
        pytest.param("https://paypal.com.evil.test/certs/CERT-1", id="paypal.com as a prefix"),
        pytest.param("https://evil.test/x.paypal.com", id="paypal.com in the path"),
        pytest.param("https://evil.test/.paypal.com", id="suffix in the path"),
        pytest.param("https://api.paypal.com@evil.test/cert", id="paypal.com as user info"),
        pytest.param("https://evilpaypal.com/cert", id="no dot before paypal.com"),
        pytest.param("https://paypal.com/cert", id="the bare domain is not a suffix match"),
        pytest.param("https://127.0.0.2/cert", id="another loopback address"),
        pytest.param("ftp://api.paypal.com/cert", id="another scheme"),
        pytest.param("https://api.paypal.com:99999/cert", id="malformed port"),
    ],
)
async def test_a_certificate_url_off_paypals_hosts_is_refused_without_fetching(
    gateway: PayPalGateway,
    sandbox: SandboxControl,
    signed: tuple[bytes, dict[str, str]],
    cert_url: str,
) -> None:
    body, headers = signed
    host = sandbox.url.removeprefix("https://")

    with pytest.raises(WebhookVerificationError):
        await gateway.verify_webhook(
            body=body, headers=_with(headers, paypal_cert_url=cert_url.format(host=host))
        )

    assert sandbox.calls("get_certificate") == 0
    assert gateway.certificates.downloads == 0


async def test_a_missing_certificate_on_an_allowed_host_is_refused(
    gateway: PayPalGateway, sandbox: SandboxControl, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="no certificate"):
        await gateway.verify_webhook(
            body=body,
            headers=_with(headers, paypal_cert_url=f"{sandbox.url}/v1/notifications/certs/NOPE"),
        )


async def test_a_certificate_host_that_fails_is_transient(
    gateway: PayPalGateway, sandbox: SandboxControl, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed
    sandbox.fault("transient", "get_certificate")

    with pytest.raises(ProviderTransientError):
        await gateway.verify_webhook(body=body, headers=headers)


@pytest.mark.parametrize("missing", TRANSMISSION_HEADERS)
async def test_a_missing_transmission_header_is_refused(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]], missing: str
) -> None:
    body, headers = signed
    kept = {name: value for name, value in headers.items() if name.lower() != missing}

    with pytest.raises(WebhookVerificationError, match=missing):
        await gateway.verify_webhook(body=body, headers=kept)


async def test_another_signing_algorithm_is_refused(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="SHA256withRSA"):
        await gateway.verify_webhook(body=body, headers=_with(headers, paypal_auth_algo="none"))


@pytest.mark.parametrize("shift", [timedelta(minutes=-10), timedelta(minutes=10)])
async def test_a_stale_or_future_transmission_is_refused(
    gateway: PayPalGateway, sandbox: SandboxControl, shift: timedelta
) -> None:
    sandbox.advance_clock(shift.total_seconds())
    body, headers = _approved_order_transmission(sandbox)

    with pytest.raises(WebhookVerificationError, match="s from now"):
        await gateway.verify_webhook(body=body, headers=headers)


async def test_a_transmission_time_that_is_not_a_time_is_refused(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="RFC 3339"):
        await gateway.verify_webhook(
            body=body, headers=_with(headers, paypal_transmission_time="yesterday")
        )


async def test_a_body_that_is_not_a_paypal_event_is_refused(
    gateway: PayPalGateway, signed: tuple[bytes, dict[str, str]]
) -> None:
    _, headers = signed

    with pytest.raises(WebhookVerificationError, match="not JSON"):
        await gateway.verify_webhook(body=b"<xml/>", headers=headers)
    with pytest.raises(WebhookVerificationError, match="no event id"):
        await gateway.verify_webhook(body=b'{"event_type": "X"}', headers=headers)


async def test_an_unset_webhook_id_is_a_configuration_error(
    make_gateway: Callable[..., PayPalGateway], signed: tuple[bytes, dict[str, str]]
) -> None:
    gateway = make_gateway(webhook_id=None)
    body, headers = signed

    with pytest.raises(ProviderAuthError, match="PIXECOM_PAYPAL_WEBHOOK_ID"):
        await gateway.verify_webhook(body=body, headers=headers)


async def test_an_expired_certificate_is_refused(
    make_gateway: Callable[..., PayPalGateway], signed: tuple[bytes, dict[str, str]]
) -> None:
    _, headers = signed
    # Two years from now the sandbox's certificate has expired (the transmission would be
    # stale too, so ask the certificate store directly).
    gateway = make_gateway(now=lambda: datetime.now(UTC) + timedelta(days=730))

    with pytest.raises(WebhookVerificationError, match="not valid now"):
        await gateway.certificates.public_key(headers["PAYPAL-CERT-URL"])


# -- verification through PayPal's API ------------------------------------------------------


async def test_api_verification_accepts_success(
    make_gateway: Callable[..., PayPalGateway],
    sandbox: SandboxControl,
    signed: tuple[bytes, dict[str, str]],
) -> None:
    gateway = make_gateway(verification="api")
    body, headers = signed

    webhook = await gateway.verify_webhook(body=body, headers=headers)

    assert webhook.event_id == json.loads(body)["id"]
    assert sandbox.calls("verify_webhook_signature") == 1
    assert sandbox.calls("get_certificate") == 0


async def test_api_verification_refuses_a_tampered_body(
    make_gateway: Callable[..., PayPalGateway], signed: tuple[bytes, dict[str, str]]
) -> None:
    gateway = make_gateway(verification="api")
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="FAILURE"):
        await gateway.verify_webhook(body=body.replace(b"5.00", b"9.00"), headers=headers)


async def test_api_verification_refuses_another_webhook_id(
    make_gateway: Callable[..., PayPalGateway], signed: tuple[bytes, dict[str, str]]
) -> None:
    gateway = make_gateway(verification="api", webhook_id="SOMEONEELSESWEBHOOK")
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="FAILURE"):
        await gateway.verify_webhook(body=body, headers=headers)


async def test_api_verification_refuses_an_unknown_transmission(
    make_gateway: Callable[..., PayPalGateway], signed: tuple[bytes, dict[str, str]]
) -> None:
    gateway = make_gateway(verification="api")
    body, headers = signed

    with pytest.raises(WebhookVerificationError, match="FAILURE"):
        await gateway.verify_webhook(
            body=body,
            headers=_with(headers, paypal_transmission_id="00000000-0000-0000-0000-000000000000"),
        )


async def test_api_verification_when_paypal_is_down_is_transient(
    make_gateway: Callable[..., PayPalGateway],
    sandbox: SandboxControl,
    signed: tuple[bytes, dict[str, str]],
) -> None:
    gateway = make_gateway(verification="api")
    body, headers = signed
    sandbox.fault("transient", "verify_webhook_signature")

    with pytest.raises(ProviderTransientError):
        await gateway.verify_webhook(body=body, headers=headers)


# -- the certificate host allow-list as a setting -------------------------------------------


def test_the_allow_list_defaults_to_paypal_only() -> None:
    assert PayPalSettings().allowed_cert_host_suffixes == [".paypal.com"]


def test_the_allow_list_reads_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_PAYPAL_ALLOWED_CERT_HOST_SUFFIXES", ".paypal.com, 127.0.0.1")
    assert PayPalSettings().allowed_cert_host_suffixes == [".paypal.com", "127.0.0.1"]

    monkeypatch.setenv("PIXECOM_PAYPAL_ALLOWED_CERT_HOST_SUFFIXES", '[".paypal.com","localhost"]')
    assert PayPalSettings().allowed_cert_host_suffixes == [".paypal.com", "localhost"]


@pytest.mark.parametrize(
    "entry", [".com", ".", "", "https://api.paypal.com", "*.paypal.com", "paypal.com/x"]
)
def test_the_allow_list_refuses_entries_that_widen_it(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed_cert_host_suffixes|host"):
        PayPalSettings(allowed_cert_host_suffixes=[entry])
