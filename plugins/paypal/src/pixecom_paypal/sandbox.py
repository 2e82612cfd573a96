"""A fake PayPal on loopback: the REST calls the gateway makes and the webhooks PayPal sends.

``create_sandbox_app()`` builds a FastAPI app that speaks PayPal's wire format:

- ``POST /v1/oauth2/token`` (Basic client id/secret, ``grant_type=client_credentials``),
  tokens that expire after ``token_ttl_seconds`` of the sandbox's clock;
- Orders v2: ``POST /v2/checkout/orders``, ``GET /v2/checkout/orders/{id}``,
  ``POST /v2/checkout/orders/{id}/capture``, idempotent on ``PayPal-Request-Id``;
- ``GET /v2/payments/captures/{id}``, ``POST /v2/payments/captures/{id}/refund``,
  ``GET /v2/payments/refunds/{id}``; ``GET /v1/customer/disputes[/{id}]``;
- ``POST /v1/notifications/verify-webhook-signature`` and the signing certificate at
  ``GET /v1/notifications/certs/{id}``;
- a buyer's approval page at ``/checkoutnow?token=<order id>``.

Control endpoints under ``/_sandbox/`` play the buyer, PayPal and the card networks: approve,
capture, refund, reverse, open and resolve disputes — each queues the webhook events PayPal
would send — then deliver the queue to the configured URL, signed with a test certificate
and key generated when the app is built (optionally with duplicates, shuffled). Latency,
HTTP errors, revoked tokens and clock jumps can be injected.

The sandbox is found through the ``pixecom_register_sandboxes`` hook; its defaults come from
``PIXECOM_PAYPAL_SANDBOX_*`` (falling back to the gateway's ``PIXECOM_PAYPAL_CLIENT_ID``,
``_CLIENT_SECRET`` and ``_WEBHOOK_ID``, so one set of variables configures both sides).
"""

import asyncio
import base64
import copy
import datetime as dt
import html
import ipaddress
import json
import random
import secrets
import string
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixecom_paypal.money import AmountError, currency_exponent, from_paypal_value

JSONObject = dict[str, Any]

CONTROL_PREFIX = "/_sandbox"


class SandboxSettings(BaseSettings):
    """How the PayPal sandbox behaves; read from ``PIXECOM_PAYPAL_SANDBOX_*``.

    :param client_id: the only client id the token endpoint accepts.
    :param client_secret: its secret.
    :param webhook_id: the webhook subscription id the sandbox signs deliveries for.
    :param webhook_url: where ``POST /_sandbox/webhooks/deliver`` sends events.
    :param public_base_url: the sandbox's own URL as clients reach it (links, certificate
        URL); by default the URL of the request being answered.
    :param token_ttl_seconds: the ``expires_in`` of issued access tokens.
    :param merchant_id: the payee's PayPal merchant id.
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
    client_secret: str = Field(
        default="sandbox-client-secret",
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


# -- state ------------------------------------------------------------------------------


def _paypal_id(length: int = 17) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


@dataclass
class _Clock:
    """The sandbox's time: the real clock plus an offset tests can move."""

    offset: dt.timedelta = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Event:
    event_id: str
    event_type: str
    body: bytes
    delivered: bool = False


@dataclass(frozen=True, slots=True)
class _Transmission:
    event_id: str
    body: bytes
    transmission_time: str
    signature: str
    cert_url: str
    webhook_id: str


@dataclass
class _Fault:
    path: str
    status: int
    times: int
    method: str | None
    name: str | None
    message: str | None
    issue: str | None
    retry_after: str | None


@dataclass
class _State:
    settings: SandboxSettings
    identity: _SigningIdentity
    clock: _Clock = field(default_factory=_Clock)
    tokens: dict[str, dt.datetime] = field(default_factory=dict)
    orders: dict[str, JSONObject] = field(default_factory=dict)
    order_urls: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    captures: dict[str, JSONObject] = field(default_factory=dict)
    refunds: dict[str, JSONObject] = field(default_factory=dict)
    disputes: dict[str, JSONObject] = field(default_factory=dict)
    refunded_capture: dict[str, str] = field(default_factory=dict)  # refund id -> capture id
    reversed_disputes: set[str] = field(default_factory=set)
    # (path, PayPal-Request-Id) -> (status, body) of the first successful answer
    idempotent: dict[tuple[str, str], tuple[int, JSONObject]] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)
    transmissions: dict[str, _Transmission] = field(default_factory=dict)
    latency_seconds: float = 0.0
    faults: list[_Fault] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)

    # -- webhooks --

    def emit(self, event_type: str, resource_type: str, resource: JSONObject, summary: str) -> None:
        event_id = f"WH-{_paypal_id()}-{_paypal_id()}"
        now = self.clock.now()
        event = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary,
            "resource": copy.deepcopy(resource),
            "links": [
                {
                    "href": f"https://api.sandbox.paypal.com/v1/notifications/webhooks-events/{event_id}",
                    "rel": "self",
                    "method": "GET",
                },
                {
                    "href": f"https://api.sandbox.paypal.com/v1/notifications/webhooks-events/{event_id}/resend",
                    "rel": "resend",
                    "method": "POST",
                },
            ],
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        self.events.append(_Event(event_id=event_id, event_type=event_type, body=body))

    def transmit(self, event: _Event, base_url: str) -> dict[str, str]:
        """Sign one delivery attempt of ``event`` the way PayPal does; return its headers."""
        transmission_id = str(uuid.uuid4())
        transmission_time = self.clock.stamp()
        webhook_id = self.settings.webhook_id
        # Written out here rather than shared with the gateway, so tests compare two
        # independent readings of PayPal's documented message.
        crc = zlib.crc32(event.body) & 0xFFFFFFFF
        message = f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()
        signature = base64.b64encode(
            self.identity.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        ).decode()
        cert_url = f"{base_url}/v1/notifications/certs/{self.identity.cert_id}"
        self.transmissions[transmission_id] = _Transmission(
            event_id=event.event_id,
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

    def signature_is_valid(self, fields: JSONObject) -> bool:
        """What verify-webhook-signature answers: a transmission this sandbox sent, unchanged."""
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
            and fields.get("webhook_id") == self.settings.webhook_id
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
) -> JSONResponse:
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
    return JSONResponse(
        body, status_code=status, headers={"Paypal-Debug-Id": debug_id, **(headers or {})}
    )


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


def _not_found(kind: str, resource_id: str) -> JSONResponse:
    return _error(
        404,
        "RESOURCE_NOT_FOUND",
        _NAMES[404][1],
        issue="INVALID_RESOURCE_ID",
        description=f"Specified resource ID ({kind} {resource_id}) does not exist.",
    )


def _unprocessable(issue: str, description: str) -> JSONResponse:
    return _error(422, *_NAMES[422], issue=issue, description=description)


def _invalid(issue: str, field_path: str, description: str) -> JSONResponse:
    return _error(400, *_NAMES[400], issue=issue, description=description, field_path=field_path)


def _money(minor: int, currency: str) -> JSONObject:
    exponent = currency_exponent(currency)
    return {"currency_code": currency, "value": f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"}


def _minor(money: JSONObject) -> int:
    return from_paypal_value(str(money["value"]), str(money["currency_code"]))


def _fee(gross_minor: int) -> int:
    # 3.49 % rounded half up: plausible, and it keeps gross != net in the breakdowns.
    return int((Decimal(gross_minor) * Decimal("0.0349")).quantize(Decimal(1), ROUND_HALF_UP))


def _money_problem(amount: object, field_path: str) -> JSONResponse | None:
    if not isinstance(amount, dict):
        return _invalid("MISSING_REQUIRED_PARAMETER", field_path, "A required field is missing.")
    currency = amount.get("currency_code")
    value = amount.get("value")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        return _invalid(
            "INVALID_PARAMETER_VALUE", f"{field_path}/currency_code", "Currency code is invalid."
        )
    if not isinstance(value, str):
        return _invalid(
            "MISSING_REQUIRED_PARAMETER", f"{field_path}/value", "A required field is missing."
        )
    try:
        minor = from_paypal_value(value, currency)
    except AmountError:
        return _invalid(
            "DECIMAL_PRECISION",
            f"{field_path}/value",
            "If the currency supports decimals, only two decimal place precision is supported.",
        )
    if minor <= 0:
        return _invalid(
            "INVALID_PARAMETER_VALUE", f"{field_path}/value", "The amount must be positive."
        )
    return None


class _ControlAmount(BaseModel):
    value: str | None = None


class _CaptureOutcome(BaseModel):
    status: Literal["COMPLETED", "DENIED"] = "COMPLETED"


class _DisputeOpening(BaseModel):
    value: str | None = None
    reason: str = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"
    stage: Literal["INQUIRY", "CHARGEBACK"] = "INQUIRY"
    channel: Literal["INTERNAL", "EXTERNAL"] = "INTERNAL"
    #: Reverse the funds at once, as a bank chargeback does.
    reverse: bool = False


class _DisputeResolution(BaseModel):
    outcome: Literal[
        "RESOLVED_BUYER_FAVOUR",
        "RESOLVED_SELLER_FAVOUR",
        "RESOLVED_WITH_PAYOUT",
        "CANCELED_BY_BUYER",
        "ACCEPTED",
        "DENIED",
    ]


class _WebhookConfig(BaseModel):
    url: str | None = None


class _Delivery(BaseModel):
    url: str | None = None
    #: How many extra copies of each event to send (each a fresh transmission).
    duplicates: int = Field(default=0, ge=0, le=10)
    shuffle: bool = False
    seed: int | None = None


class _TransmissionRequest(BaseModel):
    event_id: str


class _FaultRule(BaseModel):
    path: str
    status: int = Field(default=503, ge=400, le=599)
    times: int = Field(default=1, ge=1)
    method: str | None = None
    name: str | None = None
    message: str | None = None
    issue: str | None = None
    retry_after: str | None = None


class _Faults(BaseModel):
    latency_seconds: float = Field(default=0.0, ge=0, le=60)
    errors: list[_FaultRule] = Field(default_factory=list)


class _ClockMove(BaseModel):
    advance_seconds: float


# -- the app ----------------------------------------------------------------------------


def create_sandbox_app(settings: SandboxSettings | None = None) -> FastAPI:
    """Build a fresh PayPal sandbox with a new signing key and empty state.

    :param settings: how it behaves; read from the environment when omitted.
    """
    state = _State(settings=settings or SandboxSettings(), identity=_signing_identity())
    app = FastAPI(title="PayPal sandbox (PixEcom)", docs_url=None, redoc_url=None)
    app.state.paypal = state

    def base_url(request: Request) -> str:
        return (state.settings.public_base_url or str(request.base_url)).rstrip("/")

    def link(request: Request, path: str, rel: str, method: str = "GET") -> JSONObject:
        return {"href": f"{base_url(request)}{path}", "rel": rel, "method": method}

    # -- faults, latency and bearer tokens, in front of every PayPal route --------------

    @app.middleware("http")
    async def paypal_front(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(CONTROL_PREFIX):
            return await call_next(request)
        state.stats[f"{request.method} {path}"] += 1
        if state.latency_seconds:
            await asyncio.sleep(state.latency_seconds)
        for fault in state.faults:
            if path.startswith(fault.path) and fault.method in (None, request.method):
                fault.times -= 1
                if fault.times <= 0:
                    state.faults.remove(fault)
                return _injected(fault)
        public = path == "/v1/oauth2/token" or path.startswith(
            ("/v1/notifications/certs/", "/checkoutnow")
        )
        if not public:
            refusal = _bearer_refusal(request)
            if refusal is not None:
                return refusal
        return await call_next(request)

    def _injected(fault: _Fault) -> Response:
        if fault.status == 401:
            return JSONResponse(
                {
                    "error": "invalid_token",
                    "error_description": "Token signature verification failed",
                },
                status_code=401,
            )
        name, message = _NAMES.get(fault.status, ("INTERNAL_SERVER_ERROR", "Injected error."))
        return _error(
            fault.status,
            fault.name or name,
            fault.message or message,
            issue=fault.issue,
            headers={"Retry-After": fault.retry_after} if fault.retry_after else None,
        )

    def _bearer_refusal(request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires_at = state.tokens.get(token) if scheme.lower() == "bearer" else None
        if expires_at is None or expires_at <= state.clock.now():
            state.stats["refused_tokens"] += 1
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Access Token not found in cache"},
                status_code=401,
            )
        return None

    async def json_body(request: Request) -> JSONObject | JSONResponse:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            payload = json.loads(raw)
        except ValueError:
            return _invalid("MALFORMED_REQUEST_JSON", "", "The request JSON is not well formed.")
        if not isinstance(payload, dict):
            return _invalid("MALFORMED_REQUEST_JSON", "", "The request JSON is not an object.")
        return payload

    async def idempotent(
        request: Request, compute: Callable[[], Awaitable[JSONResponse]]
    ) -> JSONResponse:
        request_id = request.headers.get("paypal-request-id")
        if request_id is not None and not 1 <= len(request_id) <= 108:
            return _error(
                400,
                *_NAMES[400],
                issue="INVALID_STRING_LENGTH",
                description="PayPal-Request-Id must be 1 to 108 characters.",
            )
        key = (request.url.path, request_id) if request_id else None
        if key is not None and key in state.idempotent:
            status, body = state.idempotent[key]
            return JSONResponse(body, status_code=status)
        response = await compute()
        if key is not None and response.status_code < 300:
            state.idempotent[key] = (response.status_code, json.loads(bytes(response.body)))
        return response

    # -- OAuth2 ---------------------------------------------------------------------------

    @app.post("/v1/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        state.stats["token_requests"] += 1
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, client_secret = (
                base64.b64decode(encoded, validate=True).decode().partition(":")
            )
        except ValueError:
            client_id = client_secret = ""
        if (
            scheme.lower() != "basic"
            or not secrets.compare_digest(client_id, state.settings.client_id)
            or not secrets.compare_digest(client_secret, state.settings.client_secret)
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client Authentication failed"},
                status_code=401,
            )
        form = parse_qs((await request.body()).decode(errors="replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": f"Grant Type is {grant or 'NULL'}",
                },
                status_code=400,
            )
        access_token = "A21AA" + secrets.token_urlsafe(48)
        ttl = state.settings.token_ttl_seconds
        state.tokens[access_token] = state.clock.now() + dt.timedelta(seconds=ttl)
        return JSONResponse(
            {
                "scope": "https://uri.paypal.com/services/payments/payment "
                "https://uri.paypal.com/services/disputes/read-seller "
                "https://uri.paypal.com/services/applications/webhooks",
                "access_token": access_token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": ttl,
                "nonce": f"{state.clock.stamp()}{secrets.token_urlsafe(16)}",
            }
        )

    # -- Orders v2 ------------------------------------------------------------------------

    def order_links(request: Request, order: JSONObject) -> list[JSONObject]:
        order_id = order["id"]
        links = [link(request, f"/v2/checkout/orders/{order_id}", "self")]
        if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
            rel = "payer-action" if "payment_source" in order else "approve"
            links.append(link(request, f"/checkoutnow?token={order_id}", rel))
        if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            links.append(link(request, f"/v2/checkout/orders/{order_id}", "update", "PATCH"))
            links.append(
                link(request, f"/v2/checkout/orders/{order_id}/capture", "capture", "POST")
            )
        return links

    def shown_order(request: Request, order: JSONObject) -> JSONObject:
        return {**copy.deepcopy(order), "links": order_links(request, order)}

    @app.post("/v2/checkout/orders")
    async def create_order(request: Request) -> JSONResponse:
        async def compute() -> JSONResponse:
            payload = await json_body(request)
            if isinstance(payload, JSONResponse):
                return payload
            intent = payload.get("intent")
            if intent not in ("CAPTURE", "AUTHORIZE"):
                return _invalid("INVALID_PARAMETER_VALUE", "/intent", "Intent is invalid.")
            units = payload.get("purchase_units")
            if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
                return _invalid(
                    "INVALID_ARRAY_MAX_ITEMS"
                    if isinstance(units, list) and units
                    else "MISSING_REQUIRED_PARAMETER",
                    "/purchase_units",
                    "This sandbox takes exactly one purchase unit.",
                )
            unit = units[0]
            problem = _money_problem(
                unit.get("amount"), "/purchase_units/@reference_id=='default'/amount"
            )
            if problem is not None:
                return problem
            for text_field in ("custom_id", "invoice_id", "description"):
                value = unit.get(text_field)
                if value is not None and (not isinstance(value, str) or len(value) > 127):
                    return _invalid(
                        "INVALID_STRING_LENGTH",
                        f"/purchase_units/@reference_id=='default'/{text_field}",
                        "The value of a field is too long.",
                    )
            now = state.clock.stamp()
            order_id = _paypal_id()
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
                            "merchant_id": state.settings.merchant_id,
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
            state.orders[order_id] = order
            state.order_urls[order_id] = (context.get("return_url"), context.get("cancel_url"))
            return JSONResponse(shown_order(request, order), status_code=201)

        return await idempotent(request, compute)

    @app.get("/v2/checkout/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> JSONResponse:
        order = state.orders.get(order_id)
        if order is None:
            return _not_found("order", order_id)
        return JSONResponse(shown_order(request, order))

    def approve(request: Request, order: JSONObject) -> JSONResponse | None:
        if order["status"] == "APPROVED":
            return None
        if order["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            return _unprocessable(
                "ORDER_CANNOT_BE_APPROVED",
                f"The order is {order['status']}, not awaiting approval.",
            )
        order["status"] = "APPROVED"
        order["update_time"] = state.clock.stamp()
        payer = {
            "name": {"given_name": "Sandbox", "surname": "Buyer"},
            "email_address": "buyer@sandbox.pixecom.test",
            "payer_id": "SANDBOXBUYER01",
            "address": {"country_code": "US"},
        }
        order["payer"] = payer
        order["payment_source"] = {
            "paypal": {
                "email_address": payer["email_address"],
                "account_id": payer["payer_id"],
                "account_status": "VERIFIED",
                "name": payer["name"],
                "address": payer["address"],
            }
        }
        state.emit(
            "CHECKOUT.ORDER.APPROVED",
            "checkout-order",
            shown_order(request, order),
            "An order has been approved by buyer",
        )
        return None

    def capture(
        request: Request, order: JSONObject, status: Literal["COMPLETED", "DENIED"]
    ) -> JSONResponse:
        if order["status"] == "COMPLETED":
            return _unprocessable(
                "ORDER_ALREADY_CAPTURED",
                "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
            )
        if order["status"] != "APPROVED":
            return _unprocessable(
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment. Please redirect the payer "
                "to the 'rel':'approve' url returned as part of the HATEOAS links within the "
                "Create Order call or provide a valid payment_source in the request.",
            )
        unit = order["purchase_units"][0]
        invoice_id = unit.get("invoice_id")
        if invoice_id is not None and any(
            other.get("invoice_id") == invoice_id and other["status"] != "DENIED"
            for other in state.captures.values()
        ):
            return _unprocessable(
                "DUPLICATE_INVOICE_ID",
                "Duplicate Invoice ID detected. To avoid a potential duplicate transaction your "
                "account setting requires that Invoice Id be unique for each transaction.",
            )
        amount = dict(unit["amount"])
        gross = _minor(amount)
        fee = _fee(gross)
        currency = amount["currency_code"]
        now = state.clock.stamp()
        capture_id = _paypal_id()
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
                link(request, f"/v2/payments/captures/{capture_id}", "self"),
                link(request, f"/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
                link(request, f"/v2/checkout/orders/{order['id']}", "up"),
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
        state.captures[capture_id] = captured
        unit.setdefault("payments", {}).setdefault("captures", []).append(captured)
        order["status"] = "COMPLETED" if status == "COMPLETED" else order["status"]
        order["update_time"] = now
        value = f"{amount['value']} {currency}"
        if status == "COMPLETED":
            state.emit(
                "PAYMENT.CAPTURE.COMPLETED", "capture", captured, f"Payment completed for {value}"
            )
        else:
            state.emit("PAYMENT.CAPTURE.DENIED", "capture", captured, f"Payment denied for {value}")
        return JSONResponse(shown_order(request, order), status_code=201)

    @app.post("/v2/checkout/orders/{order_id}/capture")
    async def capture_order(order_id: str, request: Request) -> JSONResponse:
        async def compute() -> JSONResponse:
            order = state.orders.get(order_id)
            if order is None:
                return _not_found("order", order_id)
            return capture(request, order, "COMPLETED")

        return await idempotent(request, compute)

    # -- payments -------------------------------------------------------------------------

    @app.get("/v2/payments/captures/{capture_id}")
    async def get_capture(capture_id: str) -> JSONResponse:
        captured = state.captures.get(capture_id)
        if captured is None:
            return _not_found("capture", capture_id)
        return JSONResponse(captured)

    @app.get("/v2/payments/refunds/{refund_id}")
    async def get_refund(refund_id: str) -> JSONResponse:
        refund = state.refunds.get(refund_id)
        if refund is None:
            return _not_found("refund", refund_id)
        return JSONResponse(refund)

    def refunded_so_far(capture_id: str) -> int:
        return sum(
            _minor(refund["amount"])
            for refund_id, refund in state.refunds.items()
            if state.refunded_capture[refund_id] == capture_id
        )

    def give_back(
        request: Request, capture_id: str, amount: JSONObject | None, *, reversal: bool
    ) -> JSONResponse:
        captured = state.captures.get(capture_id)
        if captured is None:
            return _not_found("capture", capture_id)
        if captured["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            issue = (
                "CAPTURE_FULLY_REFUNDED"
                if captured["status"] == "REFUNDED"
                else ("INVALID_CAPTURE_STATUS")
            )
            return _unprocessable(issue, f"The capture is {captured['status']}.")
        currency = captured["amount"]["currency_code"]
        remaining = _minor(captured["amount"]) - refunded_so_far(capture_id)
        if amount is None:
            minor = remaining
        else:
            problem = _money_problem(amount, "/amount")
            if problem is not None:
                return problem
            if amount["currency_code"] != currency:
                return _unprocessable(
                    "REFUND_CURRENCY_MISMATCH",
                    "Refund must be in the same currency as the capture.",
                )
            minor = _minor(amount)
        if minor > remaining:
            return _unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has "
                "not yet been refunded.",
            )
        now = state.clock.stamp()
        refund_id = _paypal_id()
        total = refunded_so_far(capture_id) + minor
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
            "status": "COMPLETED",
            "create_time": now,
            "update_time": now,
            "links": [
                link(request, f"/v2/payments/refunds/{refund_id}", "self"),
                link(request, f"/v2/payments/captures/{capture_id}", "up"),
            ],
        }
        if reversal:
            refund["note_to_payer"] = "Payment reversed"
        state.refunds[refund_id] = refund
        state.refunded_capture[refund_id] = capture_id
        full = total == _minor(captured["amount"])
        captured["status"] = (
            ("REVERSED" if reversal else "REFUNDED") if full else "PARTIALLY_REFUNDED"
        )
        captured["update_time"] = now
        shown = f"{refund['amount']['value']} {currency}"
        if reversal:
            state.emit(
                "PAYMENT.CAPTURE.REVERSED",
                "refund",
                refund,
                f"A {shown} capture payment was reversed",
            )
        else:
            state.emit(
                "PAYMENT.CAPTURE.REFUNDED",
                "refund",
                refund,
                f"A {shown} capture payment was refunded",
            )
        return JSONResponse(refund, status_code=201)

    @app.post("/v2/payments/captures/{capture_id}/refund")
    async def refund_capture(capture_id: str, request: Request) -> JSONResponse:
        async def compute() -> JSONResponse:
            payload = await json_body(request)
            if isinstance(payload, JSONResponse):
                return payload
            return give_back(request, capture_id, payload.get("amount"), reversal=False)

        return await idempotent(request, compute)

    # -- disputes -------------------------------------------------------------------------

    def dispute_summary(dispute: JSONObject) -> JSONObject:
        keys = ("dispute_id", "create_time", "update_time", "reason", "status", "dispute_amount")
        return {
            **{key: dispute[key] for key in keys},
            "dispute_state": "REQUIRED_ACTION" if dispute["status"] != "RESOLVED" else "RESOLVED",
            "links": dispute["links"],
        }

    @app.get("/v1/customer/disputes")
    async def list_disputes(request: Request) -> JSONResponse:
        capture_id = request.query_params.get("disputed_transaction_id")
        items = [
            dispute_summary(dispute)
            for dispute in state.disputes.values()
            if capture_id is None
            or any(
                transaction["seller_transaction_id"] == capture_id
                for transaction in dispute["disputed_transactions"]
            )
        ]
        return JSONResponse(
            {"items": items, "links": [link(request, "/v1/customer/disputes", "self")]}
        )

    @app.get("/v1/customer/disputes/{dispute_id}")
    async def get_dispute(dispute_id: str) -> JSONResponse:
        dispute = state.disputes.get(dispute_id)
        if dispute is None:
            return _not_found("dispute", dispute_id)
        return JSONResponse(dispute)

    # -- webhooks -------------------------------------------------------------------------

    @app.get("/v1/notifications/certs/{cert_id}")
    async def certificate(cert_id: str) -> Response:
        state.stats["certificate_downloads"] += 1
        if cert_id != state.identity.cert_id:
            return _not_found("certificate", cert_id)
        return PlainTextResponse(state.identity.certificate_pem.decode())

    @app.post("/v1/notifications/verify-webhook-signature")
    async def verify_webhook_signature(request: Request) -> JSONResponse:
        payload = await json_body(request)
        if isinstance(payload, JSONResponse):
            return payload
        for required in (
            "auth_algo",
            "cert_url",
            "transmission_id",
            "transmission_sig",
            "transmission_time",
            "webhook_id",
            "webhook_event",
        ):
            if not payload.get(required):
                return _error(
                    400,
                    "VALIDATION_ERROR",
                    "Invalid request - see details",
                    issue="MISSING_REQUIRED_PARAMETER",
                    field_path=f"/{required}",
                )
        status = "SUCCESS" if state.signature_is_valid(payload) else "FAILURE"
        return JSONResponse({"verification_status": status})

    # -- the buyer's approval page --------------------------------------------------------

    @app.get("/checkoutnow")
    async def checkout_page(token: str) -> Response:
        order = state.orders.get(token)
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
        order = state.orders.get(token)
        if order is None:
            return HTMLResponse("<h1>Unknown order</h1>", status_code=404)
        action = parse_qs((await request.body()).decode()).get("action", ["approve"])[0]
        return_url, cancel_url = state.order_urls.get(token, (None, None))
        if action == "approve":
            problem = approve(request, order)
            if problem is not None:
                return problem
            target = return_url
            params = {"token": token, "PayerID": "SANDBOXBUYER01"}
        else:
            target = cancel_url
            params = {"token": token}
        if not target:
            return HTMLResponse(f"<h1>Order {html.escape(token)}: {html.escape(action)}</h1>")
        return RedirectResponse(str(httpx.URL(target).copy_merge_params(params)), status_code=303)

    # -- control endpoints ----------------------------------------------------------------

    def order_or_404(order_id: str) -> JSONObject | JSONResponse:
        order = state.orders.get(order_id)
        return order if order is not None else _not_found("order", order_id)

    @app.post(f"{CONTROL_PREFIX}/orders/{{order_id}}/approve")
    async def control_approve(order_id: str, request: Request) -> JSONResponse:
        """Approve the order as the buyer would (emits CHECKOUT.ORDER.APPROVED)."""
        order = order_or_404(order_id)
        if isinstance(order, JSONResponse):
            return order
        problem = approve(request, order)
        return problem or JSONResponse(shown_order(request, order))

    @app.post(f"{CONTROL_PREFIX}/orders/{{order_id}}/capture")
    async def control_capture(
        order_id: str, outcome: _CaptureOutcome, request: Request
    ) -> JSONResponse:
        """Approve if needed and capture, completed or denied (emits PAYMENT.CAPTURE.*)."""
        order = order_or_404(order_id)
        if isinstance(order, JSONResponse):
            return order
        problem = approve(request, order)
        return problem or capture(request, order, outcome.status)

    def amount_of(capture_id: str, value: str | None) -> JSONObject | None:
        captured = state.captures.get(capture_id)
        if value is None or captured is None:
            return None
        return {"currency_code": captured["amount"]["currency_code"], "value": value}

    @app.post(f"{CONTROL_PREFIX}/captures/{{capture_id}}/refund")
    async def control_refund(
        capture_id: str, body: _ControlAmount, request: Request
    ) -> JSONResponse:
        """Refund all that is left, or ``value`` (emits PAYMENT.CAPTURE.REFUNDED)."""
        return give_back(request, capture_id, amount_of(capture_id, body.value), reversal=False)

    @app.post(f"{CONTROL_PREFIX}/captures/{{capture_id}}/reverse")
    async def control_reverse(
        capture_id: str, body: _ControlAmount, request: Request
    ) -> JSONResponse:
        """Reverse the capture as PayPal does on its own (emits PAYMENT.CAPTURE.REVERSED)."""
        return give_back(request, capture_id, amount_of(capture_id, body.value), reversal=True)

    @app.post(f"{CONTROL_PREFIX}/captures/{{capture_id}}/disputes")
    async def control_open_dispute(
        capture_id: str, body: _DisputeOpening, request: Request
    ) -> JSONResponse:
        """Open a dispute (emits CUSTOMER.DISPUTE.CREATED, and the reversal if ``reverse``)."""
        captured = state.captures.get(capture_id)
        if captured is None:
            return _not_found("capture", capture_id)
        amount = amount_of(capture_id, body.value) or dict(captured["amount"])
        now = state.clock.stamp()
        dispute_id = f"PP-D-{secrets.randbelow(10**6):06d}"
        dispute: JSONObject = {
            "dispute_id": dispute_id,
            "create_time": now,
            "update_time": now,
            "disputed_transactions": [
                {
                    "seller_transaction_id": capture_id,
                    "seller": {"merchant_id": state.settings.merchant_id},
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
            "reason": body.reason,
            "status": "WAITING_FOR_SELLER_RESPONSE",
            "dispute_amount": amount,
            "dispute_life_cycle_stage": body.stage,
            "dispute_channel": body.channel,
            "links": [link(request, f"/v1/customer/disputes/{dispute_id}", "self")],
        }
        state.disputes[dispute_id] = dispute
        state.emit(
            "CUSTOMER.DISPUTE.CREATED",
            "dispute",
            dispute,
            f"A new dispute opened with Case # {dispute_id}",
        )
        if body.reverse:
            reversed_ = give_back(request, capture_id, amount, reversal=True)
            if reversed_.status_code >= 300:
                return reversed_
            state.reversed_disputes.add(dispute_id)
        return JSONResponse(dispute)

    @app.post(f"{CONTROL_PREFIX}/disputes/{{dispute_id}}/resolve")
    async def control_resolve_dispute(
        dispute_id: str, body: _DisputeResolution, request: Request
    ) -> JSONResponse:
        """Close the dispute (emits CUSTOMER.DISPUTE.RESOLVED; a buyer's win also reverses)."""
        dispute = state.disputes.get(dispute_id)
        if dispute is None:
            return _not_found("dispute", dispute_id)
        if dispute["status"] == "RESOLVED":
            return _unprocessable("DISPUTE_ALREADY_RESOLVED", "The dispute is resolved.")
        buyer_wins = body.outcome in ("RESOLVED_BUYER_FAVOUR", "ACCEPTED")
        if buyer_wins and dispute_id not in state.reversed_disputes:
            capture_id = dispute["disputed_transactions"][0]["seller_transaction_id"]
            reversed_ = give_back(request, capture_id, dispute["dispute_amount"], reversal=True)
            if reversed_.status_code >= 300:
                return reversed_
            state.reversed_disputes.add(dispute_id)
        dispute["status"] = "RESOLVED"
        dispute["update_time"] = state.clock.stamp()
        dispute["dispute_outcome"] = {"outcome_code": body.outcome}
        if buyer_wins:
            dispute["dispute_outcome"]["amount_refunded"] = dispute["dispute_amount"]
        state.emit(
            "CUSTOMER.DISPUTE.RESOLVED",
            "dispute",
            dispute,
            f"A dispute was resolved ({body.outcome})",
        )
        return JSONResponse(dispute)

    @app.post(f"{CONTROL_PREFIX}/webhooks/config")
    async def control_webhook_config(body: _WebhookConfig) -> JSONResponse:
        """Set the URL deliveries go to."""
        state.settings = state.settings.model_copy(update={"webhook_url": body.url})
        return JSONResponse({"url": body.url, "webhook_id": state.settings.webhook_id})

    @app.get(f"{CONTROL_PREFIX}/webhooks/events")
    async def control_events() -> JSONResponse:
        """Every event emitted so far, oldest first, and whether it was delivered."""
        return JSONResponse(
            [
                {"event_id": e.event_id, "event_type": e.event_type, "delivered": e.delivered}
                for e in state.events
            ]
        )

    @app.post(f"{CONTROL_PREFIX}/webhooks/transmissions")
    async def control_transmission(body: _TransmissionRequest, request: Request) -> JSONResponse:
        """Sign a fresh transmission of one event without sending it: body and headers."""
        event = next((e for e in state.events if e.event_id == body.event_id), None)
        if event is None:
            return _not_found("event", body.event_id)
        headers = state.transmit(event, base_url(request))
        return JSONResponse({"body": event.body.decode(), "headers": headers})

    @app.post(f"{CONTROL_PREFIX}/webhooks/deliver")
    async def control_deliver(body: _Delivery, request: Request) -> JSONResponse:
        """POST every undelivered event to the webhook URL, signed; failures stay pending."""
        url = body.url or state.settings.webhook_url
        if not url:
            return JSONResponse(
                {"detail": "no webhook URL: configure one or pass url"}, status_code=409
            )
        pending = [event for event in state.events if not event.delivered]
        sends = [event for event in pending for _copy in range(body.duplicates + 1)]
        if body.shuffle:
            random.Random(body.seed).shuffle(sends)
        results = []
        async with httpx.AsyncClient(timeout=10.0) as http:
            for event in sends:
                headers = state.transmit(event, base_url(request))
                result: JSONObject = {
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
                }
                try:
                    response = await http.post(url, content=event.body, headers=headers)
                except httpx.HTTPError as exc:
                    result["error"] = repr(exc)
                else:
                    result["status_code"] = response.status_code
                    if response.is_success:
                        event.delivered = True
                results.append(result)
        return JSONResponse({"deliveries": results})

    @app.post(f"{CONTROL_PREFIX}/faults")
    async def control_faults(body: _Faults) -> JSONResponse:
        """Replace the injected latency and errors (each error answers ``times`` requests)."""
        state.latency_seconds = body.latency_seconds
        state.faults = [
            _Fault(
                path=rule.path,
                status=rule.status,
                times=rule.times,
                method=rule.method.upper() if rule.method else None,
                name=rule.name,
                message=rule.message,
                issue=rule.issue,
                retry_after=rule.retry_after,
            )
            for rule in body.errors
        ]
        return JSONResponse(body.model_dump())

    @app.delete(f"{CONTROL_PREFIX}/faults")
    async def control_clear_faults() -> Response:
        """Remove injected latency and errors."""
        state.latency_seconds = 0.0
        state.faults = []
        return Response(status_code=204)

    @app.post(f"{CONTROL_PREFIX}/tokens/revoke")
    async def control_revoke_tokens() -> JSONResponse:
        """Forget every issued access token: the next API call answers 401."""
        revoked = len(state.tokens)
        state.tokens.clear()
        return JSONResponse({"revoked": revoked})

    @app.post(f"{CONTROL_PREFIX}/clock")
    async def control_clock(body: _ClockMove) -> JSONResponse:
        """Move the sandbox's clock (token expiry, timestamps, transmission times)."""
        state.clock.offset += dt.timedelta(seconds=body.advance_seconds)
        return JSONResponse({"now": state.clock.stamp()})

    @app.get(f"{CONTROL_PREFIX}/stats")
    async def control_stats() -> JSONResponse:
        """Request counters: ``token_requests``, ``certificate_downloads``, per route."""
        return JSONResponse(dict(state.stats))

    return app
