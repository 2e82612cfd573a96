"""What every provider sandbox reads out of a request, written once: credentials in an
``Authorization`` header, JSON and form-encoded bodies, idempotent-request replays, which
tenant each object belongs to, and the bounded maps a sandbox keeps its state in.

Each helper answers in neutral terms (a value, ``None``, or an exception carrying the
reason); the sandbox turns a refusal into its provider's error envelope, so the wire
format stays in the plugin and the machinery stays here (:mod:`sandbox_kit` holds the
rest: faults, latency, request log, settings, reset, clock and webhook outbox).

Nothing here imports pytest: sandboxes run in ``pixecom dev`` too.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Callable, Collection, Hashable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Generic, Literal, TypeVar
from urllib.parse import parse_qsl

#: Idempotency keys a sandbox remembers at most (the oldest are forgotten first): a long
#: ``pixecom dev`` must not grow without bound.
MAX_REPLAYS: Final = 10_000

# -- credentials --------------------------------------------------------------------------


def bearer_token(authorization: str | None, schemes: Collection[str] = ("bearer",)) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (``schemes``: the scheme
    names the provider accepts, lower case; Graph also takes ``OAuth``); empty when the
    header is missing or names another scheme."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() in schemes else ""


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The user and password of an ``Authorization: Basic <base64(user:password)>`` header
    (RFC 7617), as ``curl -u`` and OAuth client-credentials grants send them; ``None``
    when the header is missing, names another scheme or does not decode."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    return user, password


# -- bodies -------------------------------------------------------------------------------


class MalformedBody(ValueError):
    """A request body a sandbox cannot read; the message says why (for the provider's
    error envelope)."""


def json_body(raw: bytes, *, expect: type[dict[str, Any]] | type[list[Any]] = dict) -> Any:
    """``raw`` parsed as JSON of the ``expect``\\ ed kind (an object or an array); an empty
    body is an empty one.

    :raises MalformedBody: not JSON ("not well formed"), or JSON of another kind.
    """
    if not raw.strip():
        return expect()
    try:
        payload = json.loads(raw)
    except ValueError:
        raise MalformedBody("The request JSON is not well formed.") from None
    if not isinstance(payload, expect):
        kind = "an object" if expect is dict else "an array"
        raise MalformedBody(f"The request JSON is not {kind}.")
    return payload


def form_pairs(raw: bytes) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body as its pairs, in order, blanks kept.

    :raises MalformedBody: the body is not UTF-8.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("Invalid request body: not UTF-8 form data") from None
    return parse_qsl(text, keep_blank_values=True)


# -- time ---------------------------------------------------------------------------------


def utc_stamp(epoch: float, *, milliseconds: bool = False) -> str:
    """``epoch`` as ``2026-01-31T12:00:00Z`` (ISO 8601 in UTC, as PayPal and 17TRACK write
    times), with ``.123`` before the ``Z`` when ``milliseconds``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    fraction = f".{moment.microsecond // 1000:03d}" if milliseconds else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


# -- bounded state ------------------------------------------------------------------------


def forget_oldest(items: MutableMapping[Any, Any], keep: int) -> None:
    """Drop the oldest entries of ``items`` (insertion order) until fewer than ``keep``
    remain, making room for one more: a sandbox's maps of codes, tokens, parcels or
    replays stay bounded however long it runs."""
    while len(items) >= keep:
        del items[next(iter(items))]


class Ownership(dict[str, str]):
    """Which tenant each object belongs to (a Stripe connected account, a PayPal seller's
    app), by object id; an object with no entry is the platform's own. A provider shows a
    tenant none of another's objects: the sandbox answers them as ids that do not exist."""

    def mark(self, object_id: str, owner: str | None) -> str | None:
        """Record that ``object_id`` belongs to ``owner`` (``None``: the platform's)."""
        if owner is not None:
            self[object_id] = owner
        return owner

    def inherit(self, object_id: str, parent_id: str) -> str | None:
        """Give ``object_id`` the owner of ``parent_id`` (a charge its payment's, a refund
        its capture's); return it."""
        return self.mark(object_id, self.get(parent_id))

    def visible(self, object_id: str, owner: str | None) -> bool:
        """Whether ``owner`` (``None``: the platform) sees ``object_id``: only its own."""
        return self.get(object_id) == owner


# -- idempotent requests ------------------------------------------------------------------

T = TypeVar("T")

#: Why a key was refused: its length, or an earlier use with another endpoint or other
#: parameters.
ConflictReason = Literal["key_length", "other_endpoint", "other_parameters"]


class IdempotencyConflict(Exception):
    """An idempotency key the provider refuses; the sandbox words the refusal.

    :param reason: see :data:`ConflictReason`.
    :param first_endpoint: the endpoint the key was first used with (``other_endpoint``).
    """

    def __init__(self, reason: ConflictReason, first_endpoint: Hashable = None) -> None:
        super().__init__(reason)
        self.reason: ConflictReason = reason
        self.first_endpoint = first_endpoint


@dataclass(frozen=True, slots=True)
class _Saved(Generic[T]):
    endpoint: Hashable
    fingerprint: Hashable
    answer: T


class IdempotentReplays(Generic[T]):
    """The first successful answer of each idempotent request, replayed for a retry with
    the same key (Stripe's ``Idempotency-Key``, PayPal's ``PayPal-Request-Id``).

    A call that fails (raises) saves nothing, so a retry runs it again. Keys live in a
    ``scope`` (Stripe's are per API key and account, PayPal's per app and path); within
    one, a key first used with another ``endpoint`` or ``fingerprint`` (the parameters) is
    an :class:`IdempotencyConflict` — pass neither where the provider does not check.

    :param max_key_length: the longest key the provider accepts (an empty one never is).
    :param limit: keys remembered at most; the oldest are forgotten first.
    """

    def __init__(self, *, max_key_length: int, limit: int = MAX_REPLAYS) -> None:
        self.max_key_length = max_key_length
        self._limit = limit
        self._saved: dict[tuple[Hashable, str], _Saved[T]] = {}

    def __len__(self) -> int:
        return len(self._saved)

    def answer(
        self,
        key: str | None,
        compute: Callable[[], T],
        *,
        scope: Hashable = None,
        endpoint: Hashable = None,
        fingerprint: Hashable = None,
    ) -> tuple[T, bool]:
        """``compute()``'s answer and ``False``, or, for a key already answered in
        ``scope``, a copy of that answer and ``True``; without a key, ``compute()`` runs
        and nothing is saved.

        :raises IdempotencyConflict: the key's length is refused, or it was first used with
            another ``endpoint`` or ``fingerprint``.
        """
        if key is None:
            return compute(), False
        if not 1 <= len(key) <= self.max_key_length:
            raise IdempotencyConflict("key_length")
        saved = self._saved.get((scope, key))
        if saved is not None:
            if saved.endpoint != endpoint:
                raise IdempotencyConflict("other_endpoint", saved.endpoint)
            if saved.fingerprint != fingerprint:
                raise IdempotencyConflict("other_parameters", saved.endpoint)
            return copy.deepcopy(saved.answer), True
        answer = compute()
        forget_oldest(self._saved, self._limit)
        self._saved[(scope, key)] = _Saved(endpoint, fingerprint, copy.deepcopy(answer))
        return answer, False

    def clear(self) -> None:
        """Forget every key (a sandbox's reset)."""
        self._saved.clear()
