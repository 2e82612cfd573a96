"""`pixecom keys generate` prints an env file of strong, fresh secrets."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

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
