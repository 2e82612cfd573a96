"""Helpers of the Meta Ads plugin's tests: a fake clock that records sleeps, and a handle on
the sandbox's control endpoints (sandboxes are served by ``pixecom_core.testing.loopback``)."""

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from fastapi import FastAPI
from pixecom_meta_ads.sandbox_oauth import OAuthSandbox
from pydantic import BaseModel, SecretStr

from pixecom_core.providers import AdAccountCredentials
from pixecom_core.testing.sandbox_kit import Fault, SandboxKit

TOKEN = "EAAGsandboxTOKEN0123456789abcdefSECRET"


@dataclass
class FakeTime:
    """A wall clock that only moves when something sleeps; every sleep is recorded."""

    now: float = 1_700_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class LoginSettings(BaseModel):
    """The Meta sandbox's one setting Facebook Login reads."""

    refuse_unknown_tokens: bool = False


def login_app(login: OAuthSandbox) -> FastAPI:
    """Facebook Login on its own, with the sandbox kit's ``/_sandbox/reset``,
    ``/_sandbox/clock`` and ``/_sandbox/config`` as the Meta sandbox mounts them."""

    def configure(settings: LoginSettings) -> None:
        login.refuse_unknown_tokens = settings.refuse_unknown_tokens

    kit = SandboxKit(
        config=LoginSettings(),
        fault_model=Fault,
        clock=login.clock,
        on_reset=login.reset,
        on_config=configure,
    )
    app = FastAPI()
    app.include_router(kit.router())
    app.include_router(login.router())
    return app


def credentials(account_id: str, token: str = TOKEN) -> AdAccountCredentials:
    return AdAccountCredentials(
        seller_id=uuid.uuid4(), account_id=account_id, access_token=SecretStr(token)
    )


@dataclass
class SandboxHandle:
    """The sandbox on loopback: ``url`` for the plugin, ``control`` for ``/_sandbox/`` and raw
    Graph calls."""

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

    async def account(self, number: str) -> dict[str, Any]:
        response = await self.control.get(f"/_sandbox/accounts/{number}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def change_account(self, number: str, **changes: Any) -> dict[str, Any]:
        response = await self.control.put(f"/_sandbox/accounts/{number}", json=changes)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def restate(self, number: str, day: date | None = None) -> httpx.Response:
        body = {"day": day.isoformat()} if day is not None else None
        return await self.control.post(f"/_sandbox/accounts/{number}/restate", json=body)

    async def requests(self, path_suffix: str = "") -> list[dict[str, Any]]:
        response = await self.control.get("/_sandbox/requests")
        response.raise_for_status()
        logged: list[dict[str, Any]] = response.json()
        return [entry for entry in logged if entry["path"].endswith(path_suffix)]

    async def graph(self, method: str, path: str, **params: str) -> httpx.Response:
        """A raw Graph call with the test token."""
        params.setdefault("access_token", TOKEN)
        if method == "POST":
            return await self.control.post(path, data=params)
        return await self.control.request(method, path, params=params)


async def raw_daily_rows(
    sandbox: SandboxHandle, number: str, level: str, since: date, until: date
) -> list[dict[str, Any]]:
    """The sandbox's own rows for a daily report, in one page, straight from the wire."""
    response = await sandbox.graph(
        "GET",
        f"/v25.0/act_{number}/insights",
        level=level,
        fields=f"{level}_id,date_start,date_stop,spend,impressions,inline_link_clicks,"
        "clicks,actions,action_values,account_currency",
        time_range=f'{{"since":"{since}","until":"{until}"}}',
        time_increment="1",
        limit="5000",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "next" not in body.get("paging", {})
    rows: list[dict[str, Any]] = body["data"]
    return rows
