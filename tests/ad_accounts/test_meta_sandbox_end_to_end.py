"""End to end over real HTTP: a seller connects two Meta accounts through the Meta sandbox
app (``create_sandbox_app``, which serves Facebook Login) on loopback, posting its consent
form as a browser would and following its redirect to the API's callback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

# The tests session installs the Meta plugin (noxfile): a missing plugin fails here.
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import shared_ssl_context
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.sandbox_oauth import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from pydantic import SecretStr

from pixecom_core import hookimpl
from pixecom_core.providers import AdNetwork
from pixecom_core.settings import Settings
from pixecom_core.testing.loopback import LoopbackServer
from tests.ad_accounts.conftest import Owner, stored
from tests.app.conftest import ClientFactory, NewSeller


class ConsentForm(HTMLParser):
    """The consent page's form: its action, hidden fields and ticked permissions."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: list[tuple[str, str]] = []
        self.checked: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden.append((values["name"], values["value"]))
        elif tag == "input" and values.get("type") == "checkbox" and "checked" in values:
            self.checked.append(values["value"])


class MetaPlugin:
    def __init__(self, network: MetaAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with LoopbackServer(create_sandbox_app(MetaSandboxSettings())) as server:
        yield server.url


@pytest.fixture
async def meta_client(
    app_settings: Settings, api_client_for: ClientFactory, sandbox_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    network = MetaAdNetwork(
        MetaAdsSettings(
            graph_base=sandbox_url,
            dialog_base=sandbox_url,
            app_id=DEFAULT_APP_ID,
            app_secret=SecretStr(DEFAULT_APP_SECRET),
        )
    )
    try:
        async with api_client_for(app_settings, plugins=[MetaPlugin(network)]) as client:
            yield client
    finally:
        await network.aclose()


async def consent(
    browser: httpx.AsyncClient, authorization_url: str, *, untick: tuple[str, ...] = ()
) -> str:
    """Open the dialog, submit its form as a browser does; the redirect's location."""
    page = await browser.get(authorization_url)
    assert page.status_code == 200, page.text
    form = ConsentForm()
    form.feed(page.text)
    fields: list[tuple[str, str | int | float | bool | None]] = [
        *form.hidden,
        ("user_id", "100002"),
    ]
    fields += [("scope", scope) for scope in form.checked if scope not in untick]
    fields.append(("decision", "approve"))
    answer = await browser.post(
        httpx.URL(authorization_url).join(form.action),
        content=str(httpx.QueryParams(fields)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code in (302, 303), answer.text
    return str(answer.headers["location"])


async def test_a_seller_connects_two_meta_accounts_through_the_consent_page(
    meta_client: httpx.AsyncClient,
    sandbox_url: str,
    new_seller: NewSeller,
    owner_conn: Owner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seller = await new_seller(client=meta_client)
    started = await meta_client.post(
        "/ad-accounts/connections", json={"network": "meta"}, headers=seller.headers
    )
    assert started.status_code == 201, started.text
    async with httpx.AsyncClient(timeout=10, verify=shared_ssl_context()) as browser:
        location = await consent(browser, started.json()["authorization_url"])
    # The browser follows the redirect to the API's callback (no bearer token).
    callback = httpx.URL(location)
    assert callback.path == "/ad-accounts/connections/callback"
    landed = await meta_client.get(callback.path, params=callback.params)
    assert landed.status_code == 303, landed.text
    connection_id = started.json()["id"]
    assert landed.headers["location"] == f"/dashboard/ad-accounts?connection={connection_id}"

    chooser = await meta_client.get(
        f"/ad-accounts/connections/{connection_id}", headers=seller.headers
    )
    assert chooser.status_code == 200, chooser.text
    reachable = [a["external_id"] for a in chooser.json()["accounts"]]
    assert len(reachable) >= 2
    chosen = reachable[:2]
    connected = await meta_client.post(
        "/ad-accounts",
        json={"connection_id": connection_id, "external_ids": chosen},
        headers=seller.headers,
    )
    assert connected.status_code == 201, connected.text
    listed = await meta_client.get("/ad-accounts", headers=seller.headers)
    assert sorted(a["external_id"] for a in listed.json()["items"]) == sorted(chosen)
    assert {a["state"] for a in listed.json()["items"]} == {
        "backfilling"
    }  # their history is queued
    assert stored(owner_conn, seller.seller_id) == {"grants": 1, "accounts": 2, "account_tokens": 2}

    # Every token the sandbox issued (short- and long-lived) is in no body and no log line.
    async with httpx.AsyncClient(base_url=sandbox_url, verify=shared_ssl_context()) as control:
        issued = await control.get("/_sandbox/oauth/tokens", params={"reveal": "true"})
    tokens = [token["token"] for token in issued.json()]
    assert tokens
    for token in tokens:
        for response in (started, landed, chooser, connected, listed):
            assert token not in response.text
        assert token not in caplog.text


async def test_a_missing_scope_at_the_consent_page_stores_nothing(
    meta_client: httpx.AsyncClient, new_seller: NewSeller, owner_conn: Owner
) -> None:
    seller = await new_seller(client=meta_client)
    started = await meta_client.post(
        "/ad-accounts/connections", json={"network": "meta"}, headers=seller.headers
    )
    async with httpx.AsyncClient(timeout=10, verify=shared_ssl_context()) as browser:
        location = await consent(browser, started.json()["authorization_url"], untick=("ads_read",))
    callback = httpx.URL(location)
    refused = await meta_client.get(callback.path, params=callback.params)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "missing_scopes"
    assert stored(owner_conn, seller.seller_id) == {"grants": 0, "accounts": 0, "account_tokens": 0}
