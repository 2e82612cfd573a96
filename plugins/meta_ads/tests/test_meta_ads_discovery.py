"""The Meta Ads plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata
import os

import pytest
from pixecom_meta_ads.ad_network import MetaAdNetwork

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager, describe_plugins
from pixecom_core.providers import AdNetwork


def test_distribution_declares_the_entry_point() -> None:
    distribution = importlib.metadata.distribution("pixecom-meta-ads")

    declared = [
        (entry_point.name, entry_point.value)
        for entry_point in distribution.entry_points
        if entry_point.group == "pixecom"
    ]

    assert declared == [("meta_ads", "pixecom_meta_ads.plugin")]


def test_registry_returns_the_provider_by_identifier() -> None:
    # Only this plugin, so another plugin's state cannot make this test pass or fail.
    registry = ProviderRegistry(create_plugin_manager(allow={"meta_ads"}))

    provider = registry.ad_network("meta")

    assert isinstance(provider, AdNetwork)
    assert provider.identifier == "meta"
    assert provider.display_name == "Meta Ads"


def test_plugin_is_described_with_its_distribution_and_hook() -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"meta_ads"}))

    [info] = [plugin for plugin in plugins if plugin.name == "meta_ads"]
    assert info.distribution == "pixecom-meta-ads"
    assert info.version == importlib.metadata.version("pixecom-meta-ads")
    assert info.hooks == ("pixecom_register_ad_networks", "pixecom_register_sandboxes")


def test_registry_returns_the_sandbox_by_name() -> None:
    registry = ProviderRegistry(create_plugin_manager(allow={"meta_ads"}))

    sandbox = registry.sandbox("meta")

    assert sandbox.provider == "meta"
    assert callable(sandbox.create_app())


def test_the_hook_builds_the_network_from_an_empty_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_META_"):
            monkeypatch.delenv(name)

    provider = ProviderRegistry(create_plugin_manager(allow={"meta_ads"})).ad_network("meta")

    assert isinstance(provider, MetaAdNetwork)
    assert provider.settings.graph_base == "https://graph.facebook.com"
    assert provider.settings.purchase_action_type == "omni_purchase"


def test_dev_environment_points_the_ad_network_at_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pixecom_meta_ads.settings import MetaAdsSettings

    sandbox = ProviderRegistry(create_plugin_manager(allow={"meta_ads"})).sandbox("meta")
    assert sandbox.environment is not None
    for name, value in sandbox.environment("http://127.0.0.1:4030", "unused").items():
        monkeypatch.setenv(name, value)

    assert MetaAdsSettings().graph_base == "http://127.0.0.1:4030"
