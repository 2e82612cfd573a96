"""The signature 17TRACK puts on its pushes, in one place.

17TRACK's official v2.2 text describes the push payload but not how it is signed. Every
third-party integration we found agrees on this scheme, so it is what the plugin checks and
what the sandbox signs with:

    header ``sign`` = lower-case hex SHA-256 of (raw request body + ``"/"`` + key)

where the key is the account's security key (the one sent as ``17token``). It is a plain
hash, not an HMAC, and it carries no timestamp, so it cannot tell a replay from a
redelivery: pushes must be handled idempotently (a duplicate carries the same update).

If 17TRACK documents a different scheme, :func:`push_signature` is the only function to
change; the sandbox and the tracker both call it.
"""

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "sign"


def push_signature(body: bytes, key: str) -> str:
    """The ``sign`` header 17TRACK sends with a push whose raw body is ``body``.

    Third-party scheme (see the module docstring): SHA-256 over the body's bytes, a ``/``
    and the key in UTF-8, as lower-case hex.

    :param body: the request body exactly as received (never re-serialised JSON).
    :param key: the 17TRACK security key (or the configured push key).
    """
    return hashlib.sha256(body + b"/" + key.encode("utf-8")).hexdigest()


def signature_matches(body: bytes, key: str, received: str) -> bool:
    """Whether ``received`` is the signature of ``body`` under ``key`` (constant time).

    Surrounding whitespace and the hex digits' case are ignored.
    """
    expected = push_signature(body, key).encode("ascii")
    candidate = received.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, candidate)
