"""Refresh-token values: opaque to clients, stored only as a peppered hash.

A token reads ``<seller_id>.<family_id>.<secret>``: the seller id lets the server open the
right seller scope before looking the token up under row-level security; the family id
groups every token descended from one login, so reuse of a rotated token can revoke the
family. Only ``HMAC-SHA256(pepper, token)`` is stored: a database leak yields no usable
token, and without the pepper no hash can be checked offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
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
    """Mints and hashes refresh tokens with the deployment's pepper."""

    def __init__(self, pepper: SecretStr) -> None:
        self._pepper = pepper.get_secret_value().encode()

    def hash(self, value: str) -> str:
        """The stored form of ``value``."""
        return hmac.new(self._pepper, value.encode(), hashlib.sha256).hexdigest()

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
