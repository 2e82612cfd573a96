"""``PIXECOM_STRIPE_*`` and ``PIXECOM_STRIPE_SANDBOX_*`` are read as documented."""

import os
from pathlib import Path

import pytest
from pixecom_stripe.sandbox import SandboxConfig
from pixecom_stripe.settings import (
    SANDBOX_DEFAULT_WEBHOOK_SECRET,
    STRIPE_API_BASE,
    StripeSandboxSettings,
    StripeSettings,
)
from pydantic import SecretStr, ValidationError

from pixecom_core.testing.secrets import check_secrets_read_from_files


def revealed(secrets: list[SecretStr]) -> list[str]:
    return [secret.get_secret_value() for secret in secrets]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_STRIPE_"):
            monkeypatch.delenv(name)


def test_defaults_need_no_environment() -> None:
    settings = StripeSettings()

    assert settings.api_base == STRIPE_API_BASE
    assert settings.secret_key is None
    assert settings.webhook_secrets == []
    assert settings.webhook_tolerance_seconds == 300


def test_reads_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_API_BASE", "http://127.0.0.1:12111/")
    monkeypatch.setenv("PIXECOM_STRIPE_SECRET_KEY", "sk_test_env")
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_SECRETS", '["whsec_old", "whsec_new"]')
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_TOLERANCE_SECONDS", "60")
    monkeypatch.setenv("PIXECOM_STRIPE_TIMEOUT_SECONDS", "2.5")

    settings = StripeSettings()

    assert settings.api_base == "http://127.0.0.1:12111"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "sk_test_env"
    assert [s.get_secret_value() for s in settings.webhook_secrets] == ["whsec_old", "whsec_new"]
    assert settings.webhook_tolerance_seconds == 60
    assert settings.timeout_seconds == 2.5


def test_webhook_secrets_may_be_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_SECRETS", "whsec_old, whsec_new,")

    secrets = StripeSettings().webhook_secrets

    assert [s.get_secret_value() for s in secrets] == ["whsec_old", "whsec_new"]


def test_secrets_are_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_SECRET_KEY", "sk_test_do_not_print")
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_SECRETS", "whsec_do_not_print")

    shown = repr(StripeSettings())

    assert "do_not_print" not in shown


@pytest.mark.parametrize("api_base", ["api.stripe.com", "ftp://api.stripe.com", "https://"])
def test_api_base_must_be_an_http_url(api_base: str) -> None:
    with pytest.raises(ValidationError, match="api_base"):
        StripeSettings(api_base=api_base)


@pytest.mark.parametrize("name", ["WEBHOOK_TOLERANCE_SECONDS", "TIMEOUT_SECONDS"])
def test_limits_must_be_positive(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"PIXECOM_STRIPE_{name}", "0")

    with pytest.raises(ValidationError, match=name.lower()):
        StripeSettings()


def test_sandbox_signs_with_the_gateway_secrets_when_given_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_SECRETS", "whsec_shared")
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_WEBHOOK_URL", "http://127.0.0.1:8000/hook")
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_AUTO_DELIVER", "true")

    config = SandboxConfig.from_environment()

    assert revealed(config.webhook_secrets) == ["whsec_shared"]
    assert config.webhook_url == "http://127.0.0.1:8000/hook"
    assert config.auto_deliver is True


def test_sandbox_secrets_of_its_own_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_SECRETS", "whsec_gateway")
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_WEBHOOK_SECRETS", "whsec_old,whsec_new")
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_API_KEYS", "sk_test_only_this")

    config = SandboxConfig.from_environment()

    assert revealed(config.webhook_secrets) == ["whsec_old", "whsec_new"]
    assert revealed(config.api_keys) == ["sk_test_only_this"]


def test_sandbox_without_any_secret_uses_its_own_default() -> None:
    assert revealed(SandboxConfig.from_environment().webhook_secrets) == [
        SANDBOX_DEFAULT_WEBHOOK_SECRET
    ]


def test_sandbox_refuses_an_impossible_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_LATENCY_SECONDS", "-1")

    with pytest.raises(ValidationError, match="latency_seconds"):
        StripeSandboxSettings()


def test_webhook_secrets_can_be_read_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Production keeps secrets out of the environment (issue 12 item 8); a rotation lists
    # two secrets in the file as it would in the variable.
    secrets = tmp_path / "webhook_secrets"
    secrets.write_text("whsec_new,whsec_old\n")
    monkeypatch.setenv("PIXECOM_STRIPE_WEBHOOK_SECRETS_FILE", str(secrets))

    settings = StripeSettings()

    assert [s.get_secret_value() for s in settings.webhook_secrets] == ["whsec_new", "whsec_old"]


def test_every_secret_can_be_read_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert check_secrets_read_from_files(StripeSettings, monkeypatch, tmp_path) == [
        "PIXECOM_STRIPE_SECRET_KEY",
        "PIXECOM_STRIPE_WEBHOOK_SECRETS",
        "PIXECOM_STRIPE_CONNECT_WEBHOOK_SECRETS",
    ]
