"""create_plugin_manager: entry-point loading, allow-list, validation and description."""

from pathlib import Path
from typing import Any

import pytest

from pixecom_core import hookimpl
from pixecom_core.plugins import (
    PluginInfo,
    PluginLoadError,
    PluginValidationError,
    create_plugin_manager,
    describe_plugins,
)

BROKEN_PLUGIN = """
    import acme_payments_sdk_that_is_not_installed
"""

LISTENER_PLUGIN = """
    from pixecom_core import hookimpl


    @hookimpl
    def pixecom_on_stats_aggregated(summary):
        pass
"""

MISSPELT_PLUGIN = """
    from pixecom_core import hookimpl


    @hookimpl
    def pixecom_register_paymnet_gateways():
        return []
"""


def test_entry_point_plugin_is_loaded_and_described(fake_gateway_distribution: str) -> None:
    pm = create_plugin_manager(allow={fake_gateway_distribution})

    assert describe_plugins(pm) == [
        PluginInfo(
            name="fake_gateway",
            distribution="pixecom-fake-gateway",
            version="1.0.0",
            hooks=("pixecom_register_payment_gateways",),
        )
    ]


def test_broken_entry_point_names_distribution_and_entry_point(make_distribution: Any) -> None:
    make_distribution("pixecom-broken", entry_point="broken", source=BROKEN_PLUGIN, version="2.1")

    with pytest.raises(PluginLoadError) as raised:
        create_plugin_manager()

    message = str(raised.value)
    assert "'broken'" in message
    assert "distribution pixecom-broken 2.1" in message
    assert "acme_payments_sdk_that_is_not_installed" in message
    assert "PIXECOM_LOAD_PLUGINS" in message
    assert raised.value.entry_point == "broken"
    assert raised.value.distribution == "pixecom-broken"
    assert isinstance(raised.value.__cause__, ImportError)


def test_broken_entry_point_left_out_by_allow_list_is_not_imported(
    make_distribution: Any, fake_gateway_distribution: str
) -> None:
    make_distribution("pixecom-broken", entry_point="broken", source=BROKEN_PLUGIN)

    pm = create_plugin_manager(allow={fake_gateway_distribution})

    assert [info.name for info in describe_plugins(pm)] == [fake_gateway_distribution]


def test_misspelt_hook_in_installed_plugin_fails_naming_plugin_and_hook(
    make_distribution: Any,
) -> None:
    make_distribution("pixecom-typo", entry_point="typo", source=MISSPELT_PLUGIN)

    with pytest.raises(PluginValidationError) as raised:
        create_plugin_manager(allow={"typo"})

    message = str(raised.value)
    assert "plugin 'typo' from distribution pixecom-typo 1.0.0" in message
    assert "unknown hook 'pixecom_register_paymnet_gateways'" in message
    assert "did you mean 'pixecom_register_payment_gateways'?" in message
    assert raised.value.hook_name == "pixecom_register_paymnet_gateways"
    assert raised.value.plugin_name == "typo"


def test_misspelt_hook_in_directly_registered_plugin_fails() -> None:
    class TypoPlugin:
        @hookimpl
        def pixecom_on_order_status_change(self, change: object) -> None:
            """Misses the final 'd' of pixecom_on_order_status_changed."""

    with pytest.raises(PluginValidationError) as raised:
        create_plugin_manager(load_entry_points=False, plugins=[TypoPlugin()])

    assert raised.value.hook_name == "pixecom_on_order_status_change"
    assert "TypoPlugin" in str(raised.value)
    assert "did you mean 'pixecom_on_order_status_changed'?" in str(raised.value)


def test_hook_parameter_missing_from_the_spec_fails_naming_the_hook() -> None:
    class WrongParameter:
        @hookimpl
        def pixecom_on_payment_event(self, payment_event: object) -> None:
            """The spec's parameter is called ``event``."""

    with pytest.raises(PluginValidationError) as raised:
        create_plugin_manager(load_entry_points=False, plugins=[WrongParameter()])

    assert raised.value.hook_name == "pixecom_on_payment_event"
    assert "payment_event" in str(raised.value)


@pytest.mark.parametrize(
    ("configured", "loaded"),
    [
        ("fake_gateway", ["fake_gateway"]),
        (" fake_gateway , other_gateway ,", ["fake_gateway", "other_gateway"]),
        ("", []),
    ],
)
@pytest.mark.usefixtures("fake_gateway_distribution")
def test_allow_list_from_environment(
    make_distribution: Any,
    monkeypatch: pytest.MonkeyPatch,
    configured: str,
    loaded: list[str],
) -> None:
    make_distribution("pixecom-other", entry_point="other_gateway", source=LISTENER_PLUGIN)
    make_distribution("pixecom-broken", entry_point="broken", source=BROKEN_PLUGIN)
    monkeypatch.setenv("PIXECOM_LOAD_PLUGINS", configured)

    pm = create_plugin_manager()

    assert [info.name for info in describe_plugins(pm)] == loaded


def test_allow_argument_overrides_environment(
    fake_gateway_distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXECOM_LOAD_PLUGINS", "")

    pm = create_plugin_manager(allow=[fake_gateway_distribution])

    assert [info.name for info in describe_plugins(pm)] == [fake_gateway_distribution]


@pytest.mark.usefixtures("fake_gateway_distribution")
def test_allow_list_naming_a_missing_plugin_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_LOAD_PLUGINS", "fake_gatway")

    with pytest.raises(PluginLoadError) as raised:
        create_plugin_manager()

    assert "PIXECOM_LOAD_PLUGINS names 'fake_gatway'" in str(raised.value)
    assert "did you mean 'fake_gateway'?" in str(raised.value)


def test_entry_points_can_be_skipped(make_distribution: Any) -> None:
    make_distribution("pixecom-broken", entry_point="broken", source=BROKEN_PLUGIN)

    pm = create_plugin_manager(load_entry_points=False)

    assert describe_plugins(pm) == []


def test_each_call_builds_an_independent_manager() -> None:
    class Listener:
        @hookimpl
        def pixecom_on_stats_aggregated(self, summary: object) -> None:
            """Never called."""

    with_listener = create_plugin_manager(load_entry_points=False, plugins=[Listener()])
    without = create_plugin_manager(load_entry_points=False)

    assert [info.hooks for info in describe_plugins(with_listener)] == [
        ("pixecom_on_stats_aggregated",)
    ]
    assert describe_plugins(without) == []


def test_event_hooks_reach_every_plugin() -> None:
    received: list[tuple[str, object]] = []

    class First:
        @hookimpl
        def pixecom_on_order_status_changed(self, change: object) -> None:
            received.append(("first", change))

    class Second:
        @hookimpl
        def pixecom_on_order_status_changed(self, change: object) -> str:
            received.append(("second", change))
            return "ignored"

    pm = create_plugin_manager(load_entry_points=False, plugins=[First(), Second()])
    change = object()

    pm.hook.pixecom_on_order_status_changed(change=change)

    assert sorted(received, key=lambda item: item[0]) == [("first", change), ("second", change)]


def test_directly_registered_plugins_are_described_without_distribution() -> None:
    class Listener:
        @hookimpl
        def pixecom_on_payment_event(self, event: object) -> None:
            """Never called."""

        @hookimpl
        def pixecom_on_order_status_changed(self, change: object) -> None:
            """Never called."""

    [info] = describe_plugins(create_plugin_manager(load_entry_points=False, plugins=[Listener()]))

    assert info.distribution is None
    assert info.version is None
    assert info.hooks == ("pixecom_on_order_status_changed", "pixecom_on_payment_event")


def test_plugin_modules_from_the_environment_are_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pixecom_dev_gateway_probe.py").write_text(
        "from pixecom_core import hookimpl\n\n"
        "@hookimpl\n"
        "def pixecom_on_payment_event(event):\n"
        "    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PIXECOM_PLUGIN_MODULES", " pixecom_dev_gateway_probe , ")

    pm = create_plugin_manager(allow=set())

    assert pm.has_plugin("pixecom_dev_gateway_probe")


def test_a_plugin_module_that_does_not_import_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_PLUGIN_MODULES", "no_such_module_for_pixecom")

    with pytest.raises(PluginLoadError, match="PIXECOM_PLUGIN_MODULES"):
        create_plugin_manager(allow=set())
