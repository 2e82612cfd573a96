"""The Cloudflare R2 plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager, describe_plugins
from pixecom_core.providers import Storage


def test_distribution_declares_the_entry_point() -> None:
    distribution = importlib.metadata.distribution("pixecom-r2-storage")

    declared = [
        (entry_point.name, entry_point.value)
        for entry_point in distribution.entry_points
        if entry_point.group == "pixecom"
    ]

    assert declared == [("r2_storage", "pixecom_r2_storage.plugin")]


def test_registry_returns_the_provider_by_identifier() -> None:
    # Only this plugin, so another plugin's state cannot make this test pass or fail.
    registry = ProviderRegistry(create_plugin_manager(allow={"r2_storage"}))

    provider = registry.storage("r2")

    assert isinstance(provider, Storage)
    assert provider.identifier == "r2"
    assert provider.display_name == "Cloudflare R2"


def test_plugin_is_described_with_its_distribution_and_hook() -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"r2_storage"}))

    [info] = [plugin for plugin in plugins if plugin.name == "r2_storage"]
    assert info.distribution == "pixecom-r2-storage"
    assert info.version == importlib.metadata.version("pixecom-r2-storage")
    assert info.hooks == ("pixecom_register_storage",)
