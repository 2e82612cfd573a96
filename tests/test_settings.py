"""Settings refuse missing or weak secrets outside dev mode (SEC-4, SEC-5)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pixecom_core.secret_files import SecretSourceError
from pixecom_core.settings import Mode, Settings, WeakSecretError, secret_strength_problem


def strong() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PIXECOM_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def test_production_without_secrets_names_every_missing_one() -> None:
    with pytest.raises(WeakSecretError) as caught:
        Settings(mode=Mode.PRODUCTION)
    message = str(caught.value)
    for name in (
        "PIXECOM_JWT_SIGNING_KEYS",
        "PIXECOM_TOKEN_ENCRYPTION_KEYS",
        "PIXECOM_REFRESH_TOKEN_PEPPERS",
    ):
        assert name in message
    assert "pixecom keys generate" in message


@pytest.mark.parametrize("weak", ["changeme", "short", "a" * 64, "ab" * 16])
def test_weak_secret_is_refused_outside_dev(weak: str) -> None:
    with pytest.raises(WeakSecretError, match=r"PIXECOM_JWT_SIGNING_KEYS\[1\]"):
        Settings(
            mode=Mode.TEST,
            jwt_signing_keys=[strong(), weak],
            token_encryption_keys=[strong()],
            refresh_token_peppers=[strong()],
        )


def test_strong_secrets_start_and_dev_mode_accepts_none() -> None:
    settings = Settings(
        mode=Mode.PRODUCTION,
        jwt_signing_keys=[strong()],
        token_encryption_keys=[strong(), strong()],
        refresh_token_peppers=[strong(), strong()],
    )
    assert len(settings.token_encryption_keys) == 2
    assert Settings(mode=Mode.DEV).jwt_signing_keys == []


def test_secrets_and_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = strong()
    monkeypatch.setenv("PIXECOM_MODE", "production")
    monkeypatch.setenv("PIXECOM_JWT_SIGNING_KEYS", f'["{key}"]')
    monkeypatch.setenv("PIXECOM_TOKEN_ENCRYPTION_KEYS", f'["{strong()}"]')
    monkeypatch.setenv("PIXECOM_REFRESH_TOKEN_PEPPERS", f'["{strong()}"]')
    monkeypatch.setenv("PIXECOM_DB_POOL_SIZE", "20")
    monkeypatch.setenv("PIXECOM_STATEMENT_TIMEOUT_MS", "1500")
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db.internal/pixecom")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    settings = Settings()
    assert settings.jwt_signing_keys[0].get_secret_value() == key
    assert settings.db_pool_size == 20
    assert settings.statement_timeout_ms == 1500
    assert settings.database_url == "postgresql://owner@db.internal/pixecom"
    assert settings.redis_url == "redis://cache.internal:6379/0"
    assert key not in repr(settings)


def test_default_page_size_cannot_exceed_maximum() -> None:
    with pytest.raises(ValueError, match="default_page_size"):
        Settings(mode=Mode.DEV, max_page_size=10, default_page_size=50)


def test_strength_check_explains_itself() -> None:
    assert secret_strength_problem(strong()) is None
    assert "placeholder" in (secret_strength_problem("changeme") or "")
    assert "characters long" in (secret_strength_problem("x" * 10) or "")
    assert "entropy" in (secret_strength_problem("ab" * 20) or "")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("database_url", "postgresql://owner:changeme@db/pixecom", "DATABASE_URL"),
        ("app_database_url", "postgresql://app:CHANGEME@db/pixecom", "PIXECOM_APP_DATABASE_URL"),
        ("read_database_url", "postgresql://app:password@replica/x", "PIXECOM_READ_DATABASE_URL"),
        ("app_role_password", "changeme", "PIXECOM_APP_ROLE_PASSWORD"),
    ],
)
def test_placeholder_database_passwords_are_refused_outside_dev(
    field: str, value: str, named: str
) -> None:
    secrets_set = {
        "jwt_signing_keys": [strong()],
        "token_encryption_keys": [strong()],
        "refresh_token_peppers": [strong()],
    }
    with pytest.raises(WeakSecretError, match=named):
        Settings(mode=Mode.PRODUCTION, **secrets_set, **{field: value})
    # A password of the operator's choosing (managed databases pick their own) is fine,
    # and so is no password at all (peer or certificate authentication).
    chosen = (
        value.replace("changeme", "s3-kR9")
        .replace("CHANGEME", "x7Lq")
        .replace("password", "Zq81-word")
    )
    Settings(mode=Mode.PRODUCTION, **secrets_set, **{field: chosen})
    assert Settings(mode=Mode.DEV, **{field: value}) is not None


# -- Rotating peppers and secrets from files (issue 12, item 8) ---------------------------


def production_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_MODE", "production")
    monkeypatch.setenv("PIXECOM_JWT_SIGNING_KEYS", f'["{strong()}"]')
    monkeypatch.setenv("PIXECOM_TOKEN_ENCRYPTION_KEYS", f'["{strong()}"]')
    monkeypatch.setenv("PIXECOM_REFRESH_TOKEN_PEPPERS", f'["{strong()}"]')


def test_peppers_are_a_list_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    production_secrets(monkeypatch)
    new, old = strong(), strong()
    monkeypatch.setenv("PIXECOM_REFRESH_TOKEN_PEPPERS", f'["{new}", "{old}"]')

    peppers = Settings().refresh_token_peppers

    assert [p.get_secret_value() for p in peppers] == [new, old]


def test_the_single_pepper_variable_of_before_still_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production_secrets(monkeypatch)
    monkeypatch.delenv("PIXECOM_REFRESH_TOKEN_PEPPERS")
    pepper = strong()
    monkeypatch.setenv("PIXECOM_REFRESH_TOKEN_PEPPER", pepper)

    peppers = Settings().refresh_token_peppers

    assert [p.get_secret_value() for p in peppers] == [pepper]


def test_weak_pepper_is_named_by_its_position() -> None:
    with pytest.raises(WeakSecretError, match=r"PIXECOM_REFRESH_TOKEN_PEPPERS\[1\]"):
        Settings(
            mode=Mode.PRODUCTION,
            jwt_signing_keys=[strong()],
            token_encryption_keys=[strong()],
            refresh_token_peppers=[strong(), "changeme"],
        )


def test_secrets_are_read_from_file_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production_secrets(monkeypatch)
    monkeypatch.delenv("PIXECOM_JWT_SIGNING_KEYS")
    monkeypatch.delenv("PIXECOM_REFRESH_TOKEN_PEPPERS")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    key, pepper = strong(), strong()
    files = {
        "PIXECOM_JWT_SIGNING_KEYS": f'["{key}"]\n',
        # A file may hold one bare key, as `echo "$KEY" > file` writes it.
        "PIXECOM_REFRESH_TOKEN_PEPPERS": f"{pepper}\n",
        "DATABASE_URL": "postgresql://owner:s3cret-pw@db.internal/pixecom\n",
        "PIXECOM_ADMIN_API_KEY": f"{key}-admin\n",
    }
    for name, value in files.items():
        (tmp_path / name).write_text(value)
        monkeypatch.setenv(f"{name}_FILE", str(tmp_path / name))

    settings = Settings()

    assert [k.get_secret_value() for k in settings.jwt_signing_keys] == [key]
    assert [p.get_secret_value() for p in settings.refresh_token_peppers] == [pepper]
    assert settings.database_url == "postgresql://owner:s3cret-pw@db.internal/pixecom"
    assert settings.admin_api_key is not None
    assert settings.admin_api_key.get_secret_value() == f"{key}-admin"


def test_secrets_are_read_from_systemd_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production_secrets(monkeypatch)
    monkeypatch.delenv("PIXECOM_TOKEN_ENCRYPTION_KEYS")
    monkeypatch.delenv("PIXECOM_REFRESH_TOKEN_PEPPERS")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    encryption, new, old = strong(), strong(), strong()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    # Named like the variables (LoadCredential=PIXECOM_TOKEN_ENCRYPTION_KEYS:/etc/…).
    (credentials / "PIXECOM_TOKEN_ENCRYPTION_KEYS").write_text(f'["{encryption}"]\n')
    (credentials / "PIXECOM_REFRESH_TOKEN_PEPPERS").write_text(f'["{new}","{old}"]\n')
    (credentials / "DATABASE_URL").write_text("postgresql://owner:pw-Zq81@db/pixecom\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    settings = Settings()

    assert [k.get_secret_value() for k in settings.token_encryption_keys] == [encryption]
    assert [p.get_secret_value() for p in settings.refresh_token_peppers] == [new, old]
    assert settings.database_url == "postgresql://owner:pw-Zq81@db/pixecom"


def test_a_variable_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production_secrets(monkeypatch)
    (tmp_path / "keys").write_text(f'["{strong()}"]')
    monkeypatch.setenv("PIXECOM_JWT_SIGNING_KEYS_FILE", str(tmp_path / "keys"))

    with pytest.raises(SecretSourceError) as refused:
        Settings()

    message = str(refused.value)
    assert "PIXECOM_JWT_SIGNING_KEYS and PIXECOM_JWT_SIGNING_KEYS_FILE are set" in message
    assert "one place only" in message


def test_a_variable_and_a_credential_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production_secrets(monkeypatch)
    (tmp_path / "PIXECOM_REFRESH_TOKEN_PEPPERS").write_text(strong())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    with pytest.raises(SecretSourceError) as refused:
        Settings()

    assert "PIXECOM_REFRESH_TOKEN_PEPPERS and $CREDENTIALS_DIRECTORY/" in str(refused.value)


@pytest.mark.parametrize("content", [None, "", "\n"], ids=["missing", "empty", "newline"])
def test_an_unusable_secret_file_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None
) -> None:
    production_secrets(monkeypatch)
    monkeypatch.delenv("PIXECOM_TOKEN_ENCRYPTION_KEYS")
    path = tmp_path / "encryption-keys"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("PIXECOM_TOKEN_ENCRYPTION_KEYS_FILE", str(path))

    with pytest.raises(SecretSourceError) as refused:
        Settings()

    message = str(refused.value)
    assert message.startswith(f"PIXECOM_TOKEN_ENCRYPTION_KEYS_FILE names {path}")
    assert ("cannot be read" if content is None else "empty") in message


def test_only_secret_settings_are_read_from_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pool").write_text("20")
    monkeypatch.setenv("PIXECOM_DB_POOL_SIZE_FILE", str(tmp_path / "pool"))

    assert Settings(mode=Mode.DEV).db_pool_size == 10
