"""Helpers of the ECB plugin's tests: a handle on the sandbox's control endpoints and files."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import httpx
from pixecom_ecb_rates.eurofxref import ReferenceRatesFile, parse_reference_rates
from pixecom_ecb_rates.source import EcbRateSource

from pixecom_core.providers import Publication

#: The sandbox's day in most tests: a Friday, its rates published.
FRIDAY: Final = date(2026, 3, 20)
#: The sandbox's first day: late enough that the full history stays small.
HISTORY_STARTS_ON: Final = date(2025, 6, 2)

#: Builds a source on the sandbox with settings overrides (the ``make_source`` fixture).
MakeSource = Callable[..., Awaitable[EcbRateSource]]


@dataclass
class SandboxHandle:
    """The sandbox on loopback: ``base_url`` for the source, ``control`` for ``/_sandbox/``
    and for reading the files the way a test computes its oracle."""

    url: str
    control: httpx.AsyncClient

    @property
    def base_url(self) -> str:
        return f"{self.url}/stats/eurofxref"

    async def configure(self, **changes: Any) -> dict[str, Any]:
        response = await self.control.post("/_sandbox/config", json=changes)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def set_today(self, today: date, *, published: bool) -> None:
        """Fix the sandbox's day, and whether its rates are out."""
        await self.configure(today=today.isoformat(), today_published=published)

    async def fault(self, kind: str, **options: Any) -> None:
        response = await self.control.post("/_sandbox/faults", json={"kind": kind, **options})
        assert response.status_code == 200, response.text

    async def withhold(self, day: date) -> None:
        response = await self.control.post(f"/_sandbox/days/{day}/withhold")
        assert response.status_code == 200, response.text

    async def publish(self, day: date) -> None:
        response = await self.control.post(f"/_sandbox/days/{day}/publish")
        assert response.status_code == 200, response.text

    async def override(self, day: date, currency: str, rate: str) -> None:
        response = await self.control.put(
            f"/_sandbox/days/{day}/rates/{currency}", json={"rate": rate}
        )
        assert response.status_code == 200, response.text

    async def requested_paths(self) -> list[str]:
        """The paths of the files requested since the last reset, oldest first."""
        response = await self.control.get("/_sandbox/requests")
        response.raise_for_status()
        return [entry["path"].rsplit("/", 1)[-1] for entry in response.json()]

    async def file(self, file: ReferenceRatesFile) -> httpx.Response:
        """A file as served (logged like the source's own requests)."""
        return await self.control.get(f"/stats/eurofxref/{file.value}")

    async def oracle(self, file: ReferenceRatesFile) -> list[Publication]:
        """What ``file`` lists, parsed independently of the source under test."""
        response = await self.file(file)
        assert response.status_code == 200, response.text
        return parse_reference_rates(response.content)
