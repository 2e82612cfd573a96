"""``pixecom dev``'s demo seller connects its own PayPal REST app the way any seller does
(issue 15 item 5): the sandbox hands out a new app's credentials
(:attr:`Sandbox.demo_credentials`), PayPal checks them, the app is subscribed to its own
webhook address — so demo checkouts are orders of that app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.accounts.service import SignUp, create_seller_account, find_login
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import PLUGIN_MODULES_ENV, ProviderRegistry, create_plugin_manager
from pixecom_core.settings import Mode, Settings
from pixecom_core.testing.loopback import LoopbackServer
from reference_app import demo_activity
from reference_app.demo_activity import seed_demo_activity

API_URL = "http://127.0.0.1:9"  # the API is not serving yet when the demo connects


@pytest.fixture
def paypal_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The installed PayPal plugin's sandbox on loopback, the plugin pointed at it as
    ``pixecom dev`` points it."""
    monkeypatch.setenv(PLUGIN_MODULES_ENV, "pixecom_paypal.plugin")
    registry = ProviderRegistry(create_plugin_manager())
    sandbox = registry.sandbox("paypal")
    assert sandbox.environment is not None and sandbox.demo_credentials is not None
    server = LoopbackServer(sandbox.create_app())
    for name, value in sandbox.environment(server.url, API_URL).items():
        monkeypatch.setenv(name, value)
    with server:
        yield server.url


async def test_the_demo_seller_connects_its_paypal_app_with_credentials(
    paypal_sandbox: str,
    app_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev = app_settings.model_copy(update={"mode": Mode.DEV})
    email = f"demo-{uuid.uuid4().hex[:12]}@example.com"
    monkeypatch.setattr(demo_activity, "DEMO_EMAIL", email)
    # The demo sellpage's slug is unique across sellers: another test's demo seller may
    # hold the real one in this run's database.
    monkeypatch.setattr(demo_activity, "DEMO_SLUG", f"demo-{uuid.uuid4().hex[:12]}")
    sessions = create_sessionmaker(app_engine)
    await create_seller_account(
        sessions,
        dev,
        SignUp(
            seller_name="Demo Store",
            reporting_currency="USD",
            timezone="UTC",
            email=email,
            password="a demo password of this test",
            display_name="Demo Owner",
        ),
    )
    found = await find_login(sessions, email)
    assert found is not None

    first = await seed_demo_activity(dev, api_url=API_URL, sandbox_urls={"paypal": paypal_sandbox})
    again = await seed_demo_activity(dev, api_url=API_URL, sandbox_urls={"paypal": paypal_sandbox})

    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT status, redirect_uri, account_id FROM payment_connections"
            " WHERE seller_id = %s AND gateway = 'paypal'",
            (found[0],),
        ).fetchall()
    assert first.payment_accounts_connected == 1 and again.payment_accounts_connected == 0
    [(status, redirect_uri, account_id)] = rows
    assert status == "ACTIVE"
    assert redirect_uri is None  # no consent page: credentials
    assert str(account_id).startswith("APP-")
