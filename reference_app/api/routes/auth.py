"""Authentication: sign-up (dev or admin key), login, login challenge, refresh, logout, me.

Login is throttled per client IP and per (account, IP); an account under attack slows
down, then asks addresses that never logged in to it for a proof-of-work challenge,
instead of locking its owner out (SEC-2, issue 12; the policy is in docs/api.md).
Refresh tokens rotate on every use and a reused one revokes its whole login. The demo
user is seeded in dev mode only (SEC-4).
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Header, Response, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from pixecom_core.accounts import SignUp, TokenPair
from pixecom_core.errors import PermissionDeniedError
from pixecom_core.models.sellers import Seller, SellerTier, User, UserRole
from pixecom_core.security.login_challenges import MAX_PAYLOAD_LENGTH, Challenge
from pixecom_core.settings import Mode
from reference_app.api.dependencies import Claims, ClientIP, PublicThrottle
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(prefix="/auth", tags=["auth"])

_TIMEZONES = frozenset(available_timezones())


class Credentials(BaseModel):
    """An email and a password, and a solved challenge when the login asks for one."""

    model_config = ConfigDict(str_strip_whitespace=False)

    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    altcha: str | None = Field(
        default=None,
        max_length=MAX_PAYLOAD_LENGTH,
        description=(
            "A solved proof-of-work challenge from `GET /auth/challenge` (base64 ALTCHA "
            "payload); needed only after a login answered 401 `challenge_required`."
        ),
    )


class ChallengeOut(BaseModel):
    """A proof-of-work challenge in ALTCHA's format: find the ``number`` in
    ``[0, maxnumber]`` with ``sha256_hex(salt + str(number)) == challenge``."""

    algorithm: str = Field(description="Always `SHA-256`.")
    challenge: str = Field(description="Hex SHA-256 of `salt` followed by the number.")
    maxnumber: int = Field(description="The number is at most this.")
    salt: str = Field(description="Random, with the expiry: `<hex>?expires=<unix>&`.")
    signature: str = Field(description="The server's HMAC of `challenge`; send it back.")

    @classmethod
    def of(cls, challenge: Challenge) -> ChallengeOut:
        return cls.model_validate(challenge.as_json())


class SignUpIn(BaseModel):
    """A new seller and its owner account."""

    seller_name: str = Field(min_length=1, max_length=200)
    reporting_currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217; every report uses it."
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA zone of the days.")
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=12, max_length=1024)
    display_name: str | None = Field(default=None, max_length=200)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _TIMEZONES:
            raise ValueError("not an IANA time zone name, e.g. Europe/Berlin")
        return value


class RefreshIn(BaseModel):
    """A refresh token from a login or a previous refresh."""

    refresh_token: str = Field(min_length=1, max_length=512)


class TokensOut(BaseModel):
    """A login: a short-lived access token and the refresh token that renews it."""

    token_type: str = "bearer"
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime

    @classmethod
    def of(cls, pair: TokenPair) -> TokensOut:
        return cls(
            access_token=pair.access_token,
            access_expires_at=pair.access_expires_at,
            refresh_token=pair.refresh_token,
            refresh_expires_at=pair.refresh_expires_at,
        )


class SellerOut(BaseModel):
    """A seller (tenant)."""

    id: uuid.UUID
    name: str
    reporting_currency: str
    timezone: str
    tier: SellerTier
    created_at: datetime

    @classmethod
    def of(cls, seller: Seller) -> SellerOut:
        return cls.model_validate(seller, from_attributes=True)


class UserOut(BaseModel):
    """A user of a seller."""

    id: uuid.UUID
    email: str
    display_name: str | None
    role: UserRole
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls.model_validate(user, from_attributes=True)


class MeOut(BaseModel):
    """Who the access token belongs to."""

    seller: SellerOut
    user: UserOut


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=MeOut,
    summary="Create a seller and its owner account",
    responses=error_responses(403, 409, 422),
)
async def sign_up(
    body: SignUpIn,
    resources: ResourcesDep,
    x_admin_key: Annotated[str | None, Header(description="Required outside dev mode.")] = None,
) -> MeOut:
    """Open in dev mode; elsewhere only with the deployment's ``X-Admin-Key``."""
    settings = resources.settings
    if settings.mode is not Mode.DEV:
        expected = settings.admin_api_key
        if expected is None or not hmac.compare_digest(
            (x_admin_key or "").encode(), expected.get_secret_value().encode()
        ):
            raise PermissionDeniedError("sign-up needs the deployment's admin key")
    seller, user = await resources.accounts.sign_up(
        SignUp(
            seller_name=body.seller_name,
            reporting_currency=body.reporting_currency,
            timezone=body.timezone,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
        )
    )
    return MeOut(seller=SellerOut.of(seller), user=UserOut.of(user))


@router.post(
    "/login",
    response_model=TokensOut,
    summary="Log in with email and password",
    responses=error_responses(401, 422, 429),
)
async def log_in(body: Credentials, resources: ResourcesDep, ip: ClientIP) -> TokensOut:
    """Answers tokens; 401 ``invalid_credentials`` for a wrong email or password (never
    saying which), ``challenge_required`` when this address must first solve
    ``GET /auth/challenge``, ``invalid_challenge`` for a forged, expired or reused
    solution; 429 with ``Retry-After`` when the IP is throttled (``rate_limited``) or
    this account is locked for this address (``account_locked``)."""
    pair = await resources.accounts.log_in(
        email=body.email, password=body.password, client_ip=ip, challenge=body.altcha
    )
    return TokensOut.of(pair)


@router.get(
    "/challenge",
    response_model=ChallengeOut,
    summary="A proof-of-work challenge for a login that asks for one",
    responses=error_responses(429),
    dependencies=[PublicThrottle],
)
async def login_challenge(resources: ResourcesDep, response: Response) -> ChallengeOut:
    """Solve it and send the payload as the login's ``altcha`` (see docs/api.md). Each
    solution works for one login attempt, until the salt's ``expires``."""
    response.headers["Cache-Control"] = "no-store"
    return ChallengeOut.of(resources.accounts.issue_login_challenge())


@router.post(
    "/refresh",
    response_model=TokensOut,
    summary="Exchange a refresh token for new tokens",
    responses=error_responses(401, 422),
)
async def refresh(body: RefreshIn, resources: ResourcesDep) -> TokensOut:
    """The presented token is spent; presenting it again revokes the whole login."""
    return TokensOut.of(await resources.accounts.refresh(body.refresh_token))


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End a login",
    responses=error_responses(401, 422),
)
async def log_out(body: RefreshIn, resources: ResourcesDep) -> Response:
    """Revokes the login's refresh tokens and refuses its access tokens from now on."""
    await resources.accounts.log_out(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/me",
    response_model=MeOut,
    summary="The authenticated seller and user",
    responses=error_responses(401, 429),
)
async def me(claims: Claims, resources: ResourcesDep) -> MeOut:
    """The seller and user of the bearer token."""
    seller, user = await resources.accounts.current_user(claims)
    return MeOut(seller=SellerOut.of(seller), user=UserOut.of(user))
