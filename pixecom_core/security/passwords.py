"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

#: Verified against when the account does not exist, so a login for an unknown email
#: costs the same time as one for a known email (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("pixecom-timing-equaliser")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` with a fresh salt, in PHC string form."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; ``None`` (no such user) is
    checked against a dummy hash so both paths take the same time."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than the current ones."""
    return _hasher.check_needs_rehash(password_hash)
