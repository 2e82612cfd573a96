"""A minimal ad-network plugin ("tiktok"), used to prove the conformance kit.

It has the parts docs/plugin-authoring.md walks through, in one module: a client speaking
the network's wire format over httpx, the provider, its sandbox and the hook
implementations. ``BrokenTikTokAdNetwork`` carries the two mistakes connectors make most
(an exclusive ``until`` and errors core cannot classify); the kit must fail it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, SecretStr

from pixecom_core import hookimpl
from pixecom_core.providers import (
    AdAccountCredentials,
    AdAccountInfo,
    AdAccountStatus,
    AdEntity,
    AdEntityStatus,
    AdNetwork,
    AdNetworkGrant,
    ASGIApp,
    AuthorizationKind,
    EntityLevel,
    InsightRow,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    ReachableAdAccount,
    Sandbox,
)
from pixecom_core.testing.sandbox_kit import Fault, SandboxKit

IDENTIFIER = "tiktok"
API_BASE_ENV = "PIXECOM_TIKTOK_API_BASE"
API_BASE = "https://business-api.tiktok.com/open_api/v1.3"
DEMO_ACCOUNT = "7000000001"


class TikTokAdNetwork:
    """The ``tiktok`` ad network: daily report rows from the (sandboxed) reporting API."""

    identifier = IDENTIFIER
    display_name = "TikTok Ads"

    def __init__(self, api_base: str) -> None:
        self.client = httpx.AsyncClient(base_url=api_base, timeout=10)

    async def _get(self, path: str, account: AdAccountCredentials, **params: str) -> Any:
        response = await self.client.get(
            path, params=params, headers={"Access-Token": account.access_token.get_secret_value()}
        )
        if response.status_code == 429:
            raise ProviderThrottled(
                "tiktok rate limit",
                retry_after_seconds=float(response.headers.get("retry-after", "60")),
                provider=IDENTIFIER,
            )
        if response.status_code == 401:
            raise ProviderAuthError("tiktok refused the token", provider=IDENTIFIER)
        if response.status_code >= 500:
            raise ProviderTransientError(f"tiktok {response.status_code}", provider=IDENTIFIER)
        response.raise_for_status()
        return response.json()["data"]

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        """The advertiser's name, currency and time zone."""
        data = await self._get("/advertiser/info", account, advertiser_id=account.account_id)
        return AdAccountInfo(
            account_id=account.account_id,
            name=data["name"],
            currency=data["currency"],
            timezone=data["timezone"],
        )

    def _end_date(self, until: date) -> date:
        return until

    async def fetch_daily_insights(
        self, account: AdAccountCredentials, *, level: EntityLevel, since: date, until: date
    ) -> AsyncIterator[InsightRow]:
        """One row per entity per day between ``since`` and ``until``, both inclusive."""
        data = await self._get(
            "/report",
            account,
            advertiser_id=account.account_id,
            level=level.value,
            start_date=since.isoformat(),
            end_date=self._end_date(until).isoformat(),
        )
        fetched_at = datetime.now(UTC)
        for item in data["rows"]:
            day = date.fromisoformat(item["day"])
            yield InsightRow(
                network=IDENTIFIER,
                entity_type=level,
                entity_id=item["id"],
                date_start=day,
                date_stop=day,
                spend_micros=item["spend_micros"],
                impressions=item["impressions"],
                clicks=item["clicks"],
                purchases=item["purchases"],
                purchase_value_micros=item["purchase_value_micros"],
                currency=data["currency"],
                fetched_at=fetched_at,
            )

    # -- connecting (AdNetworkAuthorization): sellers paste a token from TikTok's UI --------

    authorization_kind = AuthorizationKind.TOKEN
    required_scopes: tuple[str, ...] = ()

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:  # noqa: ARG002
        """No consent page: the seller pastes a long-lived token."""
        return None

    async def exchange_code(self, *, code: str, redirect_uri: str) -> AdNetworkGrant:  # noqa: ARG002
        """There is no code to exchange for a pasted-token network."""
        raise ProviderAuthError("tiktok has no consent page: paste a token", provider=IDENTIFIER)

    async def _advertisers(self, access_token: SecretStr) -> list[dict[str, Any]]:
        probe = AdAccountCredentials(
            seller_id=uuid.UUID(int=0), account_id="-", access_token=access_token
        )
        data = await self._get("/oauth2/advertiser/get", probe)
        advertisers: list[dict[str, Any]] = data["list"]
        return advertisers

    async def grant_from_token(self, access_token: SecretStr) -> AdNetworkGrant:
        """A token TikTok knows is a grant that does not expire."""
        await self._advertisers(access_token)
        return AdNetworkGrant(access_token=access_token)

    async def extend_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """Nothing to extend: the token does not expire."""
        return grant

    async def inspect_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """Still valid, or ``ProviderAuthError``."""
        return await self.grant_from_token(grant.access_token)

    async def list_ad_accounts(self, grant: AdNetworkGrant) -> AsyncIterator[ReachableAdAccount]:
        """The advertisers the token reaches."""
        for item in await self._advertisers(grant.access_token):
            yield ReachableAdAccount(
                account_id=item["advertiser_id"],
                name=item["advertiser_name"],
                currency=item["currency"],
                timezone=item["timezone"],
                status=AdAccountStatus.ACTIVE,
            )

    async def list_entities(
        self, account: AdAccountCredentials, *, level: EntityLevel
    ) -> AsyncIterator[AdEntity]:
        """Every campaign, ad group or ad, page by page (``AdNetworkEntities``)."""
        page = 1
        while True:
            data = await self._get(
                "/entities",
                account,
                advertiser_id=account.account_id,
                level=level.value,
                page=str(page),
            )
            for item in data["list"]:
                yield AdEntity(
                    entity_type=level,
                    entity_id=item["id"],
                    name=item["name"] or item["id"],
                    status=AdEntityStatus.PAUSED
                    if item["status"] == "DISABLE"
                    else AdEntityStatus.ACTIVE,
                    parent_id=item["parent_id"],
                )
            if page >= data["total_pages"]:
                return
            page += 1

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


class BrokenTikTokAdNetwork(TikTokAdNetwork):
    """Wrong on purpose: asks for one day too many, and hides what kind of error it met."""

    def _end_date(self, until: date) -> date:
        return until + timedelta(days=1)

    async def _get(self, path: str, account: AdAccountCredentials, **params: str) -> Any:
        try:
            return await super()._get(path, account, **params)
        except ProviderError as exc:
            raise ProviderError(f"tiktok failed: {exc}", provider=IDENTIFIER) from None


class TikTokSandboxSettings(BaseModel):
    """What ``/_sandbox/config`` changes at run time."""

    latency_seconds: float = Field(default=0.0, ge=0, le=60)


class TikTokFault(Fault):
    """The kit's failures, plus the transport ones the kit renders itself."""

    kind: Literal["throttled", "transient", "auth", "server_error", "malformed", "hang"]


def create_sandbox_app() -> ASGIApp:
    """A fake reporting API: deterministic numbers per entity and day, restatable days, and
    the sandbox kit's control API (faults, latency, request log, reset)."""
    revisions: dict[str, int] = {}
    kit = SandboxKit(
        config=TikTokSandboxSettings(), fault_model=TikTokFault, on_reset=revisions.clear
    )
    app = FastAPI()
    app.include_router(kit.router())

    def number(*parts: object) -> int:
        return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)

    def render(fault: TikTokFault) -> Response:
        if fault.kind == "throttled":
            wait = f"{fault.retry_after_seconds or 120:g}"
            return JSONResponse({"message": "slow down"}, 429, headers={"Retry-After": wait})
        if fault.kind == "auth":
            return JSONResponse({"message": "invalid token"}, 401)
        return JSONResponse({"message": "try later"}, fault.status or 503)

    async def refusal(request: Request, operation: str, advertiser_id: str) -> Response | None:
        refused, _logged = await kit.intercept(request, operation, advertiser_id, render=render)
        return refused

    #: The tokens this fake TikTok issued (the conformance kit's among them).
    known_tokens = {"conformance-kit-token-0123456789"}

    @app.get("/oauth2/advertiser/get")
    async def advertisers(request: Request) -> Response:
        failed = await refusal(request, "advertisers", "-")
        if failed is not None:
            return failed
        if request.headers.get("access-token") not in known_tokens:
            return JSONResponse({"message": "invalid token"}, 401)
        advertiser = {
            "advertiser_id": DEMO_ACCOUNT,
            "advertiser_name": f"Advertiser {DEMO_ACCOUNT}",
            "currency": "USD",
            "timezone": "UTC",
        }
        return JSONResponse({"data": {"list": [advertiser]}})

    @app.get("/advertiser/info")
    async def advertiser(request: Request, advertiser_id: str) -> Response:
        failed = await refusal(request, "advertiser", advertiser_id)
        if failed is not None:
            return failed
        body = {"name": f"Advertiser {advertiser_id}", "currency": "USD", "timezone": "UTC"}
        return JSONResponse({"data": body})

    @app.get("/report")
    async def report(
        request: Request, advertiser_id: str, level: str, start_date: date, end_date: date
    ) -> Response:
        failed = await refusal(request, "report", advertiser_id)
        if failed is not None:
            return failed
        rows: list[dict[str, Any]] = []
        day = start_date
        while day <= end_date:
            revision = revisions.get(day.isoformat(), 0)
            for index in range(2):
                entity = f"{advertiser_id}-{level}-{index}"
                spend = number(entity, day, revision) % 50_000_000
                rows.append(
                    {
                        "id": entity,
                        "day": day.isoformat(),
                        "spend_micros": spend,
                        "impressions": spend // 1000,
                        "clicks": spend // 100_000,
                        "purchases": spend // 10_000_000,
                        "purchase_value_micros": spend * 3,
                    }
                )
            day += timedelta(days=1)
        return JSONResponse({"data": {"currency": "USD", "rows": rows}})

    @app.get("/entities")
    async def entities(request: Request, advertiser_id: str, level: str, page: int) -> Response:
        failed = await refusal(request, "entities", advertiser_id)
        if failed is not None:
            return failed
        parent = {"campaign": None, "adset": "campaign", "ad": "adset"}[level]
        listed = [
            {
                "id": f"{advertiser_id}-{level}-{index}",
                "name": f"{level.title()} {index}",
                "status": "ENABLE" if index == 0 else "DISABLE",
                "parent_id": parent and f"{advertiser_id}-{parent}-{index}",
            }
            for index in range(2)
        ]
        # one entity a page, so the provider's paging is exercised
        body = {"list": listed[page - 1 : page], "total_pages": len(listed)}
        return JSONResponse({"data": body})

    @app.post("/_sandbox/restate")
    async def restate(day: date) -> dict[str, int]:
        revisions[day.isoformat()] = revisions.get(day.isoformat(), 0) + 1
        return {"revision": revisions[day.isoformat()]}

    return app


def _dev_environment(sandbox_url: str, api_url: str) -> Mapping[str, str]:  # noqa: ARG001
    return {API_BASE_ENV: sandbox_url}


def _sandbox() -> Sandbox:
    return Sandbox(
        name=IDENTIFIER,
        provider=IDENTIFIER,
        create_app=create_sandbox_app,
        environment=_dev_environment,
        demo_accounts=(DEMO_ACCOUNT,),
    )


class TikTokPlugin:
    """The plugin object: the network (working or broken) and its sandbox."""

    def __init__(self, network_class: type[TikTokAdNetwork] = TikTokAdNetwork) -> None:
        self.network_class = network_class

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        """Offer the ``tiktok`` ad network, pointed at ``PIXECOM_TIKTOK_API_BASE``."""
        return [self.network_class(os.environ.get(API_BASE_ENV, API_BASE))]

    @hookimpl
    def pixecom_register_sandboxes(self) -> list[Sandbox]:
        """Offer the ``tiktok`` sandbox."""
        return [_sandbox()]
