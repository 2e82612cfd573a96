"""Two test gateways whose sellers connect their own accounts, for core's connection tests.

``fakeconnect`` connects through a consent page (``OAUTH``, like Stripe Connect): a code
``ok-<account id>[.<anything>]`` is exchanged for that account, once; anything else is
refused.
``fakecreds`` connects with credentials (like a PayPal REST app): ``client_id`` and
``client_secret == "right-secret"``. Both sign deliveries like fakepay (HMAC-SHA256 of the
body) and name the account each delivery is about (``account``), and ``revoked`` marks a
delivery saying the seller took the platform's access away. Everything a gateway was
asked is kept on the object, so tests assert what reached "the gateway".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr

from pixecom_core import hookimpl
from pixecom_core.providers import (
    CredentialField,
    GatewayPaymentEvent,
    GatewayRefund,
    MerchantAccount,
    PaymentConnectionKind,
    PaymentEventKind,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    ProviderAuthError,
    ProviderRefused,
    RefundRequest,
    RefundState,
    VerifiedWebhook,
    WebhookAccount,
    WebhookVerificationError,
)

SECRET = b"fakeconnect-test-secret"


def sign(body: bytes) -> str:
    return hmac.new(SECRET, body, hashlib.sha256).hexdigest()


def delivery(
    account: str,
    facts: list[dict[str, Any]],
    *,
    revoked: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A signed delivery about ``account``: (body, headers)."""
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "account.revoked" if revoked else "fake.facts",
            "account": account,
            "revoked": revoked,
            "facts": facts,
        }
    ).encode()
    return body, {"content-type": "application/json", "x-fake-signature": sign(body)}


def fact(payment: str, reference: str, kind: PaymentEventKind, amount: int) -> dict[str, Any]:
    return {"payment": payment, "fact": reference, "kind": kind.value, "amount_minor": amount}


class _ConnectedGateway:
    """What both test gateways share: payments and refunds on the account they are given."""

    identifier: str
    display_name: str
    webhook_headers = frozenset({"x-fake-signature"})
    connection_kind: PaymentConnectionKind
    credential_fields: tuple[CredentialField, ...] = ()

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.payments: list[PaymentRequest] = []
        self.refunds: list[RefundRequest] = []
        self.disconnected: list[str] = []
        self.prepared: list[tuple[str, str]] = []
        self.parsed_with: list[str | None] = []

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        if request.account is None:
            raise ProviderRefused(f"{self.identifier}: no seller account", provider=self.identifier)
        self.payments.append(request)
        return PaymentSession(
            gateway=self.identifier,
            gateway_reference=f"{self.identifier}_{request.order_id.hex}",
            approval_url=f"https://{self.identifier}.test/pay/{request.order_id}",
        )

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        if request.account is None:
            raise ProviderRefused(f"{self.identifier}: no seller account", provider=self.identifier)
        self.refunds.append(request)
        return GatewayRefund(
            gateway=self.identifier,
            refund_reference=f"re_{request.refund_id.hex}",
            state=RefundState.SUCCEEDED,
            amount_minor=request.amount_minor,
            currency=request.currency,
            occurred_at=datetime.now(UTC),
        )

    async def fetch_refund(
        self,
        *,
        payment_reference: str,
        refund_reference: str,
        account: MerchantAccount | None = None,
    ) -> GatewayRefund:
        raise ProviderRefused(
            f"{self.identifier}: {refund_reference} of {payment_reference} on {account} unknown"
        )

    async def verify_webhook(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,  # noqa: ARG002 (deliveries name their account)
    ) -> VerifiedWebhook:
        if not hmac.compare_digest(headers.get("x-fake-signature", ""), sign(body)):
            raise WebhookVerificationError("bad signature", provider=self.identifier)
        payload = json.loads(body)
        return VerifiedWebhook(
            gateway=self.identifier,
            event_id=payload["id"],
            event_type=payload["type"],
            body=body,
            headers=dict(headers),
            received_at=datetime.now(UTC),
        )

    async def parse_events(
        self,
        webhook: VerifiedWebhook,
        *,
        account: MerchantAccount | None = None,  # noqa: ARG002 (deliveries name their account)
    ) -> list[GatewayPaymentEvent]:
        payload = json.loads(webhook.body)
        return [
            GatewayPaymentEvent(
                gateway=self.identifier,
                event_id=webhook.event_id,
                gateway_reference=item["payment"],
                fact_reference=item["fact"],
                kind=PaymentEventKind(item["kind"]),
                amount_minor=item["amount_minor"],
                currency="USD",
                occurred_at=webhook.received_at,
            )
            for item in payload["facts"]
        ]

    def webhook_account(self, webhook: VerifiedWebhook) -> WebhookAccount | None:
        payload = json.loads(webhook.body)
        if not payload.get("account"):
            return None
        return WebhookAccount(account_id=payload["account"], revoked=bool(payload["revoked"]))

    async def prepare_account(
        self, account: MerchantAccount, *, webhook_url: str
    ) -> MerchantAccount:
        self.prepared.append((account.account_id, webhook_url))
        return account

    async def disconnect(self, account: MerchantAccount) -> None:
        self.disconnected.append(account.account_id)

    # The kind a gateway does not connect with: refused, as the contract says.
    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:  # noqa: ARG002
        return None

    async def exchange_code(self, *, code: str, redirect_uri: str) -> MerchantAccount:  # noqa: ARG002
        raise ProviderAuthError("no consent page", provider=self.identifier)

    async def verify_credentials(self, fields: Mapping[str, SecretStr]) -> MerchantAccount:  # noqa: ARG002
        raise ProviderAuthError("no credentials", provider=self.identifier)


class FakeConnectGateway(_ConnectedGateway):
    """Consent page: ``ok-<account>[.<nonce>]`` codes, each good once."""

    identifier = "fakeconnect"
    display_name = "FakeConnect"
    connection_kind = PaymentConnectionKind.OAUTH

    def reset(self) -> None:
        super().reset()
        self.used_codes: set[str] = set()

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:
        query = urlencode({"state": state, "redirect_uri": redirect_uri})
        return f"https://fakeconnect.test/authorize?{query}"

    async def exchange_code(self, *, code: str, redirect_uri: str) -> MerchantAccount:
        if not code.startswith("ok-") or code in self.used_codes or not redirect_uri:
            raise ProviderAuthError("the code is invalid or was used", provider=self.identifier)
        self.used_codes.add(code)
        account = code.removeprefix("ok-").split(".")[0]
        return MerchantAccount(account_id=account, display_name=f"Shop {account}")


def sign_for(webhook_id: str, body: bytes) -> str:
    """A fakecreds delivery's signature: the seller's app signs with its webhook's id."""
    return hmac.new(webhook_id.encode(), body, hashlib.sha256).hexdigest()


def app_delivery(webhook_id: str, facts: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """A delivery from a seller's own fakecreds app, signed for its webhook."""
    body = json.dumps(
        {"id": f"evt_{uuid.uuid4().hex}", "type": "fake.facts", "facts": facts}
    ).encode()
    return body, {
        "content-type": "application/json",
        "x-fake-signature": sign_for(webhook_id, body),
    }


class FakeCredsGateway(_ConnectedGateway):
    """Credentials: ``client_id`` and ``client_secret`` (``right-secret``). Like a PayPal
    REST app, each seller's app notifies PixEcom itself: ``prepare_account`` subscribes
    it (a webhook id per account), and its deliveries, signed with that id, are verified
    only against the account they were addressed to."""

    identifier = "fakecreds"
    display_name = "FakeCreds"
    connection_kind = PaymentConnectionKind.CREDENTIALS
    credential_fields = (
        CredentialField(name="client_id", label="Client id"),
        CredentialField(name="client_secret", label="Client secret", secret=True),
    )

    async def verify_credentials(self, fields: Mapping[str, SecretStr]) -> MerchantAccount:
        if fields["client_secret"].get_secret_value() != "right-secret":
            raise ProviderAuthError("invalid_client", provider=self.identifier)
        client_id = fields["client_id"].get_secret_value()
        return MerchantAccount(
            account_id=f"merchant-{client_id}",
            client_id=client_id,
            credentials=fields["client_secret"],
        )

    async def prepare_account(
        self, account: MerchantAccount, *, webhook_url: str
    ) -> MerchantAccount:
        self.prepared.append((account.account_id, webhook_url))
        return account.model_copy(update={"settings": {"webhook_id": f"wh-{account.account_id}"}})

    async def verify_webhook(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,
    ) -> VerifiedWebhook:
        webhook_id = account.settings.get("webhook_id", "") if account is not None else ""
        if not webhook_id or not hmac.compare_digest(
            headers.get("x-fake-signature", ""), sign_for(webhook_id, body)
        ):
            raise WebhookVerificationError("not signed for this account", provider=self.identifier)
        payload = json.loads(body)
        return VerifiedWebhook(
            gateway=self.identifier,
            event_id=payload["id"],
            event_type=payload["type"],
            body=body,
            headers=dict(headers),
            received_at=datetime.now(UTC),
        )

    async def parse_events(
        self, webhook: VerifiedWebhook, *, account: MerchantAccount | None = None
    ) -> list[GatewayPaymentEvent]:
        self.parsed_with.append(account.account_id if account is not None else None)
        return await super().parse_events(webhook)

    def webhook_account(self, webhook: VerifiedWebhook) -> WebhookAccount | None:  # noqa: ARG002
        return None  # the body names no account: the address it came to does


CONNECT = FakeConnectGateway()
CREDS = FakeCredsGateway()


@hookimpl
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    return [CONNECT, CREDS]
