"""Accounts: seller sign-up, login, rotating refresh tokens, logout.

The rules (SEC-4):

- passwords are argon2id hashes; an unknown email costs the same time as a wrong password;
- a login answers a short-lived access JWT (key id in the header) and a refresh token
  stored only as a peppered hash;
- every refresh rotates the token; presenting a token that was already rotated is
  reuse — someone holds a copy — and revokes the whole family (every token descended
  from that login), and the family's access tokens are refused from then on;
- repeated wrong passwords lock the (account, client address) pair; for the account as
  a whole they only slow down, then challenge, addresses that never logged in to it — so
  knowing an e-mail address is not enough to lock its owner out (issue 12,
  :class:`pixecom_core.security.rate_limits.LoginGuard`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from pixecom_core.errors import AuthenticationError, ConflictError
from pixecom_core.models.sellers import RefreshToken, Seller, User, UserRole
from pixecom_core.security.access_tokens import (
    AccessClaims,
    AccessTokenKeyring,
    InvalidAccessToken,
)
from pixecom_core.security.login_challenges import Challenge
from pixecom_core.security.passwords import hash_password, needs_rehash, verify_password
from pixecom_core.security.rate_limits import LoginGuard
from pixecom_core.security.refresh_tokens import MalformedRefreshToken, RefreshTokenHasher
from pixecom_core.settings import Settings
from pixecom_core.tenancy import open_seller_scope

_FIND_LOGIN = text("SELECT seller_id, user_id FROM pixecom_find_login(:email)")

#: One message for every failed login, so a response never says whether the email exists.
BAD_CREDENTIALS = "email or password is wrong"


class RefreshTokenReusedError(AuthenticationError):
    """A rotated refresh token came back: the family it belonged to is now revoked."""

    code = "refresh_token_reused"


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh answers."""

    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


@dataclass(frozen=True)
class SignUp:
    """A new seller and its first user (the owner)."""

    seller_name: str
    reporting_currency: str
    timezone: str
    email: str
    password: str
    display_name: str | None = None


async def create_seller_account(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, request: SignUp
) -> tuple[Seller, User]:
    """Create a seller and its owner user; :class:`ConflictError` if the email is taken.

    The seller row is inserted inside a scope opened for its new id: the ``sellers``
    policy admits exactly that row.
    """
    seller_id = uuid.uuid4()
    try:
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            seller = Seller(
                id=seller_id,
                name=request.seller_name,
                reporting_currency=request.reporting_currency,
                timezone=request.timezone,
            )
            scope.session.add(seller)
            await scope.session.flush()
            user = User(
                seller_id=seller_id,
                email=request.email.strip(),
                password_hash=hash_password(request.password),
                display_name=request.display_name,
                role=UserRole.OWNER,
            )
            scope.session.add(user)
            await scope.session.flush()
    except IntegrityError as exc:
        if "login_identities" in str(exc.orig):
            raise ConflictError(
                "an account with this email already exists", code="email_taken"
            ) from exc
        raise
    return seller, user


async def find_login(
    sessions: async_sessionmaker[AsyncSession], email: str
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(seller_id, user_id) of the account with ``email``, through the login directory."""
    async with sessions() as session:
        row = (await session.execute(_FIND_LOGIN, {"email": email})).first()
    return (row.seller_id, row.user_id) if row is not None else None


class SessionRevocations:
    """Revoked login families, in Redis, checked on every authenticated request.

    Access tokens are stateless; to refuse them before they expire, the family of a
    logged-out or compromised login is remembered for one access-token lifetime (after
    which every access token of that family has expired anyway).
    """

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._prefix = f"{settings.redis_key_prefix}revoked-family:"
        self._ttl = settings.access_token_ttl_seconds

    async def revoke(self, family_id: uuid.UUID) -> None:
        """Refuse the access tokens of ``family_id`` from now on."""
        await self._redis.set(f"{self._prefix}{family_id}", "1", ex=self._ttl)

    async def is_revoked(self, claims: AccessClaims) -> bool:
        """Whether the login that ``claims`` belongs to was revoked."""
        key = self.key_for(claims)
        return key is not None and bool(await self._redis.exists(key))

    def key_for(self, claims: AccessClaims) -> str | None:
        """The key that exists in Redis while the login of ``claims`` is revoked (None
        for a token of no login family), for a caller that checks it in a round trip
        of its own (the API, with the seller's quota)."""
        if claims.family_id is None:
            return None
        return f"{self._prefix}{claims.family_id}"


def session_revoked() -> AuthenticationError:
    """The error for an access token whose login was ended (logout, reuse detected)."""
    return AuthenticationError("this session was ended", code="session_revoked")


class AccountService:
    """Sign-up, login, refresh and logout against the app-role database.

    :param sessions: the process's app-role session factory (RLS applies).
    :param settings: keys, token lifetimes and lockout policy.
    :param login_guard: per-IP throttle, per-(account, address) lock, per-account
        slow-down and proof-of-work challenge (Redis).
    :param revocations: where revoked login families are recorded (Redis).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        login_guard: LoginGuard,
        revocations: SessionRevocations,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._guard = login_guard
        self._revocations = revocations
        self._keyring = AccessTokenKeyring(
            settings.jwt_signing_keys, ttl=timedelta(seconds=settings.access_token_ttl_seconds)
        )
        self._hasher = RefreshTokenHasher(settings.refresh_token_peppers)

    # -- sign-up ----------------------------------------------------------------------

    async def sign_up(self, request: SignUp) -> tuple[Seller, User]:
        """Create a seller and its owner user (see :func:`create_seller_account`)."""
        return await create_seller_account(self._sessions, self._settings, request)

    # -- login ------------------------------------------------------------------------

    def issue_login_challenge(self) -> Challenge:
        """A proof-of-work challenge for a login that needs one (ALTCHA format)."""
        return self._guard.issue_challenge()

    async def log_in(
        self, *, email: str, password: str, client_ip: str, challenge: str | None = None
    ) -> TokenPair:
        """Check the password and open a new login (refresh-token family).

        ``challenge`` is a solved proof-of-work payload, needed only when the account had
        many failures and ``client_ip`` never logged in to it. Before looking at the
        password this raises :class:`pixecom_core.security.rate_limits.RateLimited` (or
        its subclass ``AccountLocked``) when the IP or the (account, IP) pair is
        throttled, and ``ChallengeRequired`` / ``InvalidChallenge``
        (:mod:`pixecom_core.security.login_challenges`); then
        :class:`AuthenticationError` for a wrong email or password.
        """
        # Issue 12: the slot is taken before the argon2 check, which is what is rationed.
        attempt = await self._guard.admit(email=email, client_ip=client_ip, challenge=challenge)
        found = await find_login(self._sessions, email)
        user: User | None = None
        if found is not None:
            seller_id, user_id = found
            async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
                user = await scope.session.get(User, (seller_id, user_id))
                if (
                    user is not None
                    and user.is_active
                    and verify_password(user.password_hash, password)
                ):
                    if needs_rehash(user.password_hash):
                        user.password_hash = hash_password(password)
                    user.last_login_at = datetime.now(UTC)
                    pair, _ = await self._issue(scope.session, user, family_id=None)
                    await self._guard.record_success(attempt)
                    return pair
        else:
            verify_password(None, password)  # same cost as a real check
        raise AuthenticationError(BAD_CREDENTIALS, code="invalid_credentials")

    async def _issue(
        self, session: AsyncSession, user: User, *, family_id: uuid.UUID | None
    ) -> tuple[TokenPair, RefreshToken]:
        minted = self._hasher.mint(seller_id=user.seller_id, family_id=family_id)
        now = datetime.now(UTC)
        refresh_expires = now + timedelta(days=self._settings.refresh_token_ttl_days)
        stored = RefreshToken(
            seller_id=user.seller_id,
            user_id=user.id,
            family_id=minted.family_id,
            token_hash=minted.token_hash,
            issued_at=now,
            expires_at=refresh_expires,
        )
        session.add(stored)
        await session.flush()
        access = self._keyring.issue(
            user_id=user.id, seller_id=user.seller_id, family_id=minted.family_id, now=now
        )
        pair = TokenPair(
            access_token=access,
            access_expires_at=now + self._keyring.ttl,
            refresh_token=minted.value,
            refresh_expires_at=refresh_expires,
        )
        return pair, stored

    # -- refresh and logout -------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate ``refresh_token``: a new pair, the old token spent.

        Reuse of a spent token revokes the family and raises
        :class:`RefreshTokenReusedError`; an unknown, expired or revoked token raises
        :class:`AuthenticationError`.
        """
        seller_id, family_id = self._parse(refresh_token)
        # Every configured pepper: a token hashed before a rotation still refreshes (and
        # its successor is hashed with the newest pepper), and reuse is still detected.
        token_hashes = self._hasher.candidate_hashes(refresh_token)
        reused = False
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            session = scope.session
            stored = (
                await session.scalars(
                    select(RefreshToken)
                    .where(
                        col(RefreshToken.seller_id) == seller_id,
                        col(RefreshToken.token_hash).in_(token_hashes),
                    )
                    .with_for_update()
                )
            ).first()
            now = datetime.now(UTC)
            if stored is None or stored.family_id != family_id:
                raise AuthenticationError("refresh token not recognised", code="invalid_token")
            if stored.revoked_at is not None:
                raise AuthenticationError("this session was ended", code="session_revoked")
            if stored.rotated_at is not None:
                # Someone presents a token that was already exchanged: end the whole login.
                await self._revoke_family(session, seller_id, family_id, now)
                reused = True
            elif stored.expires_at <= now:
                raise AuthenticationError("refresh token expired", code="token_expired")
            else:
                user = await session.get(User, (seller_id, stored.user_id))
                if user is None or not user.is_active:
                    raise AuthenticationError("account disabled", code="account_disabled")
                pair, successor = await self._issue(session, user, family_id=family_id)
                stored.rotated_at = now
                stored.replaced_by = successor.id
                return pair
        # Outside the scope: the revocation above has committed.
        assert reused
        await self._revocations.revoke(family_id)
        raise RefreshTokenReusedError(
            "this refresh token was already used; the session is revoked, log in again"
        )

    async def log_out(self, refresh_token: str) -> None:
        """End the login ``refresh_token`` belongs to: its family and its access tokens."""
        seller_id, family_id = self._parse(refresh_token)
        token_hashes = self._hasher.candidate_hashes(refresh_token)
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            known = await scope.session.scalar(
                select(col(RefreshToken.id)).where(
                    col(RefreshToken.seller_id) == seller_id,
                    col(RefreshToken.family_id) == family_id,
                    col(RefreshToken.token_hash).in_(token_hashes),
                )
            )
            if known is None:
                raise AuthenticationError("refresh token not recognised", code="invalid_token")
            await self._revoke_family(scope.session, seller_id, family_id, datetime.now(UTC))
        await self._revocations.revoke(family_id)

    async def _revoke_family(
        self, session: AsyncSession, seller_id: uuid.UUID, family_id: uuid.UUID, now: datetime
    ) -> None:
        await session.execute(
            update(RefreshToken)
            .where(
                col(RefreshToken.seller_id) == seller_id,
                col(RefreshToken.family_id) == family_id,
                col(RefreshToken.revoked_at).is_(None),
            )
            .values(revoked_at=now)
        )

    def _parse(self, refresh_token: str) -> tuple[uuid.UUID, uuid.UUID]:
        try:
            return self._hasher.parse(refresh_token)
        except MalformedRefreshToken as exc:
            raise AuthenticationError("refresh token not recognised", code="invalid_token") from exc

    # -- access tokens --------------------------------------------------------------------

    async def authenticate(self, access_token: str) -> AccessClaims:
        """The claims of a valid, unrevoked access token; :class:`AuthenticationError`
        otherwise (expired, signed by a retired key, tampered, or its login ended)."""
        claims = self.verify_signature(access_token)
        if await self._revocations.is_revoked(claims):
            raise session_revoked()
        return claims

    def verify_signature(self, access_token: str) -> AccessClaims:
        """The claims of a validly signed, unexpired access token, *not* checked against
        revocations: the caller checks :attr:`revocations` itself (the API does, in the
        round trip that counts the seller's quota). :class:`AuthenticationError` for a
        token that is invalid or expired."""
        try:
            return self._keyring.verify(access_token)
        except InvalidAccessToken as exc:
            raise AuthenticationError(
                "access token invalid or expired", code="invalid_token"
            ) from exc

    @property
    def revocations(self) -> SessionRevocations:
        """Where revoked logins are recorded."""
        return self._revocations

    async def current_user(self, claims: AccessClaims) -> tuple[Seller, User]:
        """The seller and user an authenticated request acts as."""
        async with open_seller_scope(self._sessions, claims.seller_id, self._settings) as scope:
            seller = await scope.session.get(Seller, claims.seller_id)
            user = await scope.session.get(User, (claims.seller_id, claims.user_id))
        if seller is None or user is None or not user.is_active:
            raise AuthenticationError("account no longer exists", code="invalid_token")
        return seller, user
