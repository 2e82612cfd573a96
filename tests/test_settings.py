"""Settings refuse missing or weak secrets outside dev mode (audit must-fix 9, §9)."""

from __future__ import annotations

import secrets

import pytest

from pixecom_core.settings import Mode, Settings, WeakSecretError, secret_strength_problem


def strong() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PIXECOM_"):
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
