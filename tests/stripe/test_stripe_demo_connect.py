"""``pixecom dev``'s demo seller connects its own Stripe account the way any seller does
(issue 15 item 5): a connection started, the Stripe sandbox's Connect consent page
approved, the code exchanged — so demo checkouts are paid into that account."""

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
def stripe_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The installed Stripe plugin's sandbox on loopback, the plugin pointed at it as
    ``pixecom dev`` points it."""
    monkeypatch.setenv(PLUGIN_MODULES_ENV, "pixecom_stripe.plugin")
    registry = ProviderRegistry(create_plugin_manager())
    sandbox = registry.sandbox("stripe")
    assert sandbox.environment is not None and sandbox.approve_consent is not None
    server = LoopbackServer(sandbox.create_app())
    for name, value in sandbox.environment(server.url, API_URL).items():
        monkeypatch.setenv(name, value)
    with server:
        yield server.url


@pytest.mark.usefixtures("stripe_sandbox")
async def test_the_demo_seller_connects_its_stripe_account_through_connect(
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

    first = await seed_demo_activity(dev, api_url=API_URL)
    again = await seed_demo_activity(dev, api_url=API_URL)

    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT status, redirect_uri, account_id FROM payment_connections"
            " WHERE seller_id = %s AND gateway = 'stripe'",
            (found[0],),
        ).fetchall()
    assert first.payment_accounts_connected == 1 and again.payment_accounts_connected == 0
    [(status, redirect_uri, account_id)] = rows
    assert status == "ACTIVE"
    assert redirect_uri == f"{API_URL}/payments/connections/callback"
    assert str(account_id).startswith("acct_")
