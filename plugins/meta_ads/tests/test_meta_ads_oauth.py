"""Connecting a Meta account through Facebook Login: the ad network's
``AdNetworkAuthorization`` side driven over real HTTP against the OAuth sandbox on loopback,
the way a seller's browser and core's callback would."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from meta_ads_support import login_app
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import shared_ssl_context
from pixecom_meta_ads.oauth import reachable_account
from pixecom_meta_ads.sandbox import ACCOUNT_PROFILES
from pixecom_meta_ads.sandbox_oauth import DEFAULT_APP_ID, DEFAULT_APP_SECRET, OAuthSandbox
from pixecom_meta_ads.settings import MetaAdsSettings
from pydantic import SecretStr

from pixecom_core.providers import (
    AdAccountStatus,
    AdNetworkAuthorization,
    AdNetworkGrant,
    AuthorizationKind,
    ProviderAuthError,
    ProviderError,
)
from pixecom_core.testing.loopback import serve

#: The sandbox's clock during every test: a fixed instant, so nothing depends on today.
NOW = 1_900_000_000.0
CALLBACK = "https://shop.example/ad-accounts/connections/meta/callback"
STATE = "signed-state-123"
SIXTY_DAYS = timedelta(days=60)


def account_profile(number: str) -> dict[str, Any]:
    """The Meta sandbox's profile rule (account ``N`` → ``ACCOUNT_PROFILES[N % 8]``)."""
    currency, timezone_name = ACCOUNT_PROFILES[int(number) % len(ACCOUNT_PROFILES)]
    return {
        "name": f"Sandbox ad account {number}",
        "currency": currency,
        "timezone_name": timezone_name,
    }


@pytest.fixture(scope="session")
async def oauth_url() -> AsyncIterator[str]:
    async with serve(login_app(OAuthSandbox(account_profile))) as url:
        yield url


@dataclass
class Browser:
    """The seller's side: opens the consent page and answers it, as a browser would."""

    control: httpx.AsyncClient

    async def consent(
        self,
        authorization_url: str,
        *,
        user_id: str = "100002",
        untick: tuple[str, ...] = (),
        decision: str = "approve",
    ) -> dict[str, str]:
        """Open the dialog, submit its form, return the redirect's query parameters."""
        page = await self.control.get(authorization_url)
        assert page.status_code == 200, page.text
        form = ConsentForm()
        form.feed(page.text)
        fields: list[tuple[str, str]] = [*form.hidden, ("user_id", user_id)]
        fields += [("scope", scope) for scope in form.checked if scope not in untick]
        fields.append(("decision", decision))
        # repeated `scope` fields, url-encoded, as a browser submits the form
        answer = await self.control.post(
            form.action,
            content=str(httpx.QueryParams(fields)),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(CALLBACK + "?")
        return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}

    async def code(self, network: MetaAdNetwork, **choices: Any) -> str:
        url = network.authorization_url(state=STATE, redirect_uri=CALLBACK)
        answer = await self.consent(url, **choices)
        assert answer["state"] == STATE
        return answer["code"]

    async def move_clock(self, **change: float) -> None:
        response = await self.control.post("/_sandbox/clock", json=change)
        assert response.status_code == 200, response.text

    async def tokens(self) -> list[dict[str, Any]]:
        response = await self.control.get("/_sandbox/oauth/tokens", params={"reveal": "true"})
        response.raise_for_status()
        tokens: list[dict[str, Any]] = response.json()
        return tokens


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


@pytest.fixture
async def browser(oauth_url: str) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(
        base_url=oauth_url, timeout=10, verify=shared_ssl_context()
    ) as control:
        (await control.post("/_sandbox/reset")).raise_for_status()
        handle = Browser(control)
        await handle.move_clock(now=NOW)
        yield handle


@pytest.fixture
async def network(oauth_url: str) -> AsyncIterator[MetaAdNetwork]:
    network = MetaAdNetwork(settings_for(oauth_url))
    yield network
    await network.aclose()


def settings_for(url: str, **overrides: Any) -> MetaAdsSettings:
    values: dict[str, Any] = {
        "graph_base": url,
        "dialog_base": url,
        "app_id": DEFAULT_APP_ID,
        "app_secret": SecretStr(DEFAULT_APP_SECRET),
        "page_limit": 2,
    }
    return MetaAdsSettings(**(values | overrides))


def near(moment: datetime | None, expected: float) -> bool:
    """Within a minute: the sandbox's clock is fixed but for the milliseconds a test takes."""
    assert moment is not None
    return abs(moment.timestamp() - expected) < 60


# -- the whole flow ---------------------------------------------------------------------------


async def test_the_network_offers_facebook_login(network: MetaAdNetwork) -> None:
    assert isinstance(network, AdNetworkAuthorization)
    assert network.authorization_kind is AuthorizationKind.OAUTH
    assert network.required_scopes == ("ads_read",)

    url = httpx.URL(network.authorization_url(state=STATE, redirect_uri=CALLBACK))

    assert url.path == "/v25.0/dialog/oauth"
    assert dict(url.params) == {
        "client_id": DEFAULT_APP_ID,
        "redirect_uri": CALLBACK,
        "state": STATE,
        "response_type": "code",
        "scope": "ads_read",
    }


async def test_a_login_for_business_configuration_replaces_the_scope(oauth_url: str) -> None:
    network = MetaAdNetwork(settings_for(oauth_url, login_config_id="987654321"))

    params = httpx.URL(network.authorization_url(state=STATE, redirect_uri=CALLBACK)).params

    assert params["config_id"] == "987654321"
    assert "scope" not in params


async def test_consent_gives_a_sixty_day_grant_that_lists_every_account(
    network: MetaAdNetwork, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx")
    code = await browser.code(network)

    grant = await network.exchange_code(code=code, redirect_uri=CALLBACK)
    accounts = [account async for account in network.list_ad_accounts(grant)]

    assert near(grant.expires_at, NOW + SIXTY_DAYS.total_seconds())
    assert set(grant.scopes) == {"public_profile", "ads_read"}
    assert grant.subject == "100002"
    issued = {token["kind"]: token for token in await browser.tokens()}
    assert set(issued) == {"short_lived", "long_lived"}
    assert grant.access_token.get_secret_value() == issued["long_lived"]["token"]
    assert issued["short_lived"]["expires_at"] - issued["short_lived"]["issued_at"] == 7200
    # five accounts over three pages of two, ids as the insight calls take them
    assert [account.account_id for account in accounts] == ["1002", "1003", "1004", "1005", "1006"]
    assert [account.status for account in accounts] == [
        AdAccountStatus.ACTIVE,
        AdAccountStatus.NEEDS_ATTENTION,
        AdAccountStatus.DISABLED,
        AdAccountStatus.NEEDS_ATTENTION,
        AdAccountStatus.CLOSED,
    ]
    assert (accounts[1].currency, accounts[1].timezone) == ("JPY", "Asia/Tokyo")  # 1003 % 8
    assert accounts[0].name == "Sandbox ad account 1002"
    # what httpx logs of every request (the plugin's, and this test's own browser)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (
        DEFAULT_APP_SECRET,
        code,
        issued["short_lived"]["token"],
        issued["long_lived"]["token"],
    ):
        assert secret not in logged
    assert "client_secret=***" in logged


async def test_a_grant_is_extended_before_it_expires(
    network: MetaAdNetwork, browser: Browser
) -> None:
    grant = await network.exchange_code(code=await browser.code(network), redirect_uri=CALLBACK)
    await browser.move_clock(advance_seconds=timedelta(days=30).total_seconds())

    extended = await network.extend_grant(grant)

    assert extended.access_token != grant.access_token
    assert near(extended.expires_at, NOW + timedelta(days=90).total_seconds())
    assert extended.scopes == grant.scopes
    assert (await network.inspect_grant(grant)).subject == "100002"  # the old one still works


async def test_a_pasted_token_becomes_a_grant(network: MetaAdNetwork, browser: Browser) -> None:
    grant = await network.exchange_code(code=await browser.code(network), redirect_uri=CALLBACK)

    pasted = await network.grant_from_token(grant.access_token)

    assert pasted == grant


async def test_a_grant_that_never_expires_is_not_extended(network: MetaAdNetwork) -> None:
    grant = AdNetworkGrant(access_token=SecretStr("system-user-token"), expires_at=None)

    assert await network.extend_grant(grant) is grant


# -- bad paths: the code ----------------------------------------------------------------------


async def test_a_code_works_once(network: MetaAdNetwork, browser: Browser) -> None:
    code = await browser.code(network)
    await network.exchange_code(code=code, redirect_uri=CALLBACK)

    with pytest.raises(ProviderAuthError, match="This authorization code has been used") as caught:
        await network.exchange_code(code=code, redirect_uri=CALLBACK)

    assert code not in str(caught.value)


async def test_a_code_expires_after_ten_minutes(network: MetaAdNetwork, browser: Browser) -> None:
    code = await browser.code(network)
    await browser.move_clock(advance_seconds=601)

    with pytest.raises(ProviderAuthError, match="This authorization code has expired"):
        await network.exchange_code(code=code, redirect_uri=CALLBACK)


async def test_the_exchange_names_the_dialogs_redirect_uri(
    network: MetaAdNetwork, browser: Browser
) -> None:
    code = await browser.code(network)

    with pytest.raises(ProviderAuthError, match="redirect_uri is identical"):
        await network.exchange_code(code=code, redirect_uri=CALLBACK + "/")


@pytest.mark.usefixtures("browser")
async def test_an_unknown_code_is_refused(network: MetaAdNetwork) -> None:
    with pytest.raises(ProviderAuthError, match="Invalid verification code format"):
        await network.exchange_code(code="AQnot-a-code", redirect_uri=CALLBACK)


async def test_a_wrong_app_secret_is_the_operators_problem_and_stays_secret(
    oauth_url: str, browser: Browser
) -> None:
    wrong = "wrong-app-secret-4711"
    network = MetaAdNetwork(settings_for(oauth_url, app_secret=SecretStr(wrong)))
    code = await browser.code(network)

    with pytest.raises(ProviderError) as caught:
        await network.exchange_code(code=code, redirect_uri=CALLBACK)

    assert not isinstance(caught.value, ProviderAuthError)  # reconnecting cannot help
    message = str(caught.value)
    assert "Error validating client secret" in message
    assert "PIXECOM_META_APP_SECRET" in message
    assert wrong not in message and code not in message
    await network.aclose()


async def test_without_app_credentials_the_error_names_the_settings(oauth_url: str) -> None:
    network = MetaAdNetwork(settings_for(oauth_url, app_id=None, app_secret=None))

    with pytest.raises(ProviderError, match="PIXECOM_META_APP_ID"):
        network.authorization_url(state=STATE, redirect_uri=CALLBACK)
    network = MetaAdNetwork(settings_for(oauth_url, app_secret=None))
    with pytest.raises(ProviderError, match="PIXECOM_META_APP_SECRET"):
        await network.exchange_code(code="AQx", redirect_uri=CALLBACK)


# -- bad paths: the consent page --------------------------------------------------------------


async def test_denying_redirects_with_metas_error(network: MetaAdNetwork, browser: Browser) -> None:
    url = network.authorization_url(state=STATE, redirect_uri=CALLBACK)

    answer = await browser.consent(url, decision="deny")

    assert answer == {
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "Permissions error.",
        "state": STATE,
    }


async def test_an_unticked_ads_read_shows_in_the_grant(
    network: MetaAdNetwork, browser: Browser
) -> None:
    code = await browser.code(network, untick=("ads_read",))

    grant = await network.exchange_code(code=code, redirect_uri=CALLBACK)

    # the network reports what was granted; core compares it with required_scopes
    assert grant.scopes == ("public_profile",)
    assert not set(network.required_scopes) <= set(grant.scopes)
    with pytest.raises(ProviderAuthError, match="ads_read"):
        [account async for account in network.list_ad_accounts(grant)]


async def test_an_unknown_app_gets_an_error_page_not_a_redirect(
    network: MetaAdNetwork, browser: Browser
) -> None:
    url = httpx.URL(network.authorization_url(state=STATE, redirect_uri=CALLBACK))

    page = await browser.control.get(url.copy_merge_params({"client_id": "1"}))

    assert page.status_code == 400
    assert "location" not in page.headers


async def test_a_redirect_uri_the_app_does_not_list_is_blocked(
    network: MetaAdNetwork, browser: Browser
) -> None:
    response = await browser.control.put(
        f"/_sandbox/oauth/apps/{DEFAULT_APP_ID}",
        json={"secret": DEFAULT_APP_SECRET, "redirect_uris": ["https://shop.example/other"]},
    )
    response.raise_for_status()

    page = await browser.control.get(network.authorization_url(state=STATE, redirect_uri=CALLBACK))

    assert page.status_code == 400
    assert "URL Blocked" in page.text


# -- bad paths: the grant later ---------------------------------------------------------------


async def test_a_revoked_grant_must_be_reconnected(
    network: MetaAdNetwork, browser: Browser
) -> None:
    grant = await network.exchange_code(code=await browser.code(network), redirect_uri=CALLBACK)
    token = grant.access_token.get_secret_value()
    response = await browser.control.post(
        "/_sandbox/oauth/tokens/revoke", json={"user_id": "100002"}
    )
    assert response.json() == {"revoked": 2}

    with pytest.raises(ProviderAuthError, match="458") as caught:
        await network.inspect_grant(grant)
    assert token not in str(caught.value)
    assert DEFAULT_APP_SECRET not in str(caught.value)
    with pytest.raises(ProviderAuthError):
        await network.extend_grant(grant)


async def test_removing_the_app_on_meta_revokes_the_grant(
    network: MetaAdNetwork, browser: Browser
) -> None:
    grant = await network.exchange_code(code=await browser.code(network), redirect_uri=CALLBACK)
    removed = await browser.control.delete(
        "/v25.0/me/permissions", params={"access_token": grant.access_token.get_secret_value()}
    )
    assert removed.json() == {"success": True}

    with pytest.raises(ProviderAuthError, match="has not authorized application"):
        await network.inspect_grant(grant)


async def test_an_expired_grant_must_be_reconnected(
    network: MetaAdNetwork, browser: Browser
) -> None:
    grant = await network.exchange_code(code=await browser.code(network), redirect_uri=CALLBACK)
    await browser.move_clock(advance_seconds=SIXTY_DAYS.total_seconds() + 1)

    with pytest.raises(ProviderAuthError, match="463"):
        await network.inspect_grant(grant)
    with pytest.raises(ProviderAuthError, match="463"):
        await network.extend_grant(grant)
    with pytest.raises(ProviderAuthError, match="463"):
        [account async for account in network.list_ad_accounts(grant)]


@pytest.mark.usefixtures("browser")
async def test_a_token_meta_never_issued_is_refused(network: MetaAdNetwork) -> None:
    with pytest.raises(ProviderAuthError, match="not valid") as caught:
        await network.grant_from_token(SecretStr("EAAmade-up-token"))

    assert "EAAmade-up-token" not in str(caught.value)


async def test_another_apps_token_is_refused(
    oauth_url: str, network: MetaAdNetwork, browser: Browser
) -> None:
    other = {"secret": "other-secret", "name": "Someone else"}
    (await browser.control.put("/_sandbox/oauth/apps/777", json=other)).raise_for_status()
    elsewhere = MetaAdNetwork(
        settings_for(oauth_url, app_id="777", app_secret=SecretStr("other-secret"))
    )
    grant = await elsewhere.exchange_code(code=await browser.code(elsewhere), redirect_uri=CALLBACK)

    with pytest.raises(ProviderAuthError, match="issued to Meta app '777'"):
        await network.grant_from_token(grant.access_token)
    await elsewhere.aclose()


# -- mapping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (1, AdAccountStatus.ACTIVE),
        (2, AdAccountStatus.DISABLED),
        (3, AdAccountStatus.NEEDS_ATTENTION),
        (7, AdAccountStatus.NEEDS_ATTENTION),
        (8, AdAccountStatus.NEEDS_ATTENTION),
        (9, AdAccountStatus.NEEDS_ATTENTION),
        (100, AdAccountStatus.CLOSED),
        (101, AdAccountStatus.CLOSED),
        (999, AdAccountStatus.NEEDS_ATTENTION),
    ],
)
def test_account_status_codes(code: int, status: AdAccountStatus) -> None:
    item = {
        "id": "act_42",
        "account_id": "42",
        "name": "Shop",
        "currency": "eur",
        "timezone_name": "Europe/Berlin",
        "account_status": code,
    }

    account = reachable_account(item)

    assert (account.account_id, account.currency, account.status) == ("42", "EUR", status)


def test_an_account_without_a_time_zone_is_an_error() -> None:
    with pytest.raises(ProviderError, match="timezone_name"):
        reachable_account({"account_id": "42", "currency": "USD", "account_status": 1})


def test_expiry_is_the_earlier_of_token_and_data_access() -> None:
    from pixecom_meta_ads.oauth import _expiry

    assert _expiry({"expires_at": 0, "data_access_expires_at": 0}) is None
    assert _expiry({"expires_at": 200, "data_access_expires_at": 100}) == datetime.fromtimestamp(
        100, UTC
    )


# -- settings ---------------------------------------------------------------------------------


def test_the_app_credentials_come_from_the_environment_and_a_secret_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "meta_app_secret"
    secret_file.write_text("from-a-file-secret\n")
    monkeypatch.setenv("PIXECOM_META_APP_ID", "123456")
    monkeypatch.setenv("PIXECOM_META_APP_SECRET_FILE", str(secret_file))
    monkeypatch.setenv("PIXECOM_META_DIALOG_BASE", "http://127.0.0.1:4030/")

    settings = MetaAdsSettings()

    assert settings.app_id == "123456"
    assert settings.app_secret is not None
    assert settings.app_secret.get_secret_value() == "from-a-file-secret"
    assert settings.dialog_base == "http://127.0.0.1:4030"
    assert "from-a-file-secret" not in repr(settings)
    assert "from-a-file-secret" not in repr(MetaAdNetwork(settings).login.settings)


def test_the_dialog_defaults_to_facebook() -> None:
    assert MetaAdsSettings().dialog_base == "https://www.facebook.com"


def test_dev_mode_points_the_dialog_at_the_sandboxs_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from pixecom_meta_ads.plugin import _dev_environment

    for name, value in _dev_environment("http://127.0.0.1:4030", "unused").items():
        monkeypatch.setenv(name, value)
    settings = MetaAdsSettings()

    assert settings.dialog_base == settings.graph_base == "http://127.0.0.1:4030"
    assert settings.app_id == DEFAULT_APP_ID
    assert settings.app_secret == SecretStr(DEFAULT_APP_SECRET)
