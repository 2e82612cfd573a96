"""Refresh-token values: opaque to clients, stored only as a peppered hash.

A token reads ``<seller_id>.<family_id>.<secret>``: the seller id lets the server open the
right seller scope before looking the token up under row-level security; the family id
groups every token descended from one login, so reuse of a rotated token can revoke the
family. Only ``HMAC-SHA256(pepper, token)`` is stored: a database leak yields no usable
token, and without the pepper no hash can be checked offline.

The pepper rotates like the signing keys (``PIXECOM_REFRESH_TOKEN_PEPPERS``, newest
first): new tokens are hashed with the first pepper, a presented token is looked up under
the hash of every pepper. A session's next refresh re-hashes it under the newest pepper,
so once the refresh-token lifetime has passed the old pepper hashes nothing and can go.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import SecretStr


class MalformedRefreshToken(ValueError):
    """The value is not a refresh token this service issued."""


@dataclass(frozen=True)
class RefreshTokenValue:
    """A freshly minted refresh token: ``value`` goes to the client, ``token_hash`` to the
    database."""

    seller_id: uuid.UUID
    family_id: uuid.UUID
    value: str
    token_hash: str


class RefreshTokenHasher:
    """Mints and hashes refresh tokens with the deployment's peppers, newest first."""

    def __init__(self, peppers: Sequence[SecretStr]) -> None:
        if not peppers:
            raise ValueError(
                "at least one refresh-token pepper is required (PIXECOM_REFRESH_TOKEN_PEPPERS)"
            )
        self._peppers = [pepper.get_secret_value().encode() for pepper in peppers]

    def hash(self, value: str) -> str:
        """The stored form of a new token ``value``: hashed with the newest pepper."""
        return self._hash(self._peppers[0], value)

    def candidate_hashes(self, value: str) -> list[str]:
        """Every form ``value`` may be stored in, one per configured pepper, newest first."""
        return list(dict.fromkeys(self._hash(pepper, value) for pepper in self._peppers))

    @staticmethod
    def _hash(pepper: bytes, value: str) -> str:
        return hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()

    def mint(
        self, *, seller_id: uuid.UUID, family_id: uuid.UUID | None = None
    ) -> RefreshTokenValue:
        """A new token, in a new family unless ``family_id`` continues one (rotation)."""
        family = family_id or uuid.uuid4()
        value = f"{seller_id}.{family}.{secrets.token_urlsafe(32)}"
        return RefreshTokenValue(
            seller_id=seller_id, family_id=family, value=value, token_hash=self.hash(value)
        )

    @staticmethod
    def parse(value: str) -> tuple[uuid.UUID, uuid.UUID]:
        """(seller_id, family_id) of a token, without trusting it: the hash lookup decides."""
        try:
            seller, family, secret = value.split(".", 2)
            if len(secret) < 32:
                raise ValueError("secret part too short")
            return uuid.UUID(seller), uuid.UUID(family)
        except ValueError as exc:
            raise MalformedRefreshToken("not a refresh token issued by this service") from exc
