"""Ingest API keys: CURRENT and NEXT are both accepted, so a key rotates without downtime.

Rotation: set NEXT, hand it to clients, move it to CURRENT and clear NEXT; the retired
CURRENT stops working at that moment.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr


class ApiKeyVerifier:
    """Checks a presented key against the configured ones in constant time."""

    def __init__(self, current: SecretStr | None, next_key: SecretStr | None = None) -> None:
        self._keys = [k.get_secret_value().encode() for k in (current, next_key) if k is not None]

    def verify(self, presented: str | None) -> bool:
        """Whether ``presented`` equals CURRENT or NEXT (never true when none is set)."""
        if not presented:
            return False
        candidate = presented.encode()
        # Compare against every key, without short-circuit, so timing says nothing.
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return any(matches)
