"""The 17TRACK tracker provider.

It registers tracking numbers with the 17TRACK v2.2 API, polls and stops them, and verifies
its signed pushes. Until the 17TRACK plugin issue lands, every operation raises
``NotImplementedError``: the plugin is installable and discoverable, not usable.
"""

from collections.abc import Mapping, Sequence

from pixecom_core.providers import (
    RegistrationResult,
    TrackingNumber,
    TrackingUpdate,
)

_PENDING = "implemented by the 17TRACK plugin issue"


class Track17Tracker:
    """The ``17track`` tracker; implements ``pixecom_core.providers.Tracker``."""

    identifier = "17track"
    display_name = "17TRACK"

    max_batch_size = 40

    async def register(self, numbers: Sequence[TrackingNumber]) -> RegistrationResult:
        """Start tracking ``numbers``."""
        raise NotImplementedError(f"register: {_PENDING}")

    async def fetch_status(self, numbers: Sequence[TrackingNumber]) -> list[TrackingUpdate]:
        """Return the current state of ``numbers``."""
        raise NotImplementedError(f"fetch_status: {_PENDING}")

    async def stop(self, numbers: Sequence[TrackingNumber]) -> None:
        """Stop tracking ``numbers``."""
        raise NotImplementedError(f"stop: {_PENDING}")

    async def verify_push(self, *, body: bytes, headers: Mapping[str, str]) -> list[TrackingUpdate]:
        """Check a push notification's signature and return its updates."""
        raise NotImplementedError(f"verify_push: {_PENDING}")
