"""`pixecom keys generate` prints an env file of strong, fresh secrets."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pixecom_core.settings import Mode, Settings, secret_strength_problem
from reference_app.keys import secret_settings

# The `run_pixecom` fixture (conftest.py); fixtures are injected, not imported.
RunPixecom = Callable[..., subprocess.CompletedProcess[str]]


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines (comments skipped, surrounding single quotes removed)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        assert separator, f"not an env-file line: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        values[name] = value
    return values


def secrets_in(value: str) -> list[str]:
    """The secrets of one setting: a JSON key list or a single value."""
    return [str(item) for item in json.loads(value)] if value.startswith("[") else [value]


@pytest.fixture
def generated(run_pixecom: RunPixecom) -> dict[str, str]:
    result = run_pixecom("keys", "generate")
    assert result.returncode == 0, result.stderr
    return parse_env_file(result.stdout)


def test_every_generated_secret_is_strong(generated: dict[str, str]) -> None:
    assert generated
    for name, value in generated.items():
        for secret in secrets_in(value):
            assert secret_strength_problem(secret) is None, name


def test_every_secret_setting_gets_a_value(generated: dict[str, str]) -> None:
    expected = {setting.env_name for setting in secret_settings()}

    assert set(generated) == expected
    assert {
        "PIXECOM_JWT_SIGNING_KEYS",
        "PIXECOM_TOKEN_ENCRYPTION_KEYS",
        "PIXECOM_REFRESH_TOKEN_PEPPERS",
    } <= expected


def test_each_run_prints_new_secrets(run_pixecom: RunPixecom) -> None:
    first = parse_env_file(run_pixecom("keys", "generate").stdout)
    second = parse_env_file(run_pixecom("keys", "generate").stdout)

    assert set(first) == set(second)
    assert all(first[name] != second[name] for name in first)


def test_generated_env_file_satisfies_production_settings(
    generated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in generated.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIXECOM_MODE", Mode.PRODUCTION.value)

    settings = Settings()

    assert settings.mode is Mode.PRODUCTION
    assert len(settings.jwt_signing_keys) == 1
    assert len(settings.token_encryption_keys) == 1


def test_credentials_dir_gets_one_private_file_per_secret(
    run_pixecom: RunPixecom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"

    result = run_pixecom("keys", "generate", "--credentials-dir", str(credentials))

    assert result.returncode == 0, result.stderr
    expected = {setting.env_name for setting in secret_settings()}
    assert {path.name for path in credentials.iterdir()} == expected
    for path in credentials.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    # The files are exactly what the settings read from $CREDENTIALS_DIRECTORY.
    for name in list(os.environ):
        if name.startswith("PIXECOM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIXECOM_MODE", Mode.PRODUCTION.value)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = Settings()
    assert len(settings.refresh_token_peppers) == 1
    assert (
        settings.refresh_token_peppers[0].get_secret_value()
        == json.loads((credentials / "PIXECOM_REFRESH_TOKEN_PEPPERS").read_text())[0]
    )


def test_credentials_in_use_are_never_overwritten(run_pixecom: RunPixecom, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    assert run_pixecom("keys", "generate", "--credentials-dir", str(credentials)).returncode == 0
    before = (credentials / "PIXECOM_JWT_SIGNING_KEYS").read_text()

    again = run_pixecom("keys", "generate", "--credentials-dir", str(credentials))

    assert again.returncode == 1
    assert "already holds" in again.stderr and "PIXECOM_JWT_SIGNING_KEYS" in again.stderr
    assert (credentials / "PIXECOM_JWT_SIGNING_KEYS").read_text() == before
