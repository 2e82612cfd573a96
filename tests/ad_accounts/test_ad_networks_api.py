"""GET /ad-networks: the networks a seller can connect, as the installed plugins register
them (the dashboard's "Connect" buttons come from it)."""

from __future__ import annotations

import httpx

from pixecom_core.settings import Settings
from tests.ad_accounts.consentads import IDENTIFIER, ConsentAdNetwork, ConsentAdsPlugin
from tests.app.conftest import ClientFactory, NewSeller
from tests.stats import fakeads


async def test_lists_the_installed_networks_and_how_to_connect_them(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()

    response = await api_client.get("/ad-networks", headers=seller.headers)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "networks": [
            {"identifier": IDENTIFIER, "display_name": "ConsentAds", "authorization_kind": "oauth"}
        ]
    }


async def test_needs_a_login(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/ad-networks")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_a_network_whose_plugin_cannot_connect_accounts_has_no_kind(
    app_settings: Settings,
    api_client_for: ClientFactory,
    network: ConsentAdNetwork,
    new_seller: NewSeller,
) -> None:
    plugins = [ConsentAdsPlugin(network), fakeads]
    async with api_client_for(app_settings, plugins=plugins) as client:
        seller = await new_seller(client=client)
        response = await client.get("/ad-networks", headers=seller.headers)

    assert response.status_code == 200, response.text
    assert response.json()["networks"] == [
        {"identifier": IDENTIFIER, "display_name": "ConsentAds", "authorization_kind": "oauth"},
        {"identifier": fakeads.IDENTIFIER, "display_name": "FakeAds", "authorization_kind": None},
    ]
