"""ALTCHA-format proof-of-work challenges: the format, and every way a solution is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from pixecom_core.security.login_challenges import (
    InvalidChallenge,
    LoginChallenges,
    solve_challenge,
)

KEY = b"k" * 32


def challenges(*, ttl_seconds: int = 300) -> LoginChallenges:
    return LoginChallenges(KEY, max_number=500, ttl_seconds=ttl_seconds)


def payload(fields: object) -> str:
    return base64.b64encode(json.dumps(fields).encode()).decode()


def solved_fields() -> dict[str, Any]:
    solution = solve_challenge(challenges().issue().as_json())
    decoded: dict[str, Any] = json.loads(base64.b64decode(solution))
    return decoded


def test_an_issued_challenge_is_altcha_shaped_and_its_solution_verifies() -> None:
    issuer = challenges()
    challenge = issuer.issue(now=1_700_000_000)
    salt = challenge.salt

    assert challenge.as_json().keys() == {
        "algorithm",
        "challenge",
        "maxnumber",
        "salt",
        "signature",
    }
    assert challenge.algorithm == "SHA-256"
    assert salt.endswith("?expires=1700000300&")
    assert challenge.signature == hmac.new(KEY, challenge.challenge.encode(), "sha256").hexdigest()
    number = json.loads(base64.b64decode(solve_challenge(challenge.as_json())))["number"]
    assert 0 <= number <= 500
    assert hashlib.sha256(f"{salt}{number}".encode()).hexdigest() == challenge.challenge

    verified = issuer.verify(solve_challenge(challenge.as_json()), now=1_700_000_299)
    assert (verified.challenge, verified.expires_at) == (challenge.challenge, 1_700_000_300)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"signature": "0" * 64}, "not issued by this server"),
        ({"number": -1}, "lacks"),
        ({"number": True}, "lacks"),
        ({"number": "7"}, "lacks"),
        ({"algorithm": "SHA-1"}, "algorithm"),
        ({"salt": "x"}, "solution is wrong"),
    ],
)
def test_tampered_solutions_are_refused(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidChallenge, match=reason):
        challenges().verify(payload({**solved_fields(), **change}))


def test_a_wrong_number_is_refused() -> None:
    fields = solved_fields()
    with pytest.raises(InvalidChallenge, match="solution is wrong"):
        challenges().verify(payload({**fields, "number": fields["number"] + 1}))


def test_a_challenge_signed_with_another_key_is_refused() -> None:
    foreign = LoginChallenges(b"another key", max_number=50, ttl_seconds=300)
    with pytest.raises(InvalidChallenge, match="not issued by this server"):
        challenges().verify(solve_challenge(foreign.issue().as_json()))


def test_an_expired_challenge_is_refused() -> None:
    issuer = challenges(ttl_seconds=60)
    solution = solve_challenge(issuer.issue(now=time.time() - 61).as_json())
    with pytest.raises(InvalidChallenge, match="expired"):
        issuer.verify(solution)


def test_a_salt_without_expiry_is_refused() -> None:
    # Signed by us but carrying no expiry: never issued that way, never accepted.
    salt = "abc"
    challenge = hashlib.sha256(f"{salt}3".encode()).hexdigest()
    signature = hmac.new(KEY, challenge.encode(), "sha256").hexdigest()
    fields = {
        "algorithm": "SHA-256",
        "challenge": challenge,
        "number": 3,
        "salt": salt,
        "signature": signature,
    }
    with pytest.raises(InvalidChallenge, match="no expiry"):
        challenges().verify(payload(fields))


@pytest.mark.parametrize("garbage", ["%%%", payload([1, 2]), "e30" * 1000, "bm90IGpzb24="])
def test_malformed_payloads_are_refused(garbage: str) -> None:
    with pytest.raises(InvalidChallenge):
        challenges().verify(garbage)
