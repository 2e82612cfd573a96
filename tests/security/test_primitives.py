"""Password hashes, access-token key rotation, refresh-token hashing, secret boxes."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from pixecom_core.security.access_tokens import AccessTokenKeyring, InvalidAccessToken, key_id
from pixecom_core.security.api_keys import ApiKeyVerifier
from pixecom_core.security.passwords import hash_password, needs_rehash, verify_password
from pixecom_core.security.refresh_tokens import MalformedRefreshToken, RefreshTokenHasher
from pixecom_core.security.secret_box import SecretBox, SecretDecryptionError


def key() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(48))


def test_password_hash_verifies_only_the_right_password() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "Correct horse battery staple")
    assert not verify_password(None, "anything")  # unknown user: same cost, no match
    assert not verify_password("not-a-hash", "x")
    assert not needs_rehash(stored)


def test_access_token_round_trip_and_kid_header() -> None:
    keyring = AccessTokenKeyring([key()], ttl=timedelta(minutes=15))
    user, seller = uuid.uuid4(), uuid.uuid4()
    token = keyring.issue(user_id=user, seller_id=seller)
    claims = keyring.verify(token)
    assert (claims.user_id, claims.seller_id) == (user, seller)
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15)
    assert "kid" in jwt.get_unverified_header(token)


def test_previous_key_verifies_during_overlap_and_retired_key_fails() -> None:
    old, new = key(), key()
    before = AccessTokenKeyring([old], ttl=timedelta(minutes=15))
    token = before.issue(user_id=uuid.uuid4(), seller_id=uuid.uuid4())
    overlap = AccessTokenKeyring([new, old], ttl=timedelta(minutes=15))
    overlap.verify(token)  # previous key still accepted
    assert jwt.get_unverified_header(overlap.issue(user_id=uuid.uuid4(), seller_id=uuid.uuid4()))[
        "kid"
    ] == key_id(new.get_secret_value())
    after = AccessTokenKeyring([new], ttl=timedelta(minutes=15))
    with pytest.raises(InvalidAccessToken, match="retired"):
        after.verify(token)


def test_expired_forged_and_alg_none_tokens_fail() -> None:
    signing = key()
    keyring = AccessTokenKeyring([signing], ttl=timedelta(minutes=15))
    stale = keyring.issue(
        user_id=uuid.uuid4(), seller_id=uuid.uuid4(), now=datetime.now(UTC) - timedelta(hours=1)
    )
    with pytest.raises(InvalidAccessToken):
        keyring.verify(stale)
    claims = {
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "jti": "x",
        "iat": 0,
        "exp": 2**40,
        "iss": "pixecom",
        "aud": "pixecom-api",
    }
    kid = key_id(signing.get_secret_value())
    forged = jwt.encode(claims, "another-key-" * 4, algorithm="HS256", headers={"kid": kid})
    with pytest.raises(InvalidAccessToken):
        keyring.verify(forged)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})  # type: ignore[arg-type]
    with pytest.raises(InvalidAccessToken):
        keyring.verify(unsigned)
    with pytest.raises(InvalidAccessToken):
        keyring.verify("garbage")


def test_refresh_tokens_are_stored_as_peppered_hashes() -> None:
    hasher = RefreshTokenHasher([key()])
    seller = uuid.uuid4()
    first = hasher.mint(seller_id=seller)
    rotated = hasher.mint(seller_id=seller, family_id=first.family_id)
    assert rotated.family_id == first.family_id and rotated.value != first.value
    assert first.token_hash == hasher.hash(first.value)
    assert first.value not in first.token_hash
    assert RefreshTokenHasher([key()]).hash(first.value) != first.token_hash  # pepper matters
    assert hasher.parse(first.value) == (seller, first.family_id)
    for bad in ("", "a.b.c", f"{seller}.{first.family_id}.short", "x" * 80):
        with pytest.raises(MalformedRefreshToken):
            hasher.parse(bad)


def test_refresh_token_peppers_rotate_newest_first() -> None:
    old, new = key(), key()
    value = RefreshTokenHasher([old]).mint(seller_id=uuid.uuid4())
    during = RefreshTokenHasher([new, old])
    # New tokens are hashed with the newest pepper; a token hashed with the old one is
    # still among the candidates looked up, and nothing else is.
    assert during.hash(value.value) == RefreshTokenHasher([new]).hash(value.value)
    assert during.candidate_hashes(value.value) == [during.hash(value.value), value.token_hash]
    assert value.token_hash not in RefreshTokenHasher([new]).candidate_hashes(value.value)
    with pytest.raises(ValueError, match="PIXECOM_REFRESH_TOKEN_PEPPERS"):
        RefreshTokenHasher([])


def test_secret_box_rotates_keys_without_a_flag_day() -> None:
    old = SecretStr(Fernet.generate_key().decode())
    new = key()  # any strong secret works as a key too
    ciphertext = SecretBox([old]).encrypt("EAAB-meta-token")
    during = SecretBox([new, old])
    assert during.decrypt(ciphertext) == "EAAB-meta-token"
    rotated = during.rotate(ciphertext)
    after = SecretBox([new])
    assert after.decrypt(rotated) == "EAAB-meta-token"
    with pytest.raises(SecretDecryptionError):
        after.decrypt(ciphertext)
    with pytest.raises(SecretDecryptionError):
        after.decrypt(rotated[:-4] + b"AAAA")


def test_ingest_keys_accept_current_and_next_only() -> None:
    current, upcoming, retired = key(), key(), key()
    verifier = ApiKeyVerifier(current, upcoming)
    assert verifier.verify(current.get_secret_value())
    assert verifier.verify(upcoming.get_secret_value())
    assert not verifier.verify(retired.get_secret_value())
    assert not verifier.verify("")
    assert not verifier.verify(None)
    assert not ApiKeyVerifier(None, None).verify("")
