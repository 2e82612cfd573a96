"""The parcel-tracking provider interface and the values it exchanges with core.

Core registers every shipped order's tracking number with a tracker, then learns about
progress two ways: the tracker pushes updates (``verify_push``) and core polls the numbers
that went quiet (``fetch_status``). Delivered, expired and cancelled numbers are stopped so
they no longer count against the tracker's quota.
"""

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import AwareDatetime, Field

from pixecom_core.providers.values import FrozenValue


class TrackingStatus(StrEnum):
    """Where a parcel is, in one vocabulary for every tracker."""

    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    DELIVERY_FAILURE = "delivery_failure"
    EXCEPTION = "exception"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"


class TrackingNumber(FrozenValue):
    """A tracking number as the seller entered it.

    :param number: the carrier's tracking number.
    :param carrier: the tracker's carrier code, or ``None`` to let the tracker detect it.
    :param tag: an opaque reference (core uses the order id) that the tracker stores and
        echoes back in updates, so a push can be matched without a lookup by number.
    """

    number: str = Field(min_length=1)
    carrier: str | None = None
    tag: str | None = None


class RejectedTrackingNumber(FrozenValue):
    """A number the tracker refused to register.

    :param number: the number as submitted.
    :param reason: the tracker's explanation, for the seller.
    :param retryable: ``True`` when the same number may be accepted later (quota, outage),
        ``False`` when it never will (malformed, unknown carrier).
    """

    number: TrackingNumber
    reason: str
    retryable: bool


class RegistrationResult(FrozenValue):
    """The outcome of one ``register`` call; every submitted number is in exactly one list.

    Numbers the tracker already knew count as accepted.

    :param accepted: numbers now being tracked.
    :param rejected: numbers that were not, each with its reason.
    """

    accepted: tuple[TrackingNumber, ...] = ()
    rejected: tuple[RejectedTrackingNumber, ...] = ()


class TrackingCheckpoint(FrozenValue):
    """One scan in the parcel's history.

    :param occurred_at: when the carrier recorded it.
    :param description: the carrier's text.
    :param location: where it happened, if known.
    """

    occurred_at: AwareDatetime
    description: str
    location: str | None = None


class TrackingUpdate(FrozenValue):
    """The current state of one tracking number.

    :param number: the number, with the carrier the tracker settled on and the tag it stored.
    :param status: the normalised status.
    :param sub_status: the tracker's finer status code, kept for support questions.
    :param checkpoints: the history, newest first, as far as the tracker reports it.
    :param updated_at: when the tracker last saw a change.
    """

    number: TrackingNumber
    status: TrackingStatus
    sub_status: str | None = None
    checkpoints: tuple[TrackingCheckpoint, ...] = ()
    updated_at: AwareDatetime


@runtime_checkable
class Tracker(Protocol):
    """A parcel-tracking service (17TRACK, AfterShip, ...) that watches tracking numbers.

    Register an implementation with the ``pixecom_register_trackers`` hook. Core never passes
    more than ``max_batch_size`` numbers to one call.
    """

    @property
    def identifier(self) -> str:
        """The stable key stored with every registered number, e.g. ``"17track"``."""
        ...

    @property
    def display_name(self) -> str:
        """The name shown to sellers, e.g. ``"17TRACK"``."""
        ...

    @property
    def max_batch_size(self) -> int:
        """The largest number of tracking numbers the tracker accepts in one request."""
        ...

    async def register(self, numbers: Sequence[TrackingNumber]) -> RegistrationResult:
        """Start tracking ``numbers``; report which were accepted and which were not.

        A rejected number is reported, not raised: one bad number must not fail the batch.

        :param numbers: at most ``max_batch_size`` numbers.
        """
        ...

    async def fetch_status(self, numbers: Sequence[TrackingNumber]) -> list[TrackingUpdate]:
        """Return the current state of registered ``numbers`` (unknown ones are left out).

        :param numbers: at most ``max_batch_size`` numbers.
        """
        ...

    async def stop(self, numbers: Sequence[TrackingNumber]) -> None:
        """Stop tracking ``numbers``; stopping an unknown or stopped number is not an error.

        :param numbers: at most ``max_batch_size`` numbers.
        """
        ...

    async def verify_push(self, *, body: bytes, headers: Mapping[str, str]) -> list[TrackingUpdate]:
        """Check a push notification's signature and return the updates it carries.

        Raise ``WebhookVerificationError`` when the signature or format is wrong.

        :param body: the raw request body.
        :param headers: the request headers, lower-cased names.
        """
        ...
