"""The demo seller exists in dev mode only (SEC-4)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.accounts.demo import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DemoDataRefusedError,
    ensure_demo_seller,
)
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.settings import Mode, Settings
from tests.app.conftest import ClientFactory


def demo_accounts(owner_dsn: str) -> int:
    with psycopg.connect(owner_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM login_identities WHERE email_normalized = %s", (DEMO_EMAIL,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("mode", [Mode.PRODUCTION, Mode.TEST])
async def test_demo_seller_is_refused_outside_dev_mode(
    settings: Settings, app_engine: AsyncEngine, database_owner_dsn: str, mode: Mode
) -> None:
    before = demo_accounts(database_owner_dsn)

    with pytest.raises(DemoDataRefusedError, match="dev"):
        await ensure_demo_seller(
            create_sessionmaker(app_engine), settings.model_copy(update={"mode": mode})
        )

    assert demo_accounts(database_owner_dsn) == before


async def test_demo_seller_in_dev_mode_is_created_once_and_can_log_in(
    app_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
    api_client_for: ClientFactory,
) -> None:
    dev = app_settings.model_copy(update={"mode": Mode.DEV})
    sessions = create_sessionmaker(app_engine)

    first = await ensure_demo_seller(sessions, dev)
    second = await ensure_demo_seller(sessions, dev)

    assert first.created
    assert not second.created
    assert demo_accounts(database_owner_dsn) == 1
    async with api_client_for(dev) as client:
        login = await client.post(
            "/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        )
    assert login.status_code == 200, login.text


async def test_demo_activity_is_refused_outside_dev_mode(settings: Settings) -> None:
    from reference_app.demo_activity import seed_demo_activity

    with pytest.raises(RuntimeError, match="dev only"):
        await seed_demo_activity(
            settings.model_copy(update={"mode": Mode.TEST}), api_url="http://127.0.0.1:1"
        )
