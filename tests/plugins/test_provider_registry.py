"""ProviderRegistry: lookups by identifier, and the errors that say what is installed."""

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date

import pytest

from pixecom_core import hookimpl
from pixecom_core.plugins import (
    DuplicateProviderError,
    InvalidProviderError,
    ProviderKind,
    ProviderRegistry,
    UnknownProviderError,
    create_plugin_manager,
)
from pixecom_core.providers import (
    AdAccountCredentials,
    AdAccountInfo,
    AdNetwork,
    ASGIApp,
    EntityLevel,
    GatewayPaymentEvent,
    GatewayRefund,
    InsightRow,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    PresignedUpload,
    RefundRequest,
    RegistrationResult,
    Sandbox,
    Storage,
    StoredObjectInfo,
    Tracker,
    TrackingNumber,
    TrackingUpdate,
    UploadRequest,
    VerifiedWebhook,
)


class StubAdNetwork:
    def __init__(self, identifier: str) -> None:
        self.identifier = identifier
        self.display_name = identifier.title()

    def fetch_daily_insights(
        self, account: AdAccountCredentials, *, level: EntityLevel, since: date, until: date
    ) -> AsyncIterator[InsightRow]:
        raise NotImplementedError

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        raise NotImplementedError


class StubGateway:
    webhook_headers = frozenset({"x-stub-signature"})

    def __init__(self, identifier: str) -> None:
        self.identifier = identifier
        self.display_name = identifier.title()

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        raise NotImplementedError

    async def verify_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> VerifiedWebhook:
        raise NotImplementedError

    async def parse_events(self, webhook: VerifiedWebhook) -> list[GatewayPaymentEvent]:
        raise NotImplementedError

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        raise NotImplementedError

    async def fetch_refund(self, *, payment_reference: str, refund_reference: str) -> GatewayRefund:
        raise NotImplementedError


class StubTracker:
    max_batch_size = 40

    def __init__(self, identifier: str) -> None:
        self.identifier = identifier
        self.display_name = identifier.title()

    async def register(self, numbers: Sequence[TrackingNumber]) -> RegistrationResult:
        raise NotImplementedError

    async def fetch_status(self, numbers: Sequence[TrackingNumber]) -> list[TrackingUpdate]:
        raise NotImplementedError

    async def stop(self, numbers: Sequence[TrackingNumber]) -> None:
        raise NotImplementedError

    async def verify_push(self, *, body: bytes, headers: Mapping[str, str]) -> list[TrackingUpdate]:
        raise NotImplementedError


class StubStorage:
    def __init__(self, identifier: str) -> None:
        self.identifier = identifier
        self.display_name = identifier.title()

    async def presign_upload(self, request: UploadRequest) -> PresignedUpload:
        raise NotImplementedError

    async def head(self, key: str) -> StoredObjectInfo | None:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def read_prefix(self, key: str, length: int) -> bytes:
        raise NotImplementedError


def no_app() -> ASGIApp:
    raise NotImplementedError


class Offers:
    """A plugin that offers the providers it is given through every register hook."""

    def __init__(
        self,
        *,
        ad_networks: Sequence[AdNetwork] = (),
        gateways: Sequence[object] = (),
        trackers: Sequence[Tracker] = (),
        storage: Sequence[Storage] = (),
        sandboxes: Sequence[Sandbox] = (),
    ) -> None:
        self.ad_networks = list(ad_networks)
        self.gateways = list(gateways)
        self.trackers = list(trackers)
        self.storage = list(storage)
        self.sandboxes = list(sandboxes)

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return self.ad_networks

    @hookimpl
    def pixecom_register_payment_gateways(self) -> list[object]:
        return self.gateways

    @hookimpl
    def pixecom_register_trackers(self) -> list[Tracker]:
        return self.trackers

    @hookimpl
    def pixecom_register_storage(self) -> list[Storage]:
        return self.storage

    @hookimpl
    def pixecom_register_sandboxes(self) -> list[Sandbox]:
        return self.sandboxes


def registry_of(*plugins: object) -> ProviderRegistry:
    return ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=plugins))


def test_every_kind_is_looked_up_by_identifier() -> None:
    meta, stripe, track, r2 = (
        StubAdNetwork("meta"),
        StubGateway("stripe"),
        StubTracker("17track"),
        StubStorage("r2"),
    )
    sandbox = Sandbox(name="stripe", provider="stripe", create_app=no_app)
    registry = registry_of(
        Offers(ad_networks=[meta], gateways=[stripe], trackers=[track], storage=[r2]),
        Offers(sandboxes=[sandbox]),
    )

    assert registry.ad_network("meta") is meta
    assert registry.payment_gateway("stripe") is stripe
    assert registry.tracker("17track") is track
    assert registry.storage("r2") is r2
    assert registry.sandbox("stripe") is sandbox
    assert registry.sandboxes() == [sandbox]


def test_names_are_sorted_across_plugins() -> None:
    registry = registry_of(
        Offers(gateways=[StubGateway("stripe")]), Offers(gateways=[StubGateway("paypal")])
    )

    assert registry.names(ProviderKind.PAYMENT_GATEWAY) == ["paypal", "stripe"]
    assert registry.names("payment_gateway") == ["paypal", "stripe"]
    assert registry.names(ProviderKind.TRACKER) == []


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="payment_gateways"):
        registry_of().names("payment_gateways")


def test_unknown_name_lists_the_installed_ones() -> None:
    registry = registry_of(Offers(gateways=[StubGateway("stripe"), StubGateway("paypal")]))

    with pytest.raises(UnknownProviderError) as raised:
        registry.payment_gateway("strpe")

    assert str(raised.value) == (
        "no payment gateway named 'strpe'; installed: paypal, stripe (did you mean 'stripe'?)"
    )
    assert isinstance(raised.value, LookupError)
    assert raised.value.kind is ProviderKind.PAYMENT_GATEWAY
    assert raised.value.installed == ["paypal", "stripe"]


def test_unknown_name_when_none_is_installed_says_how_to_get_one() -> None:
    with pytest.raises(UnknownProviderError) as raised:
        registry_of().tracker("17track")

    assert str(raised.value).startswith("no tracker named '17track'; installed: none")
    assert "PIXECOM_LOAD_PLUGINS" in str(raised.value)


def test_unknown_sandbox_is_reported_by_name() -> None:
    with pytest.raises(UnknownProviderError, match="no sandbox named 'meta'; installed: none"):
        registry_of().sandbox("meta")


def test_two_providers_with_one_identifier_are_refused() -> None:
    plugins = (Offers(gateways=[StubGateway("stripe")]), Offers(gateways=[StubGateway("stripe")]))

    with pytest.raises(DuplicateProviderError) as raised:
        registry_of(*plugins)

    message = str(raised.value)
    assert "two payment gateway providers use the identifier 'stripe'" in message
    assert message.count("StubGateway") == 2


def test_a_provider_clashing_with_an_installed_plugin_is_refused(
    fake_gateway_distribution: str,
) -> None:
    pm = create_plugin_manager(
        allow={fake_gateway_distribution}, plugins=[Offers(gateways=[StubGateway("fake")])]
    )

    with pytest.raises(DuplicateProviderError) as raised:
        ProviderRegistry(pm)

    assert "FakeGateway" in str(raised.value)
    assert "StubGateway" in str(raised.value)


def test_two_sandboxes_with_one_name_are_refused() -> None:
    sandbox = Sandbox(name="stripe", provider="stripe", create_app=no_app)

    with pytest.raises(DuplicateProviderError, match="use the name 'stripe'"):
        registry_of(Offers(sandboxes=[sandbox]), Offers(sandboxes=[sandbox]))


def test_a_provider_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(InvalidProviderError, match="does not implement .*PaymentGateway"):
        registry_of(Offers(gateways=[StubTracker("17track")]))


def test_a_hook_returning_a_single_provider_instead_of_a_list_is_refused() -> None:
    class ReturnsOne:
        @hookimpl
        def pixecom_register_payment_gateways(self) -> object:
            return StubGateway("stripe")

    with pytest.raises(InvalidProviderError, match="return a list of PaymentGateway"):
        registry_of(ReturnsOne())


def test_stubs_satisfy_the_protocols() -> None:
    # The stubs above stand in for real plugins, so they must pass the same runtime check.
    assert isinstance(StubAdNetwork("meta"), AdNetwork)
    assert isinstance(StubGateway("stripe"), PaymentGateway)
    assert isinstance(StubTracker("17track"), Tracker)
    assert isinstance(StubStorage("r2"), Storage)


class ClosingAdNetwork(StubAdNetwork):
    def __init__(self, identifier: str, *, fails: bool = False) -> None:
        super().__init__(identifier)
        self.fails = fails
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        if self.fails:
            raise RuntimeError("pool already gone")


class ClosingStorage(StubStorage):
    def __init__(self, identifier: str) -> None:
        super().__init__(identifier)
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_aclose_closes_each_provider_once_even_when_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing, closing = ClosingAdNetwork("aaa", fails=True), ClosingAdNetwork("zzz")
    storage = ClosingStorage("r2")
    registry = registry_of(
        Offers(ad_networks=[failing, closing], storage=[storage], gateways=[StubGateway("s")])
    )

    await registry.aclose()

    # The first one raised; the ones after it were still closed, each once.
    assert (failing.closed, closing.closed, storage.closed) == (1, 1, 1)
    assert "closing tests.plugins.test_provider_registry.ClosingAdNetwork failed" in caplog.text
