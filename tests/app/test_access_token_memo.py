"""The keyring remembers tokens it verified (issue 18: a signature check per request was a
tenth of a cached read's CPU) without ever accepting what it would refuse: an expired
token, a tampered copy, a token of a retired key."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from pixecom_core.security.access_tokens import (
    VERIFIED_TOKENS_REMEMBERED,
    AccessTokenKeyring,
    InvalidAccessToken,
)


def key() -> SecretStr:
    return SecretStr(uuid.uuid4().hex * 2)


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    keyring = AccessTokenKeyring([key()], ttl=timedelta(seconds=2))
    # Expires at the next whole second but one: "exp" is whole seconds.
    token = keyring.issue(user_id=uuid.uuid4(), seller_id=uuid.uuid4())
    first = keyring.verify(token)
    assert keyring.verify(token) == first

    time.sleep(max(0.0, (first.expires_at - datetime.now(UTC)).total_seconds()) + 0.05)

    with pytest.raises(InvalidAccessToken, match="expired"):
        keyring.verify(token)


def test_a_tampered_copy_of_a_remembered_token_is_still_refused() -> None:
    keyring = AccessTokenKeyring([key()], ttl=timedelta(minutes=15))
    token = keyring.issue(user_id=uuid.uuid4(), seller_id=uuid.uuid4())
    keyring.verify(token)
    header, payload, signature = token.split(".")
    tampered = ".".join(
        (header, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB"))
    )

    with pytest.raises(InvalidAccessToken):
        keyring.verify(tampered)


def test_a_new_keyring_without_the_key_refuses_what_the_old_one_remembered() -> None:
    old, new = key(), key()
    before = AccessTokenKeyring([old], ttl=timedelta(minutes=15))
    token = before.issue(user_id=uuid.uuid4(), seller_id=uuid.uuid4())
    before.verify(token)

    with pytest.raises(InvalidAccessToken):
        AccessTokenKeyring([new], ttl=timedelta(minutes=15)).verify(token)


def test_the_memory_is_bounded_and_forgotten_tokens_verify_again() -> None:
    keyring = AccessTokenKeyring([key()], ttl=timedelta(minutes=15))
    tokens = [
        keyring.issue(user_id=uuid.uuid4(), seller_id=uuid.uuid4())
        for _ in range(VERIFIED_TOKENS_REMEMBERED + 10)
    ]
    claims = [keyring.verify(token) for token in tokens]

    assert len(keyring._verified) == VERIFIED_TOKENS_REMEMBERED
    assert keyring.verify(tokens[0]) == claims[0]  # forgotten, verified again
    assert [keyring.verify(t).seller_id for t in tokens[-3:]] == [c.seller_id for c in claims[-3:]]
