"""A fake PayPal on loopback: the REST calls the gateway makes and the webhooks PayPal sends.

``create_sandbox_app()`` builds a FastAPI app that speaks PayPal's wire format (REST API
reference at developer.paypal.com/api/rest/; the operation name each call has in the request
log and for injected faults in brackets):

- ``POST /v1/oauth2/token`` [``token``] (Basic client id/secret,
  ``grant_type=client_credentials``), tokens that expire after ``token_ttl_seconds`` of the
  sandbox's clock;
- Orders v2: ``POST /v2/checkout/orders`` [``create_order``], ``GET /v2/checkout/orders/{id}``
  [``get_order``], ``POST /v2/checkout/orders/{id}/capture`` [``capture_order``], idempotent
  on ``PayPal-Request-Id``;
- ``GET /v2/payments/captures/{id}`` [``get_capture``], ``POST
  /v2/payments/captures/{id}/refund`` [``refund_capture``], ``GET /v2/payments/refunds/{id}``
  [``get_refund``]; ``GET /v1/customer/disputes`` [``list_disputes``] and ``/{id}``
  [``get_dispute``];
- refunds as the Payments v2 reference describes them (developer.paypal.com/docs/api/
  payments/v2/#captures_refund): idempotent on ``PayPal-Request-Id`` (a replay answers the
  same refund and creates none), ``Prefer: return=minimal`` (the default: ``id``, ``status``
  and links only) or ``return=representation``, ``custom_id``, ``invoice_id`` and
  ``note_to_payer`` kept from the request, and a refund over what is left answered 422
  ``REFUND_AMOUNT_EXCEEDED`` (``CAPTURE_FULLY_REFUNDED`` once nothing is left). A refund is
  created ``COMPLETED`` (emitting ``PAYMENT.CAPTURE.REFUNDED``), or ``PENDING`` (reason
  ``ECHECK``, no event) when ``refund_status`` says so, until ``POST
  /_sandbox/refunds/{id}/settle`` completes it (then the event), fails or cancels it (no
  event; its amount is refundable again). PayPal documents no webhook for a pending or
  failed refund, so the sandbox sends none;
- ``POST /v1/notifications/verify-webhook-signature`` [``verify_webhook_signature``] and the
  signing certificate at ``GET /v1/notifications/certs/{id}`` [``get_certificate``];
- a buyer's approval page at ``/checkoutnow?token=<order id>`` [``checkout_page``, logged
  only: a browser page takes no injected faults].

The control API is the sandbox kit's (:mod:`pixecom_core.testing.sandbox_kit`): faults,
request log, settings, reset, the clock (``POST /_sandbox/clock``: token expiry, timestamps
and transmission times follow it), ``GET /_sandbox/events`` and ``POST /_sandbox/deliver``
(each attempt a fresh transmission, its ``paypal-transmission-id`` reported). A
:class:`PayPalFault` answers in PayPal's words: ``throttled`` is a 429
``RATE_LIMIT_REACHED`` with ``Retry-After`` (``retry_after_seconds``, 60 by default),
``transient`` a ``status`` (503 ``SERVICE_UNAVAILABLE`` by default, 500
``INTERNAL_SERVER_ERROR``) in PayPal's error envelope, ``auth`` a 401 ``invalid_token``
(``invalid_client`` at the token endpoint), ``not_authorized`` a 403 ``NOT_AUTHORIZED``; the
transport kinds are the kit's. PayPal's own controls under ``/_sandbox/`` play the buyer,
PayPal and the card networks — approve, capture, refund, reverse, open and resolve
disputes, each emitting the webhook events PayPal would send — and sign a transmission
without sending it and revoke tokens. Webhooks are signed with a test
certificate and key generated when the app is built, the certificate URL built from the
sandbox's base URL.

Sellers' own REST apps (issue 15): ``POST /_sandbox/apps`` creates one and answers its
``client_id``, ``client_secret``, ``app_id`` and ``merchant_id``. Its credentials get tokens
of their own (the answer's ``app_id`` is the app's, as in PayPal's documented token
response); orders, captures, refunds and disputes belong to the app whose token created
them (or whose order they come from), and any other app's token, the platform's included,
gets PayPal's 404 ``RESOURCE_NOT_FOUND`` for them, as PayPal answers for another merchant's
resource. Each app manages its own subscriptions with the Webhooks API
(developer.paypal.com/docs/api/webhooks/v1/): ``POST /v1/notifications/webhooks``
[``create_webhook``] (400 ``WEBHOOK_URL_ALREADY_EXISTS`` for a URL the app already
subscribed, ``WEBHOOK_NUMBER_LIMIT_EXCEEDED`` past PayPal's 10 per app), ``GET``
[``list_webhooks``] and ``DELETE /v1/notifications/webhooks/{id}`` [``delete_webhook``, 404
``INVALID_RESOURCE_ID`` for one it does not have]. Events about an app's objects go to that
app's subscribed URLs only, each transmission signed for that subscription's webhook id (so
verification with another webhook id fails, and verify-webhook-signature answers
``FAILURE`` for a webhook id that is not the caller's); they are delivered as they happen
when ``auto_deliver`` is on, else by ``POST /_sandbox/webhooks/{webhook_id}/deliver``. The
platform app (the configured ``client_id``) behaves as before: its events go to
``webhook_url``, signed for ``webhook_id``, its one subscription; its calls to the Webhooks
API answer 403 ``NOT_AUTHORIZED`` here (PayPal would let it manage subscriptions too, which
nothing in PixEcom does).

The sandbox is found through the ``pixecom_register_sandboxes`` hook; its defaults come from
``PIXECOM_PAYPAL_SANDBOX_*`` (falling back to the gateway's ``PIXECOM_PAYPAL_CLIENT_ID``,
``_CLIENT_SECRET`` and ``_WEBHOOK_ID``, so one set of variables configures both sides).
"""

import base64
import copy
import datetime as dt
import html
import ipaddress
import json
import secrets
import string
import uuid
import zlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qs

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixecom_core.testing.sandbox_kit import (
    Answered,
    DeliverRequest,
    Fault,
    KitFaultKind,
    OutboxEvent,
    SandboxClock,
    SandboxKit,
    WebhookOutbox,
)
from pixecom_core.testing.sandbox_requests import (
    IdempotencyConflict,
    IdempotentReplays,
    MalformedBody,
    Ownership,
    basic_credentials,
    bearer_token,
    json_body,
    utc_stamp,
)
from pixecom_paypal.money import AmountError, currency_exponent, from_paypal_value

JSONObject = dict[str, Any]
#: PayPal's order, capture and refund ids: 17 upper-case letters and digits.
_ID_ALPHABET: Final = string.ascii_uppercase + string.digits


class SandboxSettings(BaseSettings):
    """How the PayPal sandbox behaves; read from ``PIXECOM_PAYPAL_SANDBOX_*`` and changed at
    run time through ``POST /_sandbox/config``.

    :param client_id: the only client id the token endpoint accepts.
    :param client_secret: its secret.
    :param webhook_id: the webhook subscription id the sandbox signs deliveries for.
    :param webhook_url: where ``POST /_sandbox/deliver`` sends events.
    :param public_base_url: the sandbox's own URL as clients reach it (links, certificate
        URL); by default the URL of the request being answered.
    :param token_ttl_seconds: the ``expires_in`` of issued access tokens.
    :param merchant_id: the payee's PayPal merchant id.
    :param latency_seconds: how long every PayPal call waits before it is answered.
    :param auto_deliver: send each event to ``webhook_url`` as it happens, as PayPal does
        (off: only ``POST /_sandbox/deliver`` sends them).
    :param refund_status: the status of refunds created through the API: ``COMPLETED``, or
        ``PENDING`` until ``POST /_sandbox/refunds/{id}/settle``.
    """

    model_config = SettingsConfigDict(
        env_prefix="PIXECOM_PAYPAL_SANDBOX_", env_file=None, extra="ignore", populate_by_name=True
    )

    client_id: str = Field(
        default="sandbox-client-id",
        validation_alias=AliasChoices(
            "client_id", "PIXECOM_PAYPAL_SANDBOX_CLIENT_ID", "PIXECOM_PAYPAL_CLIENT_ID"
        ),
    )
    client_secret: SecretStr = Field(
        default=SecretStr("sandbox-client-secret"),
        validation_alias=AliasChoices(
            "client_secret", "PIXECOM_PAYPAL_SANDBOX_CLIENT_SECRET", "PIXECOM_PAYPAL_CLIENT_SECRET"
        ),
    )
    webhook_id: str = Field(
        default="SANDBOXWEBHOOK0000000001",
        pattern=r"^[A-Za-z0-9]+$",
        validation_alias=AliasChoices(
            "webhook_id", "PIXECOM_PAYPAL_SANDBOX_WEBHOOK_ID", "PIXECOM_PAYPAL_WEBHOOK_ID"
        ),
    )
    webhook_url: str | None = None
    public_base_url: str | None = None
    token_ttl_seconds: int = Field(default=32400, gt=0)
    merchant_id: str = "SANDBOXMERCHANT1"
    latency_seconds: float = Field(default=0.0, ge=0, le=60)
    auto_deliver: bool = False
    refund_status: Literal["COMPLETED", "PENDING"] = "COMPLETED"


class PayPalFault(Fault):
    """The kit's failures in PayPal's words (see the module docstring), plus a 403."""

    kind: Literal[KitFaultKind, "not_authorized"]


# -- certificates -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoopbackTLS:
    """Files for serving the sandbox over https on loopback.

    :param ca_file: the CA certificate clients trust (``PIXECOM_PAYPAL_TLS_CA_FILE``).
    :param cert_file: the server certificate, for ``uvicorn --ssl-certfile``.
    :param key_file: the server key, for ``uvicorn --ssl-keyfile``.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PixEcom PayPal sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(days=1)).not_valid_after(
        now + dt.timedelta(days=days)
    )


def write_loopback_tls(
    directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> LoopbackTLS:
    """Write a throwaway CA and a server certificate for ``hosts`` into ``directory``.

    The certificate URL the gateway downloads from must be https (see
    :func:`pixecom_paypal.signatures.check_certificate_url`), so a sandbox checked with
    offline verification is served with these files and the gateway trusts ``ca_file``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name("PixEcom PayPal sandbox loopback CA")
    ca_certificate = (
        _validity(x509.CertificateBuilder(), 30)
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alternative_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alternative_names.append(x509.DNSName(host))
    server_certificate = (
        _validity(x509.CertificateBuilder(), 30)
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = LoopbackTLS(
        ca_file=directory / "paypal-sandbox-ca.pem",
        cert_file=directory / "paypal-sandbox-server.pem",
        key_file=directory / "paypal-sandbox-server-key.pem",
    )
    files.ca_file.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_file.chmod(0o600)
    return files


@dataclass(frozen=True, slots=True)
class _SigningIdentity:
    """The test key and self-signed certificate webhooks are signed with."""

    key: rsa.RSAPrivateKey
    certificate_pem: bytes
    cert_id: str


def _signing_identity() -> _SigningIdentity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name("messageverificationcerts.sandbox.pixecom.test")
    certificate = (
        _validity(x509.CertificateBuilder(), 365)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .sign(key, hashes.SHA256())
    )
    return _SigningIdentity(
        key=key,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        cert_id=f"CERT-360caa42-fca2a594-{secrets.token_hex(4)}",
    )


# -- PayPal's shapes ----------------------------------------------------------------------


def _error(
    status: int,
    name: str,
    message: str,
    *,
    issue: str | None = None,
    description: str | None = None,
    field_path: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answered:
    debug_id = secrets.token_hex(7)
    body: JSONObject = {"name": name, "message": message, "debug_id": debug_id, "links": []}
    if issue is not None:
        detail: JSONObject = {"issue": issue, "description": description or message}
        if field_path is not None:
            detail.update(field=field_path, location="body")
        body["details"] = [detail]
        body["links"] = [
            {
                "href": f"https://developer.paypal.com/api/rest/reference/orders/v2/errors/#{issue}",
                "rel": "information_link",
                "method": "GET",
            }
        ]
    return Answered(
        JSONResponse(
            body, status_code=status, headers={"Paypal-Debug-Id": debug_id, **(headers or {})}
        )
    )


def _oauth_error(status: int, error: str, description: str) -> Answered:
    """PayPal's OAuth2 error shape: the token endpoint's and a refused bearer token's."""
    body = {"error": error, "error_description": description}
    return Answered(JSONResponse(body, status_code=status))


_NAMES = {
    400: (
        "INVALID_REQUEST",
        "Request is not well-formed, syntactically incorrect, or violates schema.",
    ),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed "
        "business validation.",
    ),
    429: ("RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting."),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error has occurred."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
}


def _not_found(kind: str, resource_id: str) -> Answered:
    return _error(
        404,
        "RESOURCE_NOT_FOUND",
        _NAMES[404][1],
        issue="INVALID_RESOURCE_ID",
        description=f"Specified resource ID ({kind} {resource_id}) does not exist.",
    )


def _found(objects: Mapping[str, JSONObject], kind: str, object_id: str) -> JSONObject:
    """The object with this id, or PayPal's 404 naming it."""
    if object_id not in objects:
        raise _not_found(kind, object_id)
    return objects[object_id]


def _unprocessable(issue: str, description: str) -> Answered:
    return _error(422, *_NAMES[422], issue=issue, description=description)


def _invalid(issue: str, field_path: str, description: str) -> Answered:
    return _error(400, *_NAMES[400], issue=issue, description=description, field_path=field_path)


def _json_object(raw: bytes) -> JSONObject:
    try:
        payload: JSONObject = json_body(raw)
    except MalformedBody as exc:
        raise _invalid("MALFORMED_REQUEST_JSON", "", str(exc)) from None
    return payload


def _money(minor: int, currency: str) -> JSONObject:
    exponent = currency_exponent(currency)
    return {"currency_code": currency, "value": f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"}


def _minor(money: JSONObject) -> int:
    return from_paypal_value(str(money["value"]), str(money["currency_code"]))


def _fee(gross_minor: int) -> int:
    # 3.49 % rounded half up: plausible, and it keeps gross != net in the breakdowns.
    return int((Decimal(gross_minor) * Decimal("0.0349")).quantize(Decimal(1), ROUND_HALF_UP))


def _check_money(amount: object, field_path: str) -> None:
    if not isinstance(amount, dict):
        raise _invalid("MISSING_REQUIRED_PARAMETER", field_path, "A required field is missing.")
    currency = amount.get("currency_code")
    value = amount.get("value")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise _invalid(
            "INVALID_PARAMETER_VALUE", f"{field_path}/currency_code", "Currency code is invalid."
        )
    if not isinstance(value, str):
        raise _invalid(
            "MISSING_REQUIRED_PARAMETER", f"{field_path}/value", "A required field is missing."
        )
    try:
        minor = from_paypal_value(value, currency)
    except AmountError:
        raise _invalid(
            "DECIMAL_PRECISION",
            f"{field_path}/value",
            "If the currency supports decimals, only two decimal place precision is supported.",
        ) from None
    if minor <= 0:
        raise _invalid(
            "INVALID_PARAMETER_VALUE", f"{field_path}/value", "The amount must be positive."
        )


# -- control request bodies -------------------------------------------------------------


class ControlAmount(BaseModel):
    value: str | None = None


class CaptureOutcome(BaseModel):
    status: Literal["COMPLETED", "DENIED"] = "COMPLETED"


class RefundSettlement(BaseModel):
    status: Literal["COMPLETED", "FAILED", "CANCELLED"] = "COMPLETED"


class DisputeOpening(BaseModel):
    value: str | None = None
    reason: str = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"
    stage: Literal["INQUIRY", "CHARGEBACK"] = "INQUIRY"
    channel: Literal["INTERNAL", "EXTERNAL"] = "INTERNAL"
    #: Reverse the funds at once, as a bank chargeback does.
    reverse: bool = False


class DisputeResolution(BaseModel):
    outcome: Literal[
        "RESOLVED_BUYER_FAVOUR",
        "RESOLVED_SELLER_FAVOUR",
        "RESOLVED_WITH_PAYOUT",
        "CANCELED_BY_BUYER",
        "ACCEPTED",
        "DENIED",
    ]


class TransmissionRequest(BaseModel):
    event_id: str


class NoSigningOptions(BaseModel):
    """PayPal's signer takes no ``signing`` options: ``POST /_sandbox/deliver`` refuses any
    (422) rather than sign as if they had been applied."""

    model_config = ConfigDict(extra="forbid")


# -- state ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Transmission:
    event_id: str
    body: bytes
    transmission_time: str
    signature: str
    cert_url: str
    webhook_id: str


@dataclass
class _Subscription:
    """One webhook subscription of a seller's app: its own outbox, signed for its id."""

    id: str
    url: str
    event_types: list[str]
    create_time: str
    outbox: WebhookOutbox

    def shown(self) -> JSONObject:
        return {
            "id": self.id,
            "url": self.url,
            "event_types": [{"name": name, "status": "ENABLED"} for name in self.event_types],
            "create_time": self.create_time,
        }


@dataclass
class _SellerApp:
    """A seller's own REST app: its credentials, ids and webhook subscriptions."""

    client_id: str
    client_secret: str
    app_id: str
    merchant_id: str
    webhooks: dict[str, _Subscription] = field(default_factory=dict)


#: Apps the sandbox keeps at most (SCALE-4: nothing unbounded).
MAX_APPS = 1000
#: PayPal's documented limit of webhook subscriptions per app.
MAX_WEBHOOKS_PER_APP = 10


class AppCreation(BaseModel):
    """``POST /_sandbox/apps``: a seller's REST app (its name is for the request log)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="Seller app", max_length=127)


#: The base URL of the request being answered (links and certificate URLs are built on it).
_REQUEST_BASE_URL: ContextVar[str | None] = ContextVar("paypal_sandbox_base_url", default=None)

_BUYER: JSONObject = {
    "name": {"given_name": "Sandbox", "surname": "Buyer"},
    "email_address": "buyer@sandbox.pixecom.test",
    "payer_id": "SANDBOXBUYER01",
    "address": {"country_code": "US"},
}


class SandboxPayPal:
    """One fake PayPal account: its tokens, orders, captures, refunds and disputes, the
    webhook events they emit, and the kit holding faults, settings and the request log.

    Methods raise the kit's :class:`~pixecom_core.testing.sandbox_kit.Answered` with PayPal's
    error for a call PayPal refuses.

    :param settings: the starting settings (``POST /_sandbox/reset`` restores them).
    """

    def __init__(self, settings: SandboxSettings) -> None:
        self.identity = _signing_identity()
        self.outbox = WebhookOutbox(sign=self.sign, signing=NoSigningOptions)
        #: The sandbox's time (``POST /_sandbox/clock`` moves it, a reset puts it back).
        self.clock = SandboxClock()
        self.kit: SandboxKit[SandboxSettings, PayPalFault] = SandboxKit(
            config=settings,
            fault_model=PayPalFault,
            outbox=self.outbox,
            on_reset=self.clear,
            on_config=self._configured,
            clock=self.clock,
        )
        self.clear()

    def clear(self) -> None:
        """Forget every token, object and transmission (the kit resets the clock)."""
        self.tokens: dict[str, dt.datetime] = {}
        self.orders: dict[str, JSONObject] = {}
        self.order_urls: dict[str, tuple[str | None, str | None]] = {}
        self.captures: dict[str, JSONObject] = {}
        self.refunds: dict[str, JSONObject] = {}
        self.refunded_capture: dict[str, str] = {}  # refund id -> capture id
        self.disputes: dict[str, JSONObject] = {}
        self.reversed_disputes: set[str] = set()
        #: The first successful answer per app, path and ``PayPal-Request-Id`` (1 to 108
        #: characters); PayPal checks neither the endpoint nor the parameters of a replay.
        self.replays: IdempotentReplays[JSONObject] = IdempotentReplays(max_key_length=108)
        self.transmissions: dict[str, _Transmission] = {}
        #: Sellers' own REST apps by client id, and which app each token and object
        #: belongs to (absent: the platform app's).
        self.apps: dict[str, _SellerApp] = {}
        self.token_apps: dict[str, str] = {}
        self.owners = Ownership()

    def _configured(self, settings: SandboxSettings) -> None:
        self.outbox.url = settings.webhook_url
        self.outbox.auto_deliver = settings.auto_deliver
        for app in getattr(self, "apps", {}).values():
            for subscription in app.webhooks.values():
                subscription.outbox.auto_deliver = settings.auto_deliver

    @property
    def settings(self) -> SandboxSettings:
        """The current settings."""
        return self.kit.config

    @property
    def base_url(self) -> str:
        """The sandbox's URL as the current caller reaches it (or as configured)."""
        configured = self.settings.public_base_url or _REQUEST_BASE_URL.get()
        return (configured or "http://127.0.0.1").rstrip("/")

    def now(self) -> dt.datetime:
        """The sandbox's time."""
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def stamp(self) -> str:
        """The sandbox's time as PayPal writes it (``create_time``, transmission times)."""
        return utc_stamp(self.clock())

    def new_id(self) -> str:
        """An order, capture or refund id in PayPal's shape."""
        return self.kit.new_id(length=17, alphabet=_ID_ALPHABET)

    def link(self, path: str, rel: str, method: str = "GET") -> JSONObject:
        return {"href": f"{self.base_url}{path}", "rel": rel, "method": method}

    # -- in front of every PayPal call ---------------------------------------------------

    async def admit(self, request: Request, operation: str, *, bearer: bool = True) -> str | None:
        """Log the call, wait the configured latency, answer an injected fault, then refuse
        a missing or expired bearer token (``bearer=False``: the calls PayPal answers without
        one, the token endpoint and the certificate). Return the client id of the seller's
        app the token belongs to, ``None`` for the platform app's."""
        token = bearer_token(request.headers.get("authorization"))
        has_token = bool(token)
        refused, entry = await self.kit.intercept(
            request,
            operation,
            render=lambda fault: self._fault_answer(fault, operation),
            has_token=has_token,
        )
        if refused is not None:
            raise Answered(refused)
        if not bearer:
            return None
        expires_at = self.tokens.get(token) if has_token else None
        if expires_at is None or expires_at <= self.now():
            entry["refused"] = "invalid_token"
            raise _oauth_error(401, "invalid_token", "Access Token not found in cache")
        return self.token_apps.get(token)

    def owned(
        self, objects: Mapping[str, JSONObject], kind: str, object_id: str, owner: str | None
    ) -> JSONObject:
        """The object if it belongs to ``owner``'s app; PayPal's 404 otherwise, as for an
        id that does not exist (PayPal shows a merchant none of another's resources)."""
        found = _found(objects, kind, object_id)
        if not self.owners.visible(object_id, owner):
            raise _not_found(kind, object_id)
        return found

    def create_app(self, creation: AppCreation) -> JSONObject:
        """A seller's new REST app: credentials, app id and merchant id of its own."""
        if len(self.apps) >= MAX_APPS:
            raise _unprocessable("APP_LIMIT_REACHED", f"The sandbox keeps {MAX_APPS} apps.")
        app = _SellerApp(
            client_id="A" + secrets.token_urlsafe(30),
            client_secret="E" + secrets.token_urlsafe(30),
            app_id=self.kit.new_id("APP-", 17, _ID_ALPHABET),
            merchant_id=self.kit.new_id(length=13, alphabet=_ID_ALPHABET),
        )
        self.apps[app.client_id] = app
        return {
            "name": creation.name,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "app_id": app.app_id,
            "merchant_id": app.merchant_id,
        }

    def _app(self, owner: str | None) -> _SellerApp:
        """The seller's app calling the Webhooks API (the platform's are its settings)."""
        if owner is None or owner not in self.apps:
            raise _error(403, *_NAMES[403])
        return self.apps[owner]

    def create_webhook(self, owner: str | None, payload: JSONObject) -> JSONObject:
        """``POST /v1/notifications/webhooks`` for the calling app."""
        app = self._app(owner)
        url = payload.get("url")
        types = payload.get("event_types")
        names = (
            [item.get("name") for item in types if isinstance(item, dict)]
            if isinstance(types, list)
            else []
        )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _error(
                400,
                "VALIDATION_ERROR",
                "Invalid data provided",
                issue="INVALID_URL",
                field_path="/url",
            )
        if not names or not all(isinstance(name, str) and name for name in names):
            raise _error(
                400,
                "VALIDATION_ERROR",
                "Invalid data provided",
                issue="MISSING_REQUIRED_PARAMETER",
                field_path="/event_types",
            )
        if any(subscription.url == url for subscription in app.webhooks.values()):
            raise _error(400, "WEBHOOK_URL_ALREADY_EXISTS", "Webhook URL already exists")
        if len(app.webhooks) >= MAX_WEBHOOKS_PER_APP:
            raise _error(
                400, "WEBHOOK_NUMBER_LIMIT_EXCEEDED", "Maximum number of webhooks exceeded"
            )
        webhook_id = self.kit.new_id(length=17, alphabet=_ID_ALPHABET)
        subscription = _Subscription(
            id=webhook_id,
            url=url,
            event_types=[str(name) for name in names],
            create_time=self.stamp(),
            outbox=WebhookOutbox(
                sign=lambda event, _signing: self.sign_for(webhook_id, event),
                url=url,
                auto_deliver=self.settings.auto_deliver,
            ),
        )
        app.webhooks[webhook_id] = subscription
        return {
            **subscription.shown(),
            "links": [self.link(f"/v1/notifications/webhooks/{webhook_id}", "self")],
        }

    def list_webhooks(self, owner: str | None) -> JSONObject:
        """``GET /v1/notifications/webhooks``: the calling app's subscriptions."""
        return {"webhooks": [s.shown() for s in self._app(owner).webhooks.values()]}

    def delete_webhook(self, owner: str | None, webhook_id: str) -> None:
        """``DELETE /v1/notifications/webhooks/{id}``; 404 ``INVALID_RESOURCE_ID`` when the
        calling app has no such subscription."""
        app = self._app(owner)
        if app.webhooks.pop(webhook_id, None) is None:
            raise _error(404, "INVALID_RESOURCE_ID", "Resource id is invalid.")

    def subscription(self, webhook_id: str) -> _Subscription:
        """A seller app's subscription by id (for the delivery control)."""
        for app in self.apps.values():
            if webhook_id in app.webhooks:
                return app.webhooks[webhook_id]
        raise _not_found("webhook", webhook_id)

    def _fault_answer(self, fault: PayPalFault, operation: str) -> Response:
        """A queued fault in PayPal's words (the kit answers the transport kinds)."""
        if fault.kind == "auth":
            error, description = (
                ("invalid_client", "Client Authentication failed")
                if operation == "token"
                else ("invalid_token", "Token signature verification failed")
            )
            return _oauth_error(401, error, fault.message or description).response
        status = {"throttled": 429, "not_authorized": 403}.get(fault.kind) or fault.status or 503
        name, message = _NAMES.get(status, _NAMES[500])
        wait = 60 if fault.retry_after_seconds is None else fault.retry_after_seconds
        headers = {"Retry-After": f"{wait:g}"} if status == 429 else None
        return _error(status, name, fault.message or message, headers=headers).response

    def idempotent(
        self,
        request: Request,
        compute: Callable[[], JSONObject],
        owner: str | None = None,
    ) -> JSONObject:
        """The first successful answer for this path and ``PayPal-Request-Id``, computed once."""
        try:
            answer, _replayed = self.replays.answer(
                request.headers.get("paypal-request-id"),
                compute,
                scope=(owner or "", request.url.path),
            )
        except IdempotencyConflict:  # only its length: PayPal checks nothing else
            raise _error(
                400,
                *_NAMES[400],
                issue="INVALID_STRING_LENGTH",
                description="PayPal-Request-Id must be 1 to 108 characters.",
            ) from None
        return answer

    # -- OAuth2 ---------------------------------------------------------------------------

    def issue_token(self, authorization: str, form_body: bytes) -> JSONObject:
        """The client-credentials grant: a bearer token for the configured client."""
        presented = basic_credentials(authorization)
        client_id, client_secret = presented or ("", "")
        app = self.apps.get(client_id)
        expected_id, expected_secret = (
            (app.client_id, app.client_secret)
            if app is not None
            else (self.settings.client_id, self.settings.client_secret.get_secret_value())
        )
        if presented is None or not (
            secrets.compare_digest(client_id, expected_id)
            and secrets.compare_digest(client_secret, expected_secret)
        ):
            raise _oauth_error(401, "invalid_client", "Client Authentication failed")
        grant = parse_qs(form_body.decode(errors="replace")).get("grant_type", [""])[0]
        if grant != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type", f"Grant Type is {grant or 'NULL'}")
        access_token = "A21AA" + secrets.token_urlsafe(48)
        ttl = self.settings.token_ttl_seconds
        self.tokens[access_token] = self.now() + dt.timedelta(seconds=ttl)
        if app is not None:
            self.token_apps[access_token] = app.client_id
        return {
            "scope": "https://uri.paypal.com/services/payments/payment "
            "https://uri.paypal.com/services/disputes/read-seller "
            "https://uri.paypal.com/services/applications/webhooks",
            "access_token": access_token,
            "token_type": "Bearer",
            "app_id": app.app_id if app is not None else "APP-80W284485P519543T",
            "expires_in": ttl,
            "nonce": f"{self.stamp()}{secrets.token_urlsafe(16)}",
        }

    def revoke_tokens(self) -> int:
        """Forget every issued token; return how many there were."""
        revoked = len(self.tokens)
        self.tokens.clear()
        self.token_apps.clear()
        return revoked

    # -- Orders v2 ------------------------------------------------------------------------

    def shown_order(self, order: JSONObject) -> JSONObject:
        """The order as PayPal shows it: with the HATEOAS links its status allows."""
        order_id = order["id"]
        links = [self.link(f"/v2/checkout/orders/{order_id}", "self")]
        if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
            rel = "payer-action" if "payment_source" in order else "approve"
            links.append(self.link(f"/checkoutnow?token={order_id}", rel))
        if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            links.append(self.link(f"/v2/checkout/orders/{order_id}", "update", "PATCH"))
            links.append(self.link(f"/v2/checkout/orders/{order_id}/capture", "capture", "POST"))
        return {**copy.deepcopy(order), "links": links}

    def create_order(self, payload: JSONObject, owner: str | None = None) -> JSONObject:
        """``POST /v2/checkout/orders`` with one purchase unit, for ``owner``'s app (the
        payee is that app's merchant)."""
        intent = payload.get("intent")
        if intent not in ("CAPTURE", "AUTHORIZE"):
            raise _invalid("INVALID_PARAMETER_VALUE", "/intent", "Intent is invalid.")
        units = payload.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise _invalid(
                "INVALID_ARRAY_MAX_ITEMS"
                if isinstance(units, list) and units
                else "MISSING_REQUIRED_PARAMETER",
                "/purchase_units",
                "This sandbox takes exactly one purchase unit.",
            )
        unit = units[0]
        _check_money(unit.get("amount"), "/purchase_units/@reference_id=='default'/amount")
        for text_field in ("custom_id", "invoice_id", "description"):
            value = unit.get(text_field)
            if value is not None and (not isinstance(value, str) or len(value) > 127):
                raise _invalid(
                    "INVALID_STRING_LENGTH",
                    f"/purchase_units/@reference_id=='default'/{text_field}",
                    "The value of a field is too long.",
                )
        now = self.stamp()
        order_id = self.new_id()
        order: JSONObject = {
            "id": order_id,
            "intent": intent,
            "status": "CREATED",
            "purchase_units": [
                {
                    "reference_id": unit.get("reference_id", "default"),
                    **{
                        key: unit[key]
                        for key in ("custom_id", "invoice_id", "description")
                        if key in unit
                    },
                    "amount": dict(unit["amount"]),
                    "payee": {
                        "email_address": "merchant@sandbox.pixecom.test",
                        "merchant_id": self.merchant_of(owner),
                    },
                }
            ],
            "create_time": now,
            "update_time": now,
        }
        context = (payload.get("payment_source") or {}).get("paypal", {}).get(
            "experience_context", {}
        ) or payload.get("application_context", {})
        if isinstance(payload.get("payment_source"), dict):
            order["payment_source"] = {"paypal": {}}
            order["status"] = "PAYER_ACTION_REQUIRED"
        self.orders[order_id] = order
        self.owners.mark(order_id, owner)
        self.order_urls[order_id] = (context.get("return_url"), context.get("cancel_url"))
        return self.shown_order(order)

    def merchant_of(self, owner: str | None) -> str:
        """The merchant id of ``owner``'s app (the platform's from the settings)."""
        app = self.apps.get(owner) if owner is not None else None
        return app.merchant_id if app is not None else self.settings.merchant_id

    def approve(self, order: JSONObject) -> None:
        """The buyer approves (emits ``CHECKOUT.ORDER.APPROVED``); approved already: nothing."""
        if order["status"] == "APPROVED":
            return
        if order["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            raise _unprocessable(
                "ORDER_CANNOT_BE_APPROVED",
                f"The order is {order['status']}, not awaiting approval.",
            )
        order["status"] = "APPROVED"
        order["update_time"] = self.stamp()
        order["payer"] = copy.deepcopy(_BUYER)
        order["payment_source"] = {
            "paypal": {
                "email_address": _BUYER["email_address"],
                "account_id": _BUYER["payer_id"],
                "account_status": "VERIFIED",
                "name": copy.deepcopy(_BUYER["name"]),
                "address": copy.deepcopy(_BUYER["address"]),
            }
        }
        self.emit(
            "CHECKOUT.ORDER.APPROVED",
            "checkout-order",
            self.shown_order(order),
            "An order has been approved by buyer",
            owner=self.owners.get(order["id"]),
        )

    def capture(self, order: JSONObject, status: Literal["COMPLETED", "DENIED"]) -> JSONObject:
        """Capture an approved order (emits ``PAYMENT.CAPTURE.COMPLETED`` or ``DENIED``)."""
        if order["status"] == "COMPLETED":
            raise _unprocessable(
                "ORDER_ALREADY_CAPTURED",
                "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
            )
        if order["status"] != "APPROVED":
            raise _unprocessable(
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment. Please redirect the payer "
                "to the 'rel':'approve' url returned as part of the HATEOAS links within the "
                "Create Order call or provide a valid payment_source in the request.",
            )
        unit = order["purchase_units"][0]
        invoice_id = unit.get("invoice_id")
        if invoice_id is not None and any(
            other.get("invoice_id") == invoice_id and other["status"] != "DENIED"
            for other in self.captures.values()
        ):
            raise _unprocessable(
                "DUPLICATE_INVOICE_ID",
                "Duplicate Invoice ID detected. To avoid a potential duplicate transaction your "
                "account setting requires that Invoice Id be unique for each transaction.",
            )
        amount = dict(unit["amount"])
        gross = _minor(amount)
        fee = _fee(gross)
        currency = amount["currency_code"]
        now = self.stamp()
        capture_id = self.new_id()
        captured: JSONObject = {
            "id": capture_id,
            "status": status,
            "amount": amount,
            "final_capture": True,
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
            },
            "supplementary_data": {"related_ids": {"order_id": order["id"]}},
            **{key: unit[key] for key in ("custom_id", "invoice_id") if key in unit},
            "create_time": now,
            "update_time": now,
            "links": [
                self.link(f"/v2/payments/captures/{capture_id}", "self"),
                self.link(f"/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
                self.link(f"/v2/checkout/orders/{order['id']}", "up"),
            ],
        }
        if status == "COMPLETED":
            captured["seller_receivable_breakdown"] = {
                "gross_amount": amount,
                "paypal_fee": _money(fee, currency),
                "net_amount": _money(gross - fee, currency),
            }
        else:
            captured["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
        self.captures[capture_id] = captured
        owner = self.owners.inherit(capture_id, order["id"])
        unit.setdefault("payments", {}).setdefault("captures", []).append(captured)
        order["status"] = "COMPLETED" if status == "COMPLETED" else order["status"]
        order["update_time"] = now
        value = f"{amount['value']} {currency}"
        summary = f"Payment {status.lower()} for {value}"
        self.emit(f"PAYMENT.CAPTURE.{status}", "capture", captured, summary, owner=owner)
        return self.shown_order(order)

    # -- payments -------------------------------------------------------------------------

    def amount_of(self, capture_id: str, value: str | None) -> JSONObject | None:
        """``value`` in the capture's currency (``None`` without a value: all that is left)."""
        captured = self.captures.get(capture_id)
        if value is None or captured is None:
            return None
        return {"currency_code": captured["amount"]["currency_code"], "value": value}

    def _refunded_so_far(self, capture_id: str) -> int:
        # A pending refund holds its amount; a failed or cancelled one gives it back.
        return sum(
            _minor(refund["amount"])
            for refund_id, refund in self.refunds.items()
            if self.refunded_capture[refund_id] == capture_id
            and refund["status"] in ("COMPLETED", "PENDING")
        )

    def _mark_capture(self, capture_id: str, *, reversal: bool) -> None:
        captured = self.captures[capture_id]
        total = self._refunded_so_far(capture_id)
        if total == 0:
            captured["status"] = "COMPLETED"
        elif total == _minor(captured["amount"]):
            captured["status"] = "REVERSED" if reversal else "REFUNDED"
        else:
            captured["status"] = "PARTIALLY_REFUNDED"
        captured["update_time"] = self.stamp()

    def give_back(
        self,
        capture_id: str,
        amount: JSONObject | None,
        *,
        reversal: bool,
        request: JSONObject | None = None,
        status: Literal["COMPLETED", "PENDING"] = "COMPLETED",
    ) -> JSONObject:
        """Refund (or, PayPal's own doing, reverse) ``amount`` of a capture, all that is left
        without one (emits ``PAYMENT.CAPTURE.REFUNDED`` or ``REVERSED`` unless ``PENDING``).

        :param request: the merchant's refund request: its ``custom_id``, ``invoice_id`` and
            ``note_to_payer`` are kept on the refund (else the capture's ids).
        """
        captured = _found(self.captures, "capture", capture_id)
        if captured["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            issue = (
                "CAPTURE_FULLY_REFUNDED"
                if captured["status"] == "REFUNDED"
                else "INVALID_CAPTURE_STATUS"
            )
            raise _unprocessable(issue, f"The capture is {captured['status']}.")
        currency = captured["amount"]["currency_code"]
        remaining = _minor(captured["amount"]) - self._refunded_so_far(capture_id)
        if amount is None:
            minor = remaining
        else:
            _check_money(amount, "/amount")
            if amount["currency_code"] != currency:
                raise _unprocessable(
                    "REFUND_CURRENCY_MISMATCH",
                    "Refund must be in the same currency as the capture.",
                )
            minor = _minor(amount)
        if minor > remaining:
            raise _unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has "
                "not yet been refunded.",
            )
        now = self.stamp()
        refund_id = self.new_id()
        total = self._refunded_so_far(capture_id) + minor
        refund: JSONObject = {
            "id": refund_id,
            "amount": _money(minor, currency),
            "seller_payable_breakdown": {
                "gross_amount": _money(minor, currency),
                "paypal_fee": _money(0, currency),
                "net_amount": _money(minor, currency),
                "total_refunded_amount": _money(total, currency),
            },
            **{key: captured[key] for key in ("custom_id", "invoice_id") if key in captured},
            **{
                key: value
                for key in ("custom_id", "invoice_id", "note_to_payer")
                if isinstance(value := (request or {}).get(key), str) and value
            },
            "status": status,
            "create_time": now,
            "update_time": now,
            "links": [
                self.link(f"/v2/payments/refunds/{refund_id}", "self"),
                self.link(f"/v2/payments/captures/{capture_id}", "up"),
            ],
        }
        if reversal:
            refund["note_to_payer"] = "Payment reversed"
        if status == "PENDING":
            refund["status_details"] = {"reason": "ECHECK"}
        self.refunds[refund_id] = refund
        self.owners.inherit(refund_id, capture_id)
        self.refunded_capture[refund_id] = capture_id
        self._mark_capture(capture_id, reversal=reversal)
        if status == "COMPLETED":
            self._announce(refund, reversal=reversal)
        return refund

    def _announce(self, refund: JSONObject, *, reversal: bool) -> None:
        shown = f"{refund['amount']['value']} {refund['amount']['currency_code']}"
        done = "REVERSED" if reversal else "REFUNDED"
        summary = f"A {shown} capture payment was {done.lower()}"
        self.emit(
            f"PAYMENT.CAPTURE.{done}",
            "refund",
            refund,
            summary,
            owner=self.owners.get(refund["id"]),
        )

    def settle_refund(self, refund_id: str, status: str) -> JSONObject:
        """Move a ``PENDING`` refund to ``status`` (``COMPLETED`` emits
        ``PAYMENT.CAPTURE.REFUNDED``; ``FAILED`` or ``CANCELLED`` frees its amount)."""
        refund = _found(self.refunds, "refund", refund_id)
        if refund["status"] != "PENDING":
            raise _unprocessable("REFUND_NOT_PENDING", f"The refund is {refund['status']}.")
        refund["status"] = status
        refund["update_time"] = self.stamp()
        if status != "FAILED":
            refund.pop("status_details", None)
        self._mark_capture(self.refunded_capture[refund_id], reversal=False)
        if status == "COMPLETED":
            self._announce(refund, reversal=False)
        return refund

    # -- disputes -------------------------------------------------------------------------

    def list_disputes(self, capture_id: str | None, owner: str | None = None) -> JSONObject:
        """Summaries of ``owner``'s app's disputes, only those about ``capture_id`` when
        given."""
        keys = ("dispute_id", "create_time", "update_time", "reason", "status", "dispute_amount")
        items = [
            {
                **{key: dispute[key] for key in keys},
                "dispute_state": "REQUIRED_ACTION"
                if dispute["status"] != "RESOLVED"
                else "RESOLVED",
                "links": dispute["links"],
            }
            for dispute in self.disputes.values()
            if self.owners.visible(dispute["dispute_id"], owner)
            and (
                capture_id is None
                or any(
                    transaction["seller_transaction_id"] == capture_id
                    for transaction in dispute["disputed_transactions"]
                )
            )
        ]
        return {"items": items, "links": [self.link("/v1/customer/disputes", "self")]}

    def open_dispute(self, capture_id: str, opening: DisputeOpening) -> JSONObject:
        """The buyer opens a dispute (emits ``CUSTOMER.DISPUTE.CREATED``, and the reversal
        if ``reverse``)."""
        captured = _found(self.captures, "capture", capture_id)
        amount = self.amount_of(capture_id, opening.value) or dict(captured["amount"])
        now = self.stamp()
        dispute_id = self.kit.new_id("PP-D-", 6, string.digits)
        dispute: JSONObject = {
            "dispute_id": dispute_id,
            "create_time": now,
            "update_time": now,
            "disputed_transactions": [
                {
                    "seller_transaction_id": capture_id,
                    "seller": {"merchant_id": self.merchant_of(self.owners.get(capture_id))},
                    "items": [],
                    "seller_protection_eligible": True,
                    **({"custom": captured["custom_id"]} if "custom_id" in captured else {}),
                    **(
                        {"invoice_number": captured["invoice_id"]}
                        if "invoice_id" in captured
                        else {}
                    ),
                }
            ],
            "reason": opening.reason,
            "status": "WAITING_FOR_SELLER_RESPONSE",
            "dispute_amount": amount,
            "dispute_life_cycle_stage": opening.stage,
            "dispute_channel": opening.channel,
            "links": [self.link(f"/v1/customer/disputes/{dispute_id}", "self")],
        }
        self.disputes[dispute_id] = dispute
        self.emit(
            "CUSTOMER.DISPUTE.CREATED",
            "dispute",
            dispute,
            f"A new dispute opened with Case # {dispute_id}",
            owner=self.owners.inherit(dispute_id, capture_id),
        )
        if opening.reverse:
            self.give_back(capture_id, amount, reversal=True)
            self.reversed_disputes.add(dispute_id)
        return dispute

    def resolve_dispute(self, dispute_id: str, outcome: str) -> JSONObject:
        """Close the dispute (emits ``CUSTOMER.DISPUTE.RESOLVED``; a buyer's win also
        reverses the funds, unless a chargeback already did)."""
        dispute = _found(self.disputes, "dispute", dispute_id)
        if dispute["status"] == "RESOLVED":
            raise _unprocessable("DISPUTE_ALREADY_RESOLVED", "The dispute is resolved.")
        buyer_wins = outcome in ("RESOLVED_BUYER_FAVOUR", "ACCEPTED")
        if buyer_wins and dispute_id not in self.reversed_disputes:
            capture_id = dispute["disputed_transactions"][0]["seller_transaction_id"]
            self.give_back(capture_id, dispute["dispute_amount"], reversal=True)
            self.reversed_disputes.add(dispute_id)
        dispute["status"] = "RESOLVED"
        dispute["update_time"] = self.stamp()
        dispute["dispute_outcome"] = {"outcome_code": outcome}
        if buyer_wins:
            dispute["dispute_outcome"]["amount_refunded"] = dispute["dispute_amount"]
        self.emit(
            "CUSTOMER.DISPUTE.RESOLVED",
            "dispute",
            dispute,
            f"A dispute was resolved ({outcome})",
            owner=self.owners.get(dispute_id),
        )
        return dispute

    # -- webhooks -------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        resource_type: str,
        resource: JSONObject,
        summary: str,
        *,
        owner: str | None = None,
    ) -> None:
        """Queue the event PayPal would send: the platform app's for ``POST
        /_sandbox/deliver``, a seller's app's to each of its subscriptions to
        ``event_type`` (none: PayPal sends nothing)."""
        event_id = f"WH-{self.new_id()}-{self.new_id()}"
        events_url = "https://api.sandbox.paypal.com/v1/notifications/webhooks-events"
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": utc_stamp(self.clock(), milliseconds=True),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": copy.deepcopy(resource),
            "links": [
                {"href": f"{events_url}/{event_id}", "rel": "self", "method": "GET"},
                {"href": f"{events_url}/{event_id}/resend", "rel": "resend", "method": "POST"},
            ],
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        app = self.apps.get(owner) if owner is not None else None
        if app is None:
            self.outbox.emit(event_id, event_type, body)
            return
        for subscription in app.webhooks.values():
            if event_type in subscription.event_types or "*" in subscription.event_types:
                subscription.outbox.emit(event_id, event_type, body)

    def sign(self, event: OutboxEvent, _signing: Mapping[str, Any]) -> dict[str, str]:
        """Sign one delivery attempt of a platform event the way PayPal does; return its
        headers (the outbox's signer; it takes no signing options)."""
        return self.sign_for(self.settings.webhook_id, event)

    def sign_for(self, webhook_id: str, event: OutboxEvent) -> dict[str, str]:
        """Sign one delivery attempt of ``event`` for the subscription ``webhook_id``."""
        transmission_id = str(uuid.uuid4())
        transmission_time = self.stamp()
        # Written out here rather than shared with the gateway, so tests compare two
        # independent readings of PayPal's documented message.
        crc = zlib.crc32(event.body) & 0xFFFFFFFF
        message = f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()
        signature = base64.b64encode(
            self.identity.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        ).decode()
        cert_url = f"{self.base_url}/v1/notifications/certs/{self.identity.cert_id}"
        self.transmissions[transmission_id] = _Transmission(
            event_id=event.id,
            body=event.body,
            transmission_time=transmission_time,
            signature=signature,
            cert_url=cert_url,
            webhook_id=webhook_id,
        )
        return {
            "Content-Type": "application/json",
            "User-Agent": "PayPal/AUHD-214.0-58843664",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": signature,
            "PAYPAL-CERT-URL": cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    def verify_webhook_signature(self, fields: JSONObject, owner: str | None = None) -> JSONObject:
        """What verify-webhook-signature answers: ``SUCCESS`` only for a transmission this
        sandbox sent, unchanged, for a webhook id of the calling app."""
        for required in (
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
            "webhook_event",
        ):
            if not fields.get(required):
                raise _error(
                    400,
                    "VALIDATION_ERROR",
                    "Invalid request - see details",
                    issue="MISSING_REQUIRED_PARAMETER",
                    field_path=f"/{required}",
                )
        status = "SUCCESS" if self._signature_is_valid(fields, owner) else "FAILURE"
        return {"verification_status": status}

    def _signature_is_valid(self, fields: JSONObject, owner: str | None) -> bool:
        transmission = self.transmissions.get(str(fields.get("transmission_id")))
        if transmission is None:
            return False
        try:
            event_matches = fields.get("webhook_event") == json.loads(transmission.body)
            signature = base64.b64decode(str(fields.get("transmission_sig")), validate=True)
            crc = zlib.crc32(transmission.body) & 0xFFFFFFFF
            message = (
                f"{fields.get('transmission_id')}|{fields.get('transmission_time')}|"
                f"{fields.get('webhook_id')}|{crc}"
            ).encode()
            self.identity.key.public_key().verify(
                signature, message, padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature):
            return False
        return (
            event_matches
            and fields.get("auth_algo") == "SHA256withRSA"
            and fields.get("cert_url") == transmission.cert_url
            and fields.get("webhook_id") == transmission.webhook_id
            and transmission.webhook_id in self._webhook_ids(owner)
        )

    def _webhook_ids(self, owner: str | None) -> set[str]:
        app = self.apps.get(owner) if owner is not None else None
        return set(app.webhooks) if app is not None else {self.settings.webhook_id}

    def transmission(self, event_id: str) -> JSONObject:
        """A freshly signed transmission of one event, not sent: its body and headers."""
        event = self.outbox.event(event_id)
        if event is not None:
            return {"body": event.body.decode(), "headers": self.sign(event, {})}
        for app in self.apps.values():
            for subscription in app.webhooks.values():
                if (event := subscription.outbox.event(event_id)) is not None:
                    headers = self.sign_for(subscription.id, event)
                    return {"body": event.body.decode(), "headers": headers}
        raise _not_found("event", event_id)


# -- the app ----------------------------------------------------------------------------


def create_sandbox_app(settings: SandboxSettings | None = None) -> FastAPI:
    """Build a fresh PayPal sandbox with a new signing key and empty state.

    :param settings: how it behaves; read from the environment when omitted.
    """
    paypal = SandboxPayPal(settings or SandboxSettings())

    async def at_base_url(request: Request) -> None:
        # Links and certificate URLs name the sandbox as this caller reaches it; the
        # outbox's signer runs inside the ``POST /_sandbox/deliver`` request, so it too.
        _REQUEST_BASE_URL.set(str(request.base_url))

    app = paypal.kit.app("PayPal sandbox (PixEcom)", dependencies=[Depends(at_base_url)])
    app.state.paypal = paypal

    # -- PayPal's API ---------------------------------------------------------------------

    @app.post("/v1/oauth2/token")
    async def token(request: Request) -> JSONObject:
        await paypal.admit(request, "token", bearer=False)
        authorization = request.headers.get("authorization", "")
        return paypal.issue_token(authorization, await request.body())

    @app.post("/v2/checkout/orders", status_code=201)
    async def create_order(request: Request) -> JSONObject:
        owner = await paypal.admit(request, "create_order")
        body = await request.body()
        return paypal.idempotent(
            request, lambda: paypal.create_order(_json_object(body), owner), owner
        )

    @app.get("/v2/checkout/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> JSONObject:
        owner = await paypal.admit(request, "get_order")
        return paypal.shown_order(paypal.owned(paypal.orders, "order", order_id, owner))

    @app.post("/v2/checkout/orders/{order_id}/capture", status_code=201)
    async def capture_order(order_id: str, request: Request) -> JSONObject:
        owner = await paypal.admit(request, "capture_order")
        return paypal.idempotent(
            request,
            lambda: paypal.capture(
                paypal.owned(paypal.orders, "order", order_id, owner), "COMPLETED"
            ),
            owner,
        )

    @app.get("/v2/payments/captures/{capture_id}")
    async def get_capture(capture_id: str, request: Request) -> JSONObject:
        owner = await paypal.admit(request, "get_capture")
        return paypal.owned(paypal.captures, "capture", capture_id, owner)

    @app.post("/v2/payments/captures/{capture_id}/refund", status_code=201)
    async def refund_capture(capture_id: str, request: Request) -> JSONObject:
        owner = await paypal.admit(request, "refund_capture")
        payload = _json_object(await request.body())
        refund = paypal.idempotent(
            request,
            lambda: paypal.give_back(
                paypal.owned(paypal.captures, "capture", capture_id, owner)["id"],
                payload.get("amount"),
                reversal=False,
                request=payload,
                status=paypal.settings.refund_status,
            ),
            owner,
        )
        if "return=representation" in request.headers.get("prefer", ""):
            return refund
        # PayPal's default, return=minimal: the id, the status and the links.
        return {key: refund[key] for key in ("id", "status", "links")}

    @app.get("/v2/payments/refunds/{refund_id}")
    async def get_refund(refund_id: str, request: Request) -> JSONObject:
        owner = await paypal.admit(request, "get_refund")
        return paypal.owned(paypal.refunds, "refund", refund_id, owner)

    @app.get("/v1/customer/disputes")
    async def list_disputes(request: Request) -> JSONObject:
        owner = await paypal.admit(request, "list_disputes")
        return paypal.list_disputes(request.query_params.get("disputed_transaction_id"), owner)

    @app.get("/v1/customer/disputes/{dispute_id}")
    async def get_dispute(dispute_id: str, request: Request) -> JSONObject:
        owner = await paypal.admit(request, "get_dispute")
        return paypal.owned(paypal.disputes, "dispute", dispute_id, owner)

    @app.get("/v1/notifications/certs/{cert_id}")
    async def certificate(cert_id: str, request: Request) -> Response:
        await paypal.admit(request, "get_certificate", bearer=False)
        if cert_id != paypal.identity.cert_id:
            raise _not_found("certificate", cert_id)
        return PlainTextResponse(paypal.identity.certificate_pem.decode())

    @app.post("/v1/notifications/verify-webhook-signature")
    async def verify_webhook_signature(request: Request) -> JSONObject:
        owner = await paypal.admit(request, "verify_webhook_signature")
        return paypal.verify_webhook_signature(_json_object(await request.body()), owner)

    @app.post("/v1/notifications/webhooks", status_code=201)
    async def create_webhook(request: Request) -> JSONObject:
        owner = await paypal.admit(request, "create_webhook")
        return paypal.create_webhook(owner, _json_object(await request.body()))

    @app.get("/v1/notifications/webhooks")
    async def list_webhooks(request: Request) -> JSONObject:
        owner = await paypal.admit(request, "list_webhooks")
        return paypal.list_webhooks(owner)

    @app.delete("/v1/notifications/webhooks/{webhook_id}", status_code=204)
    async def delete_webhook(webhook_id: str, request: Request) -> Response:
        owner = await paypal.admit(request, "delete_webhook")
        paypal.delete_webhook(owner, webhook_id)
        return Response(status_code=204)

    # -- the buyer's approval page --------------------------------------------------------

    @app.get("/checkoutnow")
    async def checkout_page(token: str, request: Request) -> Response:
        paypal.kit.requests.record(request, operation="checkout_page")
        order = paypal.orders.get(token)
        if order is None:
            return HTMLResponse("<h1>Unknown order</h1>", status_code=404)
        amount = order["purchase_units"][0]["amount"]
        escaped = html.escape(token)
        return HTMLResponse(
            "<!doctype html><title>PayPal sandbox</title>"
            f"<h1>Pay {html.escape(amount['value'])} {html.escape(amount['currency_code'])}</h1>"
            f'<form method="post" action="/checkoutnow?token={escaped}">'
            '<button name="action" value="approve">Pay now</button> '
            '<button name="action" value="cancel">Cancel</button></form>'
        )

    @app.post("/checkoutnow")
    async def checkout_decision(token: str, request: Request) -> Response:
        paypal.kit.requests.record(request, operation="checkout_page")
        order = paypal.orders.get(token)
        if order is None:
            return HTMLResponse("<h1>Unknown order</h1>", status_code=404)
        action = parse_qs((await request.body()).decode()).get("action", ["approve"])[0]
        return_url, cancel_url = paypal.order_urls.get(token, (None, None))
        if action == "approve":
            paypal.approve(order)
            target = return_url
            params = {"token": token, "PayerID": _BUYER["payer_id"]}
        else:
            target = cancel_url
            params = {"token": token}
        if not target:
            return HTMLResponse(f"<h1>Order {html.escape(token)}: {html.escape(action)}</h1>")
        return RedirectResponse(str(httpx.URL(target).copy_merge_params(params)), status_code=303)

    # -- PayPal's own controls (the kit's come from its router) ---------------------------

    @app.post("/_sandbox/orders/{order_id}/approve")
    async def control_approve(order_id: str) -> JSONObject:
        """Approve the order as the buyer would (emits CHECKOUT.ORDER.APPROVED)."""
        order = _found(paypal.orders, "order", order_id)
        paypal.approve(order)
        return paypal.shown_order(order)

    @app.post("/_sandbox/orders/{order_id}/capture", status_code=201)
    async def control_capture(order_id: str, outcome: CaptureOutcome) -> JSONObject:
        """Approve if needed and capture, completed or denied (emits PAYMENT.CAPTURE.*)."""
        order = _found(paypal.orders, "order", order_id)
        paypal.approve(order)
        return paypal.capture(order, outcome.status)

    @app.post("/_sandbox/captures/{capture_id}/refund", status_code=201)
    async def control_refund(capture_id: str, body: ControlAmount) -> JSONObject:
        """Refund all that is left, or ``value`` (emits PAYMENT.CAPTURE.REFUNDED)."""
        amount = paypal.amount_of(capture_id, body.value)
        return paypal.give_back(capture_id, amount, reversal=False)

    @app.post("/_sandbox/refunds/{refund_id}/settle")
    async def control_settle_refund(refund_id: str, body: RefundSettlement) -> JSONObject:
        """Complete (emits PAYMENT.CAPTURE.REFUNDED), fail or cancel a PENDING refund."""
        return paypal.settle_refund(refund_id, body.status)

    @app.post("/_sandbox/captures/{capture_id}/reverse", status_code=201)
    async def control_reverse(capture_id: str, body: ControlAmount) -> JSONObject:
        """Reverse the capture as PayPal does on its own (emits PAYMENT.CAPTURE.REVERSED)."""
        amount = paypal.amount_of(capture_id, body.value)
        return paypal.give_back(capture_id, amount, reversal=True)

    @app.post("/_sandbox/captures/{capture_id}/disputes")
    async def control_open_dispute(capture_id: str, body: DisputeOpening) -> JSONObject:
        """Open a dispute (emits CUSTOMER.DISPUTE.CREATED, and the reversal if ``reverse``)."""
        return paypal.open_dispute(capture_id, body)

    @app.post("/_sandbox/disputes/{dispute_id}/resolve")
    async def control_resolve_dispute(dispute_id: str, body: DisputeResolution) -> JSONObject:
        """Close the dispute (emits CUSTOMER.DISPUTE.RESOLVED; a buyer's win also reverses)."""
        return paypal.resolve_dispute(dispute_id, body.outcome)

    @app.post("/_sandbox/webhooks/transmissions")
    async def control_transmission(body: TransmissionRequest) -> JSONObject:
        """Sign a fresh transmission of one event without sending it: body and headers."""
        return paypal.transmission(body.event_id)

    @app.post("/_sandbox/apps", status_code=201)
    async def control_create_app(body: AppCreation) -> JSONObject:
        """A seller's own REST app: its client id, secret, app id and merchant id."""
        return paypal.create_app(body)

    @app.post("/_sandbox/webhooks/{webhook_id}/deliver")
    async def control_deliver_subscription(webhook_id: str) -> list[JSONObject]:
        """Send the pending events of a seller app's subscription to its URL now."""
        attempts = await paypal.subscription(webhook_id).outbox.deliver(DeliverRequest())
        return [attempt.listed() for attempt in attempts]

    @app.post("/_sandbox/tokens/revoke")
    async def control_revoke_tokens() -> dict[str, int]:
        """Forget every issued access token: the next API call answers 401."""
        return {"revoked": paypal.revoke_tokens()}

    return app
