"""Sellers connect their own gateway accounts, so each seller's money lands in its account.

Issue 15 item 1. Core speaks to gateways only through
:class:`~pixecom_core.providers.PaymentGatewayConnections`, so a new gateway needs a plugin
and no change here. Two ways in:

- **Consent page** (``OAUTH``, Stripe Connect): :meth:`PaymentConnections.start` stores a
  ``PENDING`` connection with a single-use nonce and answers the gateway's consent URL,
  whose ``state`` is signed (:class:`~pixecom_core.ad_accounts.connections.ConnectionStateSigner`
  with this flow's own audience) and bound to the browser that started it, exactly as
  the ad-account flow is (OAuth login CSRF, RFC 6749 section 10.12).
  :meth:`PaymentConnections.complete` checks the state, consumes the nonce in a
  committed transaction of its own, and exchanges the code.
- **Credentials** (``CREDENTIALS``, a PayPal REST app): :meth:`PaymentConnections.
  connect_with_credentials` has the gateway check them (PayPal fetches an OAuth token)
  before anything is stored.

Either way the seller's :class:`~pixecom_core.providers.MerchantAccount` is stored
encrypted (:class:`~pixecom_core.security.secret_box.SecretBox`, re-encrypted by ``pixecom
keys rotate``) and the connection becomes ``ACTIVE``, replacing the seller's previous one
on that gateway. The database's account directory (migration 0016) then routes webhooks
naming the account to this seller, and refuses a second seller on the same account.

:meth:`PaymentConnections.account_for` is what checkout and refunds ask: the seller's
active account on a gateway, or :class:`PaymentConnectionRequired` — never the
platform's account. A gateway telling PixEcom the seller revoked its access
(:meth:`PaymentConnections.revoke`) ends the connection ``REVOKED``: checkout stops and
the problems feed says so.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from pixecom_core.ad_accounts.connections import (
    STATE_LIFETIME,
    ConnectionRefused,
    ConnectionState,
    ConnectionStateSigner,
)
from pixecom_core.errors import ConflictError, NotFoundError, PixecomError
from pixecom_core.models.payments import PaymentConnection, PaymentConnectionStatus
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError
from pixecom_core.providers import (
    CredentialField,
    MerchantAccount,
    PaymentConnectionKind,
    PaymentGateway,
    PaymentGatewayConnections,
    ProviderAuthError,
    ProviderError,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.tenancy import (
    SellerContext,
    SellerRepository,
    SellerScope,
    bind_seller_scope,
    open_seller_scope,
)

#: The payment flow's state is no ad-connection state, and the reverse.
STATE_AUDIENCE = "pixecom-payment-connection"

_FIND_ACCOUNT = text(
    "SELECT seller_id, connection_id FROM pixecom_find_payment_account(:gateway, :account_id)"
)


def utcnow() -> datetime:
    """The default clock of :class:`PaymentConnections`."""
    return datetime.now(UTC)


def sealed_account(account: MerchantAccount) -> str:
    """``account`` as the JSON core encrypts and stores: the credentials in clear inside
    it (pydantic writes a ``SecretStr`` as asterisks, which would store nothing usable)."""
    data = account.model_dump(mode="json")
    if account.credentials is not None:
        data["credentials"] = account.credentials.get_secret_value()
    return json.dumps(data, separators=(",", ":"))


def account_webhook_url(base: str, gateway: str, account_id: str) -> str:
    """Where a seller's own app sends its notifications (see
    :meth:`~pixecom_core.providers.PaymentGatewayConnections.prepare_account`):
    ``{base}/webhooks/{gateway}/accounts/{account_id}``."""
    return f"{base.rstrip('/')}/webhooks/{gateway}/accounts/{quote(account_id, safe='')}"


class GatewayCannotConnect(PixecomError):
    """The gateway named cannot be connected this way; ``code`` says why:
    ``unknown_gateway`` (no plugin provides it), ``gateway_cannot_connect`` (its plugin
    does not implement :class:`~pixecom_core.providers.PaymentGatewayConnections`),
    ``credentials_required`` (it has no consent page: send the credentials) or
    ``consent_required`` (it takes no credentials: use its consent page)."""

    code = "unknown_gateway"


class PaymentConnectionRequired(ConflictError):
    """The seller has no working connection on this gateway: nothing can be charged or
    refunded on it (never on the platform's account instead)."""

    code = "payment_connection_required"


class AccountTakenError(ConflictError):
    """The gateway account is connected by another seller."""

    code = "payment_account_taken"


@dataclass(frozen=True)
class ConnectionView:
    """A payment connection as the seller sees it: never its credentials."""

    id: uuid.UUID
    gateway: str
    status: PaymentConnectionStatus
    account_id: str | None
    display_name: str | None
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    refusal: str | None


@dataclass(frozen=True)
class StartedPaymentConnection:
    """A connection the seller is making: where to send them, if anywhere."""

    connection: ConnectionView
    #: The gateway's consent page (``OAUTH``); ``None`` once connected with credentials.
    authorization_url: str | None


@dataclass(frozen=True)
class GatewayConnectOption:
    """A gateway a seller can connect, and how."""

    gateway: str
    display_name: str
    kind: PaymentConnectionKind
    credential_fields: tuple[CredentialField, ...]


@dataclass(frozen=True)
class AccountOwner:
    """The seller and connection an account of a gateway belongs to."""

    seller_id: uuid.UUID
    connection_id: uuid.UUID


def _view(connection: PaymentConnection) -> ConnectionView:
    return ConnectionView(
        id=connection.id,
        gateway=connection.gateway,
        status=connection.status,
        account_id=connection.account_id,
        display_name=connection.display_name,
        created_at=connection.created_at,
        connected_at=connection.connected_at,
        ended_at=connection.ended_at,
        refusal=connection.refusal,
    )


class PaymentConnectionRepository(SellerRepository[PaymentConnection]):
    """One seller's payment connections."""

    model = PaymentConnection

    async def active(self, gateway: str) -> PaymentConnection | None:
        """The seller's ``ACTIVE`` connection on ``gateway`` (at most one)."""
        statement = select(PaymentConnection).where(
            self._seller_filter,
            col(PaymentConnection.gateway) == gateway,
            col(PaymentConnection.status) == PaymentConnectionStatus.ACTIVE,
        )
        row: PaymentConnection | None = (await self.scope.session.scalars(statement)).first()
        return row

    async def consume_state(
        self, state: ConnectionState, now: datetime
    ) -> PaymentConnection | None:
        """Mark the state's pending connection used; ``None`` if there is none (already
        used, refused, expired, or not this seller's)."""
        statement = (
            update(PaymentConnection)
            .where(
                self._seller_filter,
                col(PaymentConnection.id) == state.connection_id,
                col(PaymentConnection.state_nonce) == state.nonce,
                col(PaymentConnection.status) == PaymentConnectionStatus.PENDING,
                col(PaymentConnection.consumed_at).is_(None),
                col(PaymentConnection.state_expires_at) > now,
            )
            .values(consumed_at=now)
            .returning(PaymentConnection)
        )
        row: PaymentConnection | None = (await self.scope.session.scalars(statement)).first()
        return row

    async def newest_first(self) -> list[PaymentConnection]:
        """Every connection of the seller, newest first (a seller has a handful)."""
        statement = (
            select(PaymentConnection)
            .where(self._seller_filter)
            .order_by(col(PaymentConnection.created_at).desc(), col(PaymentConnection.id).desc())
            .limit(200)
        )
        return list((await self.scope.session.scalars(statement)).all())


class PaymentConnections:
    """Connecting, reading and ending sellers' own gateway accounts.

    :param sessions: app-role sessions; every read and write happens in a seller's scope
        (webhook routing reads the account directory through its owner function).
    :param registry: the installed gateways; only those implementing
        :class:`~pixecom_core.providers.PaymentGatewayConnections` can be connected.
    :param box: encrypts the stored accounts (the key version is stored with each).
    :param signer: signs and verifies the consent flow's ``state``.
    :param clock: the current time (tests fix it).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        box: SecretBox,
        signer: ConnectionStateSigner,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._box = box
        self._signer = signer
        self._clock = clock

    @classmethod
    def for_settings(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
    ) -> PaymentConnections:
        """The service with the deployment's token keys and JWT signing keys."""
        return cls(
            sessions,
            settings,
            registry,
            SecretBox(settings.token_encryption_keys),
            ConnectionStateSigner(settings.jwt_signing_keys, audience=STATE_AUDIENCE),
            clock=lambda: utcnow(),
        )

    # -- which gateways ---------------------------------------------------------------

    def connectable(self, gateway: str) -> PaymentGatewayConnections:
        """The gateway's connection protocol.

        :raises GatewayCannotConnect: ``unknown_gateway`` or ``gateway_cannot_connect``.
        """
        try:
            provider = self._registry.payment_gateway(gateway)
        except UnknownProviderError as exc:
            raise GatewayCannotConnect(
                f"cannot connect an account of gateway {gateway!r}: {exc}", code="unknown_gateway"
            ) from exc
        if not isinstance(provider, PaymentGatewayConnections):
            raise GatewayCannotConnect(
                f"the {gateway!r} plugin does not support sellers' own accounts (it does not "
                "implement PaymentGatewayConnections)",
                code="gateway_cannot_connect",
            )
        return provider

    def options(self) -> list[GatewayConnectOption]:
        """The installed gateways a seller can connect, and how."""
        options = []
        for gateway in self._registry.payment_gateways():
            if self.needs_connection(gateway):
                assert isinstance(gateway, PaymentGatewayConnections)
                options.append(
                    GatewayConnectOption(
                        gateway=gateway.identifier,
                        display_name=gateway.display_name,
                        kind=gateway.connection_kind,
                        credential_fields=tuple(gateway.credential_fields),
                    )
                )
        return sorted(options, key=lambda option: option.gateway)

    @staticmethod
    def needs_connection(gateway: PaymentGateway) -> bool:
        """Whether payments on ``gateway`` need the seller's own account (it implements
        connections). A gateway that does not collects on one account for everyone."""
        return isinstance(gateway, PaymentGatewayConnections)

    def browser_binding(self, connection_id: uuid.UUID) -> str:
        """The value binding a started flow to the browser that started it (the
        reference app keeps it in the cookie :func:`binding_cookie_name` names)."""
        return self._signer.browser_binding(connection_id)

    # -- connecting -------------------------------------------------------------------

    async def start(
        self, seller: SellerContext, gateway: str, *, redirect_uri: str
    ) -> StartedPaymentConnection:
        """Begin connecting ``gateway`` through its consent page: a ``PENDING``
        connection and the consent URL, whose signed state is good once, for 10 minutes.

        :raises GatewayCannotConnect: ``unknown_gateway``, ``gateway_cannot_connect``, or
            ``credentials_required`` for a gateway whose sellers enter credentials.
        """
        provider = self.connectable(gateway)
        if provider.connection_kind is not PaymentConnectionKind.OAUTH:
            raise GatewayCannotConnect(
                f"{gateway!r} has no consent page: send your account's credentials "
                f"({', '.join(field.name for field in provider.credential_fields)})",
                code="credentials_required",
            )
        now = self._clock()
        state = ConnectionState(
            seller_id=seller.seller_id,
            connection_id=uuid.uuid4(),
            nonce=secrets.token_urlsafe(24),
            expires_at=now + STATE_LIFETIME,
        )
        url = provider.authorization_url(
            state=self._signer.sign(state, issued_at=now), redirect_uri=redirect_uri
        )
        if url is None:
            raise GatewayCannotConnect(
                f"the {gateway!r} plugin gave no consent page", code="gateway_cannot_connect"
            )
        connection = PaymentConnection(
            seller_id=seller.seller_id,
            id=state.connection_id,
            gateway=gateway,
            state_nonce=state.nonce,
            state_expires_at=state.expires_at,
            redirect_uri=redirect_uri,
            created_at=now,
        )
        async with seller.scope() as scope:
            PaymentConnectionRepository(scope).add(connection)
        return StartedPaymentConnection(connection=_view(connection), authorization_url=url)

    async def connect_with_credentials(
        self,
        seller: SellerContext,
        gateway: str,
        fields: Mapping[str, str],
        *,
        webhook_base: str,
    ) -> ConnectionView:
        """Connect the account whose credentials the seller entered: the gateway checks
        them first; refused ones store nothing.

        :param webhook_base: the API's public base URL; the account's own webhook URL
            (:func:`account_webhook_url`) is built on it.
        :raises GatewayCannotConnect: ``consent_required`` for an OAuth gateway.
        :raises ConnectionRefused: ``missing_fields`` or ``credentials_refused``.
        :raises AccountTakenError: another seller has connected that account.
        """
        provider = self.connectable(gateway)
        if provider.connection_kind is not PaymentConnectionKind.CREDENTIALS:
            raise GatewayCannotConnect(
                f"{gateway!r} connects through its consent page: start without credentials",
                code="consent_required",
            )
        wanted = {field.name for field in provider.credential_fields}
        missing = sorted(name for name in wanted if not (fields.get(name) or "").strip())
        unknown = sorted(set(fields) - wanted)
        if missing or unknown:
            raise ConnectionRefused(
                f"{gateway!r} needs exactly these fields: {', '.join(sorted(wanted))}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; not used: {', '.join(unknown)}" if unknown else ""),
                code="missing_fields",
            )
        try:
            account = await provider.verify_credentials(
                {name: SecretStr(fields[name].strip()) for name in wanted}
            )
            account = await provider.prepare_account(
                account, webhook_url=account_webhook_url(webhook_base, gateway, account.account_id)
            )
        except ProviderAuthError as exc:
            raise ConnectionRefused(
                f"{gateway!r} did not accept these credentials: {exc}", code="credentials_refused"
            ) from exc
        now = self._clock()
        connection = PaymentConnection(
            seller_id=seller.seller_id,
            gateway=gateway,
            # No consent flow: a spent nonce keeps the row uniform.
            state_nonce=secrets.token_urlsafe(24),
            state_expires_at=now,
            consumed_at=now,
            created_at=now,
        )
        async with seller.scope() as scope:
            PaymentConnectionRepository(scope).add(connection)
        return await self._activate(seller.seller_id, connection.id, gateway, account)

    async def complete(
        self,
        *,
        state: str,
        code: str | None,
        error: str | None = None,
        acting_seller_id: uuid.UUID | None = None,
        browser_bindings: Mapping[str, str] | None = None,
        webhook_base: str,
    ) -> ConnectionView:
        """Finish a consent flow from the gateway's redirect, with the ad-account flow's
        checks in the same order (state, acting seller or browser binding, single use)
        before the gateway is asked anything.

        :raises ConnectionRefused: with the reason as ``code``.
        :raises PermissionDeniedError: the state belongs to another seller.
        :raises AccountTakenError: another seller has connected that account.
        """
        now = self._clock()
        verified = self._signer.verify_callback(
            state, now=now, acting_seller_id=acting_seller_id, browser_bindings=browser_bindings
        )
        seller_id = verified.seller_id
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            connection = await PaymentConnectionRepository(scope).consume_state(verified, now)
        if connection is None:
            raise ConnectionRefused(
                "this authorization was already used (or refused); start connecting again",
                code="state_used",
            )
        try:
            account = await self._exchange(connection, code=code, error=error)
            account = await self._prepare(connection.gateway, account, webhook_base)
        except ConnectionRefused as refused:
            await self._settle(
                seller_id,
                connection.id,
                status=PaymentConnectionStatus.REFUSED,
                refusal=str(refused),
            )
            raise
        return await self._activate(seller_id, connection.id, connection.gateway, account)

    async def _exchange(
        self, connection: PaymentConnection, *, code: str | None, error: str | None
    ) -> MerchantAccount:
        gateway = connection.gateway
        if error is not None:
            raise ConnectionRefused(
                f"access was not granted on the {gateway!r} consent page ({error})",
                code="access_denied",
            )
        if not code:
            raise ConnectionRefused(
                "the gateway's redirect carried no authorization code", code="missing_code"
            )
        try:
            return await self.connectable(gateway).exchange_code(
                code=code, redirect_uri=connection.redirect_uri or ""
            )
        except ProviderAuthError as exc:
            raise ConnectionRefused(
                f"{gateway!r} refused the authorization code (wrong, used or expired): {exc}; "
                "start connecting again",
                code="code_refused",
            ) from exc

    async def _prepare(
        self, gateway: str, account: MerchantAccount, webhook_base: str
    ) -> MerchantAccount:
        try:
            return await self.connectable(gateway).prepare_account(
                account, webhook_url=account_webhook_url(webhook_base, gateway, account.account_id)
            )
        except ProviderAuthError as exc:
            raise ConnectionRefused(
                f"{gateway!r} refused to set up the account: {exc}", code="account_refused"
            ) from exc

    async def _activate(
        self,
        seller_id: uuid.UUID,
        connection_id: uuid.UUID,
        gateway: str,
        account: MerchantAccount,
    ) -> ConnectionView:
        """Store ``account`` encrypted and make the connection the seller's ``ACTIVE``
        one on ``gateway``, ending the previous one, in one transaction."""
        now = self._clock()
        try:
            async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
                repository = PaymentConnectionRepository(scope)
                previous = await repository.active(gateway)
                if previous is not None and previous.id != connection_id:
                    await self._update(
                        scope,
                        previous.id,
                        status=PaymentConnectionStatus.DISCONNECTED,
                        ended_at=now,
                    )
                await self._update(
                    scope,
                    connection_id,
                    status=PaymentConnectionStatus.ACTIVE,
                    account_id=account.account_id,
                    account_ciphertext=self._box.encrypt(sealed_account(account)),
                    account_key_version=self._box.primary_version,
                    display_name=account.display_name,
                    connected_at=now,
                    refusal=None,
                )
                connection = await repository.get(connection_id)
                assert connection is not None
                return _view(connection)
        except IntegrityError as exc:
            # The directory's key: another seller's connection holds the account.
            await self._settle(
                seller_id,
                connection_id,
                status=PaymentConnectionStatus.REFUSED,
                refusal="this account is connected to another PixEcom seller",
            )
            raise AccountTakenError(
                f"this {gateway} account is connected to another seller; each seller connects "
                "an account of their own"
            ) from exc

    @staticmethod
    async def _update(scope: SellerScope, connection_id: uuid.UUID, **values: object) -> None:
        await scope.session.execute(
            update(PaymentConnection)
            .where(
                col(PaymentConnection.seller_id) == scope.seller_id,
                col(PaymentConnection.id) == connection_id,
            )
            .values(**values)
        )

    async def _settle(
        self, seller_id: uuid.UUID, connection_id: uuid.UUID, **values: object
    ) -> None:
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await self._update(scope, connection_id, **values)

    # -- reading ----------------------------------------------------------------------

    async def list(self, seller: SellerContext) -> list[ConnectionView]:
        """The seller's connections, newest first."""
        async with seller.scope() as scope:
            return [_view(c) for c in await PaymentConnectionRepository(scope).newest_first()]

    async def get(self, seller: SellerContext, connection_id: uuid.UUID) -> ConnectionView:
        """One of the seller's connections; :class:`NotFoundError` for any other id."""
        async with seller.scope() as scope:
            connection = await PaymentConnectionRepository(scope).get(connection_id)
        if connection is None:
            raise NotFoundError("no such payment connection")
        return _view(connection)

    async def account_for(
        self, scope: SellerScope, gateway: str, *, account_id: str | None = None
    ) -> MerchantAccount:
        """The seller's own account on ``gateway``, for a payment or refund, read in the
        caller's seller scope.

        :param account_id: the account a payment was made on, for its refund: that one,
            connected now, and no other.
        :raises PaymentConnectionRequired: no ``ACTIVE`` connection (never connected,
            disconnected, or revoked at the gateway), or not to ``account_id``.
        """
        connection = await PaymentConnectionRepository(scope).active(gateway)
        if connection is None or connection.account_ciphertext is None:
            raise PaymentConnectionRequired(
                f"connect your {gateway} account before taking payments on it"
            )
        if account_id is not None and connection.account_id != account_id:
            raise PaymentConnectionRequired(
                f"the payment was made on {gateway} account {account_id}, which is not the "
                "account connected now: connect it again to refund this payment"
            )
        return MerchantAccount.model_validate_json(self._box.decrypt(connection.account_ciphertext))

    async def has_active(self, scope: SellerScope) -> bool:
        """Whether the seller can take payments: an ``ACTIVE`` connection on an installed
        gateway, or an installed gateway that needs none."""
        for gateway in self._registry.payment_gateways():
            if not self.needs_connection(gateway):
                return True
            if await PaymentConnectionRepository(scope).active(gateway.identifier) is not None:
                return True
        return False

    async def account_by_id(
        self, gateway: str, account_id: str
    ) -> tuple[AccountOwner, MerchantAccount] | None:
        """The seller and stored account of the connection ``ACTIVE`` on ``account_id``
        (a delivery to the account's own webhook URL); ``None`` when none is."""
        async with self._sessions() as session:
            owner = await self.find_owner(session, gateway, account_id)
        if owner is None:
            return None
        async with open_seller_scope(self._sessions, owner.seller_id, self._settings) as scope:
            connection = await PaymentConnectionRepository(scope).get(owner.connection_id)
        if connection is None or connection.account_ciphertext is None:
            return None
        account = MerchantAccount.model_validate_json(
            self._box.decrypt(connection.account_ciphertext)
        )
        return owner, account

    async def find_owner(
        self, session: AsyncSession, gateway: str, account_id: str
    ) -> AccountOwner | None:
        """The seller whose active connection holds ``account_id`` (webhook routing)."""
        row = (
            await session.execute(_FIND_ACCOUNT, {"gateway": gateway, "account_id": account_id})
        ).first()
        if row is None:
            return None
        return AccountOwner(seller_id=row.seller_id, connection_id=row.connection_id)

    # -- ending -----------------------------------------------------------------------

    async def disconnect(self, seller: SellerContext, connection_id: uuid.UUID) -> ConnectionView:
        """End the seller's connection here and tell the gateway to drop PixEcom's access
        where it can (a gateway failing to answer does not keep the connection alive: the
        seller asked to stop). The stored account is erased.

        :raises NotFoundError: not the seller's connection.
        """
        async with seller.scope() as scope:
            connection = await PaymentConnectionRepository(scope).get(connection_id)
        if connection is None:
            raise NotFoundError("no such payment connection")
        if connection.status is PaymentConnectionStatus.ACTIVE and connection.account_ciphertext:
            account = MerchantAccount.model_validate_json(
                self._box.decrypt(connection.account_ciphertext)
            )
            try:
                await self.connectable(connection.gateway).disconnect(account)
            except (ProviderError, GatewayCannotConnect):
                pass  # PixEcom stops using it either way
        await self._settle(
            seller.seller_id,
            connection_id,
            status=(
                PaymentConnectionStatus.DISCONNECTED
                if connection.status is PaymentConnectionStatus.ACTIVE
                else connection.status
            ),
            account_ciphertext=None,
            account_key_version=None,
            ended_at=self._clock(),
        )
        return await self.get(seller, connection_id)

    async def revoke(
        self, session: AsyncSession, gateway: str, account_id: str
    ) -> uuid.UUID | None:
        """The gateway says the seller took PixEcom's access to ``account_id`` away: end the
        seller's connection ``REVOKED`` inside the caller's transaction (a webhook's).
        Return the seller whose connection it was, ``None`` when none was active on it."""
        owner = await self.find_owner(session, gateway, account_id)
        if owner is None:
            return None
        async with bind_seller_scope(session, owner.seller_id, self._settings) as scope:
            await self._update(
                scope,
                owner.connection_id,
                status=PaymentConnectionStatus.REVOKED,
                account_ciphertext=None,
                account_key_version=None,
                ended_at=self._clock(),
            )
        return owner.seller_id


__all__ = [
    "AccountOwner",
    "account_webhook_url",
    "AccountTakenError",
    "ConnectionView",
    "GatewayCannotConnect",
    "GatewayConnectOption",
    "PaymentConnectionRepository",
    "PaymentConnectionRequired",
    "PaymentConnections",
    "StartedPaymentConnection",
]
