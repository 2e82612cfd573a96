"""The PayPal plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata

import pytest

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager, describe_plugins
from pixecom_core.providers import PaymentGateway, Sandbox


def test_distribution_declares_the_entry_point() -> None:
    distribution = importlib.metadata.distribution("pixecom-paypal")

    declared = [
        (entry_point.name, entry_point.value)
        for entry_point in distribution.entry_points
        if entry_point.group == "pixecom"
    ]

    assert declared == [("paypal", "pixecom_paypal.plugin")]


def test_registry_returns_the_provider_by_identifier() -> None:
    # Only this plugin, so another plugin's state cannot make this test pass or fail.
    registry = ProviderRegistry(create_plugin_manager(allow={"paypal"}))

    provider = registry.payment_gateway("paypal")

    assert isinstance(provider, PaymentGateway)
    assert provider.identifier == "paypal"
    assert provider.display_name == "PayPal"


def test_plugin_is_described_with_its_distribution_and_hook() -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"paypal"}))

    [info] = [plugin for plugin in plugins if plugin.name == "paypal"]
    assert info.distribution == "pixecom-paypal"
    assert info.version == importlib.metadata.version("pixecom-paypal")
    assert info.hooks == ("pixecom_register_payment_gateways", "pixecom_register_sandboxes")


def test_registry_returns_the_sandbox_by_name() -> None:
    registry = ProviderRegistry(create_plugin_manager(allow={"paypal"}))

    sandbox = registry.sandbox("paypal")

    assert isinstance(sandbox, Sandbox)
    assert sandbox.provider == "paypal"
    # A fresh app per call: state never leaks from one server start to the next.
    assert sandbox.create_app() is not sandbox.create_app()


def test_dev_environment_points_the_gateway_and_the_sandbox_at_each_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pixecom_paypal.settings import PayPalSettings

    sandbox = ProviderRegistry(create_plugin_manager(allow={"paypal"})).sandbox("paypal")
    assert sandbox.environment is not None
    environment = sandbox.environment("http://127.0.0.1:4020", "http://127.0.0.1:8000")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = PayPalSettings()
    assert settings.api_base == "http://127.0.0.1:4020"
    assert settings.verification == "api"  # no https certificate URL on loopback
    assert environment["PIXECOM_PAYPAL_SANDBOX_WEBHOOK_URL"] == (
        "http://127.0.0.1:8000/webhooks/paypal"
    )
    assert environment["PIXECOM_PAYPAL_SANDBOX_AUTO_DELIVER"] == "true"  # as PayPal sends them
