"""A seller's ad accounts sync side by side (issue 18 item 3): at most
``sync_accounts_concurrency`` at once, each under its own timeout, none waiting for another.

Against the Meta sandbox on loopback with a latency, wrapped so it counts the Graph calls
in flight; real PostgreSQL and Redis. Timing is only compared with itself (a seller of one
account against a seller of twelve), with wide margins.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as redis
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import AdNetwork
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import JobOutcome, SyncJobs
from pixecom_core.stats.sync import AccountOutcome, StatsSync
from pixecom_core.testing.databases import TestDatabase
from pixecom_core.testing.loopback import LoopbackServer
from tests.db.tenant_rows import insert_seller, seller_scope

LATENCY_SECONDS = 0.25
BOUND = 4
TOKEN = "pixecom-parallel-token"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class InFlight:
    """An ASGI wrapper counting the Graph calls (not the control API) being answered."""

    app: ASGIApp
    now: int = 0
    most: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


class MetaPlugin:
    def __init__(self, network: MetaAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[str, InFlight]]:
    counter = InFlight(
        create_sandbox_app(
            MetaSandboxSettings(latency_seconds=LATENCY_SECONDS, campaigns_per_account=2)
        )
    )
    async with LoopbackServer(counter) as server:
        yield server.url, counter


@pytest.fixture
def sync_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "sync_accounts_concurrency": BOUND,
            "sync_account_timeout_seconds": 4.0,
        }
    )


@pytest.fixture
async def network(sandbox: tuple[str, InFlight]) -> AsyncIterator[MetaAdNetwork]:
    meta = MetaAdNetwork(
        MetaAdsSettings(graph_base=sandbox[0], transient_backoff_seconds=0, timeout_seconds=60)
    )
    yield meta
    await meta.aclose()


@pytest.fixture
def stats_sync(
    app_engine: AsyncEngine, sync_settings: Settings, network: MetaAdNetwork
) -> StatsSync:
    manager = create_plugin_manager(load_entry_points=False, plugins=[MetaPlugin(network)])
    return StatsSync(
        create_sessionmaker(app_engine),
        sync_settings,
        ProviderRegistry(manager),
        SecretBox(sync_settings.token_encryption_keys),
        manager,
    )


def seller_with_meta_accounts(
    dsn: str,
    settings: Settings,
    numbers: list[int],
    *,
    synced: dict[int, datetime] | None = None,
) -> tuple[uuid.UUID, dict[int, uuid.UUID]]:
    """A seller with a Meta ad account per sandbox account number (≡ 0 mod 8: USD, GMT);
    ``synced`` sets some accounts' last sync (the others never synced)."""
    box = SecretBox(settings.token_encryption_keys)
    seller_id = uuid.uuid4()
    ids: dict[int, uuid.UUID] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            for number in numbers:
                row = conn.execute(
                    "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                    " currency, token_ciphertext, token_key_version, last_synced_at)"
                    " VALUES (%s, 'meta', %s, 'parallel', 'Etc/GMT', 'USD', %s, %s, %s)"
                    " RETURNING id",
                    (
                        seller_id,
                        f"act_{number}",
                        box.encrypt(TOKEN),
                        box.primary_version,
                        (synced or {}).get(number),
                    ),
                ).fetchone()
                assert row is not None
                ids[number] = row[0]
    return seller_id, ids


def daily_rows_per_account(dsn: str, seller_id: uuid.UUID) -> dict[uuid.UUID, int]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT ad_account_id, count(*) FROM ad_stats_daily WHERE seller_id = %s"
            " GROUP BY ad_account_id",
            (seller_id,),
        ).fetchall()
    return {account: int(count) for account, count in rows}


def account_state(dsn: str, seller_id: uuid.UUID, account_id: uuid.UUID) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            "SELECT last_sync_error, sync_failures, last_synced_at FROM ad_accounts WHERE id = %s",
            (account_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


async def hang(sandbox_url: str, number: int) -> None:
    """Every Graph call about account ``number`` hangs for 60 s."""
    async with httpx.AsyncClient(base_url=sandbox_url) as control:
        queued = await control.post(
            "/_sandbox/faults",
            json={"kind": "hang", "scope": f"act_{number}", "hang_seconds": 60, "times": 100},
        )
    assert queued.status_code < 300, queued.text


async def test_twelve_accounts_take_three_rounds_at_a_bound_of_four_not_twelve(
    stats_sync: StatsSync,
    sandbox: tuple[str, InFlight],
    sync_settings: Settings,
    database_owner_dsn: str,
) -> None:
    _, counter = sandbox
    alone, _ = seller_with_meta_accounts(database_owner_dsn, sync_settings, [8])
    big, ids = seller_with_meta_accounts(
        database_owner_dsn, sync_settings, [8 * n for n in range(2, 14)]
    )

    started = time.monotonic()
    one = await stats_sync.sync_seller(alone, days_back=3)
    one_account = time.monotonic() - started
    counter.most = 0
    started = time.monotonic()
    twelve = await stats_sync.sync_seller(big, days_back=3)
    twelve_accounts = time.monotonic() - started

    assert [a.outcome for a in one.accounts] == [AccountOutcome.SYNCED]
    assert [a.outcome for a in twelve.accounts] == [AccountOutcome.SYNCED] * 12
    assert counter.most == BOUND  # side by side, never past the bound
    # ceil(12 / 4) = 3 rounds of one account's time; one after another would be 12
    assert twelve_accounts < 6 * one_account, (one_account, twelve_accounts)
    rows = daily_rows_per_account(database_owner_dsn, big)
    assert set(rows) == set(ids.values()) and all(count > 0 for count in rows.values())
    # reported in the accounts' id order, as before they ran side by side
    assert [a.ad_account_id for a in twelve.accounts] == sorted(ids.values())


async def test_a_hanging_account_is_cut_off_and_the_others_land_meanwhile(
    stats_sync: StatsSync,
    sandbox: tuple[str, InFlight],
    sync_settings: Settings,
    database_owner_dsn: str,
) -> None:
    sandbox_url, _ = sandbox
    # The hanging account has never synced, so it goes first and holds a slot; the
    # others synced an hour ago.
    earlier = datetime.now(UTC) - timedelta(hours=1)
    others = [8 * n for n in range(20, 26)]
    seller_id, ids = seller_with_meta_accounts(
        database_owner_dsn,
        sync_settings,
        [8 * 19, *others],
        synced=dict.fromkeys(others, earlier),
    )
    await hang(sandbox_url, 8 * 19)

    started = time.monotonic()
    result = await stats_sync.sync_seller(seller_id, days_back=3)
    elapsed = time.monotonic() - started

    outcomes = {a.ad_account_id: a.outcome for a in result.accounts}
    assert outcomes[ids[8 * 19]] is AccountOutcome.TIMED_OUT
    assert all(outcomes[ids[n]] is AccountOutcome.SYNCED for n in others)
    # cut at its own 4 s, far before the sandbox's 60 s hang ends
    assert elapsed < 20, elapsed
    rows = daily_rows_per_account(database_owner_dsn, seller_id)
    assert set(rows) == {ids[n] for n in others}
    error, failures, synced_at = account_state(database_owner_dsn, seller_id, ids[8 * 19])
    assert "timed out after 4 s" in error and failures == 1 and synced_at is None
    for n in others:
        assert account_state(database_owner_dsn, seller_id, ids[n])[:2] == (None, 0)


async def test_a_timed_out_account_is_named_in_the_run_and_synced_next_cycle(
    stats_sync: StatsSync,
    sandbox: tuple[str, InFlight],
    sync_settings: Settings,
    app_engine: AsyncEngine,
    database: TestDatabase,
    database_owner_dsn: str,
) -> None:
    sandbox_url, _ = sandbox
    seller_id, ids = seller_with_meta_accounts(
        database_owner_dsn, sync_settings, [8 * 30, 8 * 31, 8 * 32]
    )
    await hang(sandbox_url, 8 * 31)
    client = redis.Redis.from_url(database.redis_url)
    jobs = SyncJobs(
        stats_sync,
        create_sessionmaker(app_engine),
        sync_settings,
        client,
        backoff_base_seconds=0.01,
    )
    try:
        first = await jobs.run(seller_id, days_back=3, task_id=f"cut-{seller_id}")
        async with httpx.AsyncClient(base_url=sandbox_url) as control:
            (await control.delete("/_sandbox/faults")).raise_for_status()
        second = await jobs.run(seller_id, days_back=3, task_id=f"next-{seller_id}")
    finally:
        await client.aclose()

    assert first.outcome is JobOutcome.DONE and second.outcome is JobOutcome.DONE
    assert second.sync is not None
    assert {a.outcome for a in second.sync.accounts} == {AccountOutcome.SYNCED}
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller_id):
        runs = conn.execute(
            "SELECT task_id, outcome FROM sync_runs WHERE seller_id = %s ORDER BY id",
            (seller_id,),
        ).fetchall()
    assert runs == [
        (f"cut-{seller_id}", "done (1 of 3 accounts timed out)"),
        (f"next-{seller_id}", "done"),
    ]
    error, failures, synced_at = account_state(database_owner_dsn, seller_id, ids[8 * 31])
    assert error is None and failures == 0 and synced_at is not None
    assert set(daily_rows_per_account(database_owner_dsn, seller_id)) == set(ids.values())
