"""A fake Stripe account on loopback: Stripe's wire format for the calls PixEcom makes,
control endpoints to play the buyer and the bank, and signed webhook delivery.

Stripe API (``Authorization: Bearer sk_test_…``, form-encoded bodies, JSON answers, errors in
Stripe's ``{"error": {type, code, message, param}}`` envelope, ``Idempotency-Key`` honoured on
every POST: same key and parameters replay the first answer with ``Idempotent-Replayed: true``,
same key with other parameters is a 400 ``idempotency_error``). Each call has an operation
name, for the request log and for faults aimed at it:

- ``POST /v1/payment_intents`` (``create_payment_intent``),
  ``GET /v1/payment_intents/{id}`` (``retrieve_payment_intent``),
  ``POST /v1/payment_intents/{id}/capture`` (``capture_payment_intent``)
- ``GET /v1/charges/{id}`` (``retrieve_charge``), ``GET /v1/disputes/{id}``
  (``retrieve_dispute``), ``GET /v1/events/{id}`` (``retrieve_event``)
- ``POST /v1/refunds`` (``create_refund``; full or partial), ``GET /v1/refunds``
  (``list_refunds``; ``charge``/``payment_intent``, ``limit``, ``starting_after``),
  ``GET /v1/refunds/{id}`` (``retrieve_refund``)

Control endpoints (JSON, no key), each producing the events a real account would send:

- ``POST /_sandbox/payment_intents/{id}/succeed``: the buyer pays; a charge is created.
  Automatic capture: ``charge.succeeded`` + ``payment_intent.succeeded``; manual capture:
  ``charge.succeeded`` (not captured) + ``payment_intent.amount_capturable_updated``.
- ``POST /_sandbox/payment_intents/{id}/fail``: ``charge.failed`` +
  ``payment_intent.payment_failed``.
- ``POST /_sandbox/payment_intents/{id}/dispute``: ``charge.dispute.created`` +
  ``charge.dispute.funds_withdrawn`` (only the first for an inquiry).
- ``POST /_sandbox/disputes/{id}/win`` / ``…/lose``: ``charge.dispute.funds_reinstated`` +
  ``charge.dispute.closed``, or ``charge.dispute.closed``.
- ``POST /_sandbox/refunds/{id}/succeed`` / ``…/fail``: settle a refund created while
  ``refunds_start_pending`` was on: ``refund.updated`` + ``charge.refund.updated``
  (+ ``refund.failed``).
- A refund (``POST /v1/refunds``) sends ``refund.created`` + ``charge.refunded``.
- ``GET /_sandbox/events/{id}``: one event exactly as its deliveries send it.

Stripe Checkout (:mod:`pixecom_stripe.sandbox_checkout`, which names the documentation
each behaviour follows): ``POST /v1/checkout/sessions`` (``create_checkout_session``),
``GET /v1/checkout/sessions`` (``list_checkout_sessions``; ``payment_intent``),
``GET /v1/checkout/sessions/{id}`` (``retrieve_checkout_session``), and the hosted page
``GET``/``POST /c/pay/{id}`` whose Pay button pays as ``…/succeed`` does (plus
``checkout.session.completed``) and redirects to ``success_url``; Cancel redirects to
``cancel_url``. Control: ``POST /_sandbox/checkout/sessions/{id}/complete``.

Stripe Connect (:mod:`pixecom_stripe.sandbox_connect`, which names the documentation each
behaviour follows): the OAuth consent page ``GET /oauth/authorize``, ``POST /oauth/token``
(``oauth_token``), ``POST /oauth/deauthorize`` (``oauth_deauthorize``),
``GET /v1/accounts/{id}`` (``retrieve_account``), ``GET /v1/application_fees/{id}``
(``retrieve_application_fee``); a ``Stripe-Account`` header scopes every call above to a
connected account's own objects (logged as ``stripe_account``), and those accounts'
events carry ``account`` and are signed with ``connect_webhook_secrets``. Control:
``GET /_sandbox/accounts``, ``POST /_sandbox/accounts/{id}/deauthorize``.

The sandbox kit's control API (:mod:`pixecom_core.testing.sandbox_kit`) does the rest:

- ``POST /_sandbox/faults`` (:class:`StripeFault`): ``throttled`` is Stripe's 429
  ``rate_limit``, ``transient`` a 5xx ``api_error`` (500 unless ``status`` says 502, 503 …),
  ``auth`` the 401 "Invalid API Key provided" Stripe answers a refused key; the kit's
  transport faults (``server_error``, ``malformed``, ``hang``) too. A ``probability`` below
  1 fails that share of matching calls (what ``failure_rate`` used to do).
- ``GET /_sandbox/requests``: the API calls answered (operation, request id, idempotency
  key, ``has_key``; never the key).
- ``GET``/``POST /_sandbox/config`` (:class:`SandboxConfig`): latency, webhook URL and
  secrets, accepted keys, automatic delivery and its retry schedule, refund and event
  shapes; ``POST /_sandbox/reset`` forgets every object and event and cancels pending
  retries.
- ``GET /_sandbox/events`` (``?pending_only=true``) lists the events with their delivery
  state; ``POST /_sandbox/deliver`` sends pending (or chosen) events to the webhook URL,
  signed like Stripe (one ``v1`` per configured secret, plus a ``v0`` decoy), optionally
  with ``duplicates`` (extra copies) and ``shuffle``; its ``signing`` options
  (:class:`StripeSigning`) give an old timestamp or other secrets. Each attempt's result is
  reported to the caller; nothing sent this way is retried.

Automatic delivery (``auto_deliver``) sends each event once as it happens and, like Stripe,
sends it again when the endpoint does not answer 2xx. Stripe's documentation: in live mode
an undelivered event is resent for up to three days with exponential backoff; in test mode
(sandboxes) it is retried three times over a few hours
(https://docs.stripe.com/webhooks#automatic-retries,
https://docs.stripe.com/webhooks/process-undelivered-events); an event's
``pending_webhooks`` is the number of webhooks not yet delivered with a 2xx answer. Here,
any answer outside 2xx, a timeout (``AUTO_DELIVERY_TIMEOUT_SECONDS``) or a connection
failure is a failed attempt, retried after the next delay of ``retry_delays_seconds``
(default 1, 2, 4, 8, 16, 30, 60 seconds: an exponential backoff compressed so a sandbox
run sees it; empty: no retries). Retrying stops as soon as the event has been delivered
(also by ``POST /_sandbox/deliver``); after the last failed retry the event stays pending
(not delivered, ``pending_webhooks`` 1, listed by ``GET /_sandbox/events?pending_only=true``)
for ``POST /_sandbox/deliver``. Turning ``auto_deliver`` off or clearing ``webhook_url``
stops scheduled retries; so do ``POST /_sandbox/reset`` and the app's shutdown (lifespan).
"""

import copy
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import httpx
import stripe
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import RequestResponseEndpoint
from starlette.responses import Response

from pixecom_core.providers import DemoPayment
from pixecom_core.testing.sandbox_kit import (
    Answered,
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
    form_pairs,
)
from pixecom_stripe.settings import (
    SANDBOX_DEFAULT_CONNECT_WEBHOOK_SECRET,
    SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS,
    SANDBOX_DEFAULT_WEBHOOK_SECRET,
    RetryDelay,
    StripeSandboxSettings,
    StripeSettings,
)

#: The API version the sandbox's objects and events follow (refund.* events for every
#: refund exist since 2024-10-28; Charges stopped embedding refunds in 2022-11-15).
SANDBOX_API_VERSION: Final = "2024-10-28.acacia"
#: The paths that are Stripe's API (request ids, the request log, faults): ``/v1`` and
#: Connect OAuth's server-to-server calls.
API_PATHS: Final = ("/v1/", "/oauth/token", "/oauth/deauthorize")
#: The version named in events when ``embed_charge_refunds`` imitates the older shape.
LEGACY_API_VERSION: Final = "2022-08-01"
MAX_LIST_LIMIT: Final = 100
#: How long an automatic delivery waits for the endpoint's answer (as ``POST
#: /_sandbox/deliver`` does by default); no answer by then is a failed attempt.
AUTO_DELIVERY_TIMEOUT_SECONDS: Final = 10.0
_METADATA_MAX_KEYS: Final = 50
_METADATA_MAX_KEY_LENGTH: Final = 40
_METADATA_MAX_VALUE_LENGTH: Final = 500
_IDEMPOTENCY_KEY_MAX_LENGTH: Final = 255
_CAPTURE_METHODS: Final = ("automatic", "automatic_async", "manual")
_REFUND_REASONS: Final = ("duplicate", "fraudulent", "requested_by_customer")

StripeObject = dict[str, Any]
WebhookSecret = Annotated[SecretStr, Field(min_length=1)]


# -- configuration ----------------------------------------------------------------------


class SandboxConfig(BaseModel):
    """The sandbox's behaviour; every field can be changed at run time through
    ``POST /_sandbox/config`` (the secrets are shown only as counts).

    :param webhook_url: where events are delivered.
    :param webhook_secrets: endpoint secrets; each signs one ``v1=`` entry.
    :param connect_webhook_secrets: the Connect endpoint's secrets, which sign the events
        of connected accounts instead (delivered to the same ``webhook_url``).
    :param connect_client_ids: the platform's Connect client ids (``ca_…``) the consent
        page and ``/oauth/*`` accept; empty accepts any ``ca_…``.
    :param connect_redirect_uris: the redirect URIs registered for the platform; the
        consent page refuses any other. Empty accepts any http(s) URI.
    :param include_v0_signature: add a ``v0=`` decoy entry, as Stripe's test mode does.
    :param api_keys: accepted secret keys; empty accepts any test-mode key.
    :param auto_deliver: deliver each event as soon as it is created.
    :param retry_delays_seconds: retry an automatic delivery the endpoint did not answer
        with 2xx (error status, timeout, connection failure) after each of these delays in
        turn, until one attempt is answered 2xx; empty: no retries. The default, 1, 2, 4, 8,
        16, 30, 60 seconds, is Stripe's exponential backoff compressed for a sandbox.
    :param latency_seconds: delay before every ``/v1`` answer.
    :param refunds_start_pending: new refunds are ``pending`` until settled through
        ``/_sandbox/refunds/{id}/succeed`` (or ``…/fail``); otherwise they succeed at once.
    :param embed_charge_refunds: charges in events embed their ``refunds`` list, as API
        versions before 2022-11-15 did.
    :param seed: makes ids reproducible (changing it restarts the sequence).
    """

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = Field(default=None, max_length=2_048)
    webhook_secrets: list[WebhookSecret] = Field(
        default_factory=lambda: [SecretStr(SANDBOX_DEFAULT_WEBHOOK_SECRET)]
    )
    connect_webhook_secrets: list[WebhookSecret] = Field(
        default_factory=lambda: [SecretStr(SANDBOX_DEFAULT_CONNECT_WEBHOOK_SECRET)]
    )
    connect_client_ids: list[Annotated[str, Field(pattern=r"^ca_[A-Za-z0-9_]+$")]] = Field(
        default_factory=list
    )
    connect_redirect_uris: list[str] = Field(default_factory=list)
    include_v0_signature: bool = True
    api_keys: list[SecretStr] = Field(default_factory=list)
    auto_deliver: bool = False
    retry_delays_seconds: list[RetryDelay] = Field(
        default_factory=lambda: list(SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS)
    )
    latency_seconds: float = Field(default=0.0, ge=0, le=120)
    refunds_start_pending: bool = False
    embed_charge_refunds: bool = False
    seed: int | None = None

    @classmethod
    def from_environment(cls) -> "SandboxConfig":
        """Read ``PIXECOM_STRIPE_SANDBOX_*``, falling back to the gateway's webhook secrets."""
        settings = StripeSandboxSettings()
        gateway = StripeSettings()
        return cls(
            webhook_url=settings.webhook_url,
            webhook_secrets=settings.webhook_secrets
            or gateway.webhook_secrets
            or [SecretStr(SANDBOX_DEFAULT_WEBHOOK_SECRET)],
            connect_webhook_secrets=settings.connect_webhook_secrets
            or gateway.connect_webhook_secrets
            or [SecretStr(SANDBOX_DEFAULT_CONNECT_WEBHOOK_SECRET)],
            connect_client_ids=[gateway.connect_client_id] if gateway.connect_client_id else [],
            api_keys=settings.api_keys,
            auto_deliver=settings.auto_deliver,
            retry_delays_seconds=settings.retry_delays_seconds,
            latency_seconds=settings.latency_seconds,
            seed=settings.seed,
        )


#: Settings ``GET /_sandbox/config`` shows only as counts.
SECRET_SETTINGS: Final = ("webhook_secrets", "connect_webhook_secrets", "api_keys")


class StripeFault(Fault):
    """A failure ``POST /_sandbox/faults`` queues for the next ``/v1`` calls (``operation``:
    the names in the module docstring; ``scope`` is not used). ``status`` chooses the 5xx of
    a ``transient`` fault; ``retry_after_seconds`` adds a ``Retry-After`` to a throttle."""

    kind: KitFaultKind


class StripeSigning(BaseModel):
    """The ``signing`` options of ``POST /_sandbox/deliver``.

    :param timestamp_offset_seconds: shift the signature timestamp (negative: an old,
        possibly replayed delivery).
    :param secrets: sign with these secrets instead of the configured ones.
    """

    model_config = ConfigDict(extra="forbid")

    timestamp_offset_seconds: int = 0
    secrets: list[Annotated[str, Field(min_length=1)]] | None = None


# -- signing ----------------------------------------------------------------------------


def signature_header(
    payload: str,
    webhook_secrets: Iterable[str],
    *,
    timestamp: int | None = None,
    include_v0: bool = False,
) -> str:
    """A ``Stripe-Signature`` value for ``payload``: ``t=…`` and one ``v1=…`` per secret.

    Each entry comes from ``stripe.WebhookSignature.generate_signature_header``, the
    function Stripe's library offers for signing test payloads.

    :param timestamp: the signing time (unix seconds); now when omitted.
    :param include_v0: add a ``v0=`` entry that matches nothing (Stripe's test-mode decoy).
    """
    signed_at = int(time.time()) if timestamp is None else timestamp
    entries = [f"t={signed_at}"]
    for secret in webhook_secrets:
        generated = stripe.WebhookSignature.generate_signature_header(
            payload, secret, timestamp=signed_at
        )
        entries.extend(part for part in generated.split(",") if part.startswith("v1="))
    if include_v0:
        entries.append(f"v0={secrets.token_hex(32)}")
    return ",".join(entries)


# -- errors in Stripe's envelope --------------------------------------------------------


class StripeApiError(Answered):
    """An answer in Stripe's error envelope (the kit's app answers it when raised)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error = {"type": error_type, "message": message, "code": code, "param": param}
        body = {"error": {name: value for name, value in error.items() if value}}
        super().__init__(JSONResponse(body, status, headers=dict(headers or {})))


def _missing(param: str) -> StripeApiError:
    return StripeApiError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def _no_such(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def _bad_state(message: str, code: str = "invalid_state") -> StripeApiError:
    return StripeApiError(400, message, code=code)


# -- form decoding ----------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\[\]]*)\]")


def decode_form(pairs: Iterable[tuple[str, str]]) -> StripeObject:
    """Stripe's form encoding to nested values: ``metadata[k]=v`` → ``{"metadata": {"k": v}}``,
    ``expand[]=a`` → ``{"expand": ["a"]}``."""
    decoded: StripeObject = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head, *_KEY_PART.findall("[" + rest)] if rest else [head]
        target: Any = decoded
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = None if last else parts[index + 1]
            if isinstance(target, list):
                if last:
                    target.append(value)
                else:
                    target.append([] if following == "" else {})
                    target = target[-1]
                continue
            if last:
                target[part] = value
            else:
                target = target.setdefault(part, [] if following == "" else {})
                if not isinstance(target, dict | list):
                    raise StripeApiError(400, f"Invalid hash: {key}", param=key)
    return decoded


def _parse_integer(params: Mapping[str, Any], name: str, *, minimum: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise StripeApiError(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name
        )
    value = int(raw)
    if value < minimum:
        raise StripeApiError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=name,
        )
    return value


def _parse_metadata(params: Mapping[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise StripeApiError(400, "Invalid metadata: must be a hash of strings", param="metadata")
    if len(metadata) > _METADATA_MAX_KEYS:
        raise StripeApiError(
            400, f"Metadata can have at most {_METADATA_MAX_KEYS} keys.", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > _METADATA_MAX_KEY_LENGTH:
            raise StripeApiError(
                400,
                f"Metadata keys must be at most {_METADATA_MAX_KEY_LENGTH} characters long.",
                param=f"metadata[{key}]",
            )
        if len(value) > _METADATA_MAX_VALUE_LENGTH:
            raise StripeApiError(
                400,
                f"Metadata values must be at most {_METADATA_MAX_VALUE_LENGTH} characters long.",
                param=f"metadata[{key}]",
            )
    return dict(metadata)


def _refuse_unknown(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeApiError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


# -- the fake account -------------------------------------------------------------------


class SandboxAccount:
    """The state behind one sandbox app: objects and idempotency records, and the sandbox
    kit (settings, faults, request log) whose webhook outbox holds the events."""

    def __init__(self, config: SandboxConfig) -> None:
        self.outbox = WebhookOutbox(
            sign=self._sign, signing=StripeSigning, timeout_seconds=AUTO_DELIVERY_TIMEOUT_SECONDS
        )
        #: Connect's codes expire by it (``POST /_sandbox/clock`` moves it).
        self.clock = SandboxClock()
        self.kit: SandboxKit[SandboxConfig, StripeFault] = SandboxKit(
            config=config,
            fault_model=StripeFault,
            secret_fields=SECRET_SETTINGS,
            outbox=self.outbox,
            on_reset=self._clear,
            on_config=self._configured,
            seed=config.seed,
            clock=self.clock,
        )
        self._clear()

    @property
    def config(self) -> SandboxConfig:
        """The current settings (``POST /_sandbox/config`` replaces them)."""
        return self.kit.config

    def _configured(self, config: SandboxConfig) -> None:
        self.outbox.url = config.webhook_url
        self.outbox.auto_deliver = config.auto_deliver
        self.outbox.retry_delays = tuple(config.retry_delays_seconds)

    def _clear(self) -> None:
        """Forget every object (the kit forgets events, faults and requests, and draws ids
        from the seed again)."""
        self.payment_intents: dict[str, StripeObject] = {}
        self.charges: dict[str, StripeObject] = {}
        self.refunds: dict[str, StripeObject] = {}
        self.disputes: dict[str, StripeObject] = {}
        self.application_fees: dict[str, StripeObject] = {}
        #: Stripe keeps idempotency keys per API key and account, up to 255 characters.
        self.replays: IdempotentReplays[StripeObject] = IdempotentReplays(
            max_key_length=_IDEMPOTENCY_KEY_MAX_LENGTH
        )
        #: The connected account (``acct_…``) each object and event belongs to; absent:
        #: the platform's own. A ``Stripe-Account`` header sees only its account's.
        self.owner = Ownership()
        #: Every seller account the sandbox knows (Account objects), connected or not.
        self.accounts: dict[str, StripeObject] = {}
        #: account → the client id (``ca_…``) of the platform it is connected to.
        self.connected: dict[str, str] = {}
        #: Connect OAuth codes not yet exchanged (see :mod:`pixecom_stripe.sandbox_connect`).
        self.codes: dict[str, Any] = {}
        #: Checkout Sessions, and the ``payment_intent_data`` each creates its PaymentIntent
        #: with (see :mod:`pixecom_stripe.sandbox_checkout`).
        self.checkout_sessions: dict[str, StripeObject] = {}
        self.checkout_intent_data: dict[str, StripeObject] = {}

    # -- connected accounts -------------------------------------------------------------

    def owned(
        self, kind: str, obj: StripeObject, on_account: str | None, param: str = "id"
    ) -> StripeObject:
        """``obj`` if it belongs to ``on_account`` (the request's ``Stripe-Account``; ``None``:
        the platform), else Stripe's 404 ``resource_missing``: another account's object does
        not exist for this caller."""
        if not self.owner.visible(obj["id"], on_account):
            raise _no_such(kind, obj["id"], param)
        return obj

    def reachable(self, account_id: str, key: str) -> str:
        """``account_id`` if the platform may act on it, else the 403 ``account_invalid``
        Stripe answers a ``Stripe-Account`` the key has no access to (never connected,
        deauthorized, unknown)."""
        if account_id not in self.connected:
            raise StripeApiError(
                403,
                f"The provided key '{_masked(key)}' does not have access to account "
                f"'{account_id}' (or that account does not exist). Application access may "
                "have been revoked.",
                code="account_invalid",
            )
        return account_id

    # -- events -------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: StripeObject,
        *,
        before: StripeObject | None = None,
        request: tuple[str | None, str | None] = (None, None),
        account: str | None = None,
    ) -> StripeObject:
        """Record the event a real account sends when ``obj`` is created or changes.

        An event about a connected account's object (or naming ``account``) carries it in
        a top-level ``account`` and is signed with the Connect endpoint's secrets, as
        Stripe sends it to the platform's Connect endpoint."""
        account = account or self.owner.get(obj["id"])
        snapshot = self._event_view(obj)
        data: StripeObject = {"object": snapshot}
        if before is not None:
            previous = {
                key: value
                for key, value in self._event_view(before).items()
                if snapshot.get(key) != value
            }
            if previous:
                data["previous_attributes"] = previous
        request_id, idempotency_key = request
        event: StripeObject = {
            "id": self.kit.new_id("evt_"),
            "object": "event",
            "api_version": (
                LEGACY_API_VERSION if self.config.embed_charge_refunds else SANDBOX_API_VERSION
            ),
            "created": int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.config.webhook_url else 0,
            "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": event_type,
        }
        if self.owner.mark(event["id"], account) is not None:
            event["account"] = account
        # Stripe's deliveries are pretty-printed JSON; every delivery sends these bytes.
        self.outbox.emit(
            event["id"], event_type, json.dumps(event, indent=2).encode("utf-8"), scope=account
        )
        return event

    def event(self, event_id: str) -> StripeObject:
        """The event as its deliveries send it."""
        emitted = self.outbox.event(event_id)
        if emitted is None:
            raise _no_such("event", event_id)
        event: StripeObject = json.loads(emitted.body)
        return event

    def _event_view(self, obj: StripeObject) -> StripeObject:
        snapshot = copy.deepcopy(obj)
        if snapshot.get("object") == "charge" and self.config.embed_charge_refunds:
            refunds = [
                copy.deepcopy(refund)
                for refund in self.refunds.values()
                if refund["charge"] == snapshot["id"]
            ]
            refunds.sort(key=lambda refund: refund["created"], reverse=True)
            snapshot["refunds"] = {
                "object": "list",
                "data": refunds,
                "has_more": False,
                "total_count": len(refunds),
                "url": f"/v1/charges/{snapshot['id']}/refunds",
            }
        return snapshot

    def _sign(self, event: OutboxEvent, options: Mapping[str, Any]) -> dict[str, str]:
        """The headers of one delivery attempt, signed now (or as ``options``, checked by
        the outbox against :class:`StripeSigning`, say)."""
        endpoint_secrets = (
            self.config.connect_webhook_secrets if event.scope else self.config.webhook_secrets
        )
        signing_secrets = options["secrets"] or [
            secret.get_secret_value() for secret in endpoint_secrets
        ]
        header = signature_header(
            event.body.decode("utf-8"),
            signing_secrets,
            timestamp=int(time.time()) + options["timestamp_offset_seconds"],
            include_v0=self.config.include_v0_signature,
        )
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": header,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }

    # -- API operations -----------------------------------------------------------------

    def create_payment_intent(
        self,
        params: StripeObject,
        *,
        request: tuple[str | None, str | None],
        on_account: str | None = None,
    ) -> StripeObject:
        _refuse_unknown(
            params,
            {
                "amount",
                "application_fee_amount",
                "currency",
                "metadata",
                "automatic_payment_methods",
                "description",
                "capture_method",
                "payment_method_types",
                "statement_descriptor",
                "statement_descriptor_suffix",
                "receipt_email",
                "expand",
            },
        )
        amount = _parse_integer(params, "amount", minimum=1)
        if amount is None:
            raise _missing("amount")
        currency = params.get("currency")
        if currency is None:
            raise _missing("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise StripeApiError(
                400,
                f"Invalid currency: {currency}. Stripe currently supports these currencies: "
                "usd, eur, gbp, …",
                param="currency",
            )
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in _CAPTURE_METHODS:
            raise StripeApiError(
                400,
                f"Invalid capture_method: must be one of {', '.join(_CAPTURE_METHODS)}",
                param="capture_method",
            )
        automatic = params.get("automatic_payment_methods")
        automatic_enabled = isinstance(automatic, dict) and automatic.get("enabled") == "true"
        fee = _parse_integer(params, "application_fee_amount", minimum=0)
        if fee is not None and on_account is None:
            # Stripe's words for a fee on the platform's own payment
            raise StripeApiError(
                400,
                "Can only apply an application_fee_amount when the PaymentIntent is attempting "
                "a direct payment (using an OAuth key or Stripe-Account header) or destination "
                "payment (using `transfer_data[destination]`).",
                param="application_fee_amount",
            )
        if fee is not None and fee > amount:
            raise StripeApiError(
                400,
                "The application_fee_amount must be less than or equal to the amount.",
                param="application_fee_amount",
            )
        intent_id = self.kit.new_id("pi_")
        intent: StripeObject = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "application_fee_amount": fee,
            "automatic_payment_methods": (
                {"allow_redirects": "always", "enabled": True} if automatic_enabled else None
            ),
            "canceled_at": None,
            "capture_method": capture_method,
            "client_secret": f"{intent_id}_secret_{self.kit.new_id('', 25)}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency.lower(),
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": _parse_metadata(params),
            "payment_method": None,
            "payment_method_types": ["card"],
            "status": "requires_payment_method",
        }
        self.payment_intents[intent_id] = intent
        self.owner.mark(intent_id, on_account)
        self.emit("payment_intent.created", intent, request=request)
        return intent

    def payment_intent(self, intent_id: str) -> StripeObject:
        try:
            return self.payment_intents[intent_id]
        except KeyError:
            raise _no_such("payment_intent", intent_id, "intent") from None

    def charge(self, charge_id: str) -> StripeObject:
        try:
            return self.charges[charge_id]
        except KeyError:
            raise _no_such("charge", charge_id, "charge") from None

    def succeed(self, intent_id: str) -> StripeObject:
        """The buyer confirms with a card that works."""
        intent = self.payment_intent(intent_id)
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _bad_state(
                f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        before = copy.deepcopy(intent)
        manual = intent["capture_method"] == "manual"
        charge = self._new_charge(intent, captured=not manual, status="succeeded")
        intent.update(
            latest_charge=charge["id"],
            payment_method=charge["payment_method"],
            last_payment_error=None,
        )
        self.emit("charge.succeeded", charge)
        if manual:
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self.emit("payment_intent.amount_capturable_updated", intent, before=before)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self.emit("payment_intent.succeeded", intent, before=before)
        return intent

    def fail(self, intent_id: str, *, code: str, decline_code: str, message: str) -> StripeObject:
        """The buyer's card is declined."""
        intent = self.payment_intent(intent_id)
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _bad_state(
                f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        before = copy.deepcopy(intent)
        charge = self._new_charge(intent, captured=False, status="failed")
        charge.update(paid=False, failure_code=code, failure_message=message)
        intent.update(
            latest_charge=charge["id"],
            status="requires_payment_method",
            last_payment_error={
                "charge": charge["id"],
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "type": "card_error",
            },
        )
        self.emit("charge.failed", charge)
        self.emit("payment_intent.payment_failed", intent, before=before)
        return intent

    def capture(
        self,
        intent_id: str,
        params: StripeObject,
        *,
        request: tuple[str | None, str | None],
    ) -> StripeObject:
        _refuse_unknown(params, {"amount_to_capture", "metadata", "expand"})
        intent = self.payment_intent(intent_id)
        if intent["status"] != "requires_capture":
            raise _bad_state(
                "This PaymentIntent could not be captured because it has a status of "
                f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
                "may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = _parse_integer(params, "amount_to_capture", minimum=1) or intent["amount"]
        if amount > intent["amount_capturable"]:
            raise StripeApiError(
                400,
                "The amount_to_capture must be less than or equal to the amount_capturable.",
                param="amount_to_capture",
            )
        before_intent = copy.deepcopy(intent)
        charge = self.charge(intent["latest_charge"])
        before_charge = copy.deepcopy(charge)
        charge.update(captured=True, amount_captured=amount)
        account = self.owner.get(charge["id"])
        if account is not None and charge["application_fee_amount"]:
            charge["application_fee"] = self._application_fee(charge, account)["id"]
        intent.update(status="succeeded", amount_capturable=0, amount_received=amount)
        self.emit("charge.captured", charge, before=before_charge, request=request)
        self.emit("payment_intent.succeeded", intent, before=before_intent, request=request)
        return intent

    def refund(
        self,
        params: StripeObject,
        *,
        request: tuple[str | None, str | None],
        on_account: str | None = None,
    ) -> StripeObject:
        _refuse_unknown(
            params, {"payment_intent", "charge", "amount", "reason", "metadata", "expand"}
        )
        charge_id = params.get("charge")
        intent_id = params.get("payment_intent")
        if not charge_id and not intent_id:
            raise StripeApiError(
                400,
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        if intent_id:
            intent = self.owned(
                "payment_intent", self.payment_intent(str(intent_id)), on_account, "payment_intent"
            )
            if intent["status"] != "succeeded" or not intent["latest_charge"]:
                raise _bad_state(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    code="charge_not_refundable",
                )
            charge = self.charge(intent["latest_charge"])
        else:
            charge = self.owned("charge", self.charge(str(charge_id)), on_account, "charge")
        if not charge["captured"]:
            raise _bad_state(
                f"Charge {charge['id']} has not been captured; release the authorisation "
                "by cancelling the PaymentIntent instead.",
                code="charge_not_refundable",
            )
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _bad_state(
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = _parse_integer(params, "amount", minimum=1) or remaining
        if amount > remaining:
            raise StripeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                code="amount_too_large",
                param="amount",
            )
        reason = params.get("reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise StripeApiError(
                400,
                f"Invalid reason: must be one of {', '.join(_REFUND_REASONS)}",
                param="reason",
            )
        status = "pending" if self.config.refunds_start_pending else "succeeded"
        refund: StripeObject = {
            "id": self.kit.new_id("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": self.kit.new_id("txn_"),
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": _parse_metadata(params),
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "status": status,
        }
        self.refunds[refund["id"]] = refund
        self.owner.mark(refund["id"], on_account)
        before_charge = copy.deepcopy(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self.emit("refund.created", refund, request=request)
        self.emit("charge.refunded", charge, before=before_charge, request=request)
        return refund

    def settle_refund(self, refund_id: str, *, succeeded: bool) -> StripeObject:
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise _no_such("refund", refund_id)
        if refund["status"] != "pending":
            raise _bad_state(f"Refund {refund_id} is {refund['status']}, not pending.")
        before = copy.deepcopy(refund)
        if succeeded:
            refund["status"] = "succeeded"
        else:
            refund.update(status="failed", failure_reason="expired_or_canceled_card")
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            self.emit("refund.failed", refund, before=before)
        self.emit("refund.updated", refund, before=before)
        self.emit("charge.refund.updated", refund, before=before)
        return refund

    def list_refunds(
        self, params: Mapping[str, str], on_account: str | None = None
    ) -> StripeObject:
        _refuse_unknown(
            params, {"charge", "payment_intent", "limit", "starting_after", "ending_before"}
        )
        return self.page(
            "refund", self.refunds, params, "/v1/refunds", on_account, ("charge", "payment_intent")
        )

    def page(
        self,
        kind: str,
        objects: dict[str, StripeObject],
        params: Mapping[str, str],
        url: str,
        on_account: str | None,
        filters: Sequence[str] = (),
    ) -> StripeObject:
        """One page of a Stripe list object (https://docs.stripe.com/api/pagination): the
        caller's ``objects`` newest first (``objects`` holds them in creation order), those
        whose ``filters`` fields equal the params given, ``limit`` (10; at most 100) after
        ``starting_after``."""
        limit = _parse_integer(params, "limit", minimum=1) or 10
        if limit > MAX_LIST_LIMIT:
            raise StripeApiError(
                400, "This value must be less than or equal to 100.", param="limit"
            )
        matching = [
            obj
            for obj in reversed(objects.values())
            if self.owner.visible(obj["id"], on_account)
            and all(params.get(name) in (None, obj[name]) for name in filters)
        ]
        after = params.get("starting_after")
        if after:
            ids = [obj["id"] for obj in matching]
            if after not in ids:
                raise _no_such(kind, after, "starting_after")
            matching = matching[ids.index(after) + 1 :]
        return {
            "object": "list",
            "data": matching[:limit],
            "has_more": len(matching) > limit,
            "url": url,
        }

    def open_dispute(
        self, intent_id: str, *, amount: int | None, reason: str, inquiry: bool
    ) -> StripeObject:
        intent = self.payment_intent(intent_id)
        if not intent["latest_charge"] or intent["status"] != "succeeded":
            raise _bad_state(f"PaymentIntent {intent_id} has no captured charge to dispute.")
        charge = self.charge(intent["latest_charge"])
        if charge["disputed"]:
            raise _bad_state(f"Charge {charge['id']} is already disputed.")
        dispute: StripeObject = {
            "id": self.kit.new_id("dp_"),
            "object": "dispute",
            "amount": amount or charge["amount_captured"],
            "balance_transactions": [],
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "evidence_details": {"has_evidence": False, "submission_count": 0},
            "is_charge_refundable": inquiry,
            "livemode": False,
            "metadata": {},
            "payment_intent": intent_id,
            "reason": reason,
            "status": "warning_needs_response" if inquiry else "needs_response",
        }
        self.disputes[dispute["id"]] = dispute
        self.owner.inherit(dispute["id"], charge["id"])
        charge["disputed"] = True
        self.emit("charge.dispute.created", dispute)
        if not inquiry:
            before = copy.deepcopy(dispute)
            dispute["balance_transactions"] = [
                {"id": self.kit.new_id("txn_"), "amount": -dispute["amount"], "type": "adjustment"}
            ]
            self.emit("charge.dispute.funds_withdrawn", dispute, before=before)
        return dispute

    def close_dispute(self, dispute_id: str, *, won: bool) -> StripeObject:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise _no_such("dispute", dispute_id)
        if dispute["status"] in ("won", "lost", "warning_closed"):
            raise _bad_state(f"Dispute {dispute_id} is already closed ({dispute['status']}).")
        before = copy.deepcopy(dispute)
        inquiry = str(dispute["status"]).startswith("warning_")
        if inquiry:
            dispute["status"] = "warning_closed"
        elif won:
            dispute["status"] = "won"
            dispute["balance_transactions"] = [
                *dispute["balance_transactions"],
                {"id": self.kit.new_id("txn_"), "amount": dispute["amount"], "type": "adjustment"},
            ]
            self.emit("charge.dispute.funds_reinstated", dispute, before=before)
        else:
            dispute["status"] = "lost"
        self.emit("charge.dispute.closed", dispute, before=before)
        return dispute

    def _new_charge(self, intent: StripeObject, *, captured: bool, status: str) -> StripeObject:
        charge: StripeObject = {
            "id": self.kit.new_id("ch_"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if captured else 0,
            "amount_refunded": 0,
            "balance_transaction": self.kit.new_id("txn_") if captured else None,
            "captured": captured,
            "created": int(time.time()),
            "currency": intent["currency"],
            "description": intent["description"],
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            # Stripe gives a PaymentIntent's charges the intent's metadata
            "metadata": copy.deepcopy(intent["metadata"]),
            "paid": status == "succeeded",
            "payment_intent": intent["id"],
            "payment_method": self.kit.new_id("pm_"),
            "refunded": False,
            "status": status,
            "application_fee": None,
            "application_fee_amount": intent.get("application_fee_amount"),
        }
        self.charges[charge["id"]] = charge
        account = self.owner.inherit(charge["id"], intent["id"])
        if account is not None:
            if captured and charge["application_fee_amount"]:
                charge["application_fee"] = self._application_fee(charge, account)["id"]
        return charge

    def _application_fee(self, charge: StripeObject, account: str) -> StripeObject:
        """The platform's fee on a connected account's charge (an ``fee_…`` of the
        platform's own, https://docs.stripe.com/api/application_fees/object)."""
        fee: StripeObject = {
            "id": self.kit.new_id("fee_"),
            "object": "application_fee",
            "account": account,
            "amount": charge["application_fee_amount"],
            "amount_refunded": 0,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "livemode": False,
            "refunded": False,
        }
        self.application_fees[fee["id"]] = fee
        return fee


# -- HTTP -------------------------------------------------------------------------------


class FailRequest(BaseModel):
    """A decline, as ``last_payment_error`` reports it."""

    code: str = "card_declined"
    decline_code: str = "generic_decline"
    message: str = "Your card was declined."


class DisputeRequest(BaseModel):
    """A dispute of the PaymentIntent's charge.

    :param amount: disputed amount; the captured amount when omitted.
    :param inquiry: an inquiry (``warning_needs_response``): no funds are withdrawn.
    """

    amount: int | None = Field(default=None, ge=1)
    reason: str = "fraudulent"
    inquiry: bool = False


def _request_ids(request: Request) -> tuple[str | None, str | None]:
    return request.state.request_id, request.headers.get("idempotency-key")


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build a fresh sandbox (its own objects, events and settings).

    :param config: the behaviour; read from ``PIXECOM_STRIPE_SANDBOX_*`` when omitted (see
        :class:`~pixecom_stripe.settings.StripeSandboxSettings`).
    """
    account = SandboxAccount(config if config is not None else SandboxConfig.from_environment())
    kit = account.kit

    app = kit.app(
        "Stripe sandbox (PixEcom)",
        description=__doc__,
        openapi_url="/_sandbox/openapi.json",
        docs_url="/_sandbox/docs",
    )
    app.state.account = account

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            message = (
                f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/."
            )
        else:
            message = str(exc.detail)
        return JSONResponse(
            {"error": {"type": "invalid_request_error", "message": message}},
            status_code=exc.status_code,
        )

    @app.middleware("http")
    async def _stripe_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not request.url.path.startswith(API_PATHS):
            return await call_next(request)
        request.state.request_id = account.kit.new_id("req_", 14)
        response = await call_next(request)
        response.headers["Request-Id"] = request.state.request_id
        response.headers["Stripe-Version"] = SANDBOX_API_VERSION
        return response

    async def api_call(request: Request) -> str:
        """Every ``/v1`` call: logged, slowed down by ``latency_seconds``, answered by a
        queued fault if one is aimed at it, then authenticated; returns the caller's key."""
        authorization = request.headers.get("authorization")

        def refuse(fault: StripeFault) -> Response:
            raise _fault_error(fault, _presented_key(authorization))

        refused, _logged = await kit.intercept(
            request,
            request.scope["route"].name,
            render=refuse,
            request_id=request.state.request_id,
            idempotency_key=request.headers.get("idempotency-key"),
            has_key=bool(authorization),
            # not a credential: tests check calls about a seller's payment name the seller
            stripe_account=request.headers.get("stripe-account"),
        )
        if refused is not None:
            raise Answered(refused)
        return _authenticate(account.config, authorization)

    api_key = Annotated[str, Depends(api_call)]

    async def stripe_account(request: Request, key: api_key) -> str | None:
        """The connected account a call acts on (``Stripe-Account``), checked after the
        key; ``None``: the platform's own account."""
        named = request.headers.get("stripe-account")
        return None if named is None else account.reachable(named.strip(), key)

    on_account = Annotated[str | None, Depends(stripe_account)]

    async def idempotent(
        request: Request,
        key: str,
        operation: Callable[[StripeObject], StripeObject],
        connected: str | None = None,
    ) -> JSONResponse:
        """Run a POST once per (key, account, Idempotency-Key), replaying its answer
        afterwards (Stripe keeps idempotency keys per account)."""
        pairs = await _form_pairs(request)
        idempotency_key = request.headers.get("idempotency-key")
        try:
            body, replayed = account.replays.answer(
                idempotency_key,
                lambda: operation(decode_form(pairs)),
                scope=(key, connected),
                endpoint=f"{request.method} {request.url.path}",
                fingerprint=tuple(sorted(pairs)),
            )
        except IdempotencyConflict as conflict:
            raise _idempotency_error(conflict, str(idempotency_key)) from None
        return JSONResponse(body, headers={"Idempotent-Replayed": "true"} if replayed else None)

    # -- Stripe API -----------------------------------------------------------------------

    @app.post("/v1/payment_intents")
    async def create_payment_intent(
        request: Request, key: api_key, connected: on_account
    ) -> JSONResponse:
        return await idempotent(
            request,
            key,
            lambda params: account.create_payment_intent(
                params, request=_request_ids(request), on_account=connected
            ),
            connected,
        )

    @app.get("/v1/payment_intents/{intent_id}")
    async def retrieve_payment_intent(intent_id: str, connected: on_account) -> StripeObject:
        return account.owned(
            "payment_intent", account.payment_intent(intent_id), connected, "intent"
        )

    @app.post("/v1/payment_intents/{intent_id}/capture")
    async def capture_payment_intent(
        intent_id: str, request: Request, key: api_key, connected: on_account
    ) -> JSONResponse:
        account.owned("payment_intent", account.payment_intent(intent_id), connected, "intent")
        return await idempotent(
            request,
            key,
            lambda params: account.capture(intent_id, params, request=_request_ids(request)),
            connected,
        )

    @app.get("/v1/charges/{charge_id}")
    async def retrieve_charge(charge_id: str, connected: on_account) -> StripeObject:
        return account.owned("charge", account.charge(charge_id), connected, "charge")

    @app.post("/v1/refunds")
    async def create_refund(request: Request, key: api_key, connected: on_account) -> JSONResponse:
        return await idempotent(
            request,
            key,
            lambda params: account.refund(
                params, request=_request_ids(request), on_account=connected
            ),
            connected,
        )

    @app.get("/v1/refunds")
    async def list_refunds(request: Request, connected: on_account) -> StripeObject:
        return account.list_refunds(dict(request.query_params), connected)

    @app.get("/v1/refunds/{refund_id}")
    async def retrieve_refund(refund_id: str, connected: on_account) -> StripeObject:
        if refund_id not in account.refunds:
            raise _no_such("refund", refund_id)
        return account.owned("refund", account.refunds[refund_id], connected)

    @app.get("/v1/disputes/{dispute_id}")
    async def retrieve_dispute(dispute_id: str, connected: on_account) -> StripeObject:
        if dispute_id not in account.disputes:
            raise _no_such("dispute", dispute_id)
        return account.owned("dispute", account.disputes[dispute_id], connected)

    @app.get("/v1/events/{event_id}")
    async def retrieve_event(event_id: str, connected: on_account) -> StripeObject:
        return account.owned("event", account.event(event_id), connected)

    @app.get("/v1/application_fees/{fee_id}")
    async def retrieve_application_fee(fee_id: str, connected: on_account) -> StripeObject:
        # the platform's own objects: a Stripe-Account caller sees none
        fee = account.application_fees.get(fee_id)
        if fee is None or connected is not None:
            raise _no_such("application_fee", fee_id)
        return fee

    # Connect OAuth and connected accounts (a module of their own, sharing the account)
    from pixecom_stripe.sandbox_connect import connect_routes

    connect_routes(app, account, api_key)

    # Checkout Sessions and their hosted page (a module of their own, sharing the account)
    from pixecom_stripe.sandbox_checkout import checkout_routes

    checkout_routes(app, account, api_key, on_account, idempotent)

    # -- control ----------------------------------------------------------------------------

    @app.post("/_sandbox/payment_intents/{intent_id}/succeed")
    async def succeed(intent_id: str) -> StripeObject:
        return account.succeed(intent_id)

    @app.post("/_sandbox/payment_intents/{intent_id}/fail")
    async def fail(intent_id: str, decline: FailRequest | None = None) -> StripeObject:
        decline = decline or FailRequest()
        return account.fail(
            intent_id, code=decline.code, decline_code=decline.decline_code, message=decline.message
        )

    @app.post("/_sandbox/payment_intents/{intent_id}/dispute")
    async def dispute(intent_id: str, request: DisputeRequest | None = None) -> StripeObject:
        request = request or DisputeRequest()
        return account.open_dispute(
            intent_id, amount=request.amount, reason=request.reason, inquiry=request.inquiry
        )

    @app.post("/_sandbox/disputes/{dispute_id}/{outcome}")
    async def close_dispute(dispute_id: str, outcome: Literal["win", "lose"]) -> StripeObject:
        return account.close_dispute(dispute_id, won=outcome == "win")

    @app.post("/_sandbox/refunds/{refund_id}/{outcome}")
    async def settle_refund(refund_id: str, outcome: Literal["succeed", "fail"]) -> StripeObject:
        return account.settle_refund(refund_id, succeeded=outcome == "succeed")

    return app


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    """The form-encoded body's pairs, or Stripe's 400 for a body that is not UTF-8."""
    try:
        return form_pairs(await request.body())
    except MalformedBody as exc:
        raise StripeApiError(400, str(exc)) from None


def _idempotency_error(conflict: IdempotencyConflict, idempotency_key: str) -> StripeApiError:
    """Stripe's 400 ``idempotency_error`` for a refused ``Idempotency-Key``."""
    other = (
        f"Try using a key other than '{idempotency_key}' if you meant to execute a different "
        "request."
    )
    if conflict.reason == "key_length":
        message = "Idempotency-Key must be 1 to 255 characters long."
    elif conflict.reason == "other_endpoint":
        message = (
            "Keys for idempotent requests can only be used for the same endpoint they were "
            f"first used for ('{conflict.first_endpoint}'). {other}"
        )
    else:
        message = (
            "Keys for idempotent requests can only be used with the same parameters they "
            f"were first used with. {other}"
        )
    return StripeApiError(400, message, error_type="idempotency_error")


def _presented_key(authorization: str | None) -> str:
    """The API key in an ``Authorization`` header (Bearer, or Basic as ``curl -u`` sends
    it); empty when there is none."""
    basic = basic_credentials(authorization)
    return basic[0] if basic is not None else bearer_token(authorization)


def _authenticate(config: SandboxConfig, authorization: str | None) -> str:
    """The API key of the request, or a 401 in Stripe's words."""
    key = _presented_key(authorization)
    if not key:
        raise StripeApiError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    accepted = (
        key in {accepted.get_secret_value() for accepted in config.api_keys}
        if config.api_keys
        else key.startswith(("sk_test_", "rk_test_")) and len(key) > len("sk_test_")
    )
    if not accepted:
        raise StripeApiError(401, f"Invalid API Key provided: {_masked(key)}")
    return key


def _masked(key: str) -> str:
    prefix = key[:8] if key.startswith(("sk_", "rk_")) else ""
    return f"{prefix}{'*' * 4}{key[-4:]}"


def _fault_error(fault: StripeFault, key: str) -> StripeApiError:
    """A queued fault in Stripe's error envelope (https://docs.stripe.com/api/errors: a
    refused key and a rate limit are ``invalid_request_error``s, Stripe's own trouble an
    ``api_error``; https://docs.stripe.com/rate-limits: 429 with code ``rate_limit``)."""
    if fault.kind == "throttled":
        headers = {}
        if fault.retry_after_seconds is not None:
            headers["Retry-After"] = f"{fault.retry_after_seconds:g}"
        return StripeApiError(
            429,
            fault.message
            or "Too many requests hit the API too quickly. We recommend an exponential "
            "backoff of your requests.",
            code="rate_limit",
            headers=headers,
        )
    if fault.kind == "auth":
        shown = key if fault.echo_token else _masked(key)
        return StripeApiError(401, fault.message or f"Invalid API Key provided: {shown}")
    return StripeApiError(
        fault.status if fault.status is not None and fault.status >= 500 else 500,
        fault.message or "An unknown error occurred (injected).",
        error_type="api_error",
    )


# -- demo payments (pixecom dev) ----------------------------------------------------------


class SandboxDemoPayments:
    """Pays and refunds PaymentIntents at a running sandbox, for ``pixecom dev``'s demo
    traffic and ``pixecom simulate`` (:class:`pixecom_core.providers.SimulatedPayments`).

    Paying is the buyer's part (``POST /_sandbox/payment_intents/{id}/succeed``); refunding
    is the merchant's (``POST /v1/refunds`` with ``secret_key``, as from the dashboard). The
    sandbox sends the events to its webhook URL signed like Stripe; when it does not deliver
    them on its own (``auto_deliver`` off) they are delivered right after each action —
    unless this object holds them (:meth:`hold_webhooks`, ``auto_deliver`` off until
    :meth:`release_webhooks`), for a burst sent through ``POST /_sandbox/deliver``.

    :param url: the sandbox's base URL.
    :param secret_key: a test-mode key the sandbox accepts.
    """

    #: Stripe's event for a PaymentIntent paid in full.
    paid_event_type = "payment_intent.succeeded"

    def __init__(self, url: str, *, secret_key: str) -> None:
        # A burst delivers hundreds of events per call: allow for the API's slowest minute.
        self._client = httpx.AsyncClient(
            base_url=url,
            timeout=120,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self._secret_key = secret_key
        self._auto_deliver: bool | None = None
        self._holding = False

    async def _delivered(self) -> None:
        if self._holding:
            return
        if self._auto_deliver is None:
            config = await self._client.get("/_sandbox/config")
            config.raise_for_status()
            self._auto_deliver = bool(config.json()["auto_deliver"])
        if self._auto_deliver:
            return
        answer = await self._client.post("/_sandbox/deliver", json={})
        answer.raise_for_status()
        refused = [d for d in answer.json()["deliveries"] if d["status_code"] != 200]
        if refused:
            raise RuntimeError(f"webhook deliveries refused: {refused}")

    async def pay(self, payment: DemoPayment) -> None:
        """The buyer completes the PaymentIntent, or pays on the Checkout Session's page;
        ``payment_intent.succeeded`` follows."""
        reference = payment.gateway_reference
        path = (
            f"/_sandbox/checkout/sessions/{reference}/complete"
            if reference.startswith("cs_")
            else f"/_sandbox/payment_intents/{reference}/succeed"
        )
        answer = await self._client.post(path)
        answer.raise_for_status()
        await self._delivered()

    async def refund(self, payment: DemoPayment, amount_minor: int) -> None:
        """A partial refund of the PaymentIntent, on the connected account it was made on
        (if any), as that seller would from their Dashboard; ``refund.created`` and
        ``charge.refunded`` follow."""
        headers = {"Authorization": f"Bearer {self._secret_key}"}
        accounts = await self._client.get("/_sandbox/accounts")
        accounts.raise_for_status()
        reference = payment.gateway_reference
        for account in accounts.json():
            if reference in (*account["payment_intents"], *account["checkout_sessions"]):
                headers["Stripe-Account"] = account["id"]
        if reference.startswith("cs_"):
            session = await self._client.get(f"/v1/checkout/sessions/{reference}", headers=headers)
            session.raise_for_status()
            reference = str(session.json()["payment_intent"])
        answer = await self._client.post(
            "/v1/refunds",
            data={"payment_intent": reference, "amount": str(amount_minor)},
            headers=headers,
        )
        answer.raise_for_status()
        await self._delivered()

    async def hold_webhooks(self) -> None:
        """Turn ``auto_deliver`` off (remembering its setting); new events stay pending."""
        if self._auto_deliver is None:
            config = await self._client.get("/_sandbox/config")
            config.raise_for_status()
            self._auto_deliver = bool(config.json()["auto_deliver"])
        answer = await self._client.post("/_sandbox/config", json={"auto_deliver": False})
        answer.raise_for_status()
        self._holding = True

    async def held_webhooks(self) -> list[str]:
        """The pending events (``GET /_sandbox/events?pending_only=true``)."""
        answer = await self._client.get("/_sandbox/events", params={"pending_only": True})
        answer.raise_for_status()
        return [str(event["id"]) for event in answer.json()["data"]]

    async def deliver_webhooks(
        self, event_ids: Sequence[str], *, copies: int, shuffle: bool
    ) -> list[int | None]:
        """``POST /_sandbox/deliver`` with these events, ``shuffle``, and ``copies - 1``
        ``duplicates`` (the kit counts the extra copies)."""
        answer = await self._client.post(
            "/_sandbox/deliver",
            json={"event_ids": list(event_ids), "duplicates": copies - 1, "shuffle": shuffle},
        )
        answer.raise_for_status()
        return [delivery["status_code"] for delivery in answer.json()["deliveries"]]

    async def release_webhooks(self) -> None:
        """Restore ``auto_deliver``, then deliver every event still pending."""
        self._holding = False
        answer = await self._client.post(
            "/_sandbox/config", json={"auto_deliver": bool(self._auto_deliver)}
        )
        answer.raise_for_status()
        (await self._client.post("/_sandbox/deliver", json={})).raise_for_status()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
