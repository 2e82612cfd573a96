"""``pixecom dev``'s demo seller connects its own PayPal REST app the way any seller does
(issue 15 item 5): the sandbox hands out a new app's credentials
(:attr:`Sandbox.demo_credentials`), PayPal checks them, the app is subscribed to its own
webhook address — so demo checkouts are orders of that app."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.settings import Settings
from reference_app.demo_activity import seed_demo_activity
from tests.demo_support import API_URL, demo_seller, served_sandbox


async def test_the_demo_seller_connects_its_paypal_app_with_credentials(
    app_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev, seller_id = await demo_seller(app_settings, app_engine, monkeypatch)
    with served_sandbox(monkeypatch, "pixecom_paypal.plugin", "paypal") as (url, sandbox):
        assert sandbox.demo_credentials is not None
        first = await seed_demo_activity(dev, api_url=API_URL, sandbox_urls={"paypal": url})
        again = await seed_demo_activity(dev, api_url=API_URL, sandbox_urls={"paypal": url})

    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT status, redirect_uri, account_id FROM payment_connections"
            " WHERE seller_id = %s AND gateway = 'paypal'",
            (seller_id,),
        ).fetchall()
    assert first.payment_accounts_connected == 1 and again.payment_accounts_connected == 0
    [(status, redirect_uri, account_id)] = rows
    assert status == "ACTIVE"
    assert redirect_uri is None  # no consent page: credentials
    assert str(account_id).startswith("APP-")
