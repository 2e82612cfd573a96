"""Settings come from ``PIXECOM_META_*`` with usable defaults and clear refusals."""

from pathlib import Path

import pytest
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from pydantic import ValidationError

from pixecom_core.secret_files import SecretSourceError
from pixecom_core.testing.secrets import check_secrets_read_from_files


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PIXECOM_META_"):
            monkeypatch.delenv(name)


def test_defaults_need_no_environment() -> None:
    settings = MetaAdsSettings()

    assert settings.graph_base == "https://graph.facebook.com"
    assert settings.api_version == "v25.0"
    assert settings.purchase_action_type == "omni_purchase"
    assert settings.clicks_field == "inline_link_clicks"
    assert settings.app_secret is None


def test_the_environment_points_the_plugin_at_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_META_GRAPH_BASE", "http://127.0.0.1:8123/")
    monkeypatch.setenv("PIXECOM_META_PURCHASE_ACTION_TYPE", "purchase")
    monkeypatch.setenv("PIXECOM_META_SLOW_DOWN_AT_PCT", "80")
    monkeypatch.setenv("PIXECOM_META_APP_SECRET", "s3cret")

    settings = MetaAdsSettings()

    assert settings.graph_base == "http://127.0.0.1:8123"
    assert settings.purchase_action_type == "purchase"
    assert settings.slow_down_at_pct == 80
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PIXECOM_META_GRAPH_BASE", "graph.facebook.com"),
        ("PIXECOM_META_GRAPH_BASE", "ftp://graph.facebook.com"),
        ("PIXECOM_META_GRAPH_BASE", "https://graph.facebook.com/?x=1"),
        ("PIXECOM_META_API_VERSION", "25"),
        ("PIXECOM_META_SLOW_DOWN_AT_PCT", "100"),
        ("PIXECOM_META_PAGE_LIMIT", "0"),
        ("PIXECOM_META_CLICKS_FIELD", "unique_clicks"),
        ("PIXECOM_META_PURCHASE_ACTION_TYPE", ""),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        MetaAdsSettings()


def test_sandbox_settings_have_their_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_META_SANDBOX_LATENCY_SECONDS", "1.5")
    monkeypatch.setenv("PIXECOM_META_SANDBOX_CAMPAIGNS_PER_ACCOUNT", "10")

    sandbox = MetaSandboxSettings()

    assert (sandbox.latency_seconds, sandbox.campaigns_per_account) == (1.5, 10)
    assert MetaAdsSettings().graph_base == "https://graph.facebook.com"


def test_every_secret_can_be_read_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Production keeps secrets out of the environment (issue 12 item 8).
    assert check_secrets_read_from_files(MetaAdsSettings, monkeypatch, tmp_path)


def test_a_secret_given_twice_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "app_secret"
    secret.write_text("one")
    monkeypatch.setenv("PIXECOM_META_APP_SECRET_FILE", str(secret))
    monkeypatch.setenv("PIXECOM_META_APP_SECRET", "another")

    with pytest.raises(SecretSourceError, match="PIXECOM_META_APP_SECRET"):
        MetaAdsSettings()
