"""``pixecom dev``'s demo seller connects its own Stripe account the way any seller does
(issue 15 item 5): a connection started, the Stripe sandbox's Connect consent page
approved, the code exchanged — so demo checkouts are paid into that account."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.settings import Settings
from reference_app.demo_activity import seed_demo_activity
from tests.demo_support import API_URL, demo_seller, served_sandbox


async def test_the_demo_seller_connects_its_stripe_account_through_connect(
    app_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev, seller_id = await demo_seller(app_settings, app_engine, monkeypatch)
    with served_sandbox(monkeypatch, "pixecom_stripe.plugin", "stripe") as (_, sandbox):
        assert sandbox.approve_consent is not None
        first = await seed_demo_activity(dev, api_url=API_URL)
        again = await seed_demo_activity(dev, api_url=API_URL)

    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT status, redirect_uri, account_id FROM payment_connections"
            " WHERE seller_id = %s AND gateway = 'stripe'",
            (seller_id,),
        ).fetchall()
    assert first.payment_accounts_connected == 1 and again.payment_accounts_connected == 0
    [(status, redirect_uri, account_id)] = rows
    assert status == "ACTIVE"
    assert redirect_uri == f"{API_URL}/payments/connections/callback"
    assert str(account_id).startswith("acct_")
