"""A seller's conversion destinations: where each network's events go, and the token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from pixecom_core.errors import InvalidRequestError
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError
from pixecom_core.providers import ConversionsDestination
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.tenancy import SellerContext

#: A destination id as networks issue them (Meta's pixel ids are digits).
_DESTINATION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_UPSERT = text(
    """
    INSERT INTO conversion_destinations
        (seller_id, network, destination_id, token_ciphertext, token_key_version,
         test_event_code)
    VALUES (:seller_id, :network, :destination_id, :ciphertext, :version, :test_event_code)
    ON CONFLICT (seller_id, network) DO UPDATE
       SET destination_id = EXCLUDED.destination_id,
           token_ciphertext = EXCLUDED.token_ciphertext,
           token_key_version = EXCLUDED.token_key_version,
           test_event_code = EXCLUDED.test_event_code,
           updated_at = now()
    RETURNING network, destination_id, test_event_code, updated_at
    """
)
_LIST = text(
    "SELECT network, destination_id, test_event_code, updated_at FROM conversion_destinations"
    " WHERE seller_id = :seller_id ORDER BY network"
)
_DELETE = text(
    "DELETE FROM conversion_destinations WHERE seller_id = :seller_id AND network = :network"
)


@dataclass(frozen=True)
class DestinationView:
    """A destination as the seller sees it: never the token."""

    network: str
    destination_id: str
    test_event_code: str | None
    updated_at: datetime


class ConversionDestinations:
    """Set, list and remove a seller's conversion destinations."""

    def __init__(self, context: SellerContext, registry: ProviderRegistry, box: SecretBox) -> None:
        self._context = context
        self._registry = registry
        self._box = box

    def _check_network(self, network: str) -> None:
        try:
            provider = self._registry.ad_network(network)
        except UnknownProviderError as exc:
            raise InvalidRequestError(str(exc), code="unknown_network") from exc
        if not isinstance(provider, ConversionsDestination):
            raise InvalidRequestError(
                f"the {network} plugin cannot receive conversion events",
                code="conversions_not_supported",
            )

    async def set(
        self,
        network: str,
        destination_id: str,
        access_token: str,
        *,
        test_event_code: str | None = None,
    ) -> DestinationView:
        """Send the seller's events at ``network`` to ``destination_id`` with
        ``access_token`` (stored encrypted); replaces an earlier one. Orders paid from now
        on are sent there."""
        self._check_network(network)
        if not _DESTINATION_ID.fullmatch(destination_id):
            raise InvalidRequestError(
                "destination_id must be 1 to 64 letters, digits, '_', '.', ':' or '-'",
                code="invalid_destination",
            )
        if not access_token.strip():
            raise InvalidRequestError("access_token is empty", code="invalid_destination")
        async with self._context.scope() as scope:
            row = (
                await scope.session.execute(
                    _UPSERT,
                    {
                        "seller_id": self._context.seller_id,
                        "network": network,
                        "destination_id": destination_id,
                        "ciphertext": self._box.encrypt(access_token.strip()),
                        "version": self._box.primary_version,
                        "test_event_code": test_event_code,
                    },
                )
            ).one()
        return DestinationView(row.network, row.destination_id, row.test_event_code, row.updated_at)

    async def list(self) -> list[DestinationView]:
        """The seller's destinations, by network."""
        async with self._context.scope() as scope:
            rows = await scope.session.execute(_LIST, {"seller_id": self._context.seller_id})
            return [
                DestinationView(r.network, r.destination_id, r.test_event_code, r.updated_at)
                for r in rows
            ]

    async def remove(self, network: str) -> bool:
        """Stop sending the seller's events to ``network``; ``False`` when none was set.
        Events still queued for it end FAILED (nowhere to send them)."""
        async with self._context.scope() as scope:
            result = await scope.session.execute(
                _DELETE, {"seller_id": self._context.seller_id, "network": network}
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
