"""The app factory refuses configurations that must never serve traffic."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pixecom_core.db.urls import DatabaseNotConfiguredError
from pixecom_core.settings import Mode, Settings, WeakSecretError
from reference_app.api import create_app
from reference_app.configuration import RedisNotConfiguredError


@pytest.mark.parametrize("mode", [Mode.PRODUCTION, Mode.TEST])
@pytest.mark.parametrize(
    "weakening",
    [
        {"jwt_signing_keys": [SecretStr("changeme")]},
        {"token_encryption_keys": []},
        {"refresh_token_peppers": [SecretStr("a" * 64)]},
        {"ingest_api_key_current": SecretStr("short")},
    ],
    ids=["placeholder-jwt-key", "no-encryption-key", "low-entropy-pepper", "short-ingest-key"],
)
def test_create_app_refuses_weak_secrets_outside_dev_mode(
    settings: Settings, mode: Mode, weakening: dict[str, object]
) -> None:
    # model_copy skips validation, the way a hand-built Settings object could.
    weak = settings.model_copy(update={"mode": mode, **weakening})

    with pytest.raises(WeakSecretError, match="pixecom keys generate"):
        create_app(weak)


def test_create_app_accepts_weak_secrets_in_dev_mode(settings: Settings) -> None:
    weak = settings.model_copy(
        update={"mode": Mode.DEV, "jwt_signing_keys": [], "refresh_token_peppers": []}
    )

    assert create_app(weak).title == "PixEcom"


def test_create_app_refuses_to_build_without_a_database(settings: Settings) -> None:
    no_database = settings.model_copy(update={"database_url": None})

    with pytest.raises(DatabaseNotConfiguredError, match="DATABASE_URL"):
        create_app(no_database)


def test_create_app_refuses_to_build_without_redis(settings: Settings) -> None:
    no_redis = settings.model_copy(update={"redis_url": None})

    with pytest.raises(RedisNotConfiguredError, match="REDIS_URL"):
        create_app(no_redis)
