"""``pixecom dev``'s demo seller connects its ad accounts the way any seller does (issue 14
item 8): a connection started, the Meta sandbox's consent page approved, the code
exchanged, the reachable accounts connected and their backfill queued — no rows inserted
behind the flow's back."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.settings import Settings
from reference_app.demo_activity import seed_demo_activity
from reference_app.worker.broker import Queue, stream_name
from tests.demo_support import API_URL, demo_seller, served_sandbox


@pytest.fixture
def meta_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The installed Meta plugin's sandbox on loopback, the plugin pointed at it as
    ``pixecom dev`` points it."""
    with served_sandbox(monkeypatch, "pixecom_meta_ads.plugin", "meta") as (url, sandbox):
        assert sandbox.approve_consent is not None
        yield url


def demo_rows(owner_dsn: str, seller_id: object) -> dict[str, object]:
    with psycopg.connect(owner_dsn) as conn:
        connections = conn.execute(
            "SELECT status, redirect_uri, consumed_at IS NOT NULL FROM ad_connections"
            " WHERE seller_id = %s AND network = 'meta'",
            (seller_id,),
        ).fetchall()
        accounts = conn.execute(
            "SELECT external_id, connection_id IS NOT NULL, token_ciphertext IS NOT NULL,"
            " backfill_since IS NOT NULL, token_expires_at IS NOT NULL FROM ad_accounts"
            " WHERE seller_id = %s AND network = 'meta' ORDER BY external_id",
            (seller_id,),
        ).fetchall()
        spend = conn.execute(
            "SELECT coalesce(sum(spend_micros), 0) FROM ad_stats_daily"
            " WHERE seller_id = %s AND entity_type = 'campaign'",
            (seller_id,),
        ).fetchone()
    assert spend is not None
    return {"connections": connections, "accounts": accounts, "spend": spend[0]}


@pytest.mark.usefixtures("meta_sandbox")
async def test_the_demo_seller_connects_its_accounts_through_the_consent_flow(
    app_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dev, seller_id = await demo_seller(app_settings, app_engine, monkeypatch)
    queue = redis.Redis.from_url(dev.redis_url or "")
    backfills_before = queue.xlen(stream_name(dev, Queue.BACKFILL))

    first = await seed_demo_activity(dev, api_url=API_URL)
    again = await seed_demo_activity(dev, api_url=API_URL)

    rows = demo_rows(database_owner_dsn, seller_id)
    # One consent flow: the callback named the API, its state was used, the grant kept.
    assert rows["connections"] == [
        ("AUTHORIZED", f"{API_URL}/ad-accounts/connections/callback", True)
    ]
    # The sandbox user the demo logs in as reaches exactly the two demo accounts.
    assert rows["accounts"] == [
        ("1000", True, True, True, True),
        ("1001", True, True, True, True),
    ]
    assert first.accounts_connected == 2 and again.accounts_connected == 0
    assert queue.xlen(stream_name(dev, Queue.BACKFILL)) == backfills_before + 2
    assert rows["spend"] > 0, "the first sync brought the demo accounts' spend in"


async def test_the_demo_seller_reports_purchases_to_the_sandbox_pixel(
    app_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    meta_sandbox: str,
) -> None:
    """Issue 17: ``pixecom dev`` points the demo seller's conversion events at the pixel
    the Meta sandbox keeps, through the same service as the API; once."""
    dev, seller_id = await demo_seller(app_settings, app_engine, monkeypatch)

    await seed_demo_activity(dev, api_url=API_URL, sandbox_urls={"meta": meta_sandbox})
    await seed_demo_activity(dev, api_url=API_URL, sandbox_urls={"meta": meta_sandbox})

    with psycopg.connect(database_owner_dsn) as conn:
        rows = conn.execute(
            "SELECT network, destination_id, token_ciphertext IS NOT NULL"
            " FROM conversion_destinations WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    assert rows == [("meta", "1000000000001000", True)]
