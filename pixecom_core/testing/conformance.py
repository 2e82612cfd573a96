"""The conformance kit: the provider contract, as tests any plugin runs against its sandbox.

A plugin's test suite subclasses one base class per provider it ships and says how to drive
its sandbox; the inherited tests then check, over real HTTP on loopback, what core relies on
(see ``docs/plugin-authoring.md`` for a walk-through)::

    from pixecom_core.testing.conformance import AdNetworkConformance, Failure

    import pixecom_tiktok_ads.plugin


    class TestTikTokConformance(AdNetworkConformance):
        plugin = pixecom_tiktok_ads.plugin
        identifier = "tiktok"
        sandbox_name = "tiktok"

        async def restate(self, sandbox, account_id, day): ...

Sandboxes are built on :mod:`pixecom_core.testing.sandbox_kit`, so the kit drives every
one the same way: failures are queued with ``POST /_sandbox/faults`` (``{"kind":
"throttled"}``…), and the control API itself (faults, config, reset, request log) is
checked once here for every plugin.

Every test starts the way ``pixecom dev`` does: the plugin is registered in a fresh plugin
manager, its sandbox is found through ``pixecom_register_sandboxes`` and served on a free
loopback port, the sandbox's ``environment`` is applied (pointing the plugin at the sandbox
and the sandbox's webhooks at a recording stand-in for the API), and only then is the
provider looked up by identifier. So the kit also proves that the plugin works in dev mode.

The module is a pytest plugin too, which a plugin's ``tests/conftest.py`` loads with
``pytest_plugins = ["pixecom_core.testing.conformance"]`` (it needs the ``testing`` extra of
``pixecom-core``; nothing loads it on its own, so installing core never changes another
project's pytest run): it registers the ``conformance`` marker that every kit test carries,
so ``pytest -m conformance`` runs only the kit.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from pixecom_core.ledger.inbox import kept_webhook_headers
from pixecom_core.payments.connections import account_webhook_url
from pixecom_core.plugins import ProviderKind, ProviderRegistry, create_plugin_manager
from pixecom_core.providers import (
    AdAccountCredentials,
    AdAccountInfo,
    AdEntity,
    AdNetwork,
    AdNetworkAuthorization,
    AdNetworkEntities,
    AdNetworkGrant,
    AuthorizationKind,
    CurrencyRateSource,
    EntityLevel,
    GatewayPaymentEvent,
    GatewayRefund,
    InsightRow,
    MerchantAccount,
    PaymentConnectionKind,
    PaymentEventKind,
    PaymentGateway,
    PaymentGatewayConnections,
    PaymentRequest,
    PaymentSession,
    PresignedUpload,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ProviderThrottled,
    ProviderTransientError,
    ProviderUnavailable,
    RateAnswer,
    ReachableAdAccount,
    RefundRequest,
    RefundState,
    RegistrationResult,
    Sandbox,
    Storage,
    Tracker,
    TrackingNumber,
    TrackingStatus,
    TrackingUpdate,
    UploadRequest,
    VerifiedWebhook,
    WebhookAccount,
    WebhookVerificationError,
)
from pixecom_core.providers.sandboxes import ASGIApp, Receive, Scope, Send
from pixecom_core.testing.loopback import LoopbackServer
from pixecom_core.testing.sandbox_kit import FAILURE_KINDS

MARKER = "conformance"

#: What core accepts as a provider identifier: stored with every row, used in URLs and
#: settings names, so lower case, short, no spaces.
IDENTIFIER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: The redirect URI and state the kit's consent flows use (core's callback, elsewhere).
CALLBACK = "https://pixecom.example/ad-accounts/connections/callback"
CONSENT_STATE = "conformance-kit-state-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker every kit test carries (``pytest -m conformance``)."""
    config.addinivalue_line("markers", f"{MARKER}: a test of the PixEcom provider conformance kit")


# -- the harness: a sandbox served the way `pixecom dev` serves it -------------------------


class Failure(StrEnum):
    """A failure a plugin's sandbox can be told to produce, and the error core expects."""

    #: The provider's rate limit: ``ProviderThrottled``.
    THROTTLED = "throttled"
    #: A failure that passes (5xx, timeout): ``ProviderTransientError`` or
    #: ``ProviderUnavailable``, never ``ProviderAuthError``.
    TRANSIENT = "transient"
    #: Credentials refused: ``ProviderAuthError``, never a transient class (retrying
    #: cannot help; the seller must reconnect).
    AUTH = "auth"


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request the sandbox sent to the API stand-in (a webhook, a push).

    :param method: the HTTP method.
    :param path: the request path.
    :param headers: the headers, lower-cased names.
    :param body: the raw body, byte for byte.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class _ApiStandIn:
    """Stands in for the reference app: records every request and answers 200."""

    def __init__(self) -> None:
        self.received: list[ReceivedRequest] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]
                if event == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.received.append(ReceivedRequest(scope["method"], scope["path"], headers, body))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})


class _LateApp:
    """An ASGI app whose target is set after the server's URL is known (the sandbox's
    settings may name that URL)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("the sandbox app was not created before the server started")
        await self.app(scope, receive, send)


@dataclass
class SandboxUnderTest:
    """The plugin's sandbox on loopback, as the kit's tests and a plugin's drivers see it.

    :param sandbox: what ``pixecom_register_sandboxes`` returned for it.
    :param url: the sandbox's base URL (the plugin was pointed at it).
    :param api_url: the base URL of the API stand-in the sandbox's webhooks go to.
    :param http: a client on ``url`` for the sandbox's control endpoints.
    :param received: what the sandbox sent to the API stand-in, oldest first.
    """

    sandbox: Sandbox
    url: str
    api_url: str
    http: httpx.AsyncClient
    received: list[ReceivedRequest] = field(default_factory=list)

    async def wait_for_requests(
        self, count: int = 1, *, since: int = 0, timeout_seconds: float = 10.0
    ) -> list[ReceivedRequest]:
        """Wait until the API stand-in has ``count`` requests after index ``since``.

        :raises AssertionError: fewer arrived in ``timeout_seconds``.
        """
        deadline = time.monotonic() + timeout_seconds
        while len(self.received) - since < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the sandbox sent {len(self.received) - since} request(s) to the API "
                    f"within {timeout_seconds} s, expected {count}"
                )
            await asyncio.sleep(0.02)
        return self.received[since:]


async def _close(provider: object) -> None:
    # Providers own HTTP clients; the Protocols do not require aclose, most have one.
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()


def _chain_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args and its whole chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), *map(str, current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def tampered(body: bytes) -> bytes:
    """``body`` with its last digit changed: still well-formed JSON, different content.

    A change of content, not of whitespace: gateways verified through an API (PayPal's
    verify-webhook-signature) compare the parsed event, so only a change that means
    something must fail everywhere.
    """
    for index in range(len(body) - 1, -1, -1):
        if 0x30 <= body[index] <= 0x39:  # never 0: a number must not gain a leading zero
            replacement = b"3" if body[index] == ord("7") else b"7"
            return body[:index] + replacement + body[index + 1 :]
    raise AssertionError("the delivery carries no digit to change; tamper it another way")


def assert_iso_4217(code: str) -> None:
    """Fail unless ``code`` is a currency of the ISO 4217 list (not only three letters)."""
    import pycountry  # the `test` extra; imported here so loading the plugin never needs it

    assert pycountry.currencies.get(alpha_3=code) is not None, (
        f"{code!r} is not an ISO 4217 currency code"
    )


def assert_error_for(failure: Failure, error: BaseException, *, secret: str | None) -> None:
    """Fail unless ``error`` is the core error class ``failure`` calls for.

    :param secret: a credential that must appear nowhere in the error or its chain.
    """
    assert isinstance(error, ProviderError), (
        f"{failure} raised {type(error).__name__}, not a pixecom_core.providers error class"
    )
    if failure is Failure.THROTTLED:
        assert isinstance(error, ProviderThrottled), f"throttling raised {error!r}"
        assert error.retry_after_seconds is None or error.retry_after_seconds >= 0
    elif failure is Failure.TRANSIENT:
        assert isinstance(error, ProviderTransientError | ProviderUnavailable), (
            f"a transient failure raised {error!r}, which core would not retry"
        )
        assert not isinstance(error, ProviderAuthError)
    else:
        assert isinstance(error, ProviderAuthError), f"a refused credential raised {error!r}"
        assert not isinstance(error, ProviderTransientError | ProviderUnavailable), (
            "a refused credential must not be retried"
        )
    if secret:
        assert secret not in _chain_text(error), "the error shows the credential"


async def consent_code(sandbox: SandboxUnderTest, url: str | None, provider: str) -> str:
    """Play the seller on an OAuth provider's consent page (the sandbox's
    ``approve_consent``) for the consent ``url`` the plugin built with the kit's state and
    callback; return the code it redirects back with, after checking the redirect."""
    assert url, f"an OAuth {provider} gives a consent URL"
    approve = sandbox.sandbox.approve_consent
    assert approve is not None, (
        f"an OAuth {provider}'s sandbox sets Sandbox.approve_consent, so dev mode and this kit "
        "can play the seller on its consent page"
    )
    location = await approve(url)
    assert location.startswith(f"{CALLBACK}?"), f"not sent back to the redirect URI: {location}"
    query = parse_qs(urlsplit(location).query)
    assert query.get("state") == [CONSENT_STATE], "the state must come back unchanged"
    assert query.get("code"), f"no code in the redirect: {location}"
    return query["code"][0]


class ProviderConformance:
    """What every kit class shares: the plugin under test and its sandbox on loopback.

    Set the class attributes in your subclass (name it ``Test…`` so pytest collects it).
    """

    #: The plugin object, as the ``pixecom`` entry point names it (usually its module).
    plugin: ClassVar[object]
    #: The identifier the provider must register under.
    identifier: ClassVar[str]
    #: The name of the sandbox the plugin ships for it.
    sandbox_name: ClassVar[str]
    #: Extra environment for the run, applied after the sandbox's own (e.g. no backoff
    #: between retries, so failure tests finish in milliseconds).
    environment: ClassVar[Mapping[str, str]] = {}
    #: The failures the sandbox can produce (``inject_failure`` gets each of them).
    failures: ClassVar[frozenset[Failure]] = frozenset(Failure)
    #: How many calls an injected failure answers: more than the provider's in-place
    #: retries, so the failure reaches the caller (each test gets a fresh sandbox).
    failure_times: ClassVar[int] = 50
    #: Run the sandbox app's lifespan (startup and shutdown), as dev mode does.
    sandbox_lifespan: ClassVar[Literal["auto", "on", "off"]] = "auto"

    kind: ClassVar[ProviderKind]
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [getattr(pytest.mark, MARKER)]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run each failure test once per failure the subclass's sandbox can produce."""
        if "failure" in metafunc.fixturenames:
            failures = sorted(type(self).failures)
            metafunc.parametrize("failure", failures, ids=[str(f) for f in failures])

    @pytest_asyncio.fixture
    async def sandbox(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SandboxUnderTest]:
        """The plugin's sandbox served on loopback, with its dev environment applied."""
        for name in ("PIXECOM_LOAD_PLUGINS", "PIXECOM_PLUGIN_MODULES"):
            monkeypatch.delenv(name, raising=False)
        # Only the sandbox hook: providers are built after the environment names the
        # sandbox, as in dev mode, where settings are read once at start.
        manager = create_plugin_manager(load_entry_points=False, plugins=[self.plugin])
        offered = [s for found in manager.hook.pixecom_register_sandboxes() for s in found]
        named = [s for s in offered if s.name == self.sandbox_name]
        assert len(named) == 1, (
            f"expected one sandbox named {self.sandbox_name!r} from pixecom_register_sandboxes, "
            f"got {[s.name for s in offered]}"
        )
        sandbox = named[0]
        api = _ApiStandIn()
        late = _LateApp()
        served = LoopbackServer(late, lifespan=self.sandbox_lifespan)
        async with LoopbackServer(api) as api_server:
            if sandbox.environment is not None:
                for name, value in sandbox.environment(served.url, api_server.url).items():
                    monkeypatch.setenv(name, value)
            for name, value in self.environment.items():
                monkeypatch.setenv(name, value)
            late.app = sandbox.create_app()
            async with served, httpx.AsyncClient(base_url=served.url, timeout=30) as http:
                yield SandboxUnderTest(
                    sandbox=sandbox,
                    url=served.url,
                    api_url=api_server.url,
                    http=http,
                    received=api.received,
                )

    async def inject_failure(
        self, sandbox: SandboxUnderTest, failure: Failure, scope: str | None = None
    ) -> None:
        """Queue ``failure`` on the sandbox through the kit's fault API (``POST
        /_sandbox/faults``) for the next :attr:`failure_times` calls about ``scope`` (an ad
        account; any when ``None``). Override it only for a sandbox not built on
        :mod:`pixecom_core.testing.sandbox_kit`."""
        fault: dict[str, Any] = {"kind": failure.value, "times": self.failure_times}
        if scope is not None:
            fault["scope"] = scope
        response = await sandbox.http.post("/_sandbox/faults", json=fault)
        assert response.status_code == 200, (
            f"the sandbox refused the fault {fault}: {response.status_code} {response.text}"
        )

    @pytest.fixture
    def registry(self, sandbox: SandboxUnderTest) -> ProviderRegistry:  # noqa: ARG002
        """A fresh registry built after the sandbox's environment was applied."""
        return ProviderRegistry(
            create_plugin_manager(load_entry_points=False, plugins=[self.plugin])
        )

    # -- tests every provider kind shares ----------------------------------------------

    def test_identifier_is_valid_and_stable(self, registry: ProviderRegistry) -> None:
        """The identifier is stored with every row: well formed, and the same every time."""
        assert IDENTIFIER_PATTERN.match(self.identifier), (
            f"identifier {self.identifier!r} must match {IDENTIFIER_PATTERN.pattern}"
        )
        assert self.identifier in registry.names(self.kind)
        again = ProviderRegistry(
            create_plugin_manager(load_entry_points=False, plugins=[self.plugin])
        )
        assert registry.names(self.kind) == again.names(self.kind)

    def test_sandbox_is_discovered_for_the_provider(
        self, registry: ProviderRegistry, sandbox: SandboxUnderTest
    ) -> None:
        """``pixecom dev`` finds the sandbox through the hook and can configure the plugin."""
        found = registry.sandbox(self.sandbox_name)
        assert found.name == self.sandbox_name
        assert found.provider == self.identifier
        assert callable(found.create_app)
        assert found.environment is not None, (
            "a sandbox needs `environment` so dev mode can point the plugin at it"
        )
        environment = found.environment(sandbox.url, sandbox.api_url)
        assert environment and all(
            isinstance(name, str) and isinstance(value, str) for name, value in environment.items()
        )
        assert any(sandbox.url in value for value in environment.values()), (
            "the sandbox's environment must point the plugin at the sandbox's URL"
        )


class SandboxKitChecks:
    """The sandbox kit's control API, checked once for every sandbox built on it
    (:mod:`pixecom_core.testing.sandbox_kit`): the same fault queue, settings, reset and
    request log everywhere, so a test written for one sandbox drives any other."""

    @pytest.mark.asyncio
    async def test_sandbox_queues_lists_and_clears_faults(self, sandbox: SandboxUnderTest) -> None:
        """``POST /_sandbox/faults`` queues each failure kind; a fault it cannot render,
        or a field it does not know, is refused with 422 and queues nothing."""
        for kind in FAILURE_KINDS:
            added = await sandbox.http.post("/_sandbox/faults", json={"kind": kind, "times": 3})
            assert added.status_code == 200, f"{kind}: {added.status_code} {added.text}"
        refused = [
            await sandbox.http.post("/_sandbox/faults", json=body)
            for body in ({"kind": "no-such-failure"}, {"kind": "transient", "colour": "red"})
        ]
        assert [r.status_code for r in refused] == [422, 422]

        queued = (await sandbox.http.get("/_sandbox/faults")).json()
        assert [(f["kind"], f["times"]) for f in queued] == [(k, 3) for k in FAILURE_KINDS]
        cleared = await sandbox.http.delete("/_sandbox/faults")
        assert cleared.json() == {"cleared": len(FAILURE_KINDS)}
        assert (await sandbox.http.get("/_sandbox/faults")).json() == []

    @pytest.mark.asyncio
    async def test_sandbox_settings_refuse_unknown_names_and_reset_restores(
        self, sandbox: SandboxUnderTest
    ) -> None:
        """Settings change at run time, validated; reset restores them and drops faults."""
        before = (await sandbox.http.get("/_sandbox/config")).json()
        assert "latency_seconds" in before, "every sandbox can be slowed down"
        unknown = await sandbox.http.post("/_sandbox/config", json={"no_such_setting": 1})
        assert unknown.status_code == 422
        invalid = await sandbox.http.post("/_sandbox/config", json={"latency_seconds": "slow"})
        assert invalid.status_code == 422
        changed = await sandbox.http.post("/_sandbox/config", json={"latency_seconds": 0.001})
        assert changed.status_code == 200, changed.text
        assert changed.json()["latency_seconds"] == 0.001
        await sandbox.http.post("/_sandbox/faults", json={"kind": "transient"})

        assert (await sandbox.http.post("/_sandbox/reset")).status_code == 200
        assert (await sandbox.http.get("/_sandbox/config")).json() == before
        assert (await sandbox.http.get("/_sandbox/faults")).json() == []
        assert (await sandbox.http.get("/_sandbox/requests")).json() == []


async def _assert_calls_logged(sandbox: SandboxUnderTest) -> None:
    """The sandbox's request log saw the provider's calls (and no credential in them)."""
    logged = (await sandbox.http.get("/_sandbox/requests")).json()
    assert logged, "the sandbox logged none of the provider's calls in /_sandbox/requests"


# -- ad networks ------------------------------------------------------------------------


def _row_key(row: InsightRow) -> tuple[str, str, date]:
    return (row.entity_type.value, row.entity_id, row.date_start)


def _row_numbers(row: InsightRow) -> dict[str, Any]:
    return row.model_dump(exclude={"fetched_at"})


class AdNetworkConformance(SandboxKitChecks, ProviderConformance):
    """The ``AdNetwork`` contract, checked against the plugin's sandbox.

    Subclass it, set :attr:`plugin`, :attr:`identifier` and :attr:`sandbox_name`, and
    implement :meth:`restate` with the sandbox's control API.
    The sandbox's ``demo_accounts`` must serve daily rows for the last two weeks.
    """

    kind = ProviderKind.AD_NETWORK

    #: The token the kit sends; the sandbox must accept it.
    access_token: ClassVar[str] = "conformance-kit-token-0123456789"
    #: Whether the network names its campaigns, ad sets and ads (``AdNetworkEntities``). A
    #: network that does not sets it to ``False``: the entity test then reports a skip
    #: saying so, and fails while it is ``True`` and ``list_entities`` is missing.
    lists_entities: ClassVar[bool] = True

    async def restate(self, sandbox: SandboxUnderTest, account_id: str, day: date) -> None:
        """Make the sandbox report different numbers for ``day`` of ``account_id`` (the
        network restating a past day)."""
        raise NotImplementedError("implement restate() with your sandbox's control API")

    def credentials(self, account_id: str) -> AdAccountCredentials:
        """The seller credentials the kit calls the network with."""
        return AdAccountCredentials(
            seller_id=uuid.uuid4(), account_id=account_id, access_token=SecretStr(self.access_token)
        )

    @pytest_asyncio.fixture
    async def ad_network(self, registry: ProviderRegistry) -> AsyncIterator[AdNetwork]:
        """The provider, found by identifier in a registry built from the hook."""
        network = registry.ad_network(self.identifier)
        yield network
        await _close(network)

    @pytest.fixture
    def account_id(self, sandbox: SandboxUnderTest) -> str:
        """The first demo account the sandbox advertises."""
        assert sandbox.sandbox.demo_accounts, (
            "an ad network's sandbox must advertise demo_accounts (dev mode connects them)"
        )
        return sandbox.sandbox.demo_accounts[0]

    async def _window(self, network: AdNetwork, account_id: str) -> tuple[date, date]:
        info = await network.describe_account(self.credentials(account_id))
        today = datetime.now(zoneinfo.ZoneInfo(info.timezone)).date()
        return today - timedelta(days=7), today - timedelta(days=2)

    async def _fetch(
        self, network: AdNetwork, account_id: str, level: EntityLevel, since: date, until: date
    ) -> list[InsightRow]:
        rows = network.fetch_daily_insights(
            self.credentials(account_id), level=level, since=since, until=until
        )
        return [row async for row in rows]

    def test_registered_through_the_hook(self, registry: ProviderRegistry) -> None:
        """The hook offers an ``AdNetwork`` found by its identifier, with a display name."""
        network = registry.ad_network(self.identifier)
        assert isinstance(network, AdNetwork)
        assert network.identifier == self.identifier
        assert isinstance(network.display_name, str) and network.display_name.strip()

    @pytest.mark.asyncio
    async def test_describe_account_gives_currency_and_time_zone(
        self, ad_network: AdNetwork, account_id: str
    ) -> None:
        """Core cuts days in the account's time zone and converts from its currency."""
        info = await ad_network.describe_account(self.credentials(account_id))
        assert isinstance(info, AdAccountInfo)
        assert info.name
        assert_iso_4217(info.currency)
        zoneinfo.ZoneInfo(info.timezone)  # raises for a name that is not an IANA zone

    @pytest.mark.asyncio
    @pytest.mark.parametrize("level", list(EntityLevel), ids=[level.value for level in EntityLevel])
    async def test_insights_are_typed_rows_one_per_entity_and_day(
        self, ad_network: AdNetwork, account_id: str, level: EntityLevel
    ) -> None:
        """Rows are ``InsightRow``s of this network and level, one per entity and day, in
        the window, in the account's currency, amounts as integer micros."""
        since, until = await self._window(ad_network, account_id)
        info = await ad_network.describe_account(self.credentials(account_id))
        started = datetime.now(UTC)

        rows = await self._fetch(ad_network, account_id, level, since, until)

        assert rows, f"the demo account {account_id} returned no {level} rows for {since}..{until}"
        for row in rows:
            assert isinstance(row, InsightRow)
            assert row.network == self.identifier
            assert row.entity_type is level
            assert since <= row.date_start == row.date_stop <= until
            assert row.currency == info.currency
            assert_iso_4217(row.currency)
            for amount in (row.spend_micros, row.purchase_value_micros):
                assert type(amount) is int and amount >= 0
            assert row.fetched_at.tzinfo is not None
            assert row.fetched_at >= started - timedelta(minutes=5)
        keys = [_row_key(row) for row in rows]
        assert len(keys) == len(set(keys)), "two rows for one entity and day in one fetch"
        assert len({row.date_start for row in rows}) > 1, "a six-day window gave one day"

    @pytest.mark.asyncio
    async def test_a_window_is_the_days_it_names(
        self, ad_network: AdNetwork, account_id: str
    ) -> None:
        """``since`` and ``until`` are inclusive: a window's rows are exactly the rows of its
        days fetched one by one (no ``until + 1``, no multi-day sums)."""
        since, until = await self._window(ad_network, account_id)
        until = since + timedelta(days=1)
        window = await self._fetch(ad_network, account_id, EntityLevel.CAMPAIGN, since, until)
        first = await self._fetch(ad_network, account_id, EntityLevel.CAMPAIGN, since, since)
        second = await self._fetch(ad_network, account_id, EntityLevel.CAMPAIGN, until, until)

        assert {row.date_start for row in first} == {since}
        assert {row.date_start for row in second} == {until}
        assert sorted(map(_row_key, window)) == sorted(map(_row_key, first + second))
        by_key = {_row_key(row): _row_numbers(row) for row in first + second}
        assert all(by_key[_row_key(row)] == _row_numbers(row) for row in window)

    @pytest.mark.asyncio
    async def test_the_same_request_twice_gives_the_same_rows(
        self, ad_network: AdNetwork, account_id: str
    ) -> None:
        """Fetching is idempotent: core re-reads windows every cycle and must see the same
        numbers when nothing changed."""
        since, until = await self._window(ad_network, account_id)
        first = await self._fetch(ad_network, account_id, EntityLevel.AD, since, until)
        second = await self._fetch(ad_network, account_id, EntityLevel.AD, since, until)

        assert sorted(map(_row_numbers, first), key=str) == sorted(
            map(_row_numbers, second), key=str
        )

    @pytest.mark.asyncio
    async def test_a_restated_day_returns_the_new_numbers(
        self, ad_network: AdNetwork, account_id: str, sandbox: SandboxUnderTest
    ) -> None:
        """When the network restates a day, the next fetch carries the new numbers for that
        day and leaves the other days alone (core keeps the latest snapshot)."""
        since, until = await self._window(ad_network, account_id)
        before = await self._fetch(ad_network, account_id, EntityLevel.AD, since, until)

        await self.restate(sandbox, account_id, until)
        after = await self._fetch(ad_network, account_id, EntityLevel.AD, since, until)

        old = {_row_key(row): _row_numbers(row) for row in before}
        new = {_row_key(row): _row_numbers(row) for row in after}
        other_days_old = {key: value for key, value in old.items() if key[2] != until}
        other_days_new = {key: value for key, value in new.items() if key[2] != until}
        assert other_days_new == other_days_old, "restating one day changed other days"
        restated_old = {key: value for key, value in old.items() if key[2] == until}
        restated_new = {key: value for key, value in new.items() if key[2] == until}
        assert restated_new != restated_old, f"the restated day {until} kept its old numbers"

    @pytest.mark.asyncio
    async def test_entities_name_every_reported_entity(
        self, ad_network: AdNetwork, account_id: str
    ) -> None:
        """``list_entities`` names every entity the insights report, at every level, once,
        with a non-blank name; every ad set's campaign and every ad's ad set is listed too
        (core files them under their parents)."""
        if not self.lists_entities:
            pytest.skip(f"{self.identifier} does not name its entities (lists_entities = False)")
        assert isinstance(ad_network, AdNetworkEntities), (
            f"{type(ad_network).__name__} has no list_entities(): implement "
            "AdNetworkEntities, or set lists_entities = False in the conformance class"
        )
        since, until = await self._window(ad_network, account_id)
        credentials = self.credentials(account_id)
        listed: dict[EntityLevel, dict[str, AdEntity]] = {}
        for level in EntityLevel:
            entities = [e async for e in ad_network.list_entities(credentials, level=level)]
            assert entities, f"the demo account {account_id} lists no {level} entities"
            for entity in entities:
                assert isinstance(entity, AdEntity)
                assert entity.entity_type is level
                assert entity.name.strip()
            ids = [entity.entity_id for entity in entities]
            assert len(ids) == len(set(ids)), f"a {level} listed twice"
            listed[level] = {entity.entity_id: entity for entity in entities}
            reported = {
                row.entity_id
                for row in await self._fetch(ad_network, account_id, level, since, until)
            }
            unnamed = reported - listed[level].keys()
            assert not unnamed, (
                f"insights report {level}s list_entities does not name: {sorted(unnamed)}"
            )
        parents = {EntityLevel.ADSET: EntityLevel.CAMPAIGN, EntityLevel.AD: EntityLevel.ADSET}
        for level, parent_level in parents.items():
            orphans = {
                entity.entity_id: entity.parent_id
                for entity in listed[level].values()
                if entity.parent_id not in listed[parent_level]
            }
            assert not orphans, f"{level}s whose {parent_level} is not listed: {orphans}"

    # -- connecting: the authorization flow (AdNetworkAuthorization) --------------------

    def _authorization(self, ad_network: AdNetwork) -> AdNetworkAuthorization:
        assert isinstance(ad_network, AdNetworkAuthorization), (
            f"{type(ad_network).__name__} does not implement AdNetworkAuthorization: sellers "
            "could not connect their accounts of this network"
        )
        return ad_network

    async def _grant(
        self, authorization: AdNetworkAuthorization, sandbox: SandboxUnderTest
    ) -> tuple[AdNetworkGrant, str | None]:
        """A grant as a seller gets one: through the consent page the sandbox's
        ``approve_consent`` answers (OAuth), or from a pasted token (TOKEN); and the code."""
        if authorization.authorization_kind is AuthorizationKind.TOKEN:
            url = authorization.authorization_url(state=CONSENT_STATE, redirect_uri=CALLBACK)
            assert url is None, "a pasted-token network has no consent page"
            return await authorization.grant_from_token(SecretStr(self.access_token)), None
        url = authorization.authorization_url(state=CONSENT_STATE, redirect_uri=CALLBACK)
        code = await consent_code(sandbox, url, "network")
        return await authorization.exchange_code(code=code, redirect_uri=CALLBACK), code

    @pytest.mark.asyncio
    async def test_connecting_gives_a_grant_with_the_scopes_syncing_needs(
        self, ad_network: AdNetwork, sandbox: SandboxUnderTest
    ) -> None:
        """The consent flow (or a pasted token) gives a grant holding every required scope,
        not yet expired; inspecting and extending it keep it usable."""
        authorization = self._authorization(ad_network)
        grant, _ = await self._grant(authorization, sandbox)

        assert isinstance(grant, AdNetworkGrant) and grant.access_token.get_secret_value()
        missing = set(authorization.required_scopes) - set(grant.scopes)
        assert not missing, f"the grant lacks the required scopes {sorted(missing)}"
        now = datetime.now(UTC)
        assert grant.expires_at is None or grant.expires_at > now
        inspected = await authorization.inspect_grant(grant)
        assert set(authorization.required_scopes) <= set(inspected.scopes)
        extended = await authorization.extend_grant(grant)
        assert extended.expires_at is None or extended.expires_at > now
        if grant.expires_at is not None and extended.expires_at is not None:
            assert extended.expires_at >= grant.expires_at, "extending shortened the grant"

    @pytest.mark.asyncio
    async def test_a_grant_lists_the_accounts_it_reaches(
        self, ad_network: AdNetwork, sandbox: SandboxUnderTest
    ) -> None:
        """What the account chooser shows: each account once, with a name, an ISO 4217
        currency, an IANA time zone and a status."""
        authorization = self._authorization(ad_network)
        grant, _ = await self._grant(authorization, sandbox)

        accounts = [account async for account in authorization.list_ad_accounts(grant)]

        assert accounts, "the sandbox's seller reaches no ad account"
        ids = [account.account_id for account in accounts]
        assert len(ids) == len(set(ids)), f"an account listed twice: {ids}"
        for account in accounts:
            assert isinstance(account, ReachableAdAccount)
            assert account.name.strip()
            assert_iso_4217(account.currency)
            zoneinfo.ZoneInfo(account.timezone)

    @pytest.mark.asyncio
    async def test_a_used_code_another_redirect_or_a_bad_token_is_refused(
        self, ad_network: AdNetwork, sandbox: SandboxUnderTest
    ) -> None:
        """Codes are single-use and bound to their redirect URI; a token the network does
        not know is refused — each as ``ProviderAuthError`` (the seller must connect again),
        never quoting the secret."""
        authorization = self._authorization(ad_network)
        grant, code = await self._grant(authorization, sandbox)
        if code is None:
            bad = "not-a-token-the-network-issued"
            with pytest.raises(ProviderAuthError) as refused:
                await authorization.grant_from_token(SecretStr(bad))
            assert bad not in _chain_text(refused.value)
            return
        with pytest.raises(ProviderAuthError) as reused:
            await authorization.exchange_code(code=code, redirect_uri=CALLBACK)
        assert code not in _chain_text(reused.value)
        url = authorization.authorization_url(state=CONSENT_STATE, redirect_uri=CALLBACK)
        assert url is not None and sandbox.sandbox.approve_consent is not None
        fresh = parse_qs(urlsplit(await sandbox.sandbox.approve_consent(url)).query)["code"][0]
        with pytest.raises(ProviderAuthError):
            await authorization.exchange_code(code=fresh, redirect_uri=f"{CALLBACK}/elsewhere")
        assert grant.access_token.get_secret_value() not in _chain_text(reused.value)

    @pytest.mark.asyncio
    async def test_failures_raise_core_error_classes(
        self,
        ad_network: AdNetwork,
        account_id: str,
        sandbox: SandboxUnderTest,
        failure: Failure,
    ) -> None:
        """Each failure maps to the class core reacts to (wait, retry, ask to reconnect);
        a throttle names the wait; the token appears in no error."""
        since, until = await self._window(ad_network, account_id)
        await self.inject_failure(sandbox, failure, account_id)

        with pytest.raises(ProviderError) as raised:
            await self._fetch(ad_network, account_id, EntityLevel.CAMPAIGN, since, until)

        assert_error_for(failure, raised.value, secret=self.access_token)
        await _assert_calls_logged(sandbox)
        if isinstance(raised.value, ProviderThrottled):
            wait = raised.value.retry_after_seconds
            assert wait is not None and wait > 0, "the sandbox named a wait; the error lost it"


# -- payment gateways -------------------------------------------------------------------


class PaymentGatewayConformance(SandboxKitChecks, ProviderConformance):
    """The ``PaymentGateway`` contract, checked against the plugin's sandbox.

    Implement :meth:`settle_payment` (the buyer pays; the sandbox then sends its signed
    webhooks to the API stand-in) and :meth:`sign_at`.

    A gateway that implements ``PaymentGatewayConnections`` is also checked on sellers'
    own accounts: an ``OAUTH`` gateway through its sandbox's ``Sandbox.approve_consent``
    (each approval connecting another account), a ``CREDENTIALS`` gateway through
    :meth:`connect_credentials`, which it overrides. For a gateway without the protocol
    those tests report a skip.
    """

    kind = ProviderKind.PAYMENT_GATEWAY

    #: The currency and amount of the kit's payments.
    currency: ClassVar[str] = "EUR"
    amount_minor: ClassVar[int] = 4_250

    async def settle_payment(self, sandbox: SandboxUnderTest, session: PaymentSession) -> None:
        """Make the sandbox complete (capture) the payment ``session`` started, so that it
        delivers the gateway's signed webhooks to ``sandbox.api_url``."""
        raise NotImplementedError("implement settle_payment() with your sandbox's control API")

    async def sign_at(
        self,
        sandbox: SandboxUnderTest,
        body: bytes,
        headers: Mapping[str, str],
        *,
        signed_at: datetime,
    ) -> Mapping[str, str]:
        """Return ``headers`` with a signature of ``body`` made at ``signed_at``, the way the
        sandbox signs (the kit signs now, and an hour ago for a replayed delivery)."""
        raise NotImplementedError("implement sign_at() with your gateway's signature scheme")

    async def connect_credentials(self, sandbox: SandboxUnderTest) -> Mapping[str, SecretStr]:
        """For a ``CREDENTIALS`` gateway: credentials the sandbox accepts, one value per
        ``credential_fields`` name, of an account no earlier call returned (the kit
        connects two accounts and tells their payments apart). ``OAUTH`` gateways need
        not override it."""
        raise NotImplementedError(
            "implement connect_credentials() with your sandbox's valid seller credentials"
        )

    def payment_request(
        self, idempotency_key: str | None = None, *, account: MerchantAccount | None = None
    ) -> PaymentRequest:
        """A request for :attr:`amount_minor` :attr:`currency` for a new order, on
        ``account`` when given."""
        return PaymentRequest(
            idempotency_key=idempotency_key or f"conformance-{uuid.uuid4()}",
            seller_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            amount_minor=self.amount_minor,
            currency=self.currency,
            return_url="https://shop.example/paid",
            cancel_url="https://shop.example/cart",
            account=account,
        )

    @pytest_asyncio.fixture
    async def gateway(self, registry: ProviderRegistry) -> AsyncIterator[PaymentGateway]:
        """The provider, found by identifier in a registry built from the hook."""
        gateway = registry.payment_gateway(self.identifier)
        yield gateway
        await _close(gateway)

    async def _captured_webhooks(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> tuple[PaymentSession, list[ReceivedRequest], list[GatewayPaymentEvent]]:
        """Pay through the sandbox; return the deliveries up to the one carrying CAPTURED."""
        session = await gateway.create_payment(self.payment_request())
        await self.settle_payment(sandbox, session)
        events: list[GatewayPaymentEvent] = []
        seen = 0
        deadline = time.monotonic() + 15
        while not any(event.kind is PaymentEventKind.CAPTURED for event in events):
            assert time.monotonic() < deadline, "no webhook announced the captured payment"
            arrived = await sandbox.wait_for_requests(1, since=seen)
            for request in arrived:
                webhook = await gateway.verify_webhook(body=request.body, headers=request.headers)
                events += await gateway.parse_events(webhook)
            seen += len(arrived)
        return session, sandbox.received[:seen], events

    def test_registered_through_the_hook(self, registry: ProviderRegistry) -> None:
        """The hook offers a ``PaymentGateway`` found by its identifier."""
        gateway = registry.payment_gateway(self.identifier)
        assert isinstance(gateway, PaymentGateway)
        assert gateway.identifier == self.identifier
        assert isinstance(gateway.display_name, str) and gateway.display_name.strip()

    @pytest.mark.asyncio
    async def test_create_payment_is_idempotent_on_its_key(self, gateway: PaymentGateway) -> None:
        """A retry with the same idempotency key is the same payment; a new key a new one."""
        request = self.payment_request()
        first = await gateway.create_payment(request)
        retried = await gateway.create_payment(request)
        other = await gateway.create_payment(self.payment_request())

        assert isinstance(first, PaymentSession)
        assert first.gateway == self.identifier
        assert first.gateway_reference
        assert retried.gateway_reference == first.gateway_reference
        assert other.gateway_reference != first.gateway_reference

    @pytest.mark.asyncio
    async def test_signed_webhooks_verify_and_parse_into_ledger_facts(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """The sandbox's signed deliveries verify, keep their bytes, and parse into facts
        about the payment: one CAPTURED of the amount and currency asked for."""
        session, deliveries, events = await self._captured_webhooks(gateway, sandbox)

        for delivery in deliveries:
            webhook = await gateway.verify_webhook(body=delivery.body, headers=delivery.headers)
            assert isinstance(webhook, VerifiedWebhook)
            assert webhook.gateway == self.identifier
            assert webhook.body == delivery.body
        captured = [event for event in events if event.kind is PaymentEventKind.CAPTURED]
        for event in events:
            assert isinstance(event, GatewayPaymentEvent)
            assert event.gateway == self.identifier
            assert_iso_4217(event.currency)
        assert {event.gateway_reference for event in captured} == {session.gateway_reference}
        assert {(event.amount_minor, event.currency) for event in captured} == {
            (self.amount_minor, self.currency)
        }

    @pytest.mark.asyncio
    async def test_event_ids_and_facts_are_stable_across_redelivery(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """Verifying and parsing the same delivery twice gives the same event id and the
        same facts: core's inbox and ledger deduplicate on them."""
        _, deliveries, _ = await self._captured_webhooks(gateway, sandbox)

        for delivery in deliveries:
            first = await gateway.verify_webhook(body=delivery.body, headers=delivery.headers)
            again = await gateway.verify_webhook(body=delivery.body, headers=delivery.headers)
            assert first.event_id and first.event_id == again.event_id
            facts = await gateway.parse_events(first)
            facts_again = await gateway.parse_events(again)
            assert [(f.fact_reference, f.kind, f.amount_minor) for f in facts] == [
                (f.fact_reference, f.kind, f.amount_minor) for f in facts_again
            ]

    @pytest.mark.asyncio
    async def test_a_stored_delivery_still_verifies(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """``webhook_headers`` names, in lower case, every header verification reads: a
        delivery cut down to what the inbox stores of it verifies again, to the same event."""
        declared = gateway.webhook_headers
        assert isinstance(declared, frozenset) and declared, "declare webhook_headers"
        assert all(isinstance(name, str) and name == name.lower() for name in declared)
        _, deliveries, _ = await self._captured_webhooks(gateway, sandbox)

        for delivery in deliveries:
            stored = kept_webhook_headers(gateway, delivery.headers)
            verified = await gateway.verify_webhook(body=delivery.body, headers=stored)
            original = await gateway.verify_webhook(body=delivery.body, headers=delivery.headers)
            assert verified.event_id == original.event_id

    @pytest.mark.asyncio
    async def test_a_tampered_body_is_refused(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """One digit changed after signing: ``WebhookVerificationError``."""
        _, deliveries, _ = await self._captured_webhooks(gateway, sandbox)

        for delivery in deliveries:
            with pytest.raises(WebhookVerificationError):
                await gateway.verify_webhook(body=tampered(delivery.body), headers=delivery.headers)

    @pytest.mark.asyncio
    async def test_a_stale_delivery_is_refused(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """The same delivery signed now verifies; signed an hour ago it is a replay:
        ``WebhookVerificationError``."""
        _, deliveries, _ = await self._captured_webhooks(gateway, sandbox)
        body, headers = deliveries[0].body, deliveries[0].headers
        now = datetime.now(UTC)
        fresh = await self.sign_at(sandbox, body, headers, signed_at=now)
        stale = await self.sign_at(sandbox, body, headers, signed_at=now - timedelta(hours=1))

        verified = await gateway.verify_webhook(body=body, headers=fresh)
        assert verified.body == body
        with pytest.raises(WebhookVerificationError):
            await gateway.verify_webhook(body=body, headers=stale)

    def refund_request(
        self,
        payment: PaymentSession,
        capture: GatewayPaymentEvent,
        amount_minor: int,
        idempotency_key: str | None = None,
    ) -> RefundRequest:
        """A request to refund ``amount_minor`` of the captured ``payment``."""
        return RefundRequest(
            idempotency_key=idempotency_key or f"conformance-refund-{uuid.uuid4()}",
            seller_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            refund_id=uuid.uuid4(),
            payment_reference=payment.gateway_reference,
            capture_reference=capture.fact_reference,
            amount_minor=amount_minor,
            currency=capture.currency,
            reason="conformance kit",
        )

    async def _captured(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> tuple[PaymentSession, GatewayPaymentEvent, int]:
        """A captured payment: its session, its CAPTURED fact, the deliveries seen so far."""
        session, deliveries, events = await self._captured_webhooks(gateway, sandbox)
        capture = next(event for event in events if event.kind is PaymentEventKind.CAPTURED)
        return session, capture, len(deliveries)

    @pytest.mark.asyncio
    async def test_refunds_are_idempotent_and_bounded_by_the_capture(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """A retried refund (same key) is the same refund; a second key refunds the rest;
        a third finds nothing left: ``ProviderRefused``, never a second payout. The refund
        can be fetched again by its reference."""
        session, capture, _ = await self._captured(gateway, sandbox)
        part = self.amount_minor // 4
        request = self.refund_request(session, capture, part)

        first = await gateway.refund(request)
        retried = await gateway.refund(request)
        rest = await gateway.refund(self.refund_request(session, capture, self.amount_minor - part))

        assert isinstance(first, GatewayRefund)
        assert first.gateway == self.identifier
        assert first.state in (RefundState.PENDING, RefundState.SUCCEEDED)
        assert (first.amount_minor, first.currency) == (part, self.currency)
        assert retried.refund_reference == first.refund_reference
        assert rest.refund_reference != first.refund_reference
        assert rest.amount_minor == self.amount_minor - part
        with pytest.raises(ProviderRefused):
            await gateway.refund(self.refund_request(session, capture, 1))
        fetched = await gateway.fetch_refund(
            payment_reference=session.gateway_reference, refund_reference=first.refund_reference
        )
        assert fetched.refund_reference == first.refund_reference
        assert (fetched.amount_minor, fetched.currency) == (part, self.currency)

    @pytest.mark.asyncio
    async def test_a_refund_webhook_names_the_refund_the_answer_named(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """The webhook announcing a succeeded refund parses into one ``REFUNDED`` fact whose
        ``fact_reference`` is the answer's ``refund_reference``: core records the refund
        once, from whichever arrives first."""
        session, capture, seen = await self._captured(gateway, sandbox)
        answer = await gateway.refund(self.refund_request(session, capture, 1_000))
        deadline = time.monotonic() + 15
        while answer.state is RefundState.PENDING:
            assert time.monotonic() < deadline, "the sandbox's refund never settled"
            await asyncio.sleep(0.1)
            answer = await gateway.fetch_refund(
                payment_reference=session.gateway_reference,
                refund_reference=answer.refund_reference,
            )
        assert answer.state is RefundState.SUCCEEDED

        refunded: list[GatewayPaymentEvent] = []
        while not refunded:
            assert time.monotonic() < deadline, "no webhook announced the refund"
            arrived = await sandbox.wait_for_requests(1, since=seen)
            seen += len(arrived)
            for request in arrived:
                webhook = await gateway.verify_webhook(body=request.body, headers=request.headers)
                refunded += [
                    event
                    for event in await gateway.parse_events(webhook)
                    if event.kind is PaymentEventKind.REFUNDED
                ]
        assert {event.fact_reference for event in refunded} == {answer.refund_reference}
        assert {(event.amount_minor, event.currency) for event in refunded} == {
            (1_000, self.currency)
        }
        assert {event.gateway_reference for event in refunded} == {session.gateway_reference}

    @pytest.mark.asyncio
    async def test_an_unsigned_delivery_is_refused(self, gateway: PaymentGateway) -> None:
        """No signature headers at all: ``WebhookVerificationError``, not a crash."""
        body = b'{"id": "evt_conformance", "type": "payment.captured"}'
        with pytest.raises(WebhookVerificationError):
            await gateway.verify_webhook(body=body, headers={"content-type": "application/json"})

    @pytest.mark.asyncio
    async def test_failures_raise_core_error_classes(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest, failure: Failure
    ) -> None:
        """A failing gateway API maps to the class core reacts to."""
        await self.inject_failure(sandbox, failure)

        with pytest.raises(ProviderError) as raised:
            await gateway.create_payment(self.payment_request())

        assert_error_for(failure, raised.value, secret=None)
        await _assert_calls_logged(sandbox)

    # -- sellers' own accounts (PaymentGatewayConnections) ------------------------------

    def _connections(self, gateway: PaymentGateway) -> PaymentGatewayConnections:
        if not isinstance(gateway, PaymentGatewayConnections):
            pytest.skip(
                f"{self.identifier} does not implement PaymentGatewayConnections: sellers "
                "cannot connect their own accounts, every payment lands on one account"
            )
        return gateway

    async def _connect(
        self, connections: PaymentGatewayConnections, sandbox: SandboxUnderTest
    ) -> tuple[MerchantAccount, str]:
        """Connect a seller's account as core does — the consent flow or
        ``verify_credentials``, then ``prepare_account`` with the account's own webhook URL
        on the API stand-in (:func:`~pixecom_core.payments.connections.account_webhook_url`)
        — and return the account to store and the secret that did it (the consent code,
        or the credentials' secret values joined)."""
        account, secret = await self._authorize(connections, sandbox)
        webhook_url = account_webhook_url(sandbox.api_url, self.identifier, account.account_id)
        prepared = await connections.prepare_account(account, webhook_url=webhook_url)
        assert isinstance(prepared, MerchantAccount)
        assert prepared.account_id == account.account_id, (
            "prepare_account must not change the account's id: core routes the account's "
            "webhook URL by it"
        )
        return prepared, secret

    async def _authorize(
        self, connections: PaymentGatewayConnections, sandbox: SandboxUnderTest
    ) -> tuple[MerchantAccount, str]:
        """The consent flow or the seller's credentials: the account before it is prepared."""
        if connections.connection_kind is PaymentConnectionKind.CREDENTIALS:
            assert connections.authorization_url(state=CONSENT_STATE, redirect_uri=CALLBACK) is None
            fields = await self.connect_credentials(sandbox)
            asked = {form_field.name for form_field in connections.credential_fields}
            assert asked and set(fields) == asked, (
                f"connect_credentials() gives {sorted(fields)}, the form asks {sorted(asked)}"
            )
            account = await connections.verify_credentials(fields)
            secret = "".join(
                fields[form_field.name].get_secret_value()
                for form_field in connections.credential_fields
                if form_field.secret
            )
            return account, secret
        assert connections.credential_fields == (), "an OAuth gateway's form asks nothing"
        url = connections.authorization_url(state=CONSENT_STATE, redirect_uri=CALLBACK)
        code = await consent_code(sandbox, url, "gateway")
        return await connections.exchange_code(code=code, redirect_uri=CALLBACK), code

    @pytest.mark.asyncio
    async def test_connecting_gives_the_sellers_merchant_account(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """The consent flow (or the seller's credentials) gives a ``MerchantAccount``;
        connecting again gives another account, each with its own id."""
        connections = self._connections(gateway)

        first, _ = await self._connect(connections, sandbox)
        second, _ = await self._connect(connections, sandbox)

        for account in (first, second):
            assert isinstance(account, MerchantAccount)
            assert account.account_id.strip()
            if account.default_currency is not None:
                assert_iso_4217(account.default_currency)
        assert first.account_id != second.account_id, (
            "two sellers connected the same account: the sandbox must give each its own"
        )

    @pytest.mark.asyncio
    async def test_a_used_code_or_wrong_credentials_are_refused(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """A consent code works once; credentials the gateway refuses are refused — each
        as ``ProviderAuthError`` (the seller must connect again), never quoting the
        secret."""
        connections = self._connections(gateway)
        _, secret = await self._connect(connections, sandbox)

        if connections.connection_kind is PaymentConnectionKind.OAUTH:
            with pytest.raises(ProviderAuthError) as refused:
                await connections.exchange_code(code=secret, redirect_uri=CALLBACK)
            assert secret not in _chain_text(refused.value), "the error shows the code"
            return
        fields = await self.connect_credentials(sandbox)
        wrong = {
            form_field.name: SecretStr(f"wrong-{uuid.uuid4().hex}")
            if form_field.secret
            else fields[form_field.name]
            for form_field in connections.credential_fields
        }
        with pytest.raises(ProviderAuthError) as refused:
            await connections.verify_credentials(wrong)
        shown = _chain_text(refused.value)
        for form_field in connections.credential_fields:
            if form_field.secret:
                assert wrong[form_field.name].get_secret_value() not in shown, "the error shows it"
                assert fields[form_field.name].get_secret_value() not in shown, "the error shows it"

    @pytest.mark.asyncio
    async def test_webhooks_name_the_account_each_payment_was_made_on(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """Two sellers' payments, each made with ``account=``: every delivery announcing
        a fact about one names that seller's account — in ``webhook_account``, or by the
        address it was sent to (the account's own ``/webhooks/{gateway}/accounts/{id}``,
        set up by ``prepare_account``), where it verifies and parses with that
        ``account=`` and not with the other seller's — so core routes it to them and
        never to the other."""
        connections = self._connections(gateway)
        first, _ = await self._connect(connections, sandbox)
        second, _ = await self._connect(connections, sandbox)
        owners: dict[str, str] = {}
        accounts = {account.account_id: account for account in (first, second)}
        addressed = re.compile(rf"^/webhooks/{re.escape(self.identifier)}/accounts/([^/]+)$")
        for account in (first, second):
            session = await gateway.create_payment(self.payment_request(account=account))
            owners[session.gateway_reference] = account.account_id
            await self.settle_payment(sandbox, session)

        captured: dict[str, str] = {}
        seen = 0
        deadline = time.monotonic() + 15
        while captured.keys() != owners.keys():
            assert time.monotonic() < deadline, (
                f"no webhook announced the capture of {sorted(owners.keys() - captured.keys())}"
            )
            arrived = await sandbox.wait_for_requests(1, since=seen)
            seen += len(arrived)
            for request in arrived:
                named, webhook, parse_with = await self._verify_as_core_does(
                    gateway, connections, request, accounts, addressed
                )
                for event in await gateway.parse_events(webhook, account=parse_with):
                    assert named is not None, (
                        f"a delivery about {event.gateway_reference} names no account: core "
                        "could not tell whose payment it is"
                    )
                    assert not named.revoked
                    assert named.account_id == owners.get(event.gateway_reference), (
                        f"a fact about {event.gateway_reference} names account "
                        f"{named.account_id}, the payment was made on "
                        f"{owners.get(event.gateway_reference)}"
                    )
                    if event.kind is PaymentEventKind.CAPTURED:
                        captured[event.gateway_reference] = named.account_id
        assert captured == owners

    async def _verify_as_core_does(
        self,
        gateway: PaymentGateway,
        connections: PaymentGatewayConnections,
        request: ReceivedRequest,
        accounts: Mapping[str, MerchantAccount],
        addressed: re.Pattern[str],
    ) -> tuple[WebhookAccount | None, VerifiedWebhook, MerchantAccount | None]:
        """Verify a delivery as core's inbox does: one sent to an account's own address
        with that account (and refused with any other), one sent to the gateway's
        endpoint without, its account then named by ``webhook_account``. Return the
        account it names, the verified delivery and the account to parse it with."""
        found = addressed.match(request.path)
        if found is None:
            webhook = await gateway.verify_webhook(body=request.body, headers=request.headers)
            named = connections.webhook_account(webhook)
            return named, webhook, accounts.get(named.account_id) if named else None
        account_id = unquote(found.group(1))
        assert account_id in accounts, (
            f"a delivery was sent to {request.path}, the address of an account the kit did "
            f"not connect (it connected {sorted(accounts)})"
        )
        account = accounts[account_id]
        webhook = await gateway.verify_webhook(
            body=request.body, headers=request.headers, account=account
        )
        for other in accounts.values():
            if other.account_id != account_id:
                with pytest.raises(WebhookVerificationError):
                    await gateway.verify_webhook(
                        body=request.body, headers=request.headers, account=other
                    )
        return WebhookAccount(account_id=account_id), webhook, account

    @pytest.mark.asyncio
    async def test_a_disconnected_account_takes_no_payment(
        self, gateway: PaymentGateway, sandbox: SandboxUnderTest
    ) -> None:
        """After ``disconnect`` (twice: the second is not an error), a payment on the
        account fails as ``ProviderAuthError`` or ``ProviderRefused``: core then asks the
        seller to connect again instead of retrying."""
        connections = self._connections(gateway)
        account, _ = await self._connect(connections, sandbox)
        await gateway.create_payment(self.payment_request(account=account))

        await connections.disconnect(account)
        await connections.disconnect(account)

        with pytest.raises((ProviderAuthError, ProviderRefused)):
            await gateway.create_payment(self.payment_request(account=account))


# -- trackers ---------------------------------------------------------------------------


class TrackerConformance(SandboxKitChecks, ProviderConformance):
    """The ``Tracker`` contract, checked against the plugin's sandbox.

    Implement :meth:`request_push`; override
    :meth:`tracking_numbers` and :attr:`rejected_number` when the sandbox expects other
    formats.
    """

    kind = ProviderKind.TRACKER

    #: A number the sandbox refuses to register (malformed).
    rejected_number: ClassVar[str] = "not a tracking number!"
    #: The API key the sandbox's environment gave the tracker: no error may show it.
    secret: ClassVar[str | None] = None

    def tracking_numbers(self, count: int) -> list[TrackingNumber]:
        """``count`` fresh numbers the sandbox accepts (UPU S10 style by default)."""
        return [
            TrackingNumber(number=f"RR{uuid.uuid4().int % 10**9:09d}CN", tag=f"order-{index}")
            for index in range(count)
        ]

    async def request_push(self, sandbox: SandboxUnderTest, numbers: Sequence[str]) -> None:
        """Make the sandbox push the state of ``numbers`` to the API stand-in, signed."""
        raise NotImplementedError("implement request_push() with your sandbox's control API")

    @pytest_asyncio.fixture
    async def tracker(self, registry: ProviderRegistry) -> AsyncIterator[Tracker]:
        """The provider, found by identifier in a registry built from the hook."""
        tracker = registry.tracker(self.identifier)
        yield tracker
        await _close(tracker)

    def test_registered_through_the_hook(self, registry: ProviderRegistry) -> None:
        """The hook offers a ``Tracker`` found by its identifier, with a usable batch size."""
        tracker = registry.tracker(self.identifier)
        assert isinstance(tracker, Tracker)
        assert tracker.identifier == self.identifier
        assert isinstance(tracker.display_name, str) and tracker.display_name.strip()
        assert isinstance(tracker.max_batch_size, int) and tracker.max_batch_size >= 1

    @pytest.mark.asyncio
    async def test_register_reports_every_number_once(self, tracker: Tracker) -> None:
        """Each submitted number is accepted or rejected, exactly once; a bad one is
        reported, not raised; registering again still counts as accepted."""
        good = self.tracking_numbers(2)
        bad = TrackingNumber(number=self.rejected_number)

        result = await tracker.register([*good, bad])
        again = await tracker.register(good)

        assert isinstance(result, RegistrationResult)
        assert sorted(n.number for n in result.accepted) == sorted(n.number for n in good)
        assert [r.number.number for r in result.rejected] == [bad.number]
        assert result.rejected[0].reason
        assert sorted(n.number for n in again.accepted) == sorted(n.number for n in good)
        assert again.rejected == ()

    @pytest.mark.asyncio
    async def test_fetch_status_returns_updates_of_registered_numbers(
        self, tracker: Tracker
    ) -> None:
        """Registered numbers come back as ``TrackingUpdate``s in core's status vocabulary;
        unknown numbers are left out."""
        registered = self.tracking_numbers(2)
        unknown = self.tracking_numbers(1)
        await tracker.register(registered)

        updates = await tracker.fetch_status([*registered, *unknown])

        assert sorted(u.number.number for u in updates) == sorted(n.number for n in registered)
        for update in updates:
            assert isinstance(update, TrackingUpdate)
            assert isinstance(update.status, TrackingStatus)
            assert update.updated_at.tzinfo is not None

    @pytest.mark.asyncio
    async def test_stop_is_idempotent(self, tracker: Tracker) -> None:
        """Stopping a number twice, or one never registered, is not an error."""
        numbers = self.tracking_numbers(1)
        await tracker.register(numbers)

        await tracker.stop(numbers)
        await tracker.stop(numbers)
        await tracker.stop(self.tracking_numbers(1))

    @pytest.mark.asyncio
    async def test_signed_pushes_verify_and_tampered_ones_do_not(
        self, tracker: Tracker, sandbox: SandboxUnderTest
    ) -> None:
        """The sandbox's signed push verifies into updates of the pushed number; the same
        push with a byte changed, or without its headers, is refused."""
        numbers = self.tracking_numbers(1)
        await tracker.register(numbers)
        seen = len(sandbox.received)

        await self.request_push(sandbox, [numbers[0].number])
        push = (await sandbox.wait_for_requests(1, since=seen))[0]
        updates = await tracker.verify_push(body=push.body, headers=push.headers)

        assert numbers[0].number in {update.number.number for update in updates}
        assert all(isinstance(update.status, TrackingStatus) for update in updates)
        with pytest.raises(WebhookVerificationError):
            await tracker.verify_push(body=tampered(push.body), headers=push.headers)
        with pytest.raises(WebhookVerificationError):
            await tracker.verify_push(body=push.body, headers={})

    @pytest.mark.asyncio
    async def test_failures_raise_core_error_classes(
        self, tracker: Tracker, sandbox: SandboxUnderTest, failure: Failure
    ) -> None:
        """A failing tracker API maps to the class core reacts to."""
        await self.inject_failure(sandbox, failure)

        with pytest.raises(ProviderError) as raised:
            await tracker.fetch_status(self.tracking_numbers(1))

        assert_error_for(failure, raised.value, secret=self.secret)
        await _assert_calls_logged(sandbox)


# -- object storage ---------------------------------------------------------------------

#: A PNG signature and header: core sniffs these bytes with ``read_prefix``.
_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))


class StorageConformance(ProviderConformance):
    """The ``Storage`` contract, checked against the plugin's sandbox: presigned upload,
    ``head``, ``read_prefix`` and idempotent ``delete``."""

    kind = ProviderKind.STORAGE
    failures: ClassVar[frozenset[Failure]] = frozenset()

    @pytest_asyncio.fixture
    async def storage(self, registry: ProviderRegistry) -> AsyncIterator[Storage]:
        """The provider, found by identifier in a registry built from the hook."""
        storage = registry.storage(self.identifier)
        yield storage
        await _close(storage)

    async def _upload(self, storage: Storage, body: bytes = _PNG) -> tuple[str, PresignedUpload]:
        # Core keys every object under its seller (``sellers/<seller id>/…``).
        seller_id = uuid.uuid4()
        key = f"sellers/{seller_id}/conformance/{uuid.uuid4().hex}.png"
        request = UploadRequest(
            seller_id=seller_id, key=key, content_type="image/png", content_length=len(body)
        )
        presigned = await storage.presign_upload(request)
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.request(
                presigned.method, presigned.url, headers=dict(presigned.headers), content=body
            )
        assert response.is_success, f"the presigned {presigned.method} failed: {response.text}"
        return key, presigned

    def test_registered_through_the_hook(self, registry: ProviderRegistry) -> None:
        """The hook offers a ``Storage`` found by its identifier."""
        storage = registry.storage(self.identifier)
        assert isinstance(storage, Storage)
        assert storage.identifier == self.identifier
        assert isinstance(storage.display_name, str) and storage.display_name.strip()

    @pytest.mark.asyncio
    async def test_a_presigned_upload_lands_and_is_described(self, storage: Storage) -> None:
        """The presigned URL accepts the agreed body; ``head`` reports its size and type."""
        started = datetime.now(UTC)
        key, presigned = await self._upload(storage)

        assert presigned.expires_at > started
        assert presigned.expires_at <= started + timedelta(minutes=15, seconds=60)
        info = await storage.head(key)
        assert info is not None
        assert info.key == key
        assert info.size == len(_PNG)
        assert info.content_type == "image/png"

    @pytest.mark.asyncio
    async def test_read_prefix_returns_the_first_bytes(self, storage: Storage) -> None:
        """``read_prefix`` gives the first bytes, or the whole object when it is shorter."""
        key, _ = await self._upload(storage)

        assert await storage.read_prefix(key, 8) == _PNG[:8]
        assert await storage.read_prefix(key, len(_PNG) * 4) == _PNG

    @pytest.mark.asyncio
    async def test_delete_is_idempotent_and_head_of_a_missing_key_is_none(
        self, storage: Storage
    ) -> None:
        """After ``delete`` the object is gone; deleting again is not an error."""
        key, _ = await self._upload(storage)

        await storage.delete(key)
        await storage.delete(key)

        assert await storage.head(key) is None
        assert await storage.head(f"sellers/{uuid.uuid4()}/never-uploaded.png") is None


# -- currency-rate sources --------------------------------------------------------------


class CurrencyRateConformance(SandboxKitChecks, ProviderConformance):
    """The ``CurrencyRateSource`` contract, checked against the plugin's sandbox: one
    publication per publication day inside the asked range, oldest first, positive
    ``Decimal`` rates against one base currency, an honest ``complete_through``, the same
    answer twice, and failures as core's error classes.

    Subclass it and set :attr:`plugin`, :attr:`identifier` and :attr:`sandbox_name`.
    :meth:`reference_range` must name days the sandbox has published rates for; its
    default, the fortnight ending a week before today (UTC), suits a sandbox that follows
    the real clock. A sandbox whose :attr:`environment` fixes its clock overrides it.

    A publisher needs no credentials, so :attr:`failures` leaves ``auth`` out: a throttle
    must raise ``ProviderThrottled``, an outage ``ProviderTransientError`` or
    ``ProviderUnavailable``.
    """

    kind = ProviderKind.CURRENCY_RATES
    failures: ClassVar[frozenset[Failure]] = frozenset({Failure.THROTTLED, Failure.TRANSIENT})

    def reference_range(self) -> tuple[date, date]:
        """``(since, until)``: at least a week of days, ending before the sandbox's latest
        publication, with publications in it."""
        today = datetime.now(UTC).date()
        return today - timedelta(days=21), today - timedelta(days=7)

    @pytest_asyncio.fixture
    async def source(self, registry: ProviderRegistry) -> AsyncIterator[CurrencyRateSource]:
        """The provider, found by identifier in a registry built from the hook."""
        source = registry.currency_rates(self.identifier)
        yield source
        await _close(source)

    def test_registered_through_the_hook(self, registry: ProviderRegistry) -> None:
        """The hook offers a ``CurrencyRateSource`` found by its identifier, quoting
        against an ISO 4217 base currency."""
        source = registry.currency_rates(self.identifier)
        assert isinstance(source, CurrencyRateSource)
        assert source.identifier == self.identifier
        assert isinstance(source.display_name, str) and source.display_name.strip()
        assert re.fullmatch(r"[A-Z]{3}", source.base_currency), source.base_currency
        assert_iso_4217(source.base_currency)

    @pytest.mark.asyncio
    async def test_a_range_answers_its_publications_oldest_first(
        self, source: CurrencyRateSource
    ) -> None:
        """Publications lie inside the asked range, oldest first, one per day, in the
        source's base currency, which no publication quotes."""
        since, until = self.reference_range()

        answer = await source.fetch_rates(since, until)

        assert isinstance(answer, RateAnswer)
        assert answer.base_currency == source.base_currency
        assert answer.publications, f"the sandbox published nothing from {since} to {until}"
        days = [publication.published_on for publication in answer.publications]
        assert days == sorted(set(days))
        assert since <= days[0] and days[-1] <= until, f"{days} is not inside {since}…{until}"
        for publication in answer.publications:
            assert source.base_currency not in publication.rates

    @pytest.mark.asyncio
    async def test_a_past_range_is_final_through_its_end(self, source: CurrencyRateSource) -> None:
        """``complete_through`` is at least the last publication day, and a range that
        ended before the latest publication is final through its end: core would otherwise
        keep its days pending for ever."""
        since, until = self.reference_range()

        answer = await source.fetch_rates(since, until)

        assert answer.publications
        assert answer.complete_through >= answer.publications[-1].published_on
        assert answer.complete_through >= until, (
            f"{since}…{until} lies before the latest publication, yet the answer is final "
            f"only through {answer.complete_through}"
        )

    @pytest.mark.asyncio
    async def test_the_same_range_twice_gives_the_same_answer(
        self, source: CurrencyRateSource
    ) -> None:
        """Reading a range again changes nothing: the answer is a function of what the
        publisher published."""
        since, until = self.reference_range()

        first = await source.fetch_rates(since, until)
        second = await source.fetch_rates(since, until)

        assert first == second

    @pytest.mark.asyncio
    async def test_every_rate_is_a_positive_decimal(self, source: CurrencyRateSource) -> None:
        """Rates are exact decimals (never floats), positive and finite, keyed by ISO 4217
        currency codes."""
        since, until = self.reference_range()

        answer = await source.fetch_rates(since, until)

        currencies = {c for publication in answer.publications for c in publication.rates}
        for currency in currencies:
            assert_iso_4217(currency)
        for publication in answer.publications:
            for currency, rate in publication.rates.items():
                assert type(rate) is Decimal, f"{currency}: {rate!r} is not a Decimal"
                assert rate.is_finite() and rate > 0, f"{currency}: {rate}"

    @pytest.mark.asyncio
    async def test_failures_raise_core_error_classes(
        self, source: CurrencyRateSource, sandbox: SandboxUnderTest, failure: Failure
    ) -> None:
        """A failing publisher maps to the class core reacts to (wait, or retry later)."""
        since, until = self.reference_range()
        await self.inject_failure(sandbox, failure)

        with pytest.raises(ProviderError) as raised:
            await source.fetch_rates(since, until)

        assert_error_for(failure, raised.value, secret=None)
        await _assert_calls_logged(sandbox)
