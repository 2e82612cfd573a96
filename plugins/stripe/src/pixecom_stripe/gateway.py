"""The Stripe payment gateway: PaymentIntents or Checkout Sessions, ``Stripe-Signature``
webhooks, event mapping.

Every event is reported against the payment the money belongs to (``gateway_reference``,
the id :meth:`StripeGateway.create_payment` returned: the PaymentIntent ``pi_…``, or with
``hosted_checkout`` the Checkout Session ``cs_…`` that created it) and
identified by the Stripe object that *is* the money movement (``fact_reference``), so one
movement announced by several event types, or delivered twice, is one ledger fact, while two
partial refunds of one payment are two.

========================================  ======================  ============================
Stripe event type                         kind                    fact_reference, amount_minor
========================================  ======================  ============================
payment_intent.amount_capturable_updated  AUTHORIZED              pi_, ``amount_capturable``
payment_intent.succeeded                  CAPTURED                ``latest_charge`` ch_ (else
                                                                  pi_), ``amount_received``
charge.succeeded (``captured`` true)      CAPTURED                ch_, ``amount_captured``
charge.captured                           CAPTURED                ch_, ``amount_captured``
payment_intent.payment_failed             FAILED                  pi_, ``amount``
charge.refunded                           REFUNDED, one per       each re_, its ``amount``
                                          succeeded refund        (``amount_refunded`` is
                                                                  cumulative: never used)
refund.created, refund.updated,           REFUNDED if the refund  re_, the refund's ``amount``
charge.refund.updated                     ``succeeded``
charge.dispute.created,                   CHARGEBACK (not for     dp_, the dispute's
charge.dispute.funds_withdrawn            inquiries)              ``amount``
charge.dispute.funds_reinstated,          CHARGEBACK_REVERSED     dp_, the dispute's
charge.dispute.closed (``won``)                                   ``amount``
anything else (``checkout.session.*``     nothing
too: the PaymentIntent's and charge's
events announce the money)
========================================  ======================  ============================

Hosted checkout (``hosted_checkout``): ``create_payment`` creates a Checkout Session and
answers its ``url`` as ``approval_url``. The PaymentIntent exists only once the buyer pays
(API 2022-08-01), so every fact above, found on a PaymentIntent, is reported against the
session that created it, looked up with ``GET /v1/checkout/sessions?payment_intent=…``
(https://docs.stripe.com/api/checkout/sessions/list), and :meth:`StripeGateway.refund`
reads the session's ``payment_intent`` to refund it.

Details:

- ``gateway_reference`` is read from ``payment_intent`` on PaymentIntents' children
  (charge, refund, dispute); when a refund or dispute lacks it, the charge is fetched to find
  it. An object that belongs to no PaymentIntent (a charge made without one) yields nothing:
  no PixEcom order can be behind it.
- ``charge.refunded``: since API version 2022-11-15 a Charge no longer embeds ``refunds``;
  when the list is absent or truncated the refunds are listed through the API. Refunds still
  ``pending`` are skipped: their ``refund.updated`` (``succeeded``) records them later.
- Disputes whose status starts with ``warning_`` are inquiries: no money has moved, so they
  are not chargebacks. When an inquiry escalates Stripe sends
  ``charge.dispute.funds_withdrawn``, which is.
- ``occurred_at`` is the ``created`` time of the object when its creation is the movement
  (a charge captured at once, a refund, a dispute) and the event's ``created`` time when an
  existing object changed state (authorised, succeeded, failed, captured later, dispute
  won).
- ``order_reference`` is ``metadata.order_id`` when the object carries it (PaymentIntents,
  charges, which Stripe gives the PaymentIntent's metadata, and refunds made through
  :meth:`StripeGateway.refund`); refunds made elsewhere (the Dashboard) and disputes do not.
- Currencies are upper-cased; amounts are Stripe's integer minor units as they are.

Connect (:class:`~pixecom_core.providers.PaymentGatewayConnections`, ``OAUTH``): sellers
connect their own Standard accounts through Connect OAuth
(https://docs.stripe.com/connect/oauth-reference, https://docs.stripe.com/connect/oauth-standard-accounts):

- the consent page ``{connect_base}/oauth/authorize?response_type=code&client_id=ca_…&
  scope=read_write&state=…&redirect_uri=…``; Stripe redirects to ``redirect_uri`` with
  ``code`` and ``state`` (or ``error=access_denied``);
- ``POST {connect_base}/oauth/token`` (``grant_type=authorization_code``, the platform's
  secret key) answers ``stripe_user_id``, the ``acct_…`` the seller's payments are made on.
  The token endpoint takes no ``redirect_uri``: Stripe checks it on the consent page
  against the platform's registered URIs. The ``access_token`` it also answers is not kept:
  Stripe recommends the platform's key with ``Stripe-Account`` instead
  (https://docs.stripe.com/connect/authentication), so ``MerchantAccount.credentials`` is
  ``None``;
- every call about a connected account's payment (creating it, refunding it, the follow-up
  calls of :meth:`StripeGateway.parse_events` for an event naming ``account``) sends
  ``Stripe-Account: acct_…`` (direct charges); ``application_fee_minor`` is sent as
  ``application_fee_amount``;
- Connect events carry the connected account in a top-level ``account``
  (https://docs.stripe.com/connect/webhooks) and come to the platform's *Connect* endpoint,
  signed with that endpoint's own secret (``connect_webhook_secrets``);
  ``account.application.deauthorized`` (the seller removed the platform) is
  ``WebhookAccount(revoked=True)``;
- ``POST {connect_base}/oauth/deauthorize`` (``client_id``, ``stripe_user_id``) gives the
  account up; Stripe's ``invalid_client`` for an account no longer connected is not an
  error.

Refunds (:meth:`StripeGateway.refund`, :meth:`StripeGateway.fetch_refund`) answer the Refund
object's ``status`` as a :class:`~pixecom_core.providers.RefundState`:

=================================  ==========  ==========================================
Stripe Refund ``status``           state       note
=================================  ==========  ==========================================
``pending``, ``requires_action``   PENDING     ``requires_action``: the buyer must give
                                               details (non-card methods); still reserved
``succeeded``                      SUCCEEDED   its ``refund.*`` webhook names the same re_
``failed``, ``canceled``           FAILED      ``failure_reason`` (``canceled`` if none)
anything else, or none             PENDING     logged; fetched again rather than released
=================================  ==========  ==========================================
"""

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import stripe
from pydantic import SecretStr, ValidationError

from pixecom_core.providers import (
    CredentialField,
    GatewayPaymentEvent,
    GatewayRefund,
    MerchantAccount,
    PaymentConnectionKind,
    PaymentEventKind,
    PaymentRequest,
    PaymentSession,
    ProviderError,
    ProviderRefused,
    RefundRequest,
    RefundState,
    VerifiedWebhook,
    WebhookAccount,
    WebhookVerificationError,
)
from pixecom_stripe.client import PROVIDER, StripeClient, StripeOAuthError, StripeObject
from pixecom_stripe.settings import ENV_PREFIX, StripeSettings

SIGNATURE_HEADER: Final = "stripe-signature"
#: The metadata keys core's own ids travel under; a request's extra metadata cannot replace
#: them, because events are matched back to the order through them.
ORDER_ID_KEY: Final = "order_id"
SELLER_ID_KEY: Final = "seller_id"
#: Core's id of a refund, and the seller's words for it, in the Refund's metadata (Stripe's
#: own ``reason`` is an enum the seller's words do not fit; see :meth:`StripeGateway.refund`).
REFUND_ID_KEY: Final = "refund_id"
REFUND_REASON_KEY: Final = "refund_reason"
#: The Connect event Stripe sends when a seller removes the platform from their account.
DEAUTHORIZED_EVENT: Final = "account.application.deauthorized"
#: Stripe's prefix of Checkout Session ids: payments made with ``hosted_checkout``.
CHECKOUT_SESSION_PREFIX: Final = "cs_"
#: What the platform asks on the consent page: direct charges and refunds on the account.
CONNECT_SCOPE: Final = "read_write"

_REFUND_STATES: Final[Mapping[str, RefundState]] = {
    "pending": RefundState.PENDING,
    "requires_action": RefundState.PENDING,
    "succeeded": RefundState.SUCCEEDED,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}

_log = logging.getLogger(__name__)


class StripeGateway:
    """The ``stripe`` payment gateway; implements ``pixecom_core.providers.PaymentGateway``
    and ``PaymentGatewayConnections`` (Connect OAuth, see the module's docstring).

    :param settings: the API location, secret key and webhook secrets
        (:class:`~pixecom_stripe.settings.StripeSettings`, read from ``PIXECOM_STRIPE_*``).
    :param client: the REST client to use; built from ``settings`` when omitted.
    """

    identifier = PROVIDER
    display_name = "Stripe"
    #: The inbox stores the signature header, so a stored delivery can be verified again.
    webhook_headers = frozenset({SIGNATURE_HEADER})
    connection_kind = PaymentConnectionKind.OAUTH
    credential_fields: tuple[CredentialField, ...] = ()

    def __init__(self, settings: StripeSettings, *, client: StripeClient | None = None) -> None:
        self._settings = settings
        self._client = client or StripeClient(settings)

    @property
    def client(self) -> StripeClient:
        """The REST client (its connections are closed by ``await gateway.client.aclose()``)."""
        return self._client

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        """Create a PaymentIntent for the order and return its id and client secret (for
        Stripe.js), or, with ``hosted_checkout``, a Checkout Session: its id and its hosted
        page as ``approval_url``, no client secret (see :meth:`_create_checkout_session`).

        ``request.idempotency_key`` is Stripe's ``Idempotency-Key``: a retry with the same
        key returns the same PaymentIntent; reusing a key with other parameters is refused
        by Stripe (``ProviderRefused``, ``idempotency_error``).

        With ``request.account`` the PaymentIntent (or session) is created on the seller's
        connected account (``Stripe-Account``), with ``application_fee_minor`` as
        ``application_fee_amount``. Without it: ``ProviderRefused``, unless
        ``platform_account_payments`` (single-account mode) is on.
        """
        stripe_account = self._stripe_account(request.account, doing="take a payment")
        if self._settings.hosted_checkout:
            return await self._create_checkout_session(request, stripe_account)
        params: list[tuple[str, str]] = [
            ("amount", str(request.amount_minor)),
            ("currency", request.currency.lower()),
            ("automatic_payment_methods[enabled]", "true"),
            (f"metadata[{ORDER_ID_KEY}]", str(request.order_id)),
            (f"metadata[{SELLER_ID_KEY}]", str(request.seller_id)),
        ]
        params.extend(
            (f"metadata[{key}]", value)
            for key, value in sorted(request.metadata.items())
            if key not in (ORDER_ID_KEY, SELLER_ID_KEY)
        )
        if request.description:
            params.append(("description", request.description))
        if request.application_fee_minor is not None and stripe_account is not None:
            # a fee needs a connected account to take it from; on the platform's own
            # account (single-account mode) there is no one to charge it to
            params.append(("application_fee_amount", str(request.application_fee_minor)))
        intent = await self._client.create_payment_intent(
            params, idempotency_key=request.idempotency_key, stripe_account=stripe_account
        )
        fields = _Fields(intent, where="the created PaymentIntent")
        return PaymentSession(
            gateway=PROVIDER,
            gateway_reference=fields.text("id"),
            client_secret=SecretStr(fields.text("client_secret")),
        )

    async def _create_checkout_session(
        self, request: PaymentRequest, stripe_account: str | None
    ) -> PaymentSession:
        """``POST /v1/checkout/sessions`` (``mode=payment``, one line item of the order's
        amount): the buyer pays on Stripe's hosted page, the session's ``url``
        (https://docs.stripe.com/api/checkout/sessions/create).

        The session (``cs_…``) is the payment's ``gateway_reference``: since API version
        2022-08-01 Checkout creates the PaymentIntent only when the buyer confirms
        (https://docs.stripe.com/changelog/2022-08-01/deferred-paymentintent-checkout-session),
        so there is no ``pi_…`` to return yet. The PaymentIntent gets core's metadata through
        ``payment_intent_data[metadata]``, and the fee through
        ``payment_intent_data[application_fee_amount]``; events naming it are mapped back
        to the session (:meth:`parse_events`). Stripe replaces ``{CHECKOUT_SESSION_ID}`` in
        ``success_url``; core's ``return_url`` is passed as it is.
        """
        name = request.description or f"Order {request.order_id}"
        params: list[tuple[str, str]] = [
            ("mode", "payment"),
            ("success_url", request.return_url),
            ("cancel_url", request.cancel_url),
            ("client_reference_id", str(request.order_id)),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", request.currency.lower()),
            ("line_items[0][price_data][unit_amount]", str(request.amount_minor)),
            ("line_items[0][price_data][product_data][name]", name),
        ]
        metadata = [
            (ORDER_ID_KEY, str(request.order_id)),
            (SELLER_ID_KEY, str(request.seller_id)),
            *(
                (key, value)
                for key, value in sorted(request.metadata.items())
                if key not in (ORDER_ID_KEY, SELLER_ID_KEY)
            ),
        ]
        # the session's own metadata, and the PaymentIntent's: charges copy the latter
        params.extend((f"metadata[{key}]", value) for key, value in metadata)
        params.extend((f"payment_intent_data[metadata][{key}]", value) for key, value in metadata)
        if request.description:
            params.append(("payment_intent_data[description]", request.description))
        if request.application_fee_minor is not None and stripe_account is not None:
            params.append(
                (
                    "payment_intent_data[application_fee_amount]",
                    str(request.application_fee_minor),
                )
            )
        session = await self._client.create_checkout_session(
            params, idempotency_key=request.idempotency_key, stripe_account=stripe_account
        )
        fields = _Fields(session, where="the created Checkout Session")
        expires_at = fields.get("expires_at")
        return PaymentSession(
            gateway=PROVIDER,
            gateway_reference=fields.text("id"),
            approval_url=fields.text("url"),
            expires_at=_timestamp(expires_at) if isinstance(expires_at, int) else None,
        )

    async def _payment_intent_for(self, payment_reference: str, stripe_account: str | None) -> str:
        """The PaymentIntent behind a payment reference: itself (``pi_…``), or the one a
        Checkout Session (``cs_…``) created when the buyer paid."""
        if not payment_reference.startswith(CHECKOUT_SESSION_PREFIX):
            return payment_reference
        session = await self._client.retrieve_checkout_session(
            payment_reference, stripe_account=stripe_account
        )
        intent = _Fields(session, where=f"Checkout Session {payment_reference}").reference(
            "payment_intent"
        )
        if intent is None:
            raise ProviderRefused(
                f"Checkout Session {payment_reference} has no PaymentIntent: the buyer has not "
                "paid, so there is nothing to refund",
                provider=PROVIDER,
            )
        return intent

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        """Create a Refund of the PaymentIntent (``POST /v1/refunds``) and answer it.

        ``request.idempotency_key`` is Stripe's ``Idempotency-Key``: a retry answers the
        first request's Refund, as Stripe saved it. The metadata carries core's order,
        seller and refund ids and the seller's reason (``refund_reason``). Stripe's own
        ``reason`` is not sent: it only takes ``duplicate``, ``fraudulent`` (which also
        blocks the card and e-mail in Radar) or ``requested_by_customer``, and core does not
        know which applies.

        Stripe declining the refund (more than is left on the charge, a charge already
        refunded or never captured, the key reused with other parameters) raises
        ``ProviderRefused`` with Stripe's message. ``request.account``: as for
        :meth:`create_payment`.
        """
        stripe_account = self._stripe_account(request.account, doing="refund a payment")
        payment_intent = await self._payment_intent_for(request.payment_reference, stripe_account)
        params: list[tuple[str, str]] = [
            ("payment_intent", payment_intent),
            ("amount", str(request.amount_minor)),
            (f"metadata[{ORDER_ID_KEY}]", str(request.order_id)),
            (f"metadata[{SELLER_ID_KEY}]", str(request.seller_id)),
            (f"metadata[{REFUND_ID_KEY}]", str(request.refund_id)),
        ]
        if request.reason:
            params.append((f"metadata[{REFUND_REASON_KEY}]", request.reason))
        refund = await self._client.create_refund(
            params, idempotency_key=request.idempotency_key, stripe_account=stripe_account
        )
        return _gateway_refund(refund, where=f"the refund of {request.payment_reference}")

    async def fetch_refund(
        self,
        *,
        payment_reference: str,
        refund_reference: str,
        account: MerchantAccount | None = None,
    ) -> GatewayRefund:
        """The Refund's current state (``GET /v1/refunds/{id}``, on ``account`` when given);
        a Refund of another PaymentIntent than ``payment_reference`` (or, for a Checkout
        Session, than the session's) is a ``ProviderError``."""
        stripe_account = account.account_id if account else None
        refund = await self._client.retrieve_refund(refund_reference, stripe_account=stripe_account)
        where = f"refund {refund_reference}"
        belongs_to = _Fields(refund, where=where).reference("payment_intent")
        if belongs_to is not None and belongs_to != await self._payment_intent_for(
            payment_reference, stripe_account
        ):
            raise ProviderError(
                f"{where} belongs to PaymentIntent {belongs_to}, not {payment_reference}",
                provider=PROVIDER,
            )
        return _gateway_refund(refund, where=where)

    async def verify_webhook(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,  # noqa: ARG002 (events name their account)
    ) -> VerifiedWebhook:
        """Check ``Stripe-Signature`` against every configured webhook secret, then the body.

        The signature scheme is Stripe's (``stripe.WebhookSignature.verify_header``): an
        HMAC-SHA256 of ``"{t}.{body}"``, any ``v1=`` entry may match (Stripe sends two while
        an endpoint secret rotates), ``v0=`` entries are ignored, and a timestamp older than
        ``webhook_tolerance_seconds`` is refused.
        """
        lowered = {name.lower(): value for name, value in headers.items()}
        header = lowered.get(SIGNATURE_HEADER, "").strip()
        if not header:
            raise WebhookVerificationError(
                "no Stripe-Signature header: not a webhook from Stripe", provider=PROVIDER
            )
        self._verify_signature(body, header)
        try:
            event = json.loads(body)
        except ValueError as exc:
            raise WebhookVerificationError(
                "the signed webhook body is not JSON", provider=PROVIDER
            ) from exc
        if not isinstance(event, dict):
            raise WebhookVerificationError(
                "the signed webhook body is not a JSON object", provider=PROVIDER
            )
        event_id = event.get("id")
        event_type = event.get("type")
        if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 255:
            raise WebhookVerificationError(
                "the webhook body has no event id (expected an evt_… string in 'id')",
                provider=PROVIDER,
            )
        if not isinstance(event_type, str) or len(event_type) > 255:
            raise WebhookVerificationError(
                f"webhook {event_id} has no event type (expected a string in 'type')",
                provider=PROVIDER,
            )
        return VerifiedWebhook(
            gateway=PROVIDER,
            event_id=event_id,
            event_type=event_type,
            body=body,
            headers=lowered,
            received_at=datetime.now(UTC),
        )

    def _verify_signature(self, body: bytes, header: str) -> None:
        # the platform endpoint's and the Connect endpoint's: either may have sent it
        secrets = [
            secret.get_secret_value()
            for secret in (*self._settings.webhook_secrets, *self._settings.connect_webhook_secrets)
        ]
        if not secrets:
            _log.warning("Stripe webhook refused: %sWEBHOOK_SECRETS is not set", ENV_PREFIX)
            raise WebhookVerificationError(
                f"cannot verify Stripe webhooks: {ENV_PREFIX}WEBHOOK_SECRETS is not set",
                provider=PROVIDER,
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookVerificationError(
                "the webhook body is not UTF-8 text", provider=PROVIDER
            ) from exc
        _check_header_shape(header)
        tolerance = self._settings.webhook_tolerance_seconds
        if any(_signed_by(body, header, secret, tolerance) for secret in secrets):
            return
        if any(_signed_by(body, header, secret, None) for secret in secrets):
            raise WebhookVerificationError(
                f"Stripe-Signature timestamp is more than {tolerance} s old: refused as a "
                "possible replay",
                provider=PROVIDER,
            )
        connect = len(self._settings.connect_webhook_secrets)
        raise WebhookVerificationError(
            "no v1 signature in Stripe-Signature matches any of the "
            f"{len(secrets) - connect} configured webhook secret(s)"
            + (f" or the {connect} Connect webhook secret(s)" if connect else "")
            + ": wrong secret, or the body was changed",
            provider=PROVIDER,
        )

    async def parse_events(
        self,
        webhook: VerifiedWebhook,
        *,
        account: MerchantAccount | None = None,  # noqa: ARG002 (events name their account)
    ) -> list[GatewayPaymentEvent]:
        """Map one Stripe event to ledger facts (see the module's table); ``[]`` if untracked.

        May call the Stripe API when the event lacks a detail: the refunds of a
        ``charge.refunded`` (not embedded since API 2022-11-15), the PaymentIntent of a refund
        or dispute that names only its charge, the charge of a succeeded PaymentIntent; with
        ``hosted_checkout``, the Checkout Session of the PaymentIntent (one call per event
        with facts).
        """
        try:
            event = json.loads(webhook.body)
        except ValueError as exc:
            raise ProviderError(
                f"Stripe webhook {webhook.event_id}: body is not JSON", provider=PROVIDER
            ) from exc
        fields = _Fields(event, where=f"Stripe event {webhook.event_id}")
        event_type = fields.text("type")
        handler = _HANDLERS.get(event_type)
        if handler is None:
            return []
        data = _Fields(fields.mapping("data"), where=f"Stripe event {webhook.event_id}.data")
        context = _EventContext(
            client=self._client,
            account=fields.optional_text("account"),
            event_id=webhook.event_id,
            event_type=event_type,
            event_created=_timestamp(fields.integer("created")),
            livemode=bool(event.get("livemode", False)),
            data_object=_Fields(data.mapping("object"), where=f"{event_type} {webhook.event_id}"),
        )
        try:
            facts = await handler(context)
        except ValidationError as exc:
            raise ProviderError(
                f"Stripe event {webhook.event_id} ({event_type}) does not fit a payment event: "
                f"{exc}",
                provider=PROVIDER,
            ) from exc
        if self._settings.hosted_checkout:
            facts = await _by_checkout_session(context, facts)
        return facts

    # -- Connect (PaymentGatewayConnections) ----------------------------------------------

    def _stripe_account(self, account: MerchantAccount | None, *, doing: str) -> str | None:
        """The ``Stripe-Account`` of a payment or refund; ``None``: the platform's own."""
        if account is not None:
            return account.account_id
        if self._settings.platform_account_payments:
            return None
        raise ProviderRefused(
            f"cannot {doing} without the seller's Stripe account: connect a Stripe account "
            f"first (or, for a single-seller deployment, set "
            f"{ENV_PREFIX}PLATFORM_ACCOUNT_PAYMENTS=true)",
            provider=PROVIDER,
        )

    def _client_id(self) -> str:
        client_id = self._settings.connect_client_id
        if not client_id:
            raise ProviderError(
                f"Stripe Connect is not configured: set {ENV_PREFIX}CONNECT_CLIENT_ID to the "
                "platform's ca_… client id (Dashboard → Settings → Connect → OAuth)",
                provider=PROVIDER,
            )
        return client_id

    def authorization_url(self, *, state: str, redirect_uri: str) -> str:
        """Connect OAuth's consent page for a Standard account (``scope=read_write``)."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id(),
                "scope": CONNECT_SCOPE,
                "state": state,
                "redirect_uri": redirect_uri,
            }
        )
        return f"{self._settings.connect_base}/oauth/authorize?{query}"

    async def exchange_code(
        self,
        *,
        code: str,
        redirect_uri: str,  # noqa: ARG002 (Stripe checked it on the consent page)
    ) -> MerchantAccount:
        """``POST /oauth/token`` → ``stripe_user_id``, then ``GET /v1/accounts/{id}`` for the
        business name and settlement currency. A used, expired or unknown code is Stripe's
        ``invalid_grant``: ``ProviderAuthError``, never quoting the code."""
        token = _Fields(await self._client.oauth_token(code), where="Stripe's OAuth token")
        account_id = token.text("stripe_user_id")
        described = _Fields(
            await self._client.retrieve_account(account_id), where=f"account {account_id}"
        )
        profile = described.get("business_profile")
        settings = described.get("settings")
        dashboard = settings.get("dashboard") if isinstance(settings, dict) else None
        name = (profile.get("name") if isinstance(profile, dict) else None) or (
            dashboard.get("display_name") if isinstance(dashboard, dict) else None
        )
        currency = described.optional_text("default_currency")
        return MerchantAccount(
            account_id=account_id,
            credentials=None,
            display_name=name if isinstance(name, str) and name else None,
            default_currency=currency.upper() if currency else None,
        )

    async def verify_credentials(
        self,
        fields: Mapping[str, SecretStr],  # noqa: ARG002 (the protocol's signature)
    ) -> MerchantAccount:
        """Not used: Stripe accounts connect through OAuth (:meth:`exchange_code`)."""
        raise ProviderError(
            "Stripe accounts are connected through Connect OAuth, not entered credentials",
            provider=PROVIDER,
        )

    async def prepare_account(
        self,
        account: MerchantAccount,
        *,
        webhook_url: str,  # noqa: ARG002 (Connect events come to the platform's endpoint)
    ) -> MerchantAccount:
        """Nothing to set up: every connected account's events come to the platform's
        Connect endpoint, naming the account (``webhook_account``)."""
        return account

    async def disconnect(self, account: MerchantAccount) -> None:
        """``POST /oauth/deauthorize``; an account no longer connected (``invalid_client``)
        is already disconnected, not an error."""
        try:
            await self._client.oauth_deauthorize(
                client_id=self._client_id(), account_id=account.account_id
            )
        except StripeOAuthError as exc:
            if exc.oauth_error != "invalid_client":
                raise
            _log.info("Stripe account %s was already disconnected: %s", account.account_id, exc)

    def webhook_account(self, webhook: VerifiedWebhook) -> WebhookAccount | None:
        """The event's top-level ``account`` (Connect events); ``revoked`` for
        ``account.application.deauthorized``. ``None`` for the platform's own events."""
        try:
            event = json.loads(webhook.body)
        except ValueError:
            return None
        account = event.get("account") if isinstance(event, dict) else None
        if not isinstance(account, str) or not account:
            return None
        return WebhookAccount(account_id=account, revoked=event.get("type") == DEAUTHORIZED_EVENT)


def _gateway_refund(refund: StripeObject, *, where: str) -> GatewayRefund:
    """A Stripe Refund object as core's :class:`GatewayRefund` (see the module's table)."""
    fields = _Fields(refund, where=where)
    status = fields.optional_text("status")
    state = _REFUND_STATES.get(status or "")
    if state is None:
        _log.warning("%s has status %r: answered as pending", where, status)
        state = RefundState.PENDING
    failure_reason = None
    if state is RefundState.FAILED:
        failure_reason = fields.optional_text("failure_reason") or status
    try:
        return GatewayRefund(
            gateway=PROVIDER,
            refund_reference=fields.text("id"),
            state=state,
            amount_minor=fields.integer("amount"),
            currency=fields.currency(),
            occurred_at=_timestamp(fields.integer("created")),
            failure_reason=failure_reason,
        )
    except ValidationError as exc:
        raise ProviderError(f"{where} does not fit a refund: {exc}", provider=PROVIDER) from exc


def _check_header_shape(header: str) -> None:
    """Refuse a header that cannot hold a Stripe signature, with a precise reason."""
    entries = [entry.strip().partition("=") for entry in header.split(",")]
    timestamps = [value for key, _, value in entries if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        raise WebhookVerificationError(
            "Stripe-Signature header is malformed (expected t=<unix time>,v1=<hex>)",
            provider=PROVIDER,
        )
    if not any(key == "v1" and value for key, _, value in entries):
        raise WebhookVerificationError(
            "Stripe-Signature has no v1 signature (v0 signatures are not accepted)",
            provider=PROVIDER,
        )


def _signed_by(body: bytes, header: str, secret: str, tolerance: int | None) -> bool:
    """Whether Stripe's scheme accepts ``header`` for ``body`` under ``secret``; with a
    ``tolerance``, only if the timestamp is at most that many seconds old."""
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
    except stripe.SignatureVerificationError:
        return False
    return True


class _Fields:
    """Typed reads of one Stripe JSON object; a missing or mistyped field raises a
    ``ProviderError`` that names the event and the field."""

    def __init__(self, value: Mapping[str, Any], *, where: str) -> None:
        self._value = value
        self.where = where

    def get(self, key: str) -> Any:
        return self._value.get(key)

    def text(self, key: str) -> str:
        value = self._value.get(key)
        if not isinstance(value, str) or not value:
            raise self._bad(key, "a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._value.get(key)
        return value if isinstance(value, str) and value else None

    def integer(self, key: str) -> int:
        value = self._value.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "an integer")
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self._value.get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return value

    def reference(self, key: str) -> str | None:
        """An id field that may also arrive expanded into the object it names."""
        value = self._value.get(key)
        if isinstance(value, dict):
            value = value.get("id")
        return value if isinstance(value, str) and value else None

    def currency(self) -> str:
        return self.text("currency").upper()

    def order_reference(self) -> str | None:
        metadata = self._value.get("metadata")
        if isinstance(metadata, dict):
            order_id = metadata.get(ORDER_ID_KEY)
            if isinstance(order_id, str) and order_id:
                return order_id
        return None

    def _bad(self, key: str, expected: str) -> ProviderError:
        return ProviderError(
            f"{self.where}: field {key!r} should be {expected}, got "
            f"{type(self._value.get(key)).__name__}",
            provider=PROVIDER,
        )


async def _payment_intent_of(context: "_EventContext", obj: _Fields) -> str | None:
    """The PaymentIntent a charge, refund or dispute belongs to, fetching the charge if the
    object does not name it."""
    payment_intent = obj.reference("payment_intent")
    if payment_intent:
        return payment_intent
    charge_id = obj.reference("charge")
    if not charge_id:
        return None
    charge = await context.client.retrieve_charge(charge_id, stripe_account=context.account)
    return _Fields(charge, where=f"charge {charge_id}").reference("payment_intent")


async def _by_checkout_session(
    context: "_EventContext", facts: list[GatewayPaymentEvent]
) -> list[GatewayPaymentEvent]:
    """``facts`` reported against the Checkout Session that created their PaymentIntent
    (``GET /v1/checkout/sessions?payment_intent=…``), as ``create_payment`` named the
    payment; a PaymentIntent made without Checkout keeps its own id."""
    sessions: dict[str, str] = {}
    mapped = []
    for fact in facts:
        intent = fact.gateway_reference
        if intent not in sessions:
            session = await context.client.checkout_session_of(
                intent, stripe_account=context.account
            )
            found = session.get("id") if session else None
            sessions[intent] = found if isinstance(found, str) and found else intent
        if sessions[intent] != intent:
            fact = fact.model_copy(
                update={
                    "gateway_reference": sessions[intent],
                    "metadata": {**fact.metadata, "payment_intent": intent},
                }
            )
        mapped.append(fact)
    return mapped


async def _latest_charge_of(context: "_EventContext", intent: _Fields) -> str | None:
    """The charge that captured a succeeded PaymentIntent, from the event or the API."""
    latest = intent.reference("latest_charge")
    if latest:
        return latest
    # API versions before 2022-11-15 embedded the charges instead of naming latest_charge
    charges = intent.get("charges")
    if isinstance(charges, dict) and isinstance(charges.get("data"), list):
        for charge in charges["data"]:
            if isinstance(charge, dict) and isinstance(charge.get("id"), str):
                return str(charge["id"])
    intent_id = intent.text("id")
    fetched = await context.client.retrieve_payment_intent(
        intent_id, stripe_account=context.account
    )
    return _Fields(fetched, where=f"PaymentIntent {intent_id}").reference("latest_charge")


async def _refunds_of(context: "_EventContext", charge: _Fields) -> list[StripeObject]:
    """Every refund of a charge: embedded in the event when complete, else from the API."""
    embedded = charge.get("refunds")
    if (
        isinstance(embedded, dict)
        and isinstance(embedded.get("data"), list)
        and not embedded.get("has_more")
    ):
        return [refund for refund in embedded["data"] if isinstance(refund, dict)]
    return await context.client.list_refunds(
        charge_id=charge.text("id"), stripe_account=context.account
    )


class _EventContext:
    """What every mapping function needs about the event being parsed."""

    def __init__(
        self,
        *,
        client: StripeClient,
        account: str | None,
        event_id: str,
        event_type: str,
        event_created: datetime,
        livemode: bool,
        data_object: _Fields,
    ) -> None:
        self.client = client
        #: the connected account the event is about (``Stripe-Account`` of follow-up calls)
        self.account = account
        self.event_id = event_id
        self.event_type = event_type
        self.event_created = event_created
        self.livemode = livemode
        #: the event's ``data.object``: the PaymentIntent, charge, refund or dispute
        self.object = data_object

    def fact(
        self,
        *,
        kind: PaymentEventKind,
        payment_intent: str,
        fact_reference: str,
        amount_minor: int,
        currency: str,
        occurred_at: datetime,
        order_reference: str | None,
        metadata: Mapping[str, str | None] | None = None,
    ) -> GatewayPaymentEvent:
        extra = {key: value for key, value in (metadata or {}).items() if value}
        return GatewayPaymentEvent(
            gateway=PROVIDER,
            event_id=self.event_id,
            gateway_reference=payment_intent,
            fact_reference=fact_reference,
            kind=kind,
            amount_minor=amount_minor,
            currency=currency,
            occurred_at=occurred_at,
            order_reference=order_reference,
            metadata={
                "stripe_event_type": self.event_type,
                "livemode": "true" if self.livemode else "false",
                **extra,
            },
        )

    def skip(self, reason: str) -> list[GatewayPaymentEvent]:
        _log.info("Stripe event %s (%s) skipped: %s", self.event_id, self.event_type, reason)
        return []


def _timestamp(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)


# -- PaymentIntent events ---------------------------------------------------------------


async def _intent_authorized(context: _EventContext) -> list[GatewayPaymentEvent]:
    intent = context.object
    amount = intent.integer("amount_capturable")
    if amount <= 0:
        return context.skip("nothing capturable (authorisation released or captured)")
    return [
        context.fact(
            kind=PaymentEventKind.AUTHORIZED,
            payment_intent=intent.text("id"),
            fact_reference=intent.text("id"),
            amount_minor=amount,
            currency=intent.currency(),
            occurred_at=context.event_created,
            order_reference=intent.order_reference(),
        )
    ]


async def _intent_succeeded(context: _EventContext) -> list[GatewayPaymentEvent]:
    intent = context.object
    charge_id = await _latest_charge_of(context, intent)
    return [
        context.fact(
            kind=PaymentEventKind.CAPTURED,
            payment_intent=intent.text("id"),
            # the charge id, so charge.succeeded / charge.captured record the same fact
            fact_reference=charge_id or intent.text("id"),
            amount_minor=intent.integer("amount_received"),
            currency=intent.currency(),
            occurred_at=context.event_created,
            order_reference=intent.order_reference(),
            metadata={"charge": charge_id},
        )
    ]


async def _intent_failed(context: _EventContext) -> list[GatewayPaymentEvent]:
    intent = context.object
    error = intent.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    return [
        context.fact(
            kind=PaymentEventKind.FAILED,
            payment_intent=intent.text("id"),
            fact_reference=intent.text("id"),
            amount_minor=intent.integer("amount"),
            currency=intent.currency(),
            occurred_at=context.event_created,
            order_reference=intent.order_reference(),
            metadata={
                "failure_code": _str_or_none(error.get("code")),
                "decline_code": _str_or_none(error.get("decline_code")),
                "failure_message": _str_or_none(error.get("message")),
            },
        )
    ]


# -- Charge events ----------------------------------------------------------------------


async def _charge_captured(context: _EventContext) -> list[GatewayPaymentEvent]:
    charge = context.object
    if context.event_type == "charge.succeeded" and charge.get("captured") is not True:
        return context.skip("charge authorised only; captured later")
    payment_intent = charge.reference("payment_intent")
    if payment_intent is None:
        return context.skip("charge made without a PaymentIntent")
    amount = charge.get("amount_captured")
    return [
        context.fact(
            kind=PaymentEventKind.CAPTURED,
            payment_intent=payment_intent,
            fact_reference=charge.text("id"),
            amount_minor=amount if isinstance(amount, int) else charge.integer("amount"),
            currency=charge.currency(),
            occurred_at=(
                _timestamp(charge.integer("created"))
                if context.event_type == "charge.succeeded"
                else context.event_created
            ),
            order_reference=charge.order_reference(),
            metadata={"charge": charge.text("id")},
        )
    ]


async def _charge_refunded(context: _EventContext) -> list[GatewayPaymentEvent]:
    charge = context.object
    payment_intent = charge.reference("payment_intent")
    if payment_intent is None:
        return context.skip("charge made without a PaymentIntent")
    facts: list[GatewayPaymentEvent] = []
    # one fact per refund: amount_refunded is cumulative over every refund of the charge
    for raw_refund in await _refunds_of(context, charge):
        refund = _Fields(raw_refund, where=f"a refund in {context.event_type} {context.event_id}")
        if refund.optional_text("status") != "succeeded":
            continue
        facts.append(
            _refund_fact(context, refund, payment_intent, charge.order_reference(), charge)
        )
    return facts


async def _refund_changed(context: _EventContext) -> list[GatewayPaymentEvent]:
    refund = context.object
    if refund.optional_text("status") != "succeeded":
        return context.skip(f"refund status is {refund.optional_text('status')!r}")
    payment_intent = await _payment_intent_of(context, refund)
    if payment_intent is None:
        return context.skip("refund of a charge made without a PaymentIntent")
    return [_refund_fact(context, refund, payment_intent, refund.order_reference(), None)]


def _refund_fact(
    context: _EventContext,
    refund: _Fields,
    payment_intent: str,
    order_reference: str | None,
    charge: _Fields | None,
) -> GatewayPaymentEvent:
    return context.fact(
        kind=PaymentEventKind.REFUNDED,
        payment_intent=payment_intent,
        fact_reference=refund.text("id"),
        amount_minor=refund.integer("amount"),
        currency=refund.currency(),
        occurred_at=_timestamp(refund.integer("created")),
        order_reference=order_reference,
        metadata={
            "charge": charge.text("id") if charge else refund.reference("charge"),
            "refund_reason": _str_or_none(refund.get("reason")),
        },
    )


# -- Dispute events ---------------------------------------------------------------------


async def _dispute_opened(context: _EventContext) -> list[GatewayPaymentEvent]:
    dispute = context.object
    status = dispute.optional_text("status") or ""
    if status.startswith("warning_"):
        return context.skip(f"inquiry ({status}): no funds withdrawn")
    return await _dispute_fact(context, PaymentEventKind.CHARGEBACK)


async def _dispute_reversed(context: _EventContext) -> list[GatewayPaymentEvent]:
    dispute = context.object
    if context.event_type == "charge.dispute.closed" and dispute.get("status") != "won":
        return context.skip(f"dispute closed as {dispute.get('status')!r}")
    return await _dispute_fact(context, PaymentEventKind.CHARGEBACK_REVERSED)


async def _dispute_fact(
    context: _EventContext, kind: PaymentEventKind
) -> list[GatewayPaymentEvent]:
    dispute = context.object
    payment_intent = await _payment_intent_of(context, dispute)
    if payment_intent is None:
        return context.skip("dispute of a charge made without a PaymentIntent")
    return [
        context.fact(
            kind=kind,
            payment_intent=payment_intent,
            fact_reference=dispute.text("id"),
            amount_minor=dispute.integer("amount"),
            currency=dispute.currency(),
            occurred_at=(
                _timestamp(dispute.integer("created"))
                if kind is PaymentEventKind.CHARGEBACK
                else context.event_created
            ),
            order_reference=dispute.order_reference(),
            metadata={
                "charge": dispute.reference("charge"),
                "dispute_reason": _str_or_none(dispute.get("reason")),
                "dispute_status": _str_or_none(dispute.get("status")),
            },
        )
    ]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_Handler = Callable[[_EventContext], Awaitable[list[GatewayPaymentEvent]]]

_HANDLERS: Final[Mapping[str, _Handler]] = {
    "payment_intent.amount_capturable_updated": _intent_authorized,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "charge.succeeded": _charge_captured,
    "charge.captured": _charge_captured,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund_changed,
    "refund.updated": _refund_changed,
    "charge.refund.updated": _refund_changed,
    "charge.dispute.created": _dispute_opened,
    "charge.dispute.funds_withdrawn": _dispute_opened,
    "charge.dispute.funds_reinstated": _dispute_reversed,
    "charge.dispute.closed": _dispute_reversed,
}
"""Stripe event type → mapping function; types not listed yield no facts."""
