"""Which tracker and storage a deployment uses (issue 13 item 6: core defaults to none).

The configured identifier wins; left empty, the only installed provider of the kind is
used; several installed and none configured is refused at start with the setting to set.
"""

import pytest

from pixecom_core.settings import Mode, ProviderChoiceError, Settings
from tests.plugins.test_provider_registry import Offers, StubStorage, StubTracker, registry_of


@pytest.fixture
def app_settings() -> Settings:
    """Settings as read, without a database: only the provider fields matter here."""
    return Settings.model_construct(mode=Mode.DEV)


def test_the_only_installed_provider_is_chosen(app_settings: Settings) -> None:
    unset = app_settings.model_copy(update={"tracking_provider": "", "storage_provider": ""})
    registry = registry_of(Offers(trackers=[StubTracker("parcels")], storage=[StubStorage("s3")]))

    chosen = unset.with_chosen_providers(registry)

    assert (chosen.tracking_provider, chosen.storage_provider) == ("parcels", "s3")


def test_a_configured_provider_wins_over_the_installed_ones(app_settings: Settings) -> None:
    configured = app_settings.model_copy(
        update={"tracking_provider": "second", "storage_provider": "s3"}
    )
    registry = registry_of(
        Offers(trackers=[StubTracker("first"), StubTracker("second")], storage=[StubStorage("s3")])
    )

    chosen = configured.with_chosen_providers(registry)

    assert (chosen.tracking_provider, chosen.storage_provider) == ("second", "s3")


def test_several_installed_and_none_configured_is_refused(app_settings: Settings) -> None:
    unset = app_settings.model_copy(update={"tracking_provider": "", "storage_provider": ""})
    registry = registry_of(Offers(trackers=[StubTracker("first"), StubTracker("second")]))

    with pytest.raises(ProviderChoiceError) as refused:
        unset.with_chosen_providers(registry)

    assert "first, second" in str(refused.value)
    assert "PIXECOM_TRACKING_PROVIDER" in str(refused.value)


def test_none_installed_leaves_the_setting_empty(app_settings: Settings) -> None:
    unset = app_settings.model_copy(update={"tracking_provider": "", "storage_provider": ""})

    chosen = unset.with_chosen_providers(registry_of())

    assert (chosen.tracking_provider, chosen.storage_provider) == ("", "")


def test_core_defaults_to_no_plugin() -> None:
    fields = Settings.model_fields
    assert fields["tracking_provider"].default == ""
    assert fields["storage_provider"].default == ""
