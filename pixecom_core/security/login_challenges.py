"""Self-hosted proof-of-work challenges for logins under attack (issue 12; SEC-2,
"CAPTCHA after failures" — without a third-party CAPTCHA).

The format is ALTCHA's (altcha-lib v1, the ``altcha`` widget's and libraries'
"challenge / payload" pair), so an ALTCHA widget or library can solve it:

- the server picks a secret ``number`` in ``[0, maxnumber]`` and a random ``salt`` that
  carries its expiry as a parameter (``"<hex>?expires=<unix seconds>&"``), and answers
  ``{"algorithm": "SHA-256", "challenge": sha256_hex(salt + str(number)),
  "maxnumber": …, "salt": salt, "signature": hmac_sha256_hex(key, challenge)}``;
- the client tries ``n = 0, 1, …`` until ``sha256_hex(salt + str(n)) == challenge`` and
  sends back the *payload*: base64 of the JSON object ``{"algorithm", "challenge",
  "number", "salt", "signature"}``;
- the server checks the algorithm, that the salt's expiry has not passed, that the hash
  of ``salt + number`` is the challenge, and that the signature is its own HMAC of the
  challenge. Single use is the caller's to enforce (the login guard records each
  verified challenge in Redis with ``SET NX`` until it expires).

Nothing is stored when a challenge is issued: the signature makes it self-verifying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pixecom_core.errors import AuthenticationError
from pixecom_core.settings import Settings

#: The only algorithm issued and accepted (ALTCHA's name for it).
ALGORITHM = "SHA-256"

_SALT_BYTES = 12
#: A payload is a few hundred bytes; anything much larger is not one.
MAX_PAYLOAD_LENGTH = 2048


class ChallengeRequired(AuthenticationError):
    """This login must carry a solved proof-of-work challenge (``GET /auth/challenge``)."""

    code = "challenge_required"


class InvalidChallenge(AuthenticationError):
    """The submitted challenge solution is malformed, forged, expired or already used."""

    code = "invalid_challenge"


@dataclass(frozen=True)
class Challenge:
    """A challenge as sent to the client (ALTCHA's challenge JSON)."""

    algorithm: str
    challenge: str
    maxnumber: int
    salt: str
    signature: str
    expires_at: int

    def as_json(self) -> dict[str, Any]:
        """The ALTCHA challenge object a client or widget expects."""
        return {
            "algorithm": self.algorithm,
            "challenge": self.challenge,
            "maxnumber": self.maxnumber,
            "salt": self.salt,
            "signature": self.signature,
        }


@dataclass(frozen=True)
class SolvedChallenge:
    """A verified solution: ``challenge`` identifies it for single use until
    ``expires_at`` (Unix seconds)."""

    challenge: str
    expires_at: int


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class LoginChallenges:
    """Issues and verifies ALTCHA-format proof-of-work challenges.

    :param key: the server's HMAC key; only challenges it signed verify.
    :param max_number: difficulty — the client hashes up to this many candidates.
    :param ttl_seconds: how long a challenge may be solved and used.
    """

    def __init__(self, key: bytes, *, max_number: int, ttl_seconds: int) -> None:
        self._key = key
        self._max_number = max_number
        self._ttl = ttl_seconds

    @classmethod
    def for_settings(cls, settings: Settings) -> LoginChallenges:
        """The deployment's challenges: keyed by the current JWT signing key (a key of
        their own, derived with a label, so a challenge signature can never pass for
        anything else's), with the configured difficulty and lifetime. Rotating the
        signing key invalidates outstanding challenges; clients fetch new ones."""
        if not settings.jwt_signing_keys:
            raise ValueError("PIXECOM_JWT_SIGNING_KEYS is required to sign login challenges")
        key = hmac.new(
            settings.jwt_signing_keys[0].get_secret_value().encode(),
            b"pixecom login challenge",
            hashlib.sha256,
        ).digest()
        return cls(
            key,
            max_number=settings.login_challenge_max_number,
            ttl_seconds=settings.login_challenge_ttl_seconds,
        )

    def _sign(self, challenge: str) -> str:
        return hmac.new(self._key, challenge.encode(), hashlib.sha256).hexdigest()

    def issue(self, *, now: float | None = None) -> Challenge:
        """A fresh challenge that expires ``ttl_seconds`` after ``now``."""
        expires_at = int(now if now is not None else time.time()) + self._ttl
        salt = f"{secrets.token_hex(_SALT_BYTES)}?expires={expires_at}&"
        number = secrets.randbelow(self._max_number + 1)
        challenge = _sha256_hex(f"{salt}{number}")
        return Challenge(
            algorithm=ALGORITHM,
            challenge=challenge,
            maxnumber=self._max_number,
            salt=salt,
            signature=self._sign(challenge),
            expires_at=expires_at,
        )

    def verify(self, payload: str, *, now: float | None = None) -> SolvedChallenge:
        """Check a client's base64 ALTCHA payload; raise :class:`InvalidChallenge` saying
        why it is refused. Does not check single use (see the module docstring)."""
        fields = _decode_payload(payload)
        algorithm, challenge, number, salt, signature = (
            fields.get("algorithm"),
            fields.get("challenge"),
            fields.get("number"),
            fields.get("salt"),
            fields.get("signature"),
        )
        if algorithm != ALGORITHM:
            raise InvalidChallenge(f"challenge algorithm must be {ALGORITHM}")
        if not (
            isinstance(challenge, str)
            and isinstance(salt, str)
            and isinstance(signature, str)
            and isinstance(number, int)
            and not isinstance(number, bool)
            and number >= 0
        ):
            raise InvalidChallenge("challenge payload lacks challenge, salt, signature or number")
        if not hmac.compare_digest(signature.encode(), self._sign(challenge).encode()):
            raise InvalidChallenge("challenge was not issued by this server")
        if not hmac.compare_digest(challenge.encode(), _sha256_hex(f"{salt}{number}").encode()):
            raise InvalidChallenge("challenge solution is wrong")
        expires_at = _salt_expiry(salt)
        if expires_at is None:
            raise InvalidChallenge("challenge carries no expiry")
        if expires_at <= (now if now is not None else time.time()):
            raise InvalidChallenge("challenge expired; fetch a new one from GET /auth/challenge")
        return SolvedChallenge(challenge=challenge, expires_at=expires_at)


def _decode_payload(payload: str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise InvalidChallenge("challenge payload is too long")
    try:
        decoded = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidChallenge("challenge payload is not base64-encoded JSON") from exc
    if not isinstance(decoded, dict):
        raise InvalidChallenge("challenge payload is not a JSON object")
    return decoded


def _salt_expiry(salt: str) -> int | None:
    """The ``expires`` parameter ALTCHA embeds in the salt (``<hex>?expires=<unix>&``)."""
    _, separator, query = salt.partition("?")
    if not separator:
        return None
    values = parse_qs(query).get("expires")
    if not values or not values[0].isdigit():
        return None
    return int(values[0])


def solve_challenge(challenge: dict[str, Any]) -> str:
    """What a client does: find the number and answer the base64 payload.

    ``challenge`` is the JSON of ``GET /auth/challenge``. For Python clients and tests;
    browsers use the ALTCHA widget or the few lines of JavaScript in ``docs/api.md``.
    """
    salt, target = challenge["salt"], challenge["challenge"]
    for number in range(int(challenge["maxnumber"]) + 1):
        if _sha256_hex(f"{salt}{number}") == target:
            solution = {
                "algorithm": challenge["algorithm"],
                "challenge": target,
                "number": number,
                "salt": salt,
                "signature": challenge["signature"],
            }
            return base64.b64encode(json.dumps(solution).encode()).decode()
    raise ValueError("no number up to maxnumber solves this challenge")
