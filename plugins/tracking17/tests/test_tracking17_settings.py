"""Settings from ``PIXECOM_TRACKING17_*``: defaults, the push-key fallback, refusals."""

import os
from pathlib import Path

import pytest
from pixecom_tracking17.settings import (
    SANDBOX_DEFAULT_KEY,
    Track17SandboxSettings,
    Track17Settings,
)
from pydantic import ValidationError

from pixecom_core.testing.secrets import check_secrets_read_from_files


@pytest.fixture(autouse=True)
def empty_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PIXECOM_TRACKING17_"):
            monkeypatch.delenv(name)


def test_defaults_need_nothing_set() -> None:
    settings = Track17Settings()

    assert settings.api_base == "https://api.17track.net"
    assert settings.api_key is None
    assert settings.signing_key() is None
    assert settings.timeout_seconds == 5.0
    assert settings.requests_per_second == 3.0


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_TRACKING17_API_BASE", "http://127.0.0.1:4040/")
    monkeypatch.setenv("PIXECOM_TRACKING17_API_KEY", "k-api")
    monkeypatch.setenv("PIXECOM_TRACKING17_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("PIXECOM_TRACKING17_REQUESTS_PER_SECOND", "1.5")

    settings = Track17Settings()

    assert settings.api_base == "http://127.0.0.1:4040"  # trailing slash dropped
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k-api"
    assert settings.timeout_seconds == 2.5
    assert settings.requests_per_second == 1.5
    assert "k-api" not in repr(settings)


def test_pushes_are_verified_with_the_api_key_unless_a_push_key_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXECOM_TRACKING17_API_KEY", "k-api")
    fallback = Track17Settings().signing_key()
    monkeypatch.setenv("PIXECOM_TRACKING17_PUSH_KEY", "k-push")
    explicit = Track17Settings().signing_key()

    assert fallback is not None and fallback.get_secret_value() == "k-api"
    assert explicit is not None and explicit.get_secret_value() == "k-push"


def test_blank_keys_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_TRACKING17_API_KEY", "k-api")
    monkeypatch.setenv("PIXECOM_TRACKING17_PUSH_KEY", "  ")

    key = Track17Settings().signing_key()

    assert key is not None and key.get_secret_value() == "k-api"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_BASE", "api.17track.net"),
        ("API_BASE", "ftp://api.17track.net"),
        ("API_BASE", "https://api.17track.net?x=1"),
        ("TIMEOUT_SECONDS", "0"),
        ("TIMEOUT_SECONDS", "600"),
        ("REQUESTS_PER_SECOND", "0"),
        ("THROTTLE_BACKOFF_SECONDS", "-1"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PIXECOM_TRACKING17_{name}", value)

    with pytest.raises(ValidationError) as raised:
        Track17Settings()

    assert name.lower() in str(raised.value)


def test_the_sandbox_follows_the_trackers_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Track17SandboxSettings().accepted_keys() == [SANDBOX_DEFAULT_KEY]
    assert Track17SandboxSettings().signing_key() == SANDBOX_DEFAULT_KEY

    monkeypatch.setenv("PIXECOM_TRACKING17_API_KEY", "k-api")
    assert Track17SandboxSettings().accepted_keys() == ["k-api"]
    assert Track17SandboxSettings().signing_key() == "k-api"

    monkeypatch.setenv("PIXECOM_TRACKING17_PUSH_KEY", "k-push")
    assert Track17SandboxSettings().signing_key() == "k-push"

    monkeypatch.setenv("PIXECOM_TRACKING17_SANDBOX_API_KEYS", "k-one, k-two")
    monkeypatch.setenv("PIXECOM_TRACKING17_SANDBOX_PUSH_KEY", "k-sandbox")
    assert Track17SandboxSettings().accepted_keys() == ["k-one", "k-two"]
    assert Track17SandboxSettings().signing_key() == "k-sandbox"


def test_every_secret_can_be_read_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Production keeps secrets out of the environment (issue 12 item 8).
    assert check_secrets_read_from_files(Track17Settings, monkeypatch, tmp_path)
