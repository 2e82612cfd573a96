"""The ECB plugin is installed and found through its ``pixecom`` entry point, and reads its
settings from ``PIXECOM_ECB_*``."""

import importlib.metadata
import os

import pytest
from pixecom_ecb_rates.plugin import base_url
from pixecom_ecb_rates.settings import BASE_URL, EcbSandboxSettings, EcbSettings
from pixecom_ecb_rates.source import EcbRateSource
from pydantic import ValidationError

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager, describe_plugins
from pixecom_core.providers import CurrencyRateSource


def test_distribution_declares_the_entry_point() -> None:
    distribution = importlib.metadata.distribution("pixecom-ecb-rates")

    declared = [
        (entry_point.name, entry_point.value)
        for entry_point in distribution.entry_points
        if entry_point.group == "pixecom"
    ]

    assert declared == [("ecb_rates", "pixecom_ecb_rates.plugin")]


def test_registry_returns_the_source_by_identifier_and_as_the_only_one() -> None:
    # Only this plugin, so another plugin's state cannot make this test pass or fail.
    registry = ProviderRegistry(create_plugin_manager(allow={"ecb_rates"}))

    source = registry.currency_rates("ecb")

    assert isinstance(source, CurrencyRateSource)
    assert (source.identifier, source.display_name, source.base_currency) == (
        "ecb",
        "European Central Bank",
        "EUR",
    )
    assert isinstance(registry.currency_rates(), EcbRateSource)


def test_plugin_is_described_with_its_distribution_and_hooks() -> None:
    plugins = describe_plugins(create_plugin_manager(allow={"ecb_rates"}))

    [info] = [plugin for plugin in plugins if plugin.name == "ecb_rates"]
    assert info.distribution == "pixecom-ecb-rates"
    assert info.version == importlib.metadata.version("pixecom-ecb-rates")
    assert info.hooks == ("pixecom_register_currency_rates", "pixecom_register_sandboxes")


def test_registry_returns_the_sandbox_and_its_dev_environment() -> None:
    registry = ProviderRegistry(create_plugin_manager(allow={"ecb_rates"}))

    sandbox = registry.sandbox("ecb")

    assert sandbox.provider == "ecb"
    assert callable(sandbox.create_app())
    assert sandbox.environment is not None
    assert sandbox.environment("http://127.0.0.1:8123", "http://127.0.0.1:8000") == {
        "PIXECOM_ECB_BASE_URL": "http://127.0.0.1:8123/stats/eurofxref"
    }
    assert base_url("http://127.0.0.1:8123/") == "http://127.0.0.1:8123/stats/eurofxref"


def _clear_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_ECB_"):
            monkeypatch.delenv(name)


def test_the_hook_builds_the_source_from_an_empty_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_environment(monkeypatch)

    source = ProviderRegistry(create_plugin_manager(allow={"ecb_rates"})).currency_rates("ecb")

    assert isinstance(source, EcbRateSource)
    assert source.settings.base_url == BASE_URL == "https://www.ecb.europa.eu/stats/eurofxref"
    assert source.settings.timeout_seconds == 30
    sandbox_settings = EcbSandboxSettings()
    assert sandbox_settings.today is None and sandbox_settings.today_published is None


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_environment(monkeypatch)
    monkeypatch.setenv("PIXECOM_ECB_BASE_URL", "http://127.0.0.1:9/stats/eurofxref/")
    monkeypatch.setenv("PIXECOM_ECB_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("PIXECOM_ECB_SANDBOX_TODAY", "2026-04-07")
    monkeypatch.setenv("PIXECOM_ECB_SANDBOX_TODAY_PUBLISHED", "false")

    settings = EcbSettings()
    sandbox_settings = EcbSandboxSettings()

    assert settings.base_url == "http://127.0.0.1:9/stats/eurofxref"
    assert settings.timeout_seconds == 2.5
    assert str(sandbox_settings.today) == "2026-04-07"
    assert sandbox_settings.today_published is False


@pytest.mark.parametrize(
    "value", ["ftp://www.ecb.europa.eu/stats", "www.ecb.europa.eu", "https://x.test/?a=1"]
)
def test_a_base_url_that_cannot_prefix_file_names_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="base_url"):
        EcbSettings(base_url=value)
