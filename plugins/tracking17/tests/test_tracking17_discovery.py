"""The 17TRACK plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager, describe_plugins
from pixecom_core.providers import Tracker


def test_distribution_declares_the_entry_point() -> None:
    distribution = importlib.metadata.distribution("pixecom-tracking17")

    declared = [
        (entry_point.name, entry_point.value)
        for entry_point in distribution.entry_points
        if entry_point.group == "pixecom"
    ]

    assert declared == [("tracking17", "pixecom_tracking17.plugin")]


def test_registry_returns_the_provider_by_identifier() -> None:
    # Only this plugin, so another plugin's state cannot make this test pass or fail.
    registry = ProviderRegistry(create_plugin_manager(allow={"tracking17"}))

    provider = registry.tracker("17track")

    assert isinstance(provider, Tracker)
    assert provider.identifier == "17track"
    assert provider.display_name == "17TRACK"


def test_plugin_is_described_with_its_distribution_and_hook() -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"tracking17"}))

    [info] = [plugin for plugin in plugins if plugin.name == "tracking17"]
    assert info.distribution == "pixecom-tracking17"
    assert info.version == importlib.metadata.version("pixecom-tracking17")
    assert info.hooks == ("pixecom_register_trackers",)
