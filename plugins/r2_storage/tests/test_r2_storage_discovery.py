"""The Cloudflare R2 plugin is installed and found through its ``pixecom`` entry point."""

import importlib.metadata

import pytest
from pixecom_r2_storage.storage import R2Storage

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
    assert info.hooks == ("pixecom_register_sandboxes", "pixecom_register_storage")


def test_registry_returns_the_sandbox_by_name() -> None:
    registry = ProviderRegistry(create_plugin_manager(allow={"r2_storage"}))

    sandbox = registry.sandbox("r2")

    assert sandbox.provider == "r2"
    assert callable(sandbox.create_app())


@pytest.mark.usefixtures("clean_environment")
def test_the_hook_builds_the_storage_from_an_empty_environment() -> None:
    provider = ProviderRegistry(create_plugin_manager(allow={"r2_storage"})).storage("r2")

    assert isinstance(provider, R2Storage)
    assert provider.settings.bucket is None
    assert provider.settings.presign_expiry_seconds == 300


@pytest.mark.usefixtures("clean_environment")
def test_dev_environment_points_the_storage_at_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pixecom_r2_storage.settings import R2Settings

    [sandbox] = ProviderRegistry(create_plugin_manager(allow={"r2_storage"})).sandboxes()
    assert sandbox.environment is not None
    for name, value in sandbox.environment("http://127.0.0.1:4031", "unused").items():
        monkeypatch.setenv(name, value)

    settings = R2Settings()
    assert settings.endpoint_url == "http://127.0.0.1:4031"
    assert settings.bucket == "pixecom-dev"
    assert settings.access_key_id is not None
    assert settings.secret_access_key is not None
