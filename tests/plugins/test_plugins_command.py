"""``pixecom plugins``: what is installed, at which version, implementing which hooks."""

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from reference_app import cli_plugins
from reference_app.cli_plugins import app

runner = CliRunner()


def test_table_lists_installed_plugin_with_version_and_hooks(
    fake_gateway_distribution: str,
) -> None:
    result = runner.invoke(
        app, [], env={"PIXECOM_LOAD_PLUGINS": fake_gateway_distribution, "COLUMNS": "160"}
    )

    assert result.exit_code == 0, result.output
    assert "fake_gateway" in result.output
    assert "pixecom-fake-gateway" in result.output
    assert "1.0.0" in result.output
    assert "pixecom_register_payment_gateways" in result.output


def test_plain_text_without_rich(
    fake_gateway_distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_plugins, "RICH_INSTALLED", False)

    result = runner.invoke(app, [], env={"PIXECOM_LOAD_PLUGINS": fake_gateway_distribution})

    assert result.exit_code == 0, result.output
    assert result.output == (
        "fake_gateway  pixecom-fake-gateway 1.0.0  pixecom_register_payment_gateways\n"
    )


def test_json_output(fake_gateway_distribution: str) -> None:
    result = runner.invoke(app, ["--json"], env={"PIXECOM_LOAD_PLUGINS": fake_gateway_distribution})

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {
            "name": "fake_gateway",
            "distribution": "pixecom-fake-gateway",
            "version": "1.0.0",
            "hooks": ["pixecom_register_payment_gateways"],
        }
    ]


def test_no_plugins_allowed() -> None:
    result = runner.invoke(app, [], env={"PIXECOM_LOAD_PLUGINS": ""})

    assert result.exit_code == 0
    assert "no plugins installed" in result.output


@pytest.mark.usefixtures("fake_gateway_distribution")
def test_misconfigured_allow_list_exits_with_the_reason() -> None:
    result = runner.invoke(app, [], env={"PIXECOM_LOAD_PLUGINS": "fake_gatway"})

    assert result.exit_code == 1
    assert "error: PIXECOM_LOAD_PLUGINS names 'fake_gatway'" in result.stderr
    assert "did you mean 'fake_gateway'?" in result.stderr


def test_broken_plugin_exits_naming_it(make_distribution: Any) -> None:
    make_distribution("pixecom-broken", entry_point="broken", source="import not_installed_sdk")

    result = runner.invoke(app, [], env={"PIXECOM_LOAD_PLUGINS": "broken"})

    assert result.exit_code == 1
    assert "could not load plugin 'broken'" in result.stderr
    assert "pixecom-broken" in result.stderr
