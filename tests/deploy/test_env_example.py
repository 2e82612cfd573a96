"""reference_app/deploy/.env.example: complete, parseable, and refused as shipped."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest

from pixecom_core.settings import Mode, Settings, WeakSecretError
from reference_app.keys import _env_name, generate_credentials, secret_settings
from tests.deploy.conftest import DEPLOY_DIR

EXAMPLE = DEPLOY_DIR / ".env.example"
#: ``NAME=value``, or ``#NAME=value`` for a setting left at its default.
ASSIGNMENT = re.compile(r"^(#)?([A-Z][A-Z0-9_]*)=(.*)$")
#: Active lines that differ from the code's default on purpose (production choices).
PRODUCTION_CHOICES = {
    "mode",
    "data_dir",
    "database_url",
    "app_database_url",
    "app_role_password",
    "redis_url",
    "db_behind_pgbouncer",
    "seed_demo_data",
    "log_format",
    # Which tracker, storage and rate-source plugin to use: by default the only one
    # installed, so the example names the ones the deployment kit is written for.
    "tracking_provider",
    "storage_provider",
    "fx_source",
}


@pytest.fixture(autouse=True)
def no_configuration_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the file configures Settings here (environment variables would win)."""
    for name in list(os.environ):
        if name.startswith("PIXECOM_") or name in {
            "DATABASE_URL",
            "REDIS_URL",
            "CREDENTIALS_DIRECTORY",
        }:
            monkeypatch.delenv(name)


def env_names() -> dict[str, str]:
    """Settings field -> the environment variable pydantic-settings reads it from."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {name: _env_name(name, field, prefix) for name, field in Settings.model_fields.items()}


def assignments(text: str) -> dict[str, tuple[bool, str]]:
    """Variable -> (active, value) for every assignment line, commented-out ones too."""
    found: dict[str, tuple[bool, str]] = {}
    for line in text.splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            name = match.group(2)
            assert name not in found, f"{name} appears twice"
            found[name] = (match.group(1) is None, match.group(3))
    return found


def with_generated_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The documented steps: secrets as credential files from `pixecom keys generate
    --credentials-dir`, the two database URLs written there by the operator with a
    password of their own, and the units' $CREDENTIALS_DIRECTORY pointing at them."""
    credentials = tmp_path / "credentials"
    generate_credentials(credentials)
    database_password = secrets.token_urlsafe(24)
    for name in ("DATABASE_URL", "PIXECOM_APP_DATABASE_URL"):
        _, example = assignments(EXAMPLE.read_text())[name]
        (credentials / name).write_text(example.replace("changeme", database_password) + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    return credentials


def test_every_setting_is_in_the_example_and_nothing_else() -> None:
    documented = assignments(EXAMPLE.read_text())
    expected = set(env_names().values())

    assert sorted(expected - set(documented)) == [], "settings missing from .env.example"
    assert sorted(set(documented) - expected) == [], "unknown variables in .env.example"


def test_no_secret_is_set_in_the_example() -> None:
    """Secrets are credential files in the deploy kit, never environment variables."""
    documented = assignments(EXAMPLE.read_text())
    for secret in secret_settings():
        active, _ = documented[secret.env_name]
        assert not active, f"{secret.env_name} is set in .env.example"
    for name, (active, value) in documented.items():
        assert not (active and "changeme" in value), f"{name} has a password in .env.example"


def test_the_example_as_shipped_is_refused_outside_dev() -> None:
    with pytest.raises(WeakSecretError) as refused:
        Settings(_env_file=EXAMPLE)

    message = str(refused.value)
    assert "refusing to start in production mode" in message
    for name in (
        "PIXECOM_JWT_SIGNING_KEYS",
        "PIXECOM_TOKEN_ENCRYPTION_KEYS",
        "PIXECOM_REFRESH_TOKEN_PEPPERS",
    ):
        assert f"{name} is not set" in message


def test_each_placeholder_alone_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential file holding the example's placeholder is refused, naming it."""
    credentials = with_generated_secrets(tmp_path, monkeypatch)
    placeholders = {
        name: value.strip("'")
        for name, (active, value) in assignments(EXAMPLE.read_text()).items()
        if not active and "changeme" in value and (credentials / name).exists()
    }
    refused_alone = []
    for name, placeholder in placeholders.items():
        ready = (credentials / name).read_text()
        (credentials / name).write_text(placeholder + "\n")
        expected = f"{name} has a placeholder password" if name.endswith("_URL") else name
        with pytest.raises(WeakSecretError, match=re.escape(expected)):
            Settings(_env_file=EXAMPLE)
        (credentials / name).write_text(ready)
        refused_alone.append(name)

    assert len(refused_alone) >= 7, refused_alone


def test_with_generated_secrets_every_value_parses_to_the_documented_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_generated_secrets(tmp_path, monkeypatch)
    settings = Settings(_env_file=EXAMPLE)

    assert settings.mode is Mode.PRODUCTION
    assert settings.db_behind_pgbouncer is True
    assert settings.seed_demo_data is False
    assert settings.trusted_proxies == ["127.0.0.1", "::1"]
    documented = assignments(EXAMPLE.read_text())
    names = env_names()
    for field, env_name in names.items():
        active, _ = documented[env_name]
        if not active or field in PRODUCTION_CHOICES:
            continue
        info = Settings.model_fields[field]
        if any(s.env_name == env_name for s in secret_settings()):
            continue
        default = info.get_default(call_default_factory=True)
        assert getattr(settings, field) == default, f"{env_name} differs from the default"
