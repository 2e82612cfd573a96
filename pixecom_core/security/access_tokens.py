"""Short-lived access tokens: HS256 JWTs with a key id, verifiable by several keys.

The first key in ``PIXECOM_JWT_SIGNING_KEYS`` signs; every key in the list verifies. To
rotate, put the new key first and keep the old one second for one access-token lifetime,
then drop it: tokens signed by a dropped (retired) key fail.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pydantic import SecretStr

ALGORITHM = "HS256"
ISSUER = "pixecom"
AUDIENCE = "pixecom-api"
#: Tokens whose verified claims a keyring remembers (issue 18: verifying the signature of
#: the same token on every request was a tenth of a cached dashboard read's CPU).
VERIFIED_TOKENS_REMEMBERED = 4_096


class InvalidAccessToken(Exception):
    """The token is malformed, expired, or signed by a key that is no longer accepted."""


def key_id(key: str) -> str:
    """A stable, non-reversible id for a key: published in the token's ``kid`` header."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AccessClaims:
    """What an access token asserts: who the user is and which seller they act for."""

    user_id: uuid.UUID
    seller_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime
    token_id: str
    #: The refresh-token family (one login) this token was issued under; revoking the
    #: family (logout, refresh-token reuse) also refuses its access tokens.
    family_id: uuid.UUID | None = None


class AccessTokenKeyring:
    """Signs with the newest key, verifies with any configured key by ``kid``.

    The claims of the last :data:`VERIFIED_TOKENS_REMEMBERED` tokens verified are kept (a
    token is immutable, and so is the outcome of checking its signature with these keys):
    a token seen again is only checked for expiry. A keyring's keys never change; a new
    key list is a new keyring, which remembers nothing.
    """

    def __init__(self, keys: list[SecretStr], *, ttl: timedelta) -> None:
        if not keys:
            raise ValueError("at least one JWT signing key is required")
        values = [k.get_secret_value() for k in keys]
        self._signing_key = values[0]
        self._verifying = {key_id(v): v for v in values}
        self.ttl = ttl
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        seller_id: uuid.UUID,
        family_id: uuid.UUID | None = None,
        now: datetime | None = None,
    ) -> str:
        """A signed access token for ``user_id`` acting as ``seller_id``."""
        issued = now or datetime.now(UTC)
        claims: dict[str, object] = {
            "sub": str(user_id),
            "sid": str(seller_id),
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.ttl).timestamp()),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": uuid.uuid4().hex,
        }
        if family_id is not None:
            claims["fid"] = str(family_id)
        return jwt.encode(
            claims,
            self._signing_key,
            algorithm=ALGORITHM,
            headers={"kid": key_id(self._signing_key)},
        )

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; :class:`InvalidAccessToken` otherwise."""
        remembered = self._verified.get(token)
        if remembered is not None:
            if datetime.now(UTC) < remembered.expires_at:
                self._verified.move_to_end(token)
                return remembered
            del self._verified[token]
        claims = self._verify_signed(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_TOKENS_REMEMBERED:
            self._verified.popitem(last=False)
        return claims

    def _verify_signed(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self._verifying.get(str(header.get("kid")))
            if key is None:
                raise InvalidAccessToken("token signed by an unknown or retired key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # never trust the token's own "alg"
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "jti"]},
            )
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                seller_id=uuid.UUID(claims["sid"]),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                token_id=str(claims["jti"]),
                family_id=uuid.UUID(claims["fid"]) if "fid" in claims else None,
            )
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise InvalidAccessToken(str(exc)) from exc
