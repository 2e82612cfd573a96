"""The 17TRACK plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata
import os

import pytest
from pixecom_tracking17.settings import Track17SandboxSettings, Track17Settings
from pixecom_tracking17.tracker import Tracker17

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
    assert info.hooks == ("pixecom_register_sandboxes", "pixecom_register_trackers")


def test_registry_returns_the_sandbox_by_name() -> None:
    registry = ProviderRegistry(create_plugin_manager(allow={"tracking17"}))

    sandbox = registry.sandbox("17track")

    assert sandbox.provider == "17track"
    assert callable(sandbox.create_app())


def _clear_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_TRACKING17_"):
            monkeypatch.delenv(name)


def test_the_hook_builds_the_tracker_from_an_empty_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_environment(monkeypatch)

    provider = ProviderRegistry(create_plugin_manager(allow={"tracking17"})).tracker("17track")

    assert isinstance(provider, Tracker17)
    assert provider.settings.api_base == "https://api.17track.net"
    assert provider.settings.api_key is None
    assert provider.max_batch_size == 40


def test_dev_environment_points_tracker_and_sandbox_at_each_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_environment(monkeypatch)
    [sandbox] = ProviderRegistry(create_plugin_manager(allow={"tracking17"})).sandboxes()
    assert sandbox.environment is not None

    environment = sandbox.environment("http://127.0.0.1:4040", "http://127.0.0.1:8000")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    tracker_settings = Track17Settings()
    sandbox_settings = Track17SandboxSettings()
    assert tracker_settings.api_base == "http://127.0.0.1:4040"
    assert tracker_settings.api_key is not None
    assert sandbox_settings.accepted_keys() == [tracker_settings.api_key.get_secret_value()]
    # the sandbox signs with the key the tracker verifies with
    signing_key = tracker_settings.signing_key()
    assert signing_key is not None
    assert sandbox_settings.signing_key() == signing_key.get_secret_value()
    assert sandbox_settings.push_url == "http://127.0.0.1:8000/webhooks/tracking/17track"
    assert sandbox_settings.auto_push is True
    assert sandbox_settings.advance_every_seconds > 0
