"""The PayPal payment gateway: Orders v2 checkout, refunds, verified webhooks, normalised
money events.

How PayPal's notifications become core's events (``gateway_reference`` is always the PayPal
order id the money belongs to, the id :meth:`PayPalGateway.create_payment` returned):

===============================  ======================  ===================================
PayPal event                     kind                    fact_reference
===============================  ======================  ===================================
CHECKOUT.ORDER.APPROVED          none (moves no money)   (the order is captured, see below)
PAYMENT.CAPTURE.COMPLETED        CAPTURED                capture id
PAYMENT.CAPTURE.DENIED           FAILED                  capture id
PAYMENT.CAPTURE.REFUNDED         REFUNDED                refund id (the refund's own amount);
                                                         none while the refund is PENDING,
                                                         FAILED or CANCELLED
PAYMENT.CAPTURE.REVERSED         CHARGEBACK              dispute id if the capture has a
                                                         dispute, else the reversal's id
CUSTOMER.DISPUTE.CREATED         CHARGEBACK              dispute id
CUSTOMER.DISPUTE.RESOLVED        CHARGEBACK_REVERSED     dispute id (seller kept the money)
anything else                    none
===============================  ======================  ===================================

One chargeback, two notifications: PayPal announces the money a dispute takes back twice —
``CUSTOMER.DISPUTE.CREATED`` when the dispute opens and ``PAYMENT.CAPTURE.REVERSED`` when the
funds are reversed (at once for a bank chargeback, after the buyer wins a PayPal claim). A
reversal carries no dispute id, so :meth:`PayPalGateway.parse_events` asks PayPal for the
disputes on the reversed capture; when there is one, the reversal is recorded as that
dispute's ``CHARGEBACK`` fact, the same ``(fact_reference, kind)`` as the dispute's own
event, and core's ledger keeps whichever arrives first. A reversal with no dispute (PayPal
reversing a payment on its own) is a chargeback of its own, keyed on the reversal id.

Refunds (:meth:`PayPalGateway.refund`) go to the capture, PayPal's refundable object: the
``fact_reference`` of the payment's ``CAPTURED`` fact. The answer's refund id is the
``fact_reference`` of the ``REFUNDED`` fact the refund's webhook becomes, so core records
the refund once, from whichever comes first. PayPal's refund ``status`` maps to core's
``RefundState``:

=============================  ==========================================================
PayPal refund status           RefundState
=============================  ==========================================================
PENDING                        PENDING (``status_details.reason``, e.g. ``ECHECK``)
COMPLETED                      SUCCEEDED
FAILED, CANCELLED              FAILED, the status and ``status_details.reason`` as reason
=============================  ==========================================================

Choices and their limits, for whoever reconciles with PayPal's reports:

- A dispute counts as a chargeback from ``CUSTOMER.DISPUTE.CREATED`` on, also at the
  ``INQUIRY`` stage where PayPal only holds the funds; a resolution the seller wins
  (``RESOLVED_SELLER_FAVOUR``, ``CANCELED_BY_BUYER``, ``DENIED``) gives it back. Other
  outcomes (the buyer won, ``RESOLVED_WITH_PAYOUT``) leave the chargeback as it is.
- If the seller refunds a disputed capture while the dispute is open (instead of letting
  PayPal reverse it), the refund is a ``REFUNDED`` fact next to the dispute's
  ``CHARGEBACK``: PayPal's refund does not name the dispute.
- If a reversal is parsed before its dispute is visible in PayPal's disputes API, it is
  keyed on the reversal id and the dispute later counts again. PayPal opens the dispute
  first, so this needs an unusual delay on PayPal's side.
- A dispute about several captures is attributed to the first one.
"""

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from pixecom_core.providers import (
    CredentialField,
    GatewayPaymentEvent,
    GatewayRefund,
    MerchantAccount,
    PaymentConnectionKind,
    PaymentEventKind,
    PaymentRequest,
    PaymentSession,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ProviderTransientError,
    RefundRequest,
    RefundState,
    VerifiedWebhook,
    WebhookAccount,
    WebhookVerificationError,
)
from pixecom_paypal.client import (
    AppCredentials,
    JSONObject,
    PayPalAPIError,
    PayPalClient,
    tls_verification,
)
from pixecom_paypal.money import AmountError, from_paypal_value, to_paypal_value
from pixecom_paypal.settings import PayPalSettings
from pixecom_paypal.signatures import (
    AUTH_ALGORITHM,
    CertificateStore,
    signed_message,
    verify_signature,
)

PROVIDER = "paypal"

#: Headers every PayPal webhook carries, lower-cased.
TRANSMISSION_HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)

#: Dispute outcomes that leave the money with the seller: the chargeback is undone.
SELLER_KEEPS_THE_MONEY = frozenset({"RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER", "DENIED"})

# PayPal limits custom_id, invoice_id and description to 127 characters, a refund's
# note_to_payer to 255, and the PayPal-Request-Id header to 108.
_PAYPAL_TEXT_LIMIT = 127
_PAYPAL_NOTE_LIMIT = 255
_PAYPAL_REQUEST_ID_LIMIT = 108

#: PayPal's refund ``status`` (Payments v2 ``refund_status``) as core's ``RefundState``.
REFUND_STATES: Mapping[str, RefundState] = {
    "PENDING": RefundState.PENDING,
    "COMPLETED": RefundState.SUCCEEDED,
    "FAILED": RefundState.FAILED,
    "CANCELLED": RefundState.FAILED,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


#: The events a seller's app is subscribed to: those :meth:`PayPalGateway.parse_events`
#: reads (see the table above).
WEBHOOK_EVENT_TYPES = [
    "CHECKOUT.ORDER.APPROVED",
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.DENIED",
    "PAYMENT.CAPTURE.REFUNDED",
    "PAYMENT.CAPTURE.REVERSED",
    "CUSTOMER.DISPUTE.CREATED",
    "CUSTOMER.DISPUTE.RESOLVED",
]

#: Where a seller's app keeps the id of its webhook subscription to PixEcom.
WEBHOOK_ID_SETTING = "webhook_id"


@dataclass(frozen=True, slots=True)
class _Notification:
    """One webhook body being parsed, with what every event needs to name."""

    event_id: str
    event_type: str
    created: datetime | None
    resource: JSONObject
    #: The client acting for the app the notification came from (a seller's, or the
    #: platform's): every call made while parsing it uses that app's token.
    client: PayPalClient

    def fail(self, problem: str) -> ProviderError:
        return ProviderError(
            f"PayPal event {self.event_id} ({self.event_type}): {problem}", provider=PROVIDER
        )


@dataclass(frozen=True, slots=True)
class _CaptureContext:
    """Where a capture's money belongs: the PayPal order and core's order id (``custom_id``)."""

    order_id: str
    custom_id: str | None


class PayPalGateway:
    """The ``paypal`` payment gateway; implements ``pixecom_core.providers.PaymentGateway``
    and ``PaymentGatewayConnections`` (issue 15: sellers connect their own REST app).

    A seller connects with their REST app's client id and secret
    (:meth:`verify_credentials`); :meth:`prepare_account` subscribes that app to the
    seller's own webhook URL at PixEcom. Every payment, capture, refund and fetch that
    names the seller's ``account`` then uses an access token of the seller's app (cached
    per client id), so the money lands on the seller's PayPal account; one without an
    account is refused unless ``platform_account_payments`` (single-account mode) is on.

    :param settings: where PayPal is, the credentials and the verification mode.
    :param http: an httpx client for the REST calls (tests); built from ``settings`` if absent.
    :param clock: monotonic seconds for the token cache.
    :param now: the current time, aware; used for ``received_at`` and transmission freshness.
    """

    identifier = "paypal"
    display_name = "PayPal"
    #: The inbox stores the transmission headers, so a stored delivery can be verified again.
    webhook_headers = frozenset(TRANSMISSION_HEADERS)
    connection_kind = PaymentConnectionKind.CREDENTIALS
    credential_fields = (
        CredentialField(name="client_id", label="REST app client ID"),
        CredentialField(name="client_secret", label="REST app secret", secret=True),
    )

    def __init__(
        self,
        settings: PayPalSettings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.client = PayPalClient(settings, http=http, clock=clock)
        self.certificates = CertificateStore(
            allowed_host_suffixes=settings.allowed_cert_host_suffixes,
            http_factory=lambda: httpx.AsyncClient(
                timeout=httpx.Timeout(settings.timeout_seconds),
                verify=tls_verification(settings),
            ),
            now=now,
        )
        self._now = now
        self._captures: OrderedDict[str, _CaptureContext] = OrderedDict()
        #: Client ids of apps disconnected in this process: refused until connected again.
        self._disconnected: OrderedDict[str, None] = OrderedDict()
        self._handlers: dict[
            str, Callable[[_Notification], Awaitable[list[GatewayPaymentEvent]]]
        ] = {
            "CHECKOUT.ORDER.APPROVED": self._order_approved,
            "PAYMENT.CAPTURE.COMPLETED": self._capture_completed,
            "PAYMENT.CAPTURE.DENIED": self._capture_denied,
            "PAYMENT.CAPTURE.REFUNDED": self._capture_refunded,
            "PAYMENT.CAPTURE.REVERSED": self._capture_reversed,
            "CUSTOMER.DISPUTE.CREATED": self._dispute_created,
            "CUSTOMER.DISPUTE.RESOLVED": self._dispute_resolved,
        }

    async def aclose(self) -> None:
        """Close the HTTP connections to PayPal."""
        await self.client.aclose()
        await self.certificates.aclose()

    # -- payments -----------------------------------------------------------------------

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        """Create a PayPal order (intent ``CAPTURE``) and return its approval page.

        ``custom_id`` and ``invoice_id`` carry core's order id, so events lead back to the
        order and PayPal refuses to capture a second payment for an order already paid.
        ``request.metadata`` is not sent: PayPal orders have no free-form metadata.
        ``PayPal-Request-Id`` is ``request.idempotency_key``: a retry returns the same order.
        The order is created with ``request.account``'s app (see :meth:`_client_for`).
        """
        client = self._client_for(request.account, doing="take a payment")
        try:
            value = to_paypal_value(request.amount_minor, request.currency)
        except AmountError as exc:
            raise ProviderError(str(exc), provider=PROVIDER) from exc
        purchase_unit: JSONObject = {
            "reference_id": "default",
            "custom_id": str(request.order_id),
            "invoice_id": str(request.order_id),
            "amount": {"currency_code": request.currency, "value": value},
        }
        if request.description:
            purchase_unit["description"] = request.description[:_PAYPAL_TEXT_LIMIT]
        order = await client.create_order(
            {
                "intent": "CAPTURE",
                "purchase_units": [purchase_unit],
                "payment_source": {
                    "paypal": {
                        "experience_context": {
                            "return_url": request.return_url,
                            "cancel_url": request.cancel_url,
                            "user_action": "PAY_NOW",
                        }
                    }
                },
            },
            request_id=_request_id(request.idempotency_key),
        )
        order_id = order.get("id")
        if not isinstance(order_id, str) or not order_id:
            raise ProviderError("PayPal created an order without an id", provider=PROVIDER)
        # PayPal names the buyer's page "payer-action" when payment_source is given and
        # "approve" in the older flow; accept either.
        approval_url = _link(order, "payer-action") or _link(order, "approve")
        if approval_url is None:
            raise ProviderError(
                f"PayPal order {order_id} has no approval link (status {order.get('status')})",
                provider=PROVIDER,
            )
        return PaymentSession(
            gateway=self.identifier, gateway_reference=order_id, approval_url=approval_url
        )

    async def capture_payment(
        self,
        gateway_reference: str,
        *,
        idempotency_key: str | None = None,
        account: MerchantAccount | None = None,
    ) -> JSONObject:
        """Capture an approved PayPal order and return PayPal's order.

        Safe to repeat: the default ``PayPal-Request-Id`` is derived from the order id, and
        an order that is already captured is fetched instead. The money is recorded from the
        ``PAYMENT.CAPTURE.COMPLETED`` webhook, not from this answer.

        :param gateway_reference: the PayPal order id from :meth:`create_payment`.
        :param idempotency_key: overrides the derived ``PayPal-Request-Id``.
        :param account: the seller's account the order was created on.
        """
        return await self._capture_with(
            self._client_for(account, doing="capture a payment"),
            gateway_reference,
            idempotency_key=idempotency_key,
        )

    async def _capture_with(
        self, client: PayPalClient, gateway_reference: str, *, idempotency_key: str | None
    ) -> JSONObject:
        request_id = _request_id(idempotency_key or f"pixecom-capture-{gateway_reference}")
        try:
            return await client.capture_order(gateway_reference, request_id=request_id)
        except PayPalAPIError as exc:
            if "ORDER_ALREADY_CAPTURED" in exc.issues:
                return await client.get_order(gateway_reference)
            raise

    # -- refunds ------------------------------------------------------------------------

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        """Refund ``request.amount_minor`` of the PayPal capture ``request.capture_reference``.

        ``POST /v2/payments/captures/{id}/refund`` with ``PayPal-Request-Id`` derived from
        ``request.idempotency_key`` (a retry answers the same refund, never a second one),
        ``custom_id`` core's order id (as on the capture), ``invoice_id`` core's refund id
        (unique per refund, as accounts that refuse duplicate invoice ids need) and
        ``note_to_payer`` the reason, cut to PayPal's 255 characters.

        :raises ProviderRefused: PayPal declined the refund (422 ``REFUND_AMOUNT_EXCEEDED``,
            ``CAPTURE_FULLY_REFUNDED``, ``REFUND_TIME_LIMIT_EXCEEDED`` ...; 404 for a capture
            it does not know; 400), or PayPal cannot take the amount (a fraction of HUF).
        :raises ProviderAuthError: the credentials were refused, or PayPal answered 403 (the
            app may not refund this capture).
        :raises ProviderTransientError: 5xx, timeout, 429, or 409 (the same refund is still
            being processed): retry with the same key.
        """
        client = self._client_for(request.account, doing="refund a payment")
        capture = request.capture_reference
        try:
            value = to_paypal_value(request.amount_minor, request.currency)
        except AmountError as exc:
            raise ProviderRefused(
                f"PayPal cannot refund this amount of capture {capture}: {exc}", provider=PROVIDER
            ) from exc
        action = f"refund {value} {request.currency} of capture {capture}"
        body: JSONObject = {
            "amount": {"currency_code": request.currency, "value": value},
            "custom_id": str(request.order_id),
            "invoice_id": str(request.refund_id),
        }
        if request.reason and request.reason.strip():
            body["note_to_payer"] = request.reason.strip()[:_PAYPAL_NOTE_LIMIT]
        try:
            answer = await client.refund_capture(
                request.capture_reference, body, request_id=_request_id(request.idempotency_key)
            )
        except PayPalAPIError as exc:
            raise _refund_error(exc, action) from exc
        if _text(answer, "amount", "value") is None:
            # A minimal answer (id, status, links) in spite of Prefer: read the whole refund.
            refund_id = _text(answer, "id")
            if refund_id is None:
                raise ProviderError(
                    f"PayPal's answer to {action} names no refund", provider=PROVIDER
                )
            answer = await client.get_refund(refund_id)
        return self._gateway_refund(answer, action)

    async def fetch_refund(
        self,
        *,
        payment_reference: str,
        refund_reference: str,
        account: MerchantAccount | None = None,
    ) -> GatewayRefund:
        """Read a refund again (``GET /v2/payments/refunds/{id}``), e.g. a ``PENDING`` one.

        :raises ProviderError: PayPal does not know the refund (404 ``RESOURCE_NOT_FOUND``).
        """
        client = self._client_for(account, doing="read a refund")
        action = f"show refund {refund_reference} of PayPal order {payment_reference}"
        return self._gateway_refund(await client.get_refund(refund_reference), action)

    def _gateway_refund(self, refund: JSONObject, action: str) -> GatewayRefund:
        refund_id = _text(refund, "id")
        status = _text(refund, "status") or ""
        currency = _text(refund, "amount", "currency_code")
        value = _text(refund, "amount", "value")
        if refund_id is None or status not in REFUND_STATES or currency is None or value is None:
            raise ProviderError(
                f"PayPal's answer to {action} is not a refund with an id, a known status and "
                f"an amount (id {refund_id}, status {status or 'none'})",
                provider=PROVIDER,
            )
        try:
            amount_minor = from_paypal_value(value, currency)
        except AmountError as exc:
            raise ProviderError(f"PayPal's answer to {action}: {exc}", provider=PROVIDER) from exc
        if amount_minor <= 0:
            raise ProviderError(
                f"PayPal's answer to {action} refunds {value} {currency}", provider=PROVIDER
            )
        state = REFUND_STATES[status]
        reason = _text(refund, "status_details", "reason")
        return GatewayRefund(
            gateway=self.identifier,
            refund_reference=refund_id,
            state=state,
            amount_minor=amount_minor,
            currency=currency.upper(),
            occurred_at=(
                _timestamp(refund.get("create_time"))
                or _timestamp(refund.get("update_time"))
                or self._now()
            ),
            failure_reason=(
                (f"{status} ({reason})" if reason else status)
                if state is RefundState.FAILED
                else None
            ),
        )

    # -- webhooks -----------------------------------------------------------------------

    async def verify_webhook(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,
    ) -> VerifiedWebhook:
        """Check a PayPal webhook's transmission headers, or raise ``WebhookVerificationError``.

        ``verification="offline"`` checks the SHA256withRSA signature here, with the
        certificate from ``PAYPAL-CERT-URL`` (https on an allowed host only, cached);
        ``"api"`` asks PayPal's verify-webhook-signature endpoint and accepts only
        ``SUCCESS`` (PayPal checks the certificate URL itself then). Either way the
        transmission time must be within ``max_transmission_age_seconds`` of now.

        With ``account`` (a delivery to the seller's own webhook URL) the transmission must
        be signed for the webhook id :meth:`prepare_account` kept in the account's
        settings, and the API mode asks with the seller's app's token; a delivery signed
        for any other webhook (another seller's app, the platform's) fails.

        :raises WebhookVerificationError: missing headers, stale or malformed transmission,
            a certificate URL off PayPal's hosts, a signature that does not match, an
            account without a webhook subscription.
        :raises ProviderTransientError: PayPal (certificate host or API) could not be reached.
        :raises ProviderAuthError: the webhook id or, in API mode, the credentials are unset.
        """
        received_at = self._now()
        lowered = {name.lower(): value for name, value in headers.items()}
        missing = [name for name in TRANSMISSION_HEADERS if not lowered.get(name)]
        if missing:
            raise WebhookVerificationError(
                f"not a PayPal webhook: missing {', '.join(missing)}", provider=PROVIDER
            )
        transmission_id = lowered["paypal-transmission-id"]
        transmission_time = lowered["paypal-transmission-time"]
        signature = lowered["paypal-transmission-sig"]
        cert_url = lowered["paypal-cert-url"]
        auth_algo = lowered["paypal-auth-algo"]
        if auth_algo != AUTH_ALGORITHM:
            raise WebhookVerificationError(
                f"PAYPAL-AUTH-ALGO {auth_algo!r} is not {AUTH_ALGORITHM}", provider=PROVIDER
            )
        self._check_freshness(transmission_time, received_at)
        event_id, event_type = _event_identity(body)
        webhook_id = self._webhook_id(account)
        if self.settings.verification == "api":
            client = self.client if account is None else self._client_for(account, doing="")
            status = await client.verify_webhook_signature(
                transmission={
                    "auth_algo": auth_algo,
                    "cert_url": cert_url,
                    "transmission_id": transmission_id,
                    "transmission_sig": signature,
                    "transmission_time": transmission_time,
                    "webhook_id": webhook_id,
                },
                webhook_event=body,
            )
            if status != "SUCCESS":
                raise WebhookVerificationError(
                    f"PayPal's verify-webhook-signature answered {status or 'nothing'!r}",
                    provider=PROVIDER,
                )
        else:
            public_key = await self.certificates.public_key(cert_url)
            verify_signature(
                public_key=public_key,
                signature_b64=signature,
                message=signed_message(
                    transmission_id=transmission_id,
                    transmission_time=transmission_time,
                    webhook_id=webhook_id,
                    body=body,
                ),
            )
        return VerifiedWebhook(
            gateway=self.identifier,
            event_id=event_id,
            event_type=event_type,
            body=body,
            headers=lowered,
            received_at=received_at,
        )

    def _webhook_id(self, account: MerchantAccount | None) -> str:
        if account is not None:
            webhook_id = account.settings.get(WEBHOOK_ID_SETTING)
            if not webhook_id:
                raise WebhookVerificationError(
                    f"PayPal account {account.account_id} has no webhook subscription: the "
                    "seller must connect their PayPal app again",
                    provider=PROVIDER,
                )
            return webhook_id
        if not self.settings.webhook_id:
            raise ProviderAuthError(
                "PayPal webhooks cannot be verified: set PIXECOM_PAYPAL_WEBHOOK_ID to the "
                "id of the webhook subscription",
                provider=PROVIDER,
            )
        return self.settings.webhook_id

    def _check_freshness(self, transmission_time: str, now: datetime) -> None:
        sent_at = _timestamp(transmission_time)
        if sent_at is None:
            raise WebhookVerificationError(
                f"PAYPAL-TRANSMISSION-TIME {transmission_time!r} is not an RFC 3339 time",
                provider=PROVIDER,
            )
        age = abs((now - sent_at).total_seconds())
        if age > self.settings.max_transmission_age_seconds:
            raise WebhookVerificationError(
                f"the PayPal transmission was sent at {transmission_time}, {age:.0f} s from "
                f"now (at most {self.settings.max_transmission_age_seconds:.0f} s allowed)",
                provider=PROVIDER,
            )

    async def parse_events(
        self,
        webhook: VerifiedWebhook,
        *,
        account: MerchantAccount | None = None,
    ) -> list[GatewayPaymentEvent]:
        """Translate a verified PayPal webhook into core's payment events (see the module doc).

        May call PayPal: to find the order of a refunded, reversed or disputed capture, to
        look for a dispute behind a reversal, and to capture an approved order — with
        ``account``'s app when given (the delivery came from the seller's app), else the
        platform's.

        :raises ProviderError: the event lacks what its type must carry.
        :raises ProviderTransientError: PayPal could not be reached for a missing detail.
        """
        try:
            event = json.loads(webhook.body)
        except ValueError as exc:
            raise ProviderError(
                f"PayPal event {webhook.event_id} is not JSON", provider=PROVIDER
            ) from exc
        if not isinstance(event, dict):
            raise ProviderError(
                f"PayPal event {webhook.event_id} is not an object", provider=PROVIDER
            )
        event_type = event.get("event_type")
        if not isinstance(event_type, str) or event_type not in self._handlers:
            return []
        resource = event.get("resource")
        if not isinstance(resource, dict):
            raise ProviderError(
                f"PayPal event {webhook.event_id} ({event_type}) has no resource object",
                provider=PROVIDER,
            )
        return await self._handlers[event_type](
            _Notification(
                event_id=webhook.event_id,
                event_type=event_type,
                created=_timestamp(event.get("create_time")),
                resource=resource,
                client=self.client if account is None else self._client_for(account, doing=""),
            )
        )

    # -- sellers' own REST apps (PaymentGatewayConnections) ------------------------------

    def _client_for(self, account: MerchantAccount | None, *, doing: str) -> PayPalClient:
        """The client acting for ``account``'s REST app; for ``None`` the platform's app,
        in single-account mode only (``doing`` names the refused call, empty for webhook
        work, which the platform's own webhooks always do with its app)."""
        if account is None:
            if not doing or self.settings.platform_account_payments:
                return self.client
            raise ProviderRefused(
                f"cannot {doing} without the seller's PayPal app: connect a PayPal REST app "
                "first (or, for a single-seller deployment, set "
                "PIXECOM_PAYPAL_PLATFORM_ACCOUNT_PAYMENTS=true)",
                provider=PROVIDER,
            )
        if not account.client_id or account.credentials is None:
            raise ProviderAuthError(
                f"PayPal account {account.account_id} has no REST app credentials: the seller "
                "must connect their PayPal app again",
                provider=PROVIDER,
            )
        if account.client_id in self._disconnected:
            raise ProviderRefused(
                f"PayPal account {account.account_id} was disconnected: the seller must "
                "connect their PayPal app again",
                provider=PROVIDER,
            )
        return self.client.for_app(AppCredentials(account.client_id, account.credentials))

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:  # noqa: ARG002
        """``None``: sellers connect PayPal with their REST app's credentials, no consent page."""
        return None

    async def exchange_code(self, *, code: str, redirect_uri: str) -> MerchantAccount:  # noqa: ARG002
        """Refused: PayPal is connected with credentials (:meth:`verify_credentials`)."""
        raise ProviderAuthError(
            "PayPal has no consent page here: connect with the REST app's client id and secret",
            provider=PROVIDER,
        )

    async def verify_credentials(self, fields: Mapping[str, SecretStr]) -> MerchantAccount:
        """Fetch an access token with the seller's REST app credentials
        (``POST /v1/oauth2/token``, client credentials over HTTP Basic; PayPal's 401
        ``invalid_client`` becomes ``ProviderAuthError``, never quoting the secret).

        ``account_id`` is the token answer's ``app_id`` (``APP-…``), falling back to the
        client id when PayPal names none. Why not the merchant (payer) id: PayPal gives it
        to an app token only through Log in with PayPal's user info, which needs the
        merchant's consent, not a client-credentials token. The app id is stable across
        secret rotation and, like the client id, belongs to exactly one PayPal account.
        """
        client_id = fields["client_id"].get_secret_value().strip()
        secret = fields["client_secret"]
        if not client_id or not secret.get_secret_value():
            raise ProviderAuthError(
                "PayPal needs both the REST app's client id and its secret", provider=PROVIDER
            )
        client = self.client.for_app(AppCredentials(client_id, secret))
        client.forget_token()
        app_id = await client.app_id()
        self._disconnected.pop(client_id, None)
        return MerchantAccount(
            account_id=app_id or client_id,
            client_id=client_id,
            credentials=secret,
            display_name=f"PayPal app {app_id or client_id}",
        )

    async def prepare_account(
        self, account: MerchantAccount, *, webhook_url: str
    ) -> MerchantAccount:
        """Subscribe the seller's app to ``webhook_url`` for the events this gateway parses
        (``POST /v1/notifications/webhooks`` with the seller's token) and keep the
        subscription's id in ``settings["webhook_id"]``.

        PayPal allows one subscription per URL and app: when it answers
        ``WEBHOOK_URL_ALREADY_EXISTS`` (the seller connected before),
        ``GET /v1/notifications/webhooks`` finds that subscription and its id is reused.
        """
        client = self._client_for(account, doing="")
        try:
            created = await client.create_webhook(url=webhook_url, event_types=WEBHOOK_EVENT_TYPES)
            webhook_id = _text(created, "id")
        except PayPalAPIError as exc:
            if "WEBHOOK_URL_ALREADY_EXISTS" not in (exc.name, *exc.issues):
                raise
            webhook_id = next(
                (
                    _text(webhook, "id")
                    for webhook in await client.list_webhooks()
                    if webhook.get("url") == webhook_url
                ),
                None,
            )
        if webhook_id is None:
            raise ProviderError(
                f"PayPal gave no webhook id for {webhook_url} of app {account.client_id}",
                provider=PROVIDER,
            )
        return account.model_copy(
            update={"settings": {**account.settings, WEBHOOK_ID_SETTING: webhook_id}}
        )

    async def disconnect(self, account: MerchantAccount) -> None:
        """Delete the app's webhook subscription (``DELETE
        /v1/notifications/webhooks/{id}``), best effort: already gone (404) or credentials
        PayPal no longer accepts are not errors. PayPal has no call revoking an app's
        client credentials, so this process also refuses further calls with the app until
        it is connected again."""
        webhook_id = account.settings.get(WEBHOOK_ID_SETTING)
        if account.client_id and account.credentials is not None:
            client = self.client.for_app(AppCredentials(account.client_id, account.credentials))
            if webhook_id:
                try:
                    await client.delete_webhook(webhook_id)
                except ProviderAuthError:
                    pass  # the seller rotated the secret or deleted the app: nothing to undo
                except PayPalAPIError as exc:
                    if exc.status_code != 404:
                        raise
            client.forget_token()
            self._disconnected[account.client_id] = None
            while len(self._disconnected) > 4096:  # SCALE-4: nothing unbounded
                self._disconnected.popitem(last=False)

    def webhook_account(self, webhook: VerifiedWebhook) -> WebhookAccount | None:  # noqa: ARG002
        """``None``: a seller app's deliveries come to that seller's own URL, which names the
        account; PayPal's event bodies name no app (the payee's merchant id appears on some
        resources only)."""
        return None

    # -- one handler per event type -----------------------------------------------------

    async def _order_approved(self, note: _Notification) -> list[GatewayPaymentEvent]:
        # The buyer approved; no money moved yet. With intent CAPTURE the order still has to
        # be captured, and core has no capture call, so the gateway does it here (idempotent).
        order_id = _text(note.resource, "id")
        if (
            self.settings.capture_on_approval
            and order_id
            and note.resource.get("intent", "CAPTURE") == "CAPTURE"
            and note.resource.get("status", "APPROVED") == "APPROVED"
        ):
            await self._capture_with(note.client, order_id, idempotency_key=None)
        return []

    async def _capture_completed(self, note: _Notification) -> list[GatewayPaymentEvent]:
        return [await self._capture_event(note, PaymentEventKind.CAPTURED)]

    async def _capture_denied(self, note: _Notification) -> list[GatewayPaymentEvent]:
        return [await self._capture_event(note, PaymentEventKind.FAILED)]

    async def _capture_event(
        self, note: _Notification, kind: PaymentEventKind
    ) -> GatewayPaymentEvent:
        capture = note.resource
        capture_id = _required(note, capture, "id")
        amount_minor, currency = _money(note, capture, "amount")
        context = await self._capture_context(note, capture_id, capture)
        metadata = {"event_type": note.event_type, "capture_id": capture_id}
        if status := _text(capture, "status"):
            metadata["capture_status"] = status
        if reason := _text(capture, "status_details", "reason"):
            metadata["reason"] = reason
        return self._event(
            note,
            kind=kind,
            context=context,
            fact_reference=capture_id,
            amount_minor=amount_minor,
            currency=currency,
            occurred_at=_occurred_at(note, capture),
            metadata=metadata,
        )

    async def _capture_refunded(self, note: _Notification) -> list[GatewayPaymentEvent]:
        refund = note.resource
        refund_id = _required(note, refund, "id")
        if _text(refund, "status") in ("PENDING", "FAILED", "CANCELLED"):
            # No money went back (yet): core holds a pending refund's amount until it is
            # COMPLETED, announced again or read with fetch_refund.
            return []
        amount_minor, currency = _money(note, refund, "amount")
        capture_id = _captured_by(note, refund)
        context = await self._capture_context(note, capture_id)
        return [
            self._event(
                note,
                kind=PaymentEventKind.REFUNDED,
                context=context,
                order_reference=_text(refund, "custom_id"),
                fact_reference=refund_id,
                amount_minor=amount_minor,
                currency=currency,
                occurred_at=_occurred_at(note, refund),
                metadata={"event_type": note.event_type, "capture_id": capture_id},
            )
        ]

    async def _capture_reversed(self, note: _Notification) -> list[GatewayPaymentEvent]:
        reversal = note.resource
        reversal_id = _required(note, reversal, "id")
        amount_minor, currency = _money(note, reversal, "amount")
        capture_id = _captured_by(note, reversal)
        context = await self._capture_context(note, capture_id)
        metadata = {
            "event_type": note.event_type,
            "capture_id": capture_id,
            "reversal_id": reversal_id,
        }
        # See the module doc: a reversal behind a dispute is that dispute's chargeback.
        dispute_id = await self._dispute_behind(note.client, capture_id, amount_minor, currency)
        if dispute_id is not None:
            metadata["dispute_id"] = dispute_id
        return [
            self._event(
                note,
                kind=PaymentEventKind.CHARGEBACK,
                context=context,
                order_reference=_text(reversal, "custom_id"),
                fact_reference=dispute_id or reversal_id,
                amount_minor=amount_minor,
                currency=currency,
                occurred_at=_occurred_at(note, reversal),
                metadata=metadata,
            )
        ]

    async def _dispute_behind(
        self, client: PayPalClient, capture_id: str, amount_minor: int, currency: str
    ) -> str | None:
        disputes = await client.list_disputes(disputed_transaction_id=capture_id)
        candidates = [dispute for dispute in disputes if _text(dispute, "dispute_id")]
        if not candidates:
            return None

        def same_money(dispute: JSONObject) -> bool:
            amount = dispute.get("dispute_amount")
            if not isinstance(amount, dict) or amount.get("currency_code") != currency:
                return False
            try:
                return from_paypal_value(amount.get("value", ""), currency) == amount_minor
            except AmountError:
                return False

        # Prefer the dispute about exactly this money; else the latest one.
        matching = [dispute for dispute in candidates if same_money(dispute)] or candidates
        latest = max(matching, key=lambda dispute: str(dispute.get("create_time", "")))
        return _text(latest, "dispute_id")

    async def _dispute_created(self, note: _Notification) -> list[GatewayPaymentEvent]:
        return [await self._dispute_event(note, PaymentEventKind.CHARGEBACK, "create_time")]

    async def _dispute_resolved(self, note: _Notification) -> list[GatewayPaymentEvent]:
        outcome = _text(note.resource, "dispute_outcome", "outcome_code")
        if outcome not in SELLER_KEEPS_THE_MONEY:
            # The buyer won: the chargeback recorded at creation stands.
            return []
        return [
            await self._dispute_event(note, PaymentEventKind.CHARGEBACK_REVERSED, "update_time")
        ]

    async def _dispute_event(
        self, note: _Notification, kind: PaymentEventKind, time_field: str
    ) -> GatewayPaymentEvent:
        dispute = note.resource
        dispute_id = _required(note, dispute, "dispute_id")
        amount_minor, currency = _money(note, dispute, "dispute_amount")
        transactions = dispute.get("disputed_transactions")
        transaction = (
            transactions[0]
            if isinstance(transactions, list) and transactions and isinstance(transactions[0], dict)
            else {}
        )
        capture_id = _text(transaction, "seller_transaction_id")
        if capture_id is None:
            raise note.fail("the dispute names no disputed_transactions[0].seller_transaction_id")
        context = await self._capture_context(note, capture_id)
        metadata = {"event_type": note.event_type, "capture_id": capture_id}
        for key, path in (
            ("reason", ("reason",)),
            ("dispute_status", ("status",)),
            ("dispute_stage", ("dispute_life_cycle_stage",)),
            ("dispute_channel", ("dispute_channel",)),
            ("outcome_code", ("dispute_outcome", "outcome_code")),
        ):
            if value := _text(dispute, *path):
                metadata[key] = value
        return self._event(
            note,
            kind=kind,
            context=context,
            order_reference=_text(transaction, "custom"),
            fact_reference=dispute_id,
            amount_minor=amount_minor,
            currency=currency,
            occurred_at=_timestamp(dispute.get(time_field)) or _occurred_at(note, dispute),
            metadata=metadata,
        )

    # -- helpers ------------------------------------------------------------------------

    def _event(
        self,
        note: _Notification,
        *,
        kind: PaymentEventKind,
        context: _CaptureContext,
        fact_reference: str,
        amount_minor: int,
        currency: str,
        occurred_at: datetime,
        metadata: dict[str, str],
        order_reference: str | None = None,
    ) -> GatewayPaymentEvent:
        return GatewayPaymentEvent(
            gateway=self.identifier,
            event_id=note.event_id,
            gateway_reference=context.order_id,
            fact_reference=fact_reference,
            kind=kind,
            amount_minor=amount_minor,
            currency=currency,
            occurred_at=occurred_at,
            order_reference=order_reference or context.custom_id,
            metadata=metadata,
        )

    async def _capture_context(
        self, note: _Notification, capture_id: str, capture: JSONObject | None = None
    ) -> _CaptureContext:
        """Find the PayPal order (and core's order id) of a capture.

        From the capture itself when the webhook carries it (``supplementary_data`` or the
        ``up`` link), else from a small cache, else by fetching the capture from PayPal.
        """
        context = _context_of(capture) if capture is not None else None
        if context is None:
            context = self._captures.get(capture_id)
        if context is None:
            try:
                fetched = await note.client.get_capture(capture_id)
            except PayPalAPIError as exc:
                raise note.fail(f"capture {capture_id} could not be read: {exc}") from exc
            context = _context_of(fetched)
        if context is None:
            raise note.fail(f"capture {capture_id} names no PayPal order")
        self._captures[capture_id] = context
        self._captures.move_to_end(capture_id)
        while len(self._captures) > 4096:
            self._captures.popitem(last=False)
        return context


def _request_id(idempotency_key: str) -> str:
    """Return a ``PayPal-Request-Id`` for ``idempotency_key``: PayPal takes at most 108 chars.

    A longer key is replaced by its SHA-256, so it stays stable across retries.
    """
    if len(idempotency_key) <= _PAYPAL_REQUEST_ID_LIMIT:
        return idempotency_key
    return f"pixecom-{hashlib.sha256(idempotency_key.encode()).hexdigest()}"


def _refund_error(exc: PayPalAPIError, action: str) -> ProviderError:
    """Core's class for PayPal's refusal of a refund call (the client mapped 401, 429, 5xx)."""
    debug = f" (debug_id {exc.debug_id})" if exc.debug_id else ""
    if exc.status_code == 403:
        return ProviderAuthError(
            f"PayPal does not let this app {action} ({exc.name or 403}){debug}; check the "
            "app's permissions and that the capture belongs to this account",
            provider=PROVIDER,
        )
    if exc.status_code == 409:
        # PREVIOUS_REQUEST_IN_PROGRESS: the same PayPal-Request-Id is still being processed.
        return ProviderTransientError(
            f"PayPal is still processing an earlier call to {action}; retry it: {exc}",
            provider=PROVIDER,
        )
    reasons = "; ".join(
        f"{issue}: {description}" if description else issue
        for issue, description in zip(exc.issues, exc.descriptions, strict=False)
    )
    return ProviderRefused(
        f"PayPal refused to {action}: {reasons or exc.name or exc.status_code}{debug}",
        provider=PROVIDER,
    )


def _event_identity(body: bytes) -> tuple[str, str]:
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError(
            "the PayPal webhook body is not JSON", provider=PROVIDER
        ) from exc
    event_id = event.get("id") if isinstance(event, dict) else None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise WebhookVerificationError("the PayPal webhook body has no event id", provider=PROVIDER)
    event_type = event.get("event_type")
    return event_id, event_type[:255] if isinstance(event_type, str) else ""


def _text(mapping: object, *path: str) -> str | None:
    value: Any = mapping
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, str) and value else None


def _required(note: _Notification, mapping: JSONObject, *path: str) -> str:
    value = _text(mapping, *path)
    if value is None:
        raise note.fail(f"resource.{'.'.join(path)} is missing")
    return value


def _money(note: _Notification, mapping: JSONObject, field: str) -> tuple[int, str]:
    currency = _text(mapping, field, "currency_code")
    value = _text(mapping, field, "value")
    if currency is None or value is None:
        raise note.fail(f"resource.{field} is not a PayPal money object")
    try:
        minor = from_paypal_value(value, currency)
    except AmountError as exc:
        raise note.fail(str(exc)) from exc
    # Reversals have been seen with a negative value; the kind carries the direction.
    return abs(minor), currency.upper()


def _link(mapping: JSONObject, rel: str) -> str | None:
    links = mapping.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("href"), str):
            href: str = link["href"]
            return href
    return None


def _id_after(href: str | None, collection: str) -> str | None:
    """Return the id in ``…/<collection>/<id>`` of a HATEOAS link, if that is its shape."""
    if href is None:
        return None
    path = httpx.URL(href).path.rstrip("/")
    head, _, last = path.rpartition("/")
    return last if last and head.endswith(collection) else None


def _captured_by(note: _Notification, refund: JSONObject) -> str:
    # A refund (and a reversal) links "up" to the capture it gives money back from.
    capture_id = _id_after(_link(refund, "up"), "/v2/payments/captures")
    if capture_id is None:
        raise note.fail("the refund has no 'up' link to its capture")
    return capture_id


def _context_of(capture: JSONObject) -> _CaptureContext | None:
    order_id = _text(capture, "supplementary_data", "related_ids", "order_id") or _id_after(
        _link(capture, "up"), "/v2/checkout/orders"
    )
    if order_id is None:
        return None
    return _CaptureContext(order_id=order_id, custom_id=_text(capture, "custom_id"))


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _occurred_at(note: _Notification, resource: JSONObject) -> datetime:
    occurred = (
        _timestamp(resource.get("update_time"))
        or _timestamp(resource.get("create_time"))
        or note.created
    )
    if occurred is None:
        raise note.fail("neither the resource nor the event says when it happened")
    return occurred
