"""Helpers of the 17TRACK plugin's tests: a fake clock that records sleeps, a handle on the
sandbox's control endpoints and a push receiver (served by ``pixecom_core.testing.loopback``)."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

#: The key the tests' tracker sends and the sandbox accepts.
API_KEY = "t17-test-key-0123456789abcdefSECRET"
#: The key the sandbox signs pushes with and the tests' tracker verifies them with.
PUSH_KEY = "t17-test-push-key-fedcba9876543210"


@dataclass
class FakeTime:
    """A monotonic clock that only moves when something sleeps; every sleep is recorded."""

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, noting the fake clock's time as each request leaves."""

    def __init__(self, fake_time: FakeTime) -> None:
        self._fake_time = fake_time
        self._inner = httpx.AsyncHTTPTransport()
        self.started: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started.append(self._fake_time.now)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class SandboxHandle:
    """The sandbox on loopback: ``url`` for the tracker, ``control`` for ``/_sandbox/`` and
    raw API calls."""

    url: str
    control: httpx.AsyncClient

    async def configure(self, **changes: Any) -> dict[str, Any]:
        response = await self.control.post("/_sandbox/config", json=changes)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def fault(self, kind: str, **options: Any) -> None:
        response = await self.control.post("/_sandbox/faults", json={"kind": kind, **options})
        assert response.status_code == 200, response.text

    async def parcel(self, number: str) -> dict[str, Any]:
        response = await self.control.get(f"/_sandbox/parcels/{number}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def advance(self, number: str, steps: int = 1) -> dict[str, Any]:
        response = await self.control.post(
            f"/_sandbox/parcels/{number}/advance", json={"steps": steps}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def set_status(self, number: str, status: str, **options: Any) -> dict[str, Any]:
        response = await self.control.post(
            f"/_sandbox/parcels/{number}/status", json={"status": status, **options}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def push(self, **order: Any) -> list[dict[str, Any]]:
        response = await self.control.post("/_sandbox/push", json=order)
        assert response.status_code == 200, response.text
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        return deliveries

    async def requests(self, operation: str | None = None) -> list[dict[str, Any]]:
        response = await self.control.get("/_sandbox/requests")
        response.raise_for_status()
        logged: list[dict[str, Any]] = response.json()
        return [entry for entry in logged if operation is None or entry["operation"] == operation]

    async def api(self, operation: str, body: Any, *, key: str | None = API_KEY) -> httpx.Response:
        """A raw API call (``key=None``: no ``17token`` header)."""
        headers = {"17token": key} if key is not None else {}
        return await self.control.post(f"/track/v2.2/{operation}", json=body, headers=headers)


def all_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args and its whole chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), *map(str, current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)
