"""``consentads``: an in-memory ad network with a consent flow, for core's connect tests.

The consent page is a method (:meth:`ConsentAdNetwork.consent`) that answers the redirect
a network would send the browser to; codes and tokens are single strings held in dicts.
The end-to-end tests drive a real network sandbox over HTTP instead.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from pydantic import SecretStr

from pixecom_core import hookimpl
from pixecom_core.providers import (
    AdAccountStatus,
    AdNetwork,
    AdNetworkGrant,
    AuthorizationKind,
    ProviderAuthError,
    ReachableAdAccount,
)
from tests.stats.fakeads import FakeAdNetwork

IDENTIFIER = "consentads"
CONSENT_PAGE = "https://consent.example/dialog"


class ConsentAdNetwork(FakeAdNetwork):
    """A :class:`FakeAdNetwork` that also implements ``AdNetworkAuthorization``."""

    identifier = IDENTIFIER
    display_name = "ConsentAds"
    authorization_kind = AuthorizationKind.OAUTH
    required_scopes = ("ads_read",)

    def __init__(self, accounts: list[ReachableAdAccount]) -> None:
        super().__init__()
        self.accounts = accounts
        self.codes: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        self.grants: dict[str, tuple[str, ...]] = {}
        self.token_lifetime = timedelta(days=60)

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:
        query = urlencode({"state": state, "redirect_uri": redirect_uri, "scope": "ads_read"})
        return f"{CONSENT_PAGE}?{query}"

    def consent(self, redirect_uri: str, *, scopes: tuple[str, ...] = ("ads_read",)) -> str:
        """The seller approves: a fresh code for ``redirect_uri``."""
        code = secrets.token_urlsafe(12)
        token = "CONSENTTOKEN-" + secrets.token_urlsafe(16)
        self.codes[code] = (redirect_uri, token, scopes)
        return code

    async def exchange_code(self, *, code: str, redirect_uri: str) -> AdNetworkGrant:
        entry = self.codes.pop(code, None)
        if entry is None or entry[0] != redirect_uri:
            raise ProviderAuthError("invalid or used code", provider=IDENTIFIER)
        _, token, scopes = entry
        self.grants[token] = scopes
        return self._grant(token, scopes)

    def _grant(self, token: str, scopes: tuple[str, ...]) -> AdNetworkGrant:
        return AdNetworkGrant(
            access_token=SecretStr(token),
            expires_at=datetime.now(UTC) + self.token_lifetime,
            scopes=scopes,
            subject="user-1",
        )

    async def grant_from_token(self, access_token: SecretStr) -> AdNetworkGrant:
        token = access_token.get_secret_value()
        if token not in self.grants:
            raise ProviderAuthError("token is not valid", provider=IDENTIFIER)
        return self._grant(token, self.grants[token])

    async def extend_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        return grant

    async def inspect_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        return grant

    async def list_ad_accounts(self, grant: AdNetworkGrant) -> AsyncIterator[ReachableAdAccount]:
        if grant.access_token.get_secret_value() not in self.grants:
            raise ProviderAuthError("token is not valid", provider=IDENTIFIER)
        for account in self.accounts:
            yield account


def reachable(account_id: str, name: str) -> ReachableAdAccount:
    return ReachableAdAccount(
        account_id=account_id,
        name=name,
        currency="USD",
        timezone="America/New_York",
        status=AdAccountStatus.ACTIVE,
    )


class ConsentAdsPlugin:
    def __init__(self, network: ConsentAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]
