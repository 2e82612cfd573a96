"""The payment-gateway provider interface and the values it exchanges with core.

A gateway does four things for core: start a payment, return (part of) it to the buyer,
prove that a webhook really comes from the gateway, and translate the gateway's events into
:class:`GatewayPaymentEvent` values. Core owns everything after that: the webhook inbox
(unique on the gateway's event id), the append-only ledger, and order status.
"""

import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Protocol, runtime_checkable

from pydantic import AwareDatetime, Field, SecretStr

from pixecom_core.providers.values import CurrencyCode, FrozenValue, MinorUnits


class PaymentEventKind(StrEnum):
    """What happened to the money, in the ledger's words."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    CHARGEBACK = "chargeback"
    #: A chargeback the seller won: its amount comes back.
    CHARGEBACK_REVERSED = "chargeback_reversed"
    FAILED = "failed"


class PaymentConnectionKind(StrEnum):
    """How a seller connects their own account of a gateway."""

    #: The seller approves PixEcom on the gateway's consent page, which redirects back
    #: with a code (Stripe Connect OAuth for Standard accounts).
    OAUTH = "oauth"
    #: The seller enters credentials of their own (a PayPal REST app's client id and
    #: secret); the gateway checks them before core stores them.
    CREDENTIALS = "credentials"


class MerchantAccount(FrozenValue):
    """A seller's own account at a gateway: where that seller's payments land.

    Core stores it encrypted (MultiFernet, re-encrypted by ``pixecom keys rotate``) and
    hands it back on every payment, refund and webhook about the seller; it never
    returns ``credentials`` in a response or a log.

    :param account_id: the gateway's id of the account (Stripe ``acct_…``, PayPal merchant
        id). Unique per gateway across sellers: webhooks that name it are routed to the
        seller who connected it.
    :param credentials: secret material the gateway needs to act for the account (a
        PayPal client secret; a refresh token), or ``None`` when the platform's own key
        acts on it (Stripe Connect's ``Stripe-Account`` header).
    :param client_id: a public identifier that goes with ``credentials`` (PayPal client id).
    :param display_name: the business name, for the seller's dashboard.
    :param default_currency: the account's settlement currency, when the gateway says.
    :param settings: what the gateway set up for the account and needs again, not secret
        (PayPal: the id of the webhook subscription of the seller's REST app); see
        :meth:`PaymentGatewayConnections.prepare_account`.
    """

    account_id: str = Field(min_length=1, max_length=255)
    credentials: SecretStr | None = None
    client_id: str | None = None
    display_name: str | None = None
    default_currency: CurrencyCode | None = None
    settings: Mapping[str, str] = Field(default_factory=dict)


class CredentialField(FrozenValue):
    """One field a ``CREDENTIALS`` gateway's connect form asks the seller for.

    :param name: the key in the mapping :meth:`PaymentGatewayConnections.verify_credentials`
        receives, e.g. ``client_secret``.
    :param label: what the form shows, e.g. "Client secret".
    :param secret: mask the input and never echo it.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    secret: bool = False


class WebhookAccount(FrozenValue):
    """Which connected account a webhook delivery is about.

    :param account_id: the account the gateway names (Stripe's ``account`` on Connect
        events, PayPal's payee merchant id). Core routes the delivery to the seller who
        connected it and refuses a fact about a payment of any other seller.
    :param revoked: the delivery says the seller took PixEcom's access away (Stripe
        ``account.application.deauthorized``): core stops the seller's checkout on this
        gateway and raises a problem in the seller's feed.
    """

    account_id: str = Field(min_length=1)
    revoked: bool = False


class PaymentRequest(FrozenValue):
    """Core's request to start collecting a payment for one order.

    :param idempotency_key: the same key for every retry of the same attempt; pass it to the
        gateway's idempotency mechanism so a retry never charges twice.
    :param seller_id: the seller who is paid.
    :param order_id: core's order id; send it to the gateway as metadata so events can be
        matched back to the order.
    :param amount_minor: the amount in minor units of ``currency``, 1 to
        :data:`~pixecom_core.providers.values.MAX_AMOUNT_MINOR`.
    :param currency: ISO 4217 code.
    :param return_url: where the buyer lands after approving the payment.
    :param cancel_url: where the buyer lands after abandoning it.
    :param description: a short statement descriptor, if the seller set one.
    :param metadata: extra key/value pairs to attach to the gateway's payment object.
    :param account: the seller's own account at the gateway (see
        :class:`PaymentGatewayConnections`): the payment is created on it (Stripe
        ``Stripe-Account``, the seller's PayPal credentials), never on the platform's.
        Core always sends it to a gateway that implements connections; such a gateway
        raises ``ProviderRefused`` when it is missing rather than charge the platform.
    :param application_fee_minor: the platform's fee on this payment, where the gateway
        can take one from a connected account (Stripe ``application_fee_amount``).
    """

    idempotency_key: str = Field(min_length=1)
    seller_id: uuid.UUID
    order_id: uuid.UUID
    amount_minor: Annotated[MinorUnits, Field(gt=0)]
    currency: CurrencyCode
    return_url: str
    cancel_url: str
    description: str | None = None
    metadata: Mapping[str, str] = Field(default_factory=dict)
    account: MerchantAccount | None = None
    application_fee_minor: Annotated[MinorUnits, Field(ge=0)] | None = None


class PaymentSession(FrozenValue):
    """What the storefront needs to let the buyer pay.

    :param gateway: the gateway's ``identifier``.
    :param gateway_reference: the gateway's id for the payment (PaymentIntent id, PayPal order
        id); events about this payment carry the same reference.
    :param client_secret: the secret a client-side SDK confirms with, for gateways that use one.
    :param approval_url: the page to redirect the buyer to, for gateways that use one.
    :param expires_at: when the session stops accepting payment, if the gateway says.
    """

    gateway: str
    gateway_reference: str
    client_secret: SecretStr | None = None
    approval_url: str | None = None
    expires_at: AwareDatetime | None = None


class RefundState(StrEnum):
    """Where a refund stands at the gateway."""

    #: Accepted, the money not yet on its way back (Stripe ``pending``, PayPal ``PENDING``).
    PENDING = "pending"
    #: The money went back to the buyer: core records the ``REFUNDED`` fact.
    SUCCEEDED = "succeeded"
    #: The gateway will not return the money (declined, cancelled, failed): the amount is
    #: refundable again and no fact is recorded.
    FAILED = "failed"


class RefundRequest(FrozenValue):
    """Core's request to return money of one captured payment to the buyer.

    :param idempotency_key: the same key for every retry of this refund; pass it to the
        gateway's idempotency mechanism (Stripe ``Idempotency-Key``, PayPal
        ``PayPal-Request-Id``) so a retry after a timeout never refunds twice.
    :param seller_id: the seller whose payment it is.
    :param order_id: core's order id.
    :param refund_id: core's id of this refund; send it as metadata where the gateway has any.
    :param payment_reference: the payment, as ``PaymentSession.gateway_reference`` named it.
    :param capture_reference: the ``fact_reference`` of the payment's ``CAPTURED`` fact (the
        charge, the capture): the object gateways such as PayPal refund.
    :param amount_minor: how much to return, in minor units of ``currency``; core checked it
        is no more than what is still refundable.
    :param currency: ISO 4217 code of the captured payment.
    :param reason: the seller's words, for the gateway's records or the buyer's statement.
    :param account: the seller's own account the payment was made on (as for
        :class:`PaymentRequest`).
    """

    idempotency_key: str = Field(min_length=1, max_length=255)
    seller_id: uuid.UUID
    order_id: uuid.UUID
    refund_id: uuid.UUID
    payment_reference: str = Field(min_length=1)
    capture_reference: str = Field(min_length=1)
    amount_minor: Annotated[MinorUnits, Field(gt=0)]
    currency: CurrencyCode
    reason: str | None = Field(default=None, max_length=500)
    account: MerchantAccount | None = None


class GatewayRefund(FrozenValue):
    """A refund as the gateway reports it.

    :param gateway: the gateway's ``identifier``.
    :param refund_reference: the gateway's id of the refund (Stripe ``re_…``, PayPal refund
        id). It must equal the ``fact_reference`` of the ``REFUNDED`` event the gateway's
        webhook announces for the same refund: core records the fact from whichever comes
        first, the answer or the webhook, and the other finds it there.
    :param state: where the refund stands.
    :param amount_minor: the amount the gateway accepted to return.
    :param currency: ISO 4217 code.
    :param occurred_at: when the gateway created the refund (for a ``SUCCEEDED`` answer, the
        fact's time).
    :param failure_reason: the gateway's reason when ``state`` is ``FAILED``.
    """

    gateway: str
    refund_reference: str = Field(min_length=1, max_length=255)
    state: RefundState
    amount_minor: Annotated[MinorUnits, Field(gt=0)]
    currency: CurrencyCode
    occurred_at: AwareDatetime
    failure_reason: str | None = None


class VerifiedWebhook(FrozenValue):
    """A webhook request whose signature the gateway checked; only these reach ``parse_events``.

    :param gateway: the gateway's ``identifier``.
    :param event_id: the gateway's unique id of this notification (Stripe ``evt_…``, PayPal
        event ``id``), stable across redeliveries: core's inbox stores each id once, so a
        redelivered webhook is acknowledged and changes nothing.
    :param event_type: the gateway's name for the notification (``charge.refunded``), kept
        with the raw delivery for operators.
    :param body: the raw request body, byte for byte as received (signatures cover bytes).
    :param headers: the request headers, lower-cased names.
    :param received_at: when core received the request.
    """

    gateway: str
    event_id: str = Field(min_length=1, max_length=255)
    event_type: str = Field(default="", max_length=255)
    body: bytes
    headers: Mapping[str, str]
    received_at: AwareDatetime


class GatewayPaymentEvent(FrozenValue):
    """One normalised payment event, ready for core's inbox and ledger.

    :param gateway: the gateway's ``identifier``.
    :param event_id: the gateway's id of the notification that announced this event (for
        tracing; not part of the fact's identity).
    :param gateway_reference: the payment the event is about, exactly as returned in
        ``PaymentSession.gateway_reference`` (Stripe PaymentIntent ``pi_…``, PayPal order id):
        core finds the order through it.
    :param fact_reference: the gateway's id of the money movement itself — the charge or
        capture for ``CAPTURED``, the refund (``re_…``) for ``REFUNDED``, the dispute
        (``dp_…``) for ``CHARGEBACK`` — so that one movement announced by several
        notification types, or delivered twice, is recorded once, and two partial refunds
        of one payment are two facts. ``(gateway, fact_reference, kind)`` identifies a fact.
    :param kind: what happened to the money.
    :param amount_minor: the amount this event moves, in minor units, never negative (a refund
        is ``kind=REFUNDED`` with a positive amount).
    :param currency: ISO 4217 code.
    :param occurred_at: when the gateway says it happened (not when the webhook arrived).
    :param order_reference: core's order id as sent in ``PaymentRequest.order_id``, when the
        gateway echoes it back.
    :param metadata: other gateway data worth keeping (failure code, dispute reason, ...).
    """

    gateway: str
    event_id: str = Field(min_length=1)
    gateway_reference: str = Field(min_length=1)
    fact_reference: str = Field(min_length=1)
    kind: PaymentEventKind
    amount_minor: MinorUnits
    currency: CurrencyCode
    occurred_at: AwareDatetime
    order_reference: str | None = None
    metadata: Mapping[str, str] = Field(default_factory=dict)


@runtime_checkable
class PaymentGateway(Protocol):
    """A payment gateway (Stripe, PayPal, ...) that core dispatches payments to by identifier.

    Register an implementation with the ``pixecom_register_payment_gateways`` hook. The
    object is shared by every seller; per-seller keys come from core's configuration.

    Errors: ``WebhookVerificationError`` for a bad webhook, the other classes of
    :mod:`pixecom_core.providers.errors` for failed calls to the gateway.
    """

    @property
    def identifier(self) -> str:
        """The stable key stored with every payment and event, e.g. ``"stripe"``."""
        ...

    @property
    def display_name(self) -> str:
        """The name shown to sellers and buyers, e.g. ``"Stripe"``."""
        ...

    @property
    def webhook_headers(self) -> frozenset[str]:
        """The request headers, lower-case names, to store with each webhook delivery.

        Name every header :meth:`verify_webhook` reads (the signature, its timestamp, a
        certificate URL, ...): an operator must be able to verify a stored delivery again.
        Core's inbox keeps these plus ``content-type`` and ``user-agent`` and drops the rest,
        so cookies, proxies' headers and API keys sent along never reach the database. The
        conformance kit checks that a delivery cut down to them still verifies.
        """
        ...

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        """Create the gateway's payment object and return what the buyer needs to pay.

        Must be idempotent on ``request.idempotency_key``: a retry returns the same session.

        :param request: the order, amount and return URLs.
        """
        ...

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        """Ask the gateway to return ``request.amount_minor`` of a captured payment.

        Must be idempotent on ``request.idempotency_key``: a retry answers with the same
        refund. Answer the refund as the gateway created it, ``PENDING`` or ``SUCCEEDED``
        (or ``FAILED`` if it failed at once); core keeps the amount reserved while pending.
        Raise ``ProviderRefused`` when the gateway declines the request itself (more than
        is left to refund, a payment never captured), with its reason; the transient and
        auth classes as for any call.
        """
        ...

    async def fetch_refund(
        self,
        *,
        payment_reference: str,
        refund_reference: str,
        account: MerchantAccount | None = None,
    ) -> GatewayRefund:
        """The refund's current state at the gateway, for a refund core still sees pending.

        :param payment_reference: the payment the refund belongs to.
        :param refund_reference: ``GatewayRefund.refund_reference`` as :meth:`refund` answered.
        :param account: the seller's own account the payment was made on, if any.
        """
        ...

    async def verify_webhook(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,
    ) -> VerifiedWebhook:
        """Check the webhook's signature and freshness, or raise ``WebhookVerificationError``.

        Runs in the request path before anything is stored, so it must not call other
        services unless the gateway requires it (PayPal's verification API does).

        :param body: the raw request body.
        :param headers: the request headers, lower-cased names.
        :param account: the seller's account the delivery was addressed to (core's
            ``/webhooks/{gateway}/accounts/{account_id}``, set up by
            :meth:`PaymentGatewayConnections.prepare_account`); verify it as that
            account's notification. ``None`` for the platform's own endpoint.
        """
        ...

    async def parse_events(
        self, webhook: VerifiedWebhook, *, account: MerchantAccount | None = None
    ) -> list[GatewayPaymentEvent]:
        """Translate a verified webhook into zero or more normalised events.

        Return an empty list for event types core does not track. Runs asynchronously after
        the webhook was acknowledged, so it may call the gateway to fetch missing details.

        :param webhook: a webhook that passed ``verify_webhook``.
        :param account: the seller's account the delivery was addressed to (its own
            webhook URL, see :meth:`PaymentGatewayConnections.prepare_account`): fetch
            details with it. ``None`` for a delivery to the platform's endpoint, even when
            ``webhook_account`` names an account (the platform's key acts on it).
        """
        ...


@runtime_checkable
class PaymentGatewayConnections(Protocol):
    """How sellers connect their own accounts of a gateway, so each seller's money lands
    in that seller's account: an optional part of the gateway contract, implemented by the
    same object as :class:`PaymentGateway`.

    A gateway that implements it never charges the platform's account: core passes the
    seller's :class:`MerchantAccount` with every payment and refund, refuses checkout for a
    seller without one, and routes webhooks by :meth:`webhook_account`. (A gateway without
    it collects every seller's payments on one account: for tests and single-seller
    deployments only.)

    Errors: ``ProviderAuthError`` for a refused code or credentials (never quoting them),
    the other classes of :mod:`pixecom_core.providers.errors` for failed calls.
    """

    @property
    def connection_kind(self) -> PaymentConnectionKind:
        """Consent page (OAuth) or credentials the seller enters."""
        ...

    @property
    def credential_fields(self) -> tuple[CredentialField, ...]:
        """The fields a ``CREDENTIALS`` gateway's connect form asks for; ``()`` for OAuth."""
        ...

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:
        """The gateway's consent page for this seller (``OAUTH``), or ``None``.

        :param state: core's signed, single-use value, handed back on the redirect.
        :param redirect_uri: core's callback; the code exchange names it again.
        """
        ...

    async def exchange_code(self, *, code: str, redirect_uri: str) -> MerchantAccount:
        """Turn the consent redirect's code into the seller's account (Stripe:
        ``POST https://connect.stripe.com/oauth/token`` → ``stripe_user_id``)."""
        ...

    async def verify_credentials(self, fields: Mapping[str, SecretStr]) -> MerchantAccount:
        """Check credentials the seller entered (PayPal: fetch an OAuth token with them)
        and describe their account; ``ProviderAuthError`` when they are refused. Nothing
        is stored before this succeeds.

        :param fields: one value per :attr:`credential_fields` name.
        """
        ...

    async def prepare_account(
        self, account: MerchantAccount, *, webhook_url: str
    ) -> MerchantAccount:
        """Set up what the newly connected ``account`` needs before core stores it, and
        return the account to store. Called once per connection, after the consent flow
        or ``verify_credentials``.

        A gateway whose notifications about a seller's account come from that seller's own
        app (a PayPal REST app) subscribes it here to PixEcom's ``webhook_url`` — core's
        ``/webhooks/{gateway}/accounts/{account_id}``, which hands deliveries to
        :meth:`PaymentGateway.verify_webhook` and ``parse_events`` with this account —
        and keeps the subscription's id in ``settings``. A gateway whose notifications all
        come to the platform (Stripe Connect) returns ``account`` unchanged. Raise
        ``ProviderAuthError`` when the account refuses, nothing is stored then.
        """
        ...

    async def disconnect(self, account: MerchantAccount) -> None:
        """Give up PixEcom's access to the account where the gateway has such a call
        (Stripe ``POST /oauth/deauthorize``); nothing where it has none. An account
        already disconnected is not an error."""
        ...

    def webhook_account(self, webhook: VerifiedWebhook) -> WebhookAccount | None:
        """The connected account a verified delivery is about, or ``None`` for one about
        the platform's own account. Reads the delivery only, calls nothing."""
        ...
