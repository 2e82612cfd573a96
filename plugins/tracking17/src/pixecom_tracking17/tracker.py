"""The ``17track`` tracker: core's ``Tracker`` protocol over the 17TRACK v2.2 API.

What 17TRACK sends and how it becomes core's values:

- ``track_info.latest_status.status`` (nine values) → :class:`TrackingStatus` through
  :data:`STATUS_MAP`; ``latest_status.sub_status`` (``InTransit_PickedUp`` …) is kept as
  ``sub_status``. A status outside the nine is logged and its update left out rather than
  guessed.
- ``track_info.tracking.providers[].events[]`` → checkpoints, newest first, at most
  :data:`MAX_CHECKPOINTS` (SCALE-4: every list is bounded); ``time_utc`` is preferred to
  ``time_iso``, an event without a readable time is skipped.
- ``updated_at`` is the time of ``track_info.latest_event`` (else the newest checkpoint,
  else the providers' ``latest_sync_time``, else now): the same answer or push always gives
  the same ``updated_at``, so a duplicate push is the same update.
- ``tag`` is echoed: 17TRACK stores the tag given at registration and returns it in
  ``gettrackinfo`` answers and in pushes.

Carriers: core passes what the seller entered (``"usps"``) or a 17TRACK numeric code
(``"21051"``). :func:`carrier_code` turns both into 17TRACK's code; a carrier it does not
know is left to 17TRACK's auto-detection instead of being refused. Updates from
``fetch_status`` carry back the carrier core asked with; updates from pushes carry
``carrier=None`` ("any"), because a push only names 17TRACK's numeric code, which is not
the value core stored.
"""

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pixecom_core.providers import (
    ProviderTransientError,
    RegistrationResult,
    RejectedTrackingNumber,
    TrackingCheckpoint,
    TrackingNumber,
    TrackingStatus,
    TrackingUpdate,
    WebhookVerificationError,
)
from pixecom_tracking17.client import (
    CODE_ALREADY_REGISTERED,
    MAX_NUMBERS_PER_CALL,
    PROVIDER,
    Entry,
    Rejection,
    Track17Client,
)
from pixecom_tracking17.settings import ENV_PREFIX, Track17Settings
from pixecom_tracking17.signatures import SIGNATURE_HEADER, signature_matches

#: 17TRACK's main statuses (v2.2 ``latest_status.status``) in core's vocabulary.
STATUS_MAP: Final[Mapping[str, TrackingStatus]] = {
    "NotFound": TrackingStatus.NOT_FOUND,
    "InfoReceived": TrackingStatus.INFO_RECEIVED,
    "InTransit": TrackingStatus.IN_TRANSIT,
    "Expired": TrackingStatus.EXPIRED,
    "AvailableForPickup": TrackingStatus.AVAILABLE_FOR_PICKUP,
    "OutForDelivery": TrackingStatus.OUT_FOR_DELIVERY,
    "DeliveryFailure": TrackingStatus.DELIVERY_FAILURE,
    "Delivered": TrackingStatus.DELIVERED,
    "Exception": TrackingStatus.EXCEPTION,
}

#: Carrier names sellers type, as 17TRACK carrier codes (``apicarrier.all.json``). Only
#: the big ones: any other carrier is detected by 17TRACK from the number.
CARRIER_CODES: Final[Mapping[str, int]] = {
    "usps": 21051,
    "ups": 100002,
    "fedex": 100003,
    "dhl": 100001,
    "dhl-express": 100001,
    "china-post": 3011,
    "chinapost": 3011,
    "royal-mail": 11031,
    "royalmail": 11031,
    "australia-post": 1151,
    "auspost": 1151,
}

PUSH_UPDATED: Final = "TRACKING_UPDATED"
PUSH_STOPPED: Final = "TRACKING_STOPPED"

#: Checkpoints kept per update (newest first); SCALE-4.
MAX_CHECKPOINTS: Final = 100
#: Providers (carrier legs) and events read per number; SCALE-4.
MAX_PROVIDERS: Final = 10
MAX_EVENTS_PER_PROVIDER: Final = 500
#: Entries read from one push (17TRACK sends one number per push).
MAX_PUSH_ENTRIES: Final = MAX_NUMBERS_PER_CALL

_log = logging.getLogger(__name__)


def carrier_code(carrier: str | None) -> int | None:
    """17TRACK's numeric code for ``carrier``, or ``None`` to let 17TRACK detect it.

    Digits are taken as a 17TRACK code already; names are looked up in
    :data:`CARRIER_CODES` (case, spaces and underscores ignored).
    """
    if carrier is None:
        return None
    text = carrier.strip()
    if text.isdigit():
        return int(text)
    return CARRIER_CODES.get(text.lower().replace("_", "-").replace(" ", "-"))


def _key(number: str) -> str:
    # 17TRACK answers with the number as it stores it; match case- and space-insensitively
    return "".join(number.split()).upper()


def _entry(number: TrackingNumber, *, with_tag: bool) -> Entry:
    entry: Entry = {"number": number.number}
    code = carrier_code(number.carrier)
    if code is not None:
        entry["carrier"] = code
    if with_tag and number.tag is not None:
        entry["tag"] = number.tag
    return entry


def _unique(numbers: Iterable[TrackingNumber]) -> list[TrackingNumber]:
    """``numbers`` without repeats of one number (the first one kept), in order."""
    seen: dict[str, TrackingNumber] = {}
    for number in numbers:
        seen.setdefault(_key(number.number), number)
    return list(seen.values())


def _reason(rejection: Rejection) -> str:
    return f"{rejection.message} (17TRACK code {rejection.code})"


class Tracker17:
    """The ``17track`` tracker; implements ``pixecom_core.providers.Tracker``.

    Built from ``PIXECOM_TRACKING17_*`` by the plugin hook; nothing needs to be set for
    that: a call that needs the key raises ``ProviderAuthError`` naming the variable, a
    push that cannot be checked raises ``WebhookVerificationError``.

    :param settings: where 17TRACK is, its keys, timeout and rate (from the environment
        when omitted).
    :param client: the HTTP client (tests inject one with a fake clock).
    :param now: the current time, used only when 17TRACK names no time at all.
    """

    identifier = PROVIDER
    display_name = "17TRACK"
    max_batch_size = MAX_NUMBERS_PER_CALL

    def __init__(
        self,
        settings: Track17Settings | None = None,
        *,
        client: Track17Client | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings if settings is not None else Track17Settings()
        self.client = client if client is not None else Track17Client(self.settings)
        self._now = now

    async def register(self, numbers: Sequence[TrackingNumber]) -> RegistrationResult:
        """Start tracking ``numbers`` (``register``); each one lands in one list.

        Already registered numbers (``-18019901``) count as accepted. Quota, daily-limit
        and 17TRACK-side errors are rejected as retryable; malformed numbers, wrong or
        undetectable carriers as not retryable. A number 17TRACK did not mention at all is
        rejected as retryable.

        :param numbers: at most ``max_batch_size`` numbers (more are split into calls).
        """
        unique = _unique(numbers)
        result = await self.client.register([_entry(n, with_tag=True) for n in unique])
        outcomes: dict[str, Rejection | None] = {}
        for rejection in result.rejected:
            outcomes[_key(rejection.number)] = rejection
        for entry in result.accepted:
            outcomes[_key(str(entry.get("number", "")))] = None  # accepted wins
        accepted: list[TrackingNumber] = []
        rejected: list[RejectedTrackingNumber] = []
        for number in numbers:
            key = _key(number.number)
            if key not in outcomes:
                rejected.append(
                    RejectedTrackingNumber(
                        number=number,
                        reason="17TRACK's answer did not mention this number",
                        retryable=True,
                    )
                )
                continue
            outcome = outcomes[key]
            if outcome is None or outcome.code == CODE_ALREADY_REGISTERED:
                accepted.append(number)
            else:
                rejected.append(
                    RejectedTrackingNumber(
                        number=number, reason=_reason(outcome), retryable=outcome.retryable
                    )
                )
        return RegistrationResult(accepted=tuple(accepted), rejected=tuple(rejected))

    async def fetch_status(self, numbers: Sequence[TrackingNumber]) -> list[TrackingUpdate]:
        """The current state of ``numbers`` (``gettrackinfo``), one update per number.

        Numbers 17TRACK does not know (``-18019902``) or has nothing on yet are left out,
        as are answers with a status outside the nine known ones.

        :param numbers: at most ``max_batch_size`` numbers (more are split into calls).
        """
        unique = _unique(numbers)
        result = await self.client.gettrackinfo([_entry(n, with_tag=False) for n in unique])
        for rejection in result.rejected:
            log = _log.warning if rejection.retryable else _log.debug
            log("17track has no state for %s: %s", rejection.number, _reason(rejection))
        items: dict[str, list[Entry]] = {}
        for entry in result.accepted:
            items.setdefault(_key(str(entry.get("number", ""))), []).append(entry)
        updates: list[TrackingUpdate] = []
        for number in unique:
            item = _pick(items.get(_key(number.number), []), carrier_code(number.carrier))
            if item is None:
                continue
            tag = number.tag if number.tag is not None else _text(item.get("tag"))
            carrier = number.carrier if number.carrier is not None else _text(item.get("carrier"))
            update = tracking_update(
                item,
                number=TrackingNumber(number=number.number, carrier=carrier, tag=tag),
                now=self._now,
            )
            if update is not None:
                updates.append(update)
        return updates

    async def stop(self, numbers: Sequence[TrackingNumber]) -> None:
        """Stop tracking ``numbers`` (``stoptrack``) so they no longer use quota.

        Unknown and already stopped numbers are fine. Raises ``ProviderTransientError``
        when 17TRACK refused some numbers for a passing reason (e.g. its internal error),
        so the caller retries the whole batch; stopping twice is harmless.

        :param numbers: at most ``max_batch_size`` numbers (more are split into calls).
        """
        unique = _unique(numbers)
        result = await self.client.stoptrack([_entry(n, with_tag=False) for n in unique])
        passing = [rejection for rejection in result.rejected if rejection.retryable]
        for rejection in result.rejected:
            if not rejection.retryable:
                _log.debug("17track did not stop %s: %s", rejection.number, _reason(rejection))
        if passing:
            raise ProviderTransientError(
                f"17TRACK could not stop {len(passing)} of {len(unique)} numbers for now, "
                f"e.g. {passing[0].number}: {_reason(passing[0])}",
                provider=PROVIDER,
            )

    async def verify_push(self, *, body: bytes, headers: Mapping[str, str]) -> list[TrackingUpdate]:
        """Check a push's ``sign`` header and return the updates it carries.

        The signature is checked over the raw ``body`` before anything is parsed
        (:mod:`pixecom_tracking17.signatures`). ``TRACKING_UPDATED`` gives one update per
        number; ``TRACKING_STOPPED`` gives nothing unless it carries a ``track_info`` (the
        number keeps its last status); other events give nothing.

        :param body: the raw request body, byte for byte.
        :param headers: the request headers (names in any case; core lower-cases them).
        :raises WebhookVerificationError: no key configured, no or a wrong ``sign`` header,
            a body that is not a JSON object with an ``event``, or entries without a number.
        """
        key = self.settings.signing_key()
        if key is None:
            raise WebhookVerificationError(
                f"cannot check 17TRACK pushes: set {ENV_PREFIX}PUSH_KEY or {ENV_PREFIX}API_KEY "
                "(17TRACK signs pushes with the account's security key)",
                provider=PROVIDER,
            )
        received = _header(headers, SIGNATURE_HEADER)
        if not received or not received.strip():
            raise WebhookVerificationError(
                f"the push has no {SIGNATURE_HEADER!r} header", provider=PROVIDER
            )
        if not signature_matches(body, key.get_secret_value(), received):
            raise WebhookVerificationError(
                f"the push's {SIGNATURE_HEADER!r} header does not match its body and the "
                f"configured key ({ENV_PREFIX}PUSH_KEY, else {ENV_PREFIX}API_KEY)",
                provider=PROVIDER,
            )
        payload = _push_payload(body)
        event = payload["event"]
        if event not in (PUSH_UPDATED, PUSH_STOPPED):
            _log.info("ignoring a 17track push of kind %r", event[:64])
            return []
        updates: list[TrackingUpdate] = []
        for item in _push_items(payload.get("data")):
            if event == PUSH_STOPPED and not isinstance(item.get("track_info"), dict):
                continue  # the number stopped; its status did not change
            number = TrackingNumber(number=item["number"], carrier=None, tag=_text(item.get("tag")))
            update = tracking_update(item, number=number, now=self._now)
            if update is not None:
                updates.append(update)
        return updates

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.client.aclose()


def _pick(items: list[Entry], code: int | None) -> Entry | None:
    """The entry for the carrier asked for, else the first (one number, several carriers)."""
    if code is not None:
        for item in items:
            if item.get("carrier") == code:
                return item
    return items[0] if items else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for header, candidate in headers.items():
        if header.lower() == name:
            return candidate
    return None


def _push_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError(
            "the push's body is not UTF-8 JSON", provider=PROVIDER
        ) from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the push's body is not a JSON object", provider=PROVIDER)
    if not isinstance(payload.get("event"), str) or not payload["event"]:
        raise WebhookVerificationError("the push names no event", provider=PROVIDER)
    return payload


def _push_items(data: Any) -> list[dict[str, Any]]:
    """The push's numbers: ``data`` is one object in v2.2 (a list is accepted too)."""
    entries = data if isinstance(data, list) else [data]
    if not entries or len(entries) > MAX_PUSH_ENTRIES:
        raise WebhookVerificationError(
            f"the push carries {len(entries)} entries (1 to {MAX_PUSH_ENTRIES} expected)",
            provider=PROVIDER,
        )
    items: list[dict[str, Any]] = []
    for entry in entries:
        number = entry.get("number") if isinstance(entry, dict) else None
        if not isinstance(number, str) or not number.strip():
            raise WebhookVerificationError(
                "the push's data has an entry without a tracking number", provider=PROVIDER
            )
        items.append(entry)
    return items


def tracking_update(
    item: Mapping[str, Any], *, number: TrackingNumber, now: Callable[[], datetime]
) -> TrackingUpdate | None:
    """The update one ``gettrackinfo`` entry or push entry describes, or ``None`` when it
    has no ``track_info`` or an unknown status.

    :param item: ``{"number", "carrier", "tag", "track_info": {...}}``.
    :param number: the number to report it under (carrier and tag already settled).
    :param now: used only when 17TRACK names no time at all.
    """
    track_info = item.get("track_info")
    if not isinstance(track_info, dict):
        return None
    latest = track_info.get("latest_status")
    latest = latest if isinstance(latest, dict) else {}
    status = STATUS_MAP.get(str(latest.get("status")))
    if status is None:
        _log.warning(
            "17track reported status %r for %s; leaving it out",
            str(latest.get("status"))[:64],
            number.number,
        )
        return None
    checkpoints = _checkpoints(track_info)
    latest_event = track_info.get("latest_event")
    updated_at = (
        (_event_time(latest_event) if isinstance(latest_event, dict) else None)
        or (checkpoints[0].occurred_at if checkpoints else None)
        or _latest_sync_time(track_info)
        or now()
    )
    return TrackingUpdate(
        number=number,
        status=status,
        sub_status=_text(latest.get("sub_status")),
        checkpoints=checkpoints,
        updated_at=updated_at,
    )


def _providers(track_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    tracking = track_info.get("tracking")
    providers = tracking.get("providers") if isinstance(tracking, dict) else None
    if not isinstance(providers, list):
        return []
    return [p for p in providers[:MAX_PROVIDERS] if isinstance(p, dict)]


def _checkpoints(track_info: Mapping[str, Any]) -> tuple[TrackingCheckpoint, ...]:
    seen: set[tuple[datetime, str, str | None]] = set()
    checkpoints: list[TrackingCheckpoint] = []
    for provider in _providers(track_info):
        events = provider.get("events")
        for event in events[:MAX_EVENTS_PER_PROVIDER] if isinstance(events, list) else []:
            if not isinstance(event, dict):
                continue
            occurred_at = _event_time(event)
            if occurred_at is None:
                continue
            description = _text(event.get("description")) or ""
            location = _location(event)
            identity = (occurred_at, description, location)
            if identity in seen:
                continue  # one scan reported by two carrier legs
            seen.add(identity)
            checkpoints.append(
                TrackingCheckpoint(
                    occurred_at=occurred_at, description=description, location=location
                )
            )
    checkpoints.sort(key=lambda checkpoint: checkpoint.occurred_at, reverse=True)
    return tuple(checkpoints[:MAX_CHECKPOINTS])


def _location(event: Mapping[str, Any]) -> str | None:
    location = _text(event.get("location"))
    if location:
        return location
    address = event.get("address")
    if not isinstance(address, dict):
        return None
    parts = [_text(address.get(part)) for part in ("city", "state", "country")]
    joined = ", ".join(part for part in parts if part)
    return joined or None


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    return _time(event.get("time_utc")) or _time(event.get("time_iso"))


def _latest_sync_time(track_info: Mapping[str, Any]) -> datetime | None:
    times = [_time(provider.get("latest_sync_time")) for provider in _providers(track_info)]
    known = [moment for moment in times if moment is not None]
    return max(known) if known else None


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime; one without an offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None
