"""Issue 14's "what must hold", end to end against the Meta sandbox: a connected account's
history is backfilled; a revoked token ends in ``needs_reconnect`` (and the seller's
problem); reconnecting through the consent page resumes syncing with no gap and no double
count — every campaign-day equals what the network reports, once.

The API runs over ASGI with the Meta plugin pointed at its sandbox on loopback; syncs and
backfill chunks run in-process with a fixed clock, and the sandbox's "today" is pinned to
the same days, so the test reads the same numbers on any date.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import shared_ssl_context
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.sandbox_oauth import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.ad_accounts import connections
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import AdAccountCredentials, EntityLevel
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.backfill import ChunkOutcome, backfill_chunk
from pixecom_core.stats.sync import AccountOutcome, StatsSync
from pixecom_core.tenancy import SellerContext
from pixecom_core.testing.loopback import LoopbackServer
from tests.ad_accounts.conftest import Owner
from tests.ad_accounts.test_meta_sandbox_end_to_end import MetaPlugin, consent
from tests.app.conftest import ClientFactory, NewSeller, SignedUpSeller

ACCOUNT = "1002"  # reached by the sandbox's second user, the one `consent` logs in as
CONNECTED_AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
REVOKED_FOR = timedelta(days=6)


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with LoopbackServer(create_sandbox_app(MetaSandboxSettings())) as server:
        yield server.url


@pytest.fixture
async def network(sandbox_url: str) -> AsyncIterator[MetaAdNetwork]:
    meta = MetaAdNetwork(
        MetaAdsSettings(
            graph_base=sandbox_url,
            dialog_base=sandbox_url,
            app_id=DEFAULT_APP_ID,
            app_secret=SecretStr(DEFAULT_APP_SECRET),
            transient_backoff_seconds=0,
        )
    )
    try:
        yield meta
    finally:
        await meta.aclose()


@pytest.fixture
async def meta_client(
    app_settings: Settings, api_client_for: ClientFactory, network: MetaAdNetwork
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client_for(app_settings, plugins=[MetaPlugin(network)]) as client:
        yield client


async def pin_today(sandbox_url: str, day: date) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as control:
        pinned = await control.put(f"/_sandbox/accounts/{ACCOUNT}", json={"today": str(day)})
    assert pinned.status_code == 200, pinned.text


async def connect(
    client: httpx.AsyncClient, seller: SignedUpSeller
) -> tuple[dict[str, object], str]:
    """The seller's whole flow: consent page, callback, chooser. The account, its token."""
    started = await client.post(
        "/ad-accounts/connections", json={"network": "meta"}, headers=seller.headers
    )
    assert started.status_code == 201, started.text
    async with httpx.AsyncClient(timeout=10, verify=shared_ssl_context()) as browser:
        callback = httpx.URL(await consent(browser, started.json()["authorization_url"]))
    landed = await client.get(callback.path, params=callback.params, headers=seller.headers)
    assert landed.status_code == 303, landed.text
    connected = await client.post(
        "/ad-accounts",
        json={"connection_id": started.json()["id"], "external_ids": [ACCOUNT]},
        headers=seller.headers,
    )
    assert connected.status_code == 201, connected.text
    return connected.json()["accounts"][0], started.json()["id"]


async def backfill(sync: StatsSync, context: SellerContext, account_id: str, now: datetime) -> int:
    """Run the account's backfill chunks to the end, as the backfill worker would."""
    chunks = 0
    while True:
        chunk = await backfill_chunk(sync, context, account_id, chunk_days=7, now=now)  # type: ignore[arg-type]
        if chunk.outcome is ChunkOutcome.DONE or chunk.complete:
            return chunks + (chunk.outcome is ChunkOutcome.ADVANCED)
        assert chunk.outcome is ChunkOutcome.ADVANCED, chunk
        chunks += 1


def stored_campaign_days(owner: Owner, seller_id: object) -> dict[tuple[str, date], int]:
    rows = owner.execute(
        "SELECT entity_id, stat_date, spend_micros FROM ad_stats_daily"
        " WHERE seller_id = %s AND entity_type = 'campaign'",
        (seller_id,),
    ).fetchall()
    return {(entity, day): spend for entity, day, spend in rows}


class Clock:
    """The time the connect flow runs at (the syncs get it as ``now``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock(CONNECTED_AT)
    monkeypatch.setattr(connections, "utcnow", fixed)
    return fixed


async def test_revoked_then_reconnected_the_account_has_every_day_once(
    clock: Clock,
    meta_client: httpx.AsyncClient,
    network: MetaAdNetwork,
    sandbox_url: str,
    new_seller: NewSeller,
    app_settings: Settings,
    app_engine: AsyncEngine,
    owner_conn: Owner,
) -> None:
    seller = await new_seller(client=meta_client)
    registry = ProviderRegistry(
        create_plugin_manager(load_entry_points=False, plugins=[MetaPlugin(network)])
    )
    sessions = create_sessionmaker(app_engine)
    sync = StatsSync(
        sessions, app_settings, registry, SecretBox(app_settings.token_encryption_keys)
    )
    context = SellerContext(seller_id=seller.seller_id, sessions=sessions, settings=app_settings)
    connected_day = CONNECTED_AT.date()
    await pin_today(sandbox_url, connected_day)

    # Connected: 28 days of history, then the regular syncs keep today current.
    account, _ = await connect(meta_client, seller)
    assert account["state"] == "backfilling"
    assert await backfill(sync, context, str(account["id"]), CONNECTED_AT) == 4
    first = await sync.sync_seller(seller.seller_id, days_back=3, now=CONNECTED_AT)
    assert [a.outcome for a in first.accounts] == [AccountOutcome.SYNCED]

    # The seller removes the app on Meta's side: every token of theirs is refused.
    async with httpx.AsyncClient(base_url=sandbox_url) as control:
        revoked = await control.post(
            "/_sandbox/oauth/tokens/revoke", json={"user_id": "100002", "reason": "app_removed"}
        )
    assert revoked.status_code == 200, revoked.text
    later = CONNECTED_AT + REVOKED_FOR
    clock.now = later
    await pin_today(sandbox_url, later.date())
    refused = await sync.sync_seller(seller.seller_id, days_back=3, now=later)
    assert [a.outcome for a in refused.accounts] == [AccountOutcome.NEEDS_RECONNECT]
    listed = await meta_client.get("/ad-accounts", headers=seller.headers)
    assert listed.json()["items"][0]["state"] == "needs_reconnect"
    problems = await meta_client.get("/problems", headers=seller.headers)
    assert [(p["kind"], p["state"]) for p in problems.json()["items"]] == [
        ("sync_error", "needs_reconnect")
    ]

    # Reconnected through the same flow: the days missed meanwhile are fetched too.
    account, connection_id = await connect(meta_client, seller)
    assert account["state"] == "backfilling" and account["connection_id"] == connection_id
    await backfill(sync, context, str(account["id"]), later)
    resumed = await sync.sync_seller(seller.seller_id, days_back=3, now=later)
    assert [a.outcome for a in resumed.accounts] == [AccountOutcome.SYNCED]
    assert (await meta_client.get("/problems", headers=seller.headers)).json()["items"] == []

    # Every campaign-day from the first backfilled day to yesterday is stored once, with
    # the network's numbers: no gap where the token was refused, nothing counted twice.
    first_day = connected_day - timedelta(days=28)
    yesterday = later.date() - timedelta(days=1)
    grant_token = owner_token(owner_conn, seller.seller_id, app_settings)
    reported: dict[tuple[str, date], int] = {}
    async for row in network.fetch_daily_insights(
        AdAccountCredentials(
            seller_id=seller.seller_id, account_id=ACCOUNT, access_token=SecretStr(grant_token)
        ),
        level=EntityLevel.CAMPAIGN,
        since=first_day,
        until=yesterday,
    ):
        reported[(row.entity_id, row.date_start)] = row.spend_micros
    stored = {
        key: spend
        for key, spend in stored_campaign_days(owner_conn, seller.seller_id).items()
        if first_day <= key[1] <= yesterday
    }
    days_reported = {day for _, day in reported}
    assert days_reported == {first_day + timedelta(days=n) for n in range(34)}, "no gap"
    assert stored == reported


def owner_token(owner: Owner, seller_id: object, settings: Settings) -> str:
    """The account's current token, decrypted (to ask the network what it reports)."""
    row = owner.execute(
        "SELECT token_ciphertext FROM ad_accounts WHERE seller_id = %s AND external_id = %s",
        (seller_id, ACCOUNT),
    ).fetchone()
    assert row is not None and row[0] is not None
    return SecretBox(settings.token_encryption_keys).decrypt(bytes(row[0]))
