"""The app factory refuses configurations that must never serve traffic."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pixecom_core import hookimpl
from pixecom_core.db.urls import DatabaseNotConfiguredError
from pixecom_core.settings import Mode, Settings, WeakSecretError
from reference_app.api import create_app
from reference_app.configuration import RedisNotConfiguredError
from tests.app.conftest import ClientFactory
from tests.ledger import fakepay


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


class ClosingTracker:
    """A tracker provider holding a connection pool, as a plugin's client does."""

    identifier = "closingtrack"
    display_name = "Closing"
    max_batch_size = 40

    def __init__(self) -> None:
        self.closed = 0

    async def register(self, numbers: object) -> object:
        raise NotImplementedError

    async def fetch_status(self, numbers: object) -> object:
        raise NotImplementedError

    async def stop(self, numbers: object) -> None:
        raise NotImplementedError

    async def verify_push(self, *, body: bytes, headers: object) -> object:
        raise NotImplementedError

    async def aclose(self) -> None:
        self.closed += 1


class OffersClosingTracker:
    def __init__(self, tracker: ClosingTracker) -> None:
        self.tracker = tracker

    @hookimpl
    def pixecom_register_trackers(self) -> list[object]:
        return [self.tracker]


async def test_the_apps_shutdown_closes_its_providers(
    app_settings: Settings, api_client_for: ClientFactory
) -> None:
    tracker = ClosingTracker()

    async with api_client_for(
        app_settings, plugins=[fakepay, OffersClosingTracker(tracker)]
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert tracker.closed == 0

    assert tracker.closed == 1
