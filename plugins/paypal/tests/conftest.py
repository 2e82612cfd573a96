"""Fixtures: the PayPal sandbox served over https on loopback, and gateways pointed at it.

One uvicorn server per session serves a fresh sandbox app per test (see ``SwappableApp``),
so no order, token or injected fault leaks from one test into the next.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from paypal_sandbox_control import SandboxControl, SwappableApp
from pixecom_paypal.gateway import PayPalGateway
from pixecom_paypal.sandbox import (
    LoopbackTLS,
    SandboxSettings,
    create_sandbox_app,
    write_loopback_tls,
)
from pixecom_paypal.settings import PayPalSettings

from pixecom_core.testing.loopback import LoopbackServer
from pixecom_core.testing.sandbox_kit import WebhookReceiver

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
WEBHOOK_ID = "TESTWEBHOOK0001"


@pytest.fixture(autouse=True)
def _no_paypal_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell may point the plugin somewhere; every test states its settings.
    import os

    for name in list(os.environ):
        if name.startswith("PIXECOM_PAYPAL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTLS:
    return write_loopback_tls(tmp_path_factory.mktemp("paypal-tls"))


@pytest.fixture(scope="session")
def sandbox_server(loopback_tls: LoopbackTLS) -> Iterator[tuple[LoopbackServer, SwappableApp]]:
    app = SwappableApp()
    with LoopbackServer(
        app, ssl_certfile=loopback_tls.cert_file, ssl_keyfile=loopback_tls.key_file
    ) as server:
        yield server, app


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[tuple[LoopbackServer, SwappableApp]]:
    app = SwappableApp()
    with LoopbackServer(app) as server:
        yield server, app


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, webhook_id=WEBHOOK_ID)


@pytest.fixture
def sandbox(
    sandbox_server: tuple[LoopbackServer, SwappableApp],
    sandbox_settings: SandboxSettings,
    loopback_tls: LoopbackTLS,
) -> Iterator[SandboxControl]:
    """A fresh PayPal sandbox for this test, reachable at ``sandbox.url`` over https."""
    server, swappable = sandbox_server
    app = create_sandbox_app(sandbox_settings)
    swappable.current = app
    control = SandboxControl(
        server.url, ca_file=str(loopback_tls.ca_file), app=app, settings=sandbox_settings
    )
    yield control
    control.close()
    swappable.current = None


@pytest.fixture
def receiver(
    receiver_server: tuple[LoopbackServer, SwappableApp],
) -> Iterator[tuple[str, WebhookReceiver]]:
    """A webhook endpoint on loopback: its URL and what it received."""
    server, swappable = receiver_server
    recorder = WebhookReceiver("/webhooks/paypal")
    swappable.current = recorder.app()
    yield f"{server.url}/webhooks/paypal", recorder
    swappable.current = None


@pytest.fixture
def paypal_settings(sandbox: SandboxControl, loopback_tls: LoopbackTLS) -> PayPalSettings:
    """Gateway settings pointing at the sandbox; only the sandbox's loopback host is added."""
    return PayPalSettings(
        api_base=sandbox.url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        webhook_id=WEBHOOK_ID,
        allowed_cert_host_suffixes=[".paypal.com", "127.0.0.1"],
        tls_ca_file=loopback_tls.ca_file,
        timeout_seconds=5,
        # The platform app's own payments, as before sellers' apps (test_paypal_connect
        # turns it off).
        platform_account_payments=True,
    )


@pytest_asyncio.fixture
async def make_gateway(
    paypal_settings: PayPalSettings,
) -> AsyncIterator[Callable[..., PayPalGateway]]:
    """Build gateways on the sandbox, with settings overridden by keyword; all closed after."""
    built: list[PayPalGateway] = []

    def make(
        *,
        clock: Callable[[], float] | None = None,
        now: Callable[[], datetime] | None = None,
        **overrides: Any,
    ) -> PayPalGateway:
        settings = paypal_settings.model_copy(update=overrides)
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        if now is not None:
            extra["now"] = now
        gateway = PayPalGateway(PayPalSettings.model_validate(settings.model_dump()), **extra)
        built.append(gateway)
        return gateway

    yield make
    for gateway in built:
        await gateway.aclose()


@pytest_asyncio.fixture
async def gateway(make_gateway: Callable[..., PayPalGateway]) -> PayPalGateway:
    """The ``paypal`` gateway as the plugin builds it, configured for the sandbox."""
    return make_gateway()
