"""Sellers connect their own ad accounts: the authorization flow, the chooser, disconnect.

Core speaks to networks only through :class:`~pixecom_core.providers.AdNetworkAuthorization`
(issue 14 item 3), so a new network needs a plugin and no change here. The flow:

1. :meth:`AdConnections.start` (``POST /ad-accounts/connections``) stores a ``PENDING``
   connection with a random nonce and answers the network's consent URL, whose ``state``
   is signed by :class:`ConnectionStateSigner` and names the seller, the connection and
   the nonce. It is valid :data:`STATE_LIFETIME`.
2. The network sends the seller's browser back with a code:
   :meth:`AdConnections.complete` checks the state's signature and expiry, that the
   request comes from the seller who started the flow — their credentials, or the
   browser binding (:meth:`AdConnections.browser_binding`, a cookie the reference app
   sets when the flow starts) — so nobody can start a flow and have someone else approve
   it into their account (OAuth login CSRF, RFC 6749 section 10.12), consumes the nonce in a
   committed transaction of its own (so the state works once, even if the exchange
   fails), exchanges the code and refuses a grant that lacks a required scope. Only then
   is the grant stored, its token encrypted with :class:`SecretBox` under a key version,
   as :mod:`pixecom_core.ad_accounts.tokens` does for ad accounts.
   A network whose sellers paste a token skips the consent page:
   :meth:`AdConnections.connect_with_token`.
3. :meth:`AdConnections.reachable_accounts` lists what the grant reaches;
   :meth:`AdConnections.connect_accounts` connects the chosen ones (or reconnects them:
   a new token clears ``needs_reconnect`` and the sync error the problems feed shows).
4. :meth:`AdConnections.disconnect` stops syncing an account and deletes its token; its
   history (campaigns, stats) stays.

Tokens never leave this module in clear except towards the network's plugin: no return
value, log line or error message carries one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from pixecom_core.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PixecomError,
)
from pixecom_core.models.ads import (
    AdAccount,
    AdAccountStatus,
    AdConnection,
    AdConnectionStatus,
)
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError
from pixecom_core.providers.ad_networks import (
    AdNetworkAuthorization,
    AdNetworkGrant,
    AuthorizationKind,
    ReachableAdAccount,
)
from pixecom_core.providers.errors import ProviderAuthError
from pixecom_core.security.access_tokens import key_id
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.backfill import plan_backfill
from pixecom_core.tenancy import Page, PageRequest, SellerContext, SellerRepository, SellerScope

#: How long a seller has to finish the network's consent page.
STATE_LIFETIME = timedelta(minutes=10)
#: A token that stops working sooner than this is shown as ``token_expiring``.
TOKEN_EXPIRING_WITHIN = timedelta(days=7)
#: Most accounts one grant may list in the chooser (SCALE-4: nothing unbounded).
MAX_REACHABLE_ACCOUNTS = 2000

_STATE_ALGORITHM = "HS256"
_STATE_ISSUER = "pixecom"
#: Not the access tokens' audience: a state is never accepted as a login, nor a login as
#: a state, though the same keys sign both.
_STATE_AUDIENCE = "pixecom-ad-connection"


def utcnow() -> datetime:
    """The default clock of :class:`AdConnections`."""
    return datetime.now(UTC)


class ConnectionRefused(PixecomError):
    """The authorization flow was refused; nothing was stored. ``code`` says why:
    ``invalid_state``, ``state_expired``, ``state_used``, ``access_denied``,
    ``missing_code``, ``code_refused``, ``token_refused`` or ``missing_scopes``."""

    code = "connection_refused"


class NetworkCannotConnect(PixecomError):
    """The network named cannot be connected this way; ``code`` says why:
    ``unknown_network`` (no plugin provides it), ``network_cannot_connect`` (its plugin
    predates :class:`~pixecom_core.providers.AdNetworkAuthorization`) or
    ``token_required`` (it has no consent page: paste a token)."""

    code = "unknown_network"


# -- the signed state ------------------------------------------------------------------


#: Cookies holding browser bindings start so: one cookie per flow in progress.
BINDING_COOKIE_PREFIX = "pixecom_connect_"


def binding_cookie_name(connection_id: uuid.UUID) -> str:
    """The cookie holding a connection's browser binding (one per flow in progress)."""
    return f"{BINDING_COOKIE_PREFIX}{connection_id.hex}"


def _binding(key: str, audience: str, connection_id: uuid.UUID) -> str:
    message = f"{audience}-browser:{connection_id}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ConnectionState:
    """What a verified ``state`` says: whose flow, which connection, which nonce."""

    seller_id: uuid.UUID
    connection_id: uuid.UUID
    nonce: str
    expires_at: datetime


class ConnectionStateSigner:
    """Signs and verifies the ``state`` of a connect flow.

    An HS256 JWT signed with the API's own ``PIXECOM_JWT_SIGNING_KEYS`` (the first key
    signs, every key verifies by ``kid``), so a state rotates with the keys that sign
    logins and needs no secret of its own; its audience differs from an access token's, so
    neither is accepted as the other. The state carries no secret: a seller id, a
    connection id and a nonce, which is also stored in the connection and consumed once.

    :param audience: what the state is for: ad-account connections by default; payment
        connections sign with their own, so neither flow accepts the other's state (or
        browser binding).
    """

    def __init__(self, keys: list[SecretStr], *, audience: str = _STATE_AUDIENCE) -> None:
        if not keys:
            raise ValueError("at least one JWT signing key is required")
        self._audience = audience
        values = [key.get_secret_value() for key in keys]
        self._signing_key = values[0]
        self._verifying = {key_id(value): value for value in values}

    def sign(self, state: ConnectionState, *, issued_at: datetime) -> str:
        """The signed ``state`` value to hand to the network."""
        claims = {
            "sid": str(state.seller_id),
            "cid": str(state.connection_id),
            "nonce": state.nonce,
            "iat": int(issued_at.timestamp()),
            "exp": int(state.expires_at.timestamp()),
            "iss": _STATE_ISSUER,
            "aud": self._audience,
        }
        return jwt.encode(
            claims,
            self._signing_key,
            algorithm=_STATE_ALGORITHM,
            headers={"kid": key_id(self._signing_key)},
        )

    def browser_binding(self, connection_id: uuid.UUID) -> str:
        """The value that ties a connection to the browser that started it (the reference
        app sets it as a cookie): an HMAC of the connection id under the signing key."""
        return _binding(self._signing_key, self._audience, connection_id)

    def binds(self, connection_id: uuid.UUID, value: str | None) -> bool:
        """Whether ``value`` is the browser binding of ``connection_id`` under any key."""
        return value is not None and any(
            hmac.compare_digest(_binding(key, self._audience, connection_id), value)
            for key in self._verifying.values()
        )

    def verify(self, value: str, *, now: datetime) -> ConnectionState:
        """The state ``value`` says, if its signature holds and it has not expired at ``now``.

        :raises ConnectionRefused: ``invalid_state`` (tampered, foreign, malformed) or
            ``state_expired``.
        """
        try:
            key = self._verifying.get(str(jwt.get_unverified_header(value).get("kid")))
            if key is None:
                raise jwt.InvalidKeyError("unknown key")
            # Expiry is checked below against the service's clock, not the machine's.
            claims = jwt.decode(
                value,
                key,
                algorithms=[_STATE_ALGORITHM],
                audience=self._audience,
                issuer=_STATE_ISSUER,
                options={"require": ["sid", "cid", "nonce", "exp"], "verify_exp": False},
            )
            state = ConnectionState(
                seller_id=uuid.UUID(claims["sid"]),
                connection_id=uuid.UUID(claims["cid"]),
                nonce=str(claims["nonce"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise ConnectionRefused(
                "the authorization state is not valid; start connecting again",
                code="invalid_state",
            ) from exc
        if state.expires_at <= now:
            raise ConnectionRefused(
                "the authorization took longer than 10 minutes and expired; start connecting again",
                code="state_expired",
            )
        return state

    def verify_callback(
        self,
        value: str,
        *,
        now: datetime,
        acting_seller_id: uuid.UUID | None,
        browser_bindings: Mapping[str, str] | None,
    ) -> ConnectionState:
        """The state a consent callback carries, once the callback is shown to come from
        the seller who started the flow: the state verifies (:meth:`verify`); the
        request's bearer token, if any, is that seller's; without one, the request's
        cookies hold the flow's browser binding (:func:`binding_cookie_name`). Neither
        check uses the state up, so the seller's own browser can still finish it.

        :raises ConnectionRefused: ``invalid_state``, ``state_expired`` or
            ``state_not_bound``.
        :raises PermissionDeniedError: ``state_of_another_seller``.
        """
        state = self.verify(value, now=now)
        if acting_seller_id is not None and acting_seller_id != state.seller_id:
            raise PermissionDeniedError(
                "this authorization was started by another seller; start connecting from your "
                "own account",
                code="state_of_another_seller",
            )
        binding = (browser_bindings or {}).get(binding_cookie_name(state.connection_id))
        if acting_seller_id is None and not self.binds(state.connection_id, binding):
            raise ConnectionRefused(
                "this authorization was not started from this browser: finish it in the "
                "browser (or with the seller's access token) that started connecting",
                code="state_not_bound",
            )
        return state


# -- values returned to callers ----------------------------------------------------------


class AccountState(StrEnum):
    """How an ad account stands for the seller, most urgent first."""

    DISCONNECTED = "disconnected"
    NEEDS_RECONNECT = "needs_reconnect"
    TOKEN_EXPIRING = "token_expiring"
    BACKFILLING = "backfilling"
    ACTIVE = "active"


@dataclass(frozen=True)
class AccountView:
    """One ad account as the seller sees it (never its token).

    :ivar backfill_progress: 0 to 1 while ``backfilling``, else ``None``.
    :ivar token_expires_at: when its token stops working, when the network said.
    """

    id: uuid.UUID
    network: str
    external_id: str
    name: str
    currency: str
    timezone: str
    state: AccountState
    backfill_progress: float | None
    token_expires_at: datetime | None
    last_synced_at: datetime | None
    connection_id: uuid.UUID | None


@dataclass(frozen=True)
class StartedConnection:
    """A connection waiting for the seller on the network's consent page (``None`` for a
    connection authorized at once from a pasted token)."""

    id: uuid.UUID
    network: str
    status: AdConnectionStatus
    authorization_url: str | None


@dataclass(frozen=True)
class CompletedConnection:
    """A connection the callback authorized: whose it is, for the redirect to the chooser."""

    seller_id: uuid.UUID
    connection_id: uuid.UUID


@dataclass(frozen=True)
class ReachableAccountView:
    """An account the connection's grant reaches, flagged when the seller already has it
    connected (``ad_account_id`` names the seller's row, disconnected ones included)."""

    external_id: str
    name: str
    currency: str
    timezone: str
    network_status: str
    connected: bool
    ad_account_id: uuid.UUID | None


def _backfill_progress(account: AdAccount) -> float | None:
    since, until = account.backfill_since, account.backfill_until
    if since is None or until is None or until < since:
        return None
    done: date | None = account.backfill_done_through
    if done is not None and done >= until:
        return None
    total = (until - since).days + 1
    finished = 0 if done is None or done < since else (done - since).days + 1
    return finished / total


def account_state(account: AdAccount, *, now: datetime) -> tuple[AccountState, float | None]:
    """The seller-facing state of ``account`` at ``now`` and the backfill's progress.

    Most urgent first: disconnected, then needs reconnecting, then a token that expires
    within :data:`TOKEN_EXPIRING_WITHIN`, then a backfill that has not reached
    ``backfill_until`` (progress = days done / days in the window), else active.
    """
    progress = _backfill_progress(account)
    if account.status is AdAccountStatus.DISCONNECTED:
        return AccountState.DISCONNECTED, None
    if account.needs_reconnect:
        return AccountState.NEEDS_RECONNECT, progress
    expires = account.token_expires_at
    if expires is not None and expires - now <= TOKEN_EXPIRING_WITHIN:
        return AccountState.TOKEN_EXPIRING, progress
    if progress is not None:
        return AccountState.BACKFILLING, progress
    return AccountState.ACTIVE, None


def _view(account: AdAccount, now: datetime) -> AccountView:
    state, progress = account_state(account, now=now)
    return AccountView(
        id=account.id,
        network=account.network,
        external_id=account.external_id,
        name=account.name,
        currency=account.currency,
        timezone=account.timezone,
        state=state,
        backfill_progress=progress,
        token_expires_at=account.token_expires_at,
        last_synced_at=account.last_synced_at,
        connection_id=account.connection_id,
    )


# -- repositories ----------------------------------------------------------------------


class AdAccountRepository(SellerRepository[AdAccount]):
    """The seller's ad accounts."""

    model = AdAccount

    async def by_external_ids(self, network: str, external_ids: list[str]) -> list[AdAccount]:
        """The seller's accounts of ``network`` among ``external_ids``."""
        statement = select(AdAccount).where(
            self._seller_filter,
            col(AdAccount.network) == network,
            col(AdAccount.external_id).in_(external_ids),
        )
        return list((await self.scope.session.scalars(statement)).all())


class AdConnectionRepository(SellerRepository[AdConnection]):
    """The seller's authorization flows and grants."""

    model = AdConnection

    async def consume_state(self, state: ConnectionState, now: datetime) -> AdConnection | None:
        """Mark the pending connection ``state`` names as used; ``None`` if there is none
        (already used, refused, expired, or not this seller's)."""
        statement = (
            update(AdConnection)
            .where(
                self._seller_filter,
                col(AdConnection.id) == state.connection_id,
                col(AdConnection.state_nonce) == state.nonce,
                col(AdConnection.status) == AdConnectionStatus.PENDING,
                col(AdConnection.consumed_at).is_(None),
                col(AdConnection.state_expires_at) > now,
            )
            .values(consumed_at=now)
            .returning(AdConnection)
        )
        row: AdConnection | None = (await self.scope.session.scalars(statement)).first()
        return row

    async def settle(self, connection_id: uuid.UUID, **values: Any) -> None:
        """Write the outcome of the flow to the connection."""
        await self.scope.session.execute(
            update(AdConnection)
            .where(self._seller_filter, col(AdConnection.id) == connection_id)
            .values(**values)
        )


# -- the service -----------------------------------------------------------------------


class AdConnections:
    """Connecting, listing and disconnecting a seller's own ad accounts.

    :param sessions: app-role sessions; every read and write happens in a seller's scope.
    :param registry: the installed ad networks; only those implementing
        :class:`~pixecom_core.providers.AdNetworkAuthorization` can be connected.
    :param box: encrypts grants and account tokens (the key version is stored with each).
    :param signer: signs and verifies the flow's ``state``.
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
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> AdConnections:
        """The service with the deployment's token keys and JWT signing keys, on the wall
        clock (:func:`utcnow`) unless ``clock`` is given."""
        return cls(
            sessions,
            settings,
            registry,
            SecretBox(settings.token_encryption_keys),
            ConnectionStateSigner(settings.jwt_signing_keys),
            clock=clock or (lambda: utcnow()),
        )

    def browser_binding(self, connection_id: uuid.UUID) -> str:
        """The value binding a started connection to the browser that started it; give it
        back to :meth:`complete` (the reference app keeps it in the cookie
        :func:`binding_cookie_name` names). Not a secret to the seller: an HMAC of the
        connection id that only PixEcom can compute."""
        return self._signer.browser_binding(connection_id)

    def _network(self, network: str) -> AdNetworkAuthorization:
        try:
            provider = self._registry.ad_network(network)
        except UnknownProviderError as exc:
            raise NetworkCannotConnect(
                f"cannot connect accounts of network {network!r}: {exc}", code="unknown_network"
            ) from exc
        if not isinstance(provider, AdNetworkAuthorization):
            raise NetworkCannotConnect(
                f"the {network!r} plugin does not support connecting accounts (it does not "
                "implement AdNetworkAuthorization); upgrade it",
                code="network_cannot_connect",
            )
        return provider

    def _grant(self, connection: AdConnection) -> AdNetworkGrant:
        assert connection.token_ciphertext is not None
        return AdNetworkGrant(
            access_token=SecretStr(self._box.decrypt(connection.token_ciphertext)),
            expires_at=connection.expires_at,
            scopes=tuple(connection.scopes),
            subject=connection.subject,
        )

    def _grant_columns(self, grant: AdNetworkGrant, now: datetime) -> dict[str, Any]:
        return {
            "status": AdConnectionStatus.AUTHORIZED,
            "token_ciphertext": self._box.encrypt(grant.access_token.get_secret_value()),
            "token_key_version": self._box.primary_version,
            "scopes": list(grant.scopes),
            "expires_at": grant.expires_at,
            "subject": grant.subject,
            "authorized_at": now,
            "refusal": None,
        }

    @staticmethod
    def _missing_scopes(provider: AdNetworkAuthorization, grant: AdNetworkGrant) -> list[str]:
        return sorted(set(provider.required_scopes) - set(grant.scopes))

    async def start(
        self, seller: SellerContext, network: str, *, redirect_uri: str
    ) -> StartedConnection:
        """Begin connecting ``network`` for ``seller``: a ``PENDING`` connection and the
        network's consent URL, whose signed ``state`` is good once, for 10 minutes.

        :param redirect_uri: the absolute URL of the callback; stored, so the code
            exchange names exactly the URI the consent page was given.
        :raises NetworkCannotConnect: ``unknown_network``, ``network_cannot_connect``, or
            ``token_required`` for a network whose sellers paste a token
            (use :meth:`connect_with_token`).
        """
        provider = self._network(network)
        if provider.authorization_kind is AuthorizationKind.TOKEN:
            raise NetworkCannotConnect(
                f"{network!r} has no consent page: send the token its own UI issued as "
                '"access_token"',
                code="token_required",
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
            raise NetworkCannotConnect(
                f"the {network!r} plugin gave no consent page", code="network_cannot_connect"
            )
        async with seller.scope() as scope:
            AdConnectionRepository(scope).add(
                AdConnection(
                    seller_id=seller.seller_id,
                    id=state.connection_id,
                    network=network,
                    state_nonce=state.nonce,
                    state_expires_at=state.expires_at,
                    redirect_uri=redirect_uri,
                    created_at=now,
                )
            )
        return StartedConnection(
            id=state.connection_id,
            network=network,
            status=AdConnectionStatus.PENDING,
            authorization_url=url,
        )

    async def connect_with_token(
        self, seller: SellerContext, network: str, access_token: SecretStr
    ) -> StartedConnection:
        """Authorize a connection at once from a token the seller pasted (a network
        without a consent page, or a token the network issued out of band).

        The network checks the token (``grant_from_token``); a refused token or one
        without a required scope stores nothing.

        :raises ConnectionRefused: ``token_refused`` or ``missing_scopes``.
        """
        provider = self._network(network)
        try:
            grant = await provider.grant_from_token(access_token)
        except ProviderAuthError as exc:
            raise ConnectionRefused(
                f"{network!r} did not accept the token: {exc}", code="token_refused"
            ) from exc
        missing = self._missing_scopes(provider, grant)
        if missing:
            raise ConnectionRefused(
                _missing_scopes_message(network, missing), code="missing_scopes"
            )
        now = self._clock()
        connection = AdConnection(
            seller_id=seller.seller_id,
            network=network,
            # A pasted token has no state to consume: a spent nonce keeps the row uniform.
            state_nonce=secrets.token_urlsafe(24),
            state_expires_at=now,
            consumed_at=now,
            created_at=now,
        )
        for name, value in self._grant_columns(grant, now).items():
            setattr(connection, name, value)
        async with seller.scope() as scope:
            AdConnectionRepository(scope).add(connection)
        return StartedConnection(
            id=connection.id,
            network=network,
            status=AdConnectionStatus.AUTHORIZED,
            authorization_url=None,
        )

    async def complete(
        self,
        *,
        state: str,
        code: str | None,
        error: str | None = None,
        acting_seller_id: uuid.UUID | None = None,
        browser_bindings: Mapping[str, str] | None = None,
    ) -> CompletedConnection:
        """Finish a consent flow from the network's redirect.

        Checks, in order: the state's signature and expiry; that ``acting_seller_id``
        (the seller whose credentials the request carried, if any) is the state's, or
        without credentials that ``browser_bindings`` (the request's cookies) hold this
        connection's binding under :func:`binding_cookie_name` (the browser
        that started the flow is the one coming back; neither refuses, without using the
        state up, so the seller's own browser can still finish it); that
        the state's nonce is still pending — and consumes it, committed, before anything
        else, so the state is refused the second time whatever happens next. Then the
        network's own refusal (``error``), the code exchange and the required scopes. Only
        a grant that passed all of them is stored (encrypted); a refusal is written to the
        connection as ``REFUSED`` with its reason, and no grant.

        :raises ConnectionRefused: with the reason as ``code``.
        :raises PermissionDeniedError: the state belongs to another seller.
        """
        now = self._clock()
        verified = self._signer.verify_callback(
            state, now=now, acting_seller_id=acting_seller_id, browser_bindings=browser_bindings
        )
        seller = SellerContext(
            seller_id=verified.seller_id, sessions=self._sessions, settings=self._settings
        )
        async with seller.scope() as scope:
            connection = await AdConnectionRepository(scope).consume_state(verified, now)
        if connection is None:
            raise ConnectionRefused(
                "this authorization was already used (or refused); start connecting again",
                code="state_used",
            )
        try:
            grant = await self._exchange(connection, code=code, error=error)
        except ConnectionRefused as refused:
            async with seller.scope() as scope:
                await AdConnectionRepository(scope).settle(
                    connection.id, status=AdConnectionStatus.REFUSED, refusal=str(refused)
                )
            raise
        async with seller.scope() as scope:
            await AdConnectionRepository(scope).settle(
                connection.id, **self._grant_columns(grant, now)
            )
        return CompletedConnection(seller_id=verified.seller_id, connection_id=connection.id)

    async def _exchange(
        self, connection: AdConnection, *, code: str | None, error: str | None
    ) -> AdNetworkGrant:
        network = connection.network
        if error is not None:
            raise ConnectionRefused(
                f"access was not granted on the {network!r} consent page ({error})",
                code="access_denied",
            )
        if not code:
            raise ConnectionRefused(
                "the network's redirect carried no authorization code", code="missing_code"
            )
        provider = self._network(network)
        try:
            grant = await provider.exchange_code(
                code=code, redirect_uri=connection.redirect_uri or ""
            )
        except ProviderAuthError as exc:
            raise ConnectionRefused(
                f"{network!r} refused the authorization code (wrong, used or expired): {exc}; "
                "start connecting again",
                code="code_refused",
            ) from exc
        missing = self._missing_scopes(provider, grant)
        if missing:
            raise ConnectionRefused(
                _missing_scopes_message(network, missing), code="missing_scopes"
            )
        return grant

    async def _authorized(self, scope: SellerScope, connection_id: uuid.UUID) -> AdConnection:
        connection = await AdConnectionRepository(scope).get(connection_id)
        if connection is None:
            raise NotFoundError("no such connection")
        if connection.status is not AdConnectionStatus.AUTHORIZED:
            raise InvalidRequestError(
                f"the connection is {connection.status.value.lower()}, not authorized; "
                "connect again",
                code="connection_not_authorized",
            )
        return connection

    async def _reachable(
        self, connection: AdConnection
    ) -> tuple[AdNetworkAuthorization, list[ReachableAdAccount]]:
        provider = self._network(connection.network)
        accounts: list[ReachableAdAccount] = []
        async for account in provider.list_ad_accounts(self._grant(connection)):
            accounts.append(account)
            if len(accounts) >= MAX_REACHABLE_ACCOUNTS:
                break
        return provider, accounts

    async def reachable_accounts(
        self, seller: SellerContext, connection_id: uuid.UUID
    ) -> list[ReachableAccountView]:
        """Every ad account the connection's grant reaches (at most
        :data:`MAX_REACHABLE_ACCOUNTS`), each flagged if the seller has it connected.

        :raises NotFoundError: no such connection of this seller.
        :raises InvalidRequestError: ``connection_not_authorized``.
        """
        async with seller.scope() as scope:
            connection = await self._authorized(scope, connection_id)
        _, reachable = await self._reachable(connection)
        async with seller.scope() as scope:
            known = await AdAccountRepository(scope).by_external_ids(
                connection.network, [account.account_id for account in reachable]
            )
        by_external_id = {account.external_id: account for account in known}
        views = []
        for account in reachable:
            existing = by_external_id.get(account.account_id)
            views.append(
                ReachableAccountView(
                    external_id=account.account_id,
                    name=account.name,
                    currency=account.currency,
                    timezone=account.timezone,
                    network_status=account.status.value,
                    connected=existing is not None
                    and existing.status is not AdAccountStatus.DISCONNECTED,
                    ad_account_id=existing.id if existing is not None else None,
                )
            )
        return views

    async def connect_accounts(
        self, seller: SellerContext, connection_id: uuid.UUID, external_ids: list[str]
    ) -> list[AccountView]:
        """Connect the accounts ``external_ids`` names through the connection's grant.

        Name, currency and time zone come from the network's list; the token is the
        grant's, encrypted again for each account. An account the seller already has is
        reconnected: new token, ``ACTIVE``, ``needs_reconnect`` and its sync error (the
        problem the seller saw) cleared; its history stays. All or nothing: an id the
        grant does not reach refuses the whole request.

        :raises InvalidRequestError: ``unreachable_accounts`` (the message lists them),
            ``connection_not_authorized``.
        :raises NotFoundError: no such connection of this seller.
        """
        wanted = list(dict.fromkeys(external_ids))
        async with seller.scope() as scope:
            connection = await self._authorized(scope, connection_id)
        _, reachable = await self._reachable(connection)
        by_id = {account.account_id: account for account in reachable}
        unreachable = [external_id for external_id in wanted if external_id not in by_id]
        if unreachable:
            raise InvalidRequestError(
                "the connection does not reach these accounts: " + ", ".join(unreachable),
                code="unreachable_accounts",
            )
        token = self._grant(connection).access_token.get_secret_value()
        now = self._clock()
        connected: list[AdAccount] = []
        async with seller.scope() as scope:
            known = await AdAccountRepository(scope).by_external_ids(connection.network, wanted)
            reconnected = {account.id for account in known}
            for external_id in wanted:
                account = by_id[external_id]
                values: dict[str, Any] = {
                    "name": account.name,
                    "currency": account.currency,
                    "timezone": account.timezone,
                    "token_ciphertext": self._box.encrypt(token),
                    "token_key_version": self._box.primary_version,
                    "token_expires_at": connection.expires_at,
                    "connection_id": connection.id,
                    "status": AdAccountStatus.ACTIVE,
                    "needs_reconnect": False,
                    "last_sync_error": None,
                    "sync_failures": 0,
                    "throttled_until": None,
                    "disconnected_at": None,
                }
                statement = (
                    insert(AdAccount)
                    .values(
                        seller_id=seller.seller_id,
                        id=uuid.uuid4(),
                        network=connection.network,
                        external_id=external_id,
                        created_at=now,
                        **values,
                    )
                    .on_conflict_do_update(
                        constraint="uq_ad_accounts_seller_id_network_external_id", set_=values
                    )
                    .returning(AdAccount)
                )
                connected.append((await scope.session.scalars(statement)).one())
        # History to fetch (issue 14 item 4): the last weeks of a new account, the days a
        # reconnected one missed while its token was refused; the backfill jobs fetch it.
        for row in connected:
            await plan_backfill(
                seller,
                row.id,
                days=self._settings.backfill_days,
                now=now,
                catch_up=row.id in reconnected,
            )
        async with seller.scope() as scope:
            refreshed = await AdAccountRepository(scope).by_external_ids(connection.network, wanted)
        refreshed.sort(key=lambda row: wanted.index(row.external_id))
        return [_view(row, now) for row in refreshed]

    async def list_accounts(self, seller: SellerContext, page: PageRequest) -> Page[AccountView]:
        """One page of the seller's ad accounts, oldest first, with their states."""
        now = self._clock()
        async with seller.scope() as scope:
            accounts = await AdAccountRepository(scope).list(page)
        return Page(
            items=[_view(account, now) for account in accounts.items],
            next_cursor=accounts.next_cursor,
            limit=accounts.limit,
        )

    async def disconnect(self, seller: SellerContext, account_id: uuid.UUID) -> None:
        """Disconnect an ad account: ``DISCONNECTED`` (syncs skip it), its stored token
        deleted, its sync problem cleared; its campaigns and stats stay. Disconnecting
        twice is a no-op.

        :raises NotFoundError: no such account of this seller.
        """
        now = self._clock()
        async with seller.scope() as scope:
            repository = AdAccountRepository(scope)
            account = await repository.get(account_id)
            if account is None:
                raise NotFoundError("no such ad account")
            if account.status is not AdAccountStatus.DISCONNECTED:
                account.disconnected_at = now
            account.status = AdAccountStatus.DISCONNECTED
            account.token_ciphertext = None
            account.token_key_version = None
            account.needs_reconnect = False
            account.last_sync_error = None


def _missing_scopes_message(network: str, missing: list[str]) -> str:
    return (
        f"the {network!r} authorization lacks the permissions syncing needs: "
        f"{', '.join(missing)}; connect again and leave them ticked on the consent page"
    )
