"""``faketrack``: an in-memory tracker for core's tracking tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pixecom_core import hookimpl
from pixecom_core.providers import (
    ProviderTransientError,
    RegistrationResult,
    RejectedTrackingNumber,
    Tracker,
    TrackingNumber,
    TrackingStatus,
    TrackingUpdate,
    WebhookVerificationError,
)

IDENTIFIER = "faketrack"
SECRET = b"faketrack-push-key"


def sign(body: bytes) -> str:
    return hmac.new(SECRET, body, hashlib.sha256).hexdigest()


def push(
    number: str, tag: str, status: TrackingStatus, at: datetime
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"number": number, "tag": tag, "status": status.value, "at": at.isoformat()}
    ).encode()
    return body, {"X-Faketrack-Sign": sign(body)}


class FakeTracker:
    identifier = IDENTIFIER
    display_name = "FakeTrack"
    max_batch_size = 2

    def __init__(self) -> None:
        self.registered: dict[str, TrackingNumber] = {}
        self.status: dict[str, TrackingStatus] = {}
        self.down = False
        self.delay_seconds = 0.0
        self.calls = 0

    async def _call(self) -> None:
        self.calls += 1
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.down:
            raise ProviderTransientError("faketrack is down", provider=IDENTIFIER)

    async def register(self, numbers: Sequence[TrackingNumber]) -> RegistrationResult:
        await self._call()
        accepted, rejected = [], []
        for number in numbers:
            if number.number.startswith("BAD"):
                rejected.append(
                    RejectedTrackingNumber(number=number, reason="malformed", retryable=False)
                )
                continue
            self.registered[number.number] = number
            self.status.setdefault(number.number, TrackingStatus.INFO_RECEIVED)
            accepted.append(number)
        return RegistrationResult(accepted=tuple(accepted), rejected=tuple(rejected))

    async def fetch_status(self, numbers: Sequence[TrackingNumber]) -> list[TrackingUpdate]:
        await self._call()
        return [
            TrackingUpdate(
                number=self.registered[n.number],
                status=self.status[n.number],
                updated_at=datetime.now(UTC),
            )
            for n in numbers
            if n.number in self.registered
        ]

    async def stop(self, numbers: Sequence[TrackingNumber]) -> None:  # noqa: ARG002
        await self._call()

    async def verify_push(self, *, body: bytes, headers: Mapping[str, str]) -> list[TrackingUpdate]:
        if not hmac.compare_digest(headers.get("x-faketrack-sign", ""), sign(body)):
            raise WebhookVerificationError("bad faketrack signature", provider=IDENTIFIER)
        payload = json.loads(body)
        return [
            TrackingUpdate(
                number=TrackingNumber(number=payload["number"], tag=payload["tag"]),
                status=TrackingStatus(payload["status"]),
                updated_at=datetime.fromisoformat(payload["at"]),
            )
        ]


class FakeTrackPlugin:
    def __init__(self, tracker: FakeTracker) -> None:
        self.tracker = tracker

    @hookimpl
    def pixecom_register_trackers(self) -> list[Tracker]:
        return [self.tracker]
