"""The Stripe plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata
import os

import pytest

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager, describe_plugins
from pixecom_core.providers import PaymentGateway


def test_distribution_declares_the_entry_point() -> None:
    distribution = importlib.metadata.distribution("pixecom-stripe")

    declared = [
        (entry_point.name, entry_point.value)
        for entry_point in distribution.entry_points
        if entry_point.group == "pixecom"
    ]

    assert declared == [("stripe", "pixecom_stripe.plugin")]


def test_registry_returns_the_provider_by_identifier() -> None:
    # Only this plugin, so another plugin's state cannot make this test pass or fail.
    registry = ProviderRegistry(create_plugin_manager(allow={"stripe"}))

    provider = registry.payment_gateway("stripe")

    assert isinstance(provider, PaymentGateway)
    assert provider.identifier == "stripe"
    assert provider.display_name == "Stripe"


def test_registration_needs_no_stripe_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_STRIPE_"):
            monkeypatch.delenv(name)

    registry = ProviderRegistry(create_plugin_manager(allow={"stripe"}))

    assert registry.payment_gateway("stripe").identifier == "stripe"


def test_plugin_is_described_with_its_distribution_and_hook() -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"stripe"}))

    [info] = [plugin for plugin in plugins if plugin.name == "stripe"]
    assert info.distribution == "pixecom-stripe"
    assert info.version == importlib.metadata.version("pixecom-stripe")
    assert info.hooks == ("pixecom_register_payment_gateways", "pixecom_register_sandboxes")


def test_registry_returns_the_sandbox_by_name() -> None:
    registry = ProviderRegistry(create_plugin_manager(allow={"stripe"}))

    sandbox = registry.sandbox("stripe")

    assert sandbox.provider == "stripe"
    assert callable(sandbox.create_app())


def test_dev_environment_points_the_gateway_and_the_sandbox_at_each_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pixecom_stripe.settings import StripeSandboxSettings, StripeSettings

    sandbox = ProviderRegistry(create_plugin_manager(allow={"stripe"})).sandbox("stripe")
    assert sandbox.environment is not None
    environment = sandbox.environment("http://127.0.0.1:4010", "http://127.0.0.1:8000")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    gateway_settings = StripeSettings()
    sandbox_settings = StripeSandboxSettings()
    assert gateway_settings.api_base == "http://127.0.0.1:4010"
    assert sandbox_settings.webhook_url == "http://127.0.0.1:8000/webhooks/stripe"
    assert sandbox_settings.auto_deliver is True
