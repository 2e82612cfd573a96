"""Dashboard reads go to a streaming read replica; writes stay on the primary; seller
isolation holds on the replica (SCALE-6, TENANT-2).

A real primary and hot standby on loopback (:mod:`tests.scaleout.replica`). Replay on the
standby is paused to make its view distinguishable: the stats routes then answer from the
replica's older snapshot while the primary already has the new numbers.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from pixecom_core.db.engine import create_engine
from pixecom_core.db.urls import conninfo
from pixecom_core.plugins import create_plugin_manager
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from reference_app.api import create_app
from tests.db.tenant_rows import insert_seller_day, seller_scope
from tests.scaleout.replica import StreamingPair, streaming_pair

PASSWORD = "correct horse battery staple"
TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def replicated(servers: tuple[str, str]) -> Iterator[tuple[StreamingPair, TestDatabase]]:
    """A migrated database on a primary that streams to a standby."""
    with streaming_pair() as pair, provision_test_database(pair.primary_dsn, servers[1]) as db:
        pair.wait_for_replay()
        yield pair, db


@pytest.fixture
def admin_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def replica_settings(replicated: tuple[StreamingPair, TestDatabase], admin_key: str) -> Settings:
    pair, db = replicated
    return db.settings.model_copy(
        update={
            "read_database_url": conninfo(db.app_dsn, port=str(pair.replica_port)),
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(admin_key),
        }
    )


@pytest.fixture
async def client(replica_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        replica_settings, plugin_manager=create_plugin_manager(load_entry_points=False)
    )
    async with (
        LifespanManager(app) as running,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=running.app), base_url="http://pixecom.test"
        ) as http,
    ):
        yield http


async def sign_up(http: httpx.AsyncClient, admin_key: str) -> tuple[uuid.UUID, dict[str, str]]:
    """A seller created and logged in through the API (writes: the primary)."""
    email = f"owner-{uuid.uuid4().hex[:12]}@example.com"
    created = await http.post(
        "/auth/signup",
        json={
            "seller_name": "Replica seller",
            "reporting_currency": "USD",
            "email": email,
            "password": PASSWORD,
        },
        headers={"X-Admin-Key": admin_key},
    )
    assert created.status_code == 201, created.text
    tokens = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return uuid.UUID(created.json()["seller"]["id"]), {
        "Authorization": f"Bearer {tokens.json()['access_token']}"
    }


def put_spend(owner_dsn: str, seller_id: uuid.UUID, spend_minor: int) -> None:
    """The day's sellpage and seller figures, as the worker writes them (on the primary)."""
    with psycopg.connect(owner_dsn, autocommit=True) as conn, seller_scope(conn, seller_id):
        page = conn.execute("SELECT id FROM sellpages WHERE seller_id = %s", (seller_id,))
        row = page.fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'P') RETURNING id",
                (seller_id, f"p-{uuid.uuid4().hex[:10]}"),
            ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date,"
            " reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,"
            " chargebacks_minor, net_revenue_minor, orders_count, roas)"
            " VALUES (%s, %s, %s, 'USD', %s, 0, 0, 0, 0, 0, 0)"
            " ON CONFLICT (seller_id, sellpage_id, stat_date)"
            " DO UPDATE SET spend_minor = EXCLUDED.spend_minor",
            (seller_id, row[0], TODAY, spend_minor),
        )
        # The seller's own day, which the overview reads (issue 16).
        conn.execute(
            "DELETE FROM seller_stats_daily WHERE seller_id = %s AND stat_date = %s",
            (seller_id, TODAY),
        )
        insert_seller_day(conn, seller_id, TODAY, spend_minor=spend_minor)


async def spend_seen(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await http.get(
        "/stats/overview",
        params={"since": TODAY.isoformat(), "until": TODAY.isoformat()},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["totals"]["spend_minor"])


async def test_stats_read_the_replica_and_writes_stay_on_the_primary(
    replicated: tuple[StreamingPair, TestDatabase],
    client: httpx.AsyncClient,
    admin_key: str,
) -> None:
    pair, db = replicated
    seller_a, headers_a = await sign_up(client, admin_key)
    seller_b, headers_b = await sign_up(client, admin_key)
    put_spend(db.owner_dsn, seller_a, 1_000)
    put_spend(db.owner_dsn, seller_b, 7)
    pair.wait_for_replay()
    assert await spend_seen(client, headers_a) == 1_000

    pair.pause_replay()
    try:
        put_spend(db.owner_dsn, seller_a, 2_500)
        # The dashboard shows the replica's (older) view: it did not read the primary.
        assert await spend_seen(client, headers_a) == 1_000
        # A write and the read that follows it use the primary: nothing lags there.
        created = await client.post(
            "/products", json={"sku": "SKU-1", "name": "Shirt"}, headers=headers_a
        )
        assert created.status_code == 201, created.text
        listed = await client.get("/products", headers=headers_a)
        assert [item["sku"] for item in listed.json()["items"]] == ["SKU-1"]
    finally:
        pair.resume_replay()
    pair.wait_for_replay()
    assert await spend_seen(client, headers_a) == 2_500

    # Seller isolation on the replica: each seller sees only its own numbers.
    assert await spend_seen(client, headers_b) == 7
    with psycopg.connect(pair.replica_dsn, dbname=db.name) as replica:
        names = replica.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = %s",
            (db.name,),
        ).fetchall()
    assert ("pixecom-api-reports",) in names


def test_the_app_role_on_the_replica_is_bound_by_row_level_security(
    replicated: tuple[StreamingPair, TestDatabase],
) -> None:
    pair, db = replicated
    seller_a, seller_b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
        for seller_id in (seller_a, seller_b):
            with seller_scope(conn, seller_id):
                conn.execute(
                    "INSERT INTO sellers (id, name, reporting_currency) VALUES (%s, 'S', 'USD')",
                    (seller_id,),
                )
    put_spend(db.owner_dsn, seller_a, 11)
    put_spend(db.owner_dsn, seller_b, 13)
    pair.wait_for_replay()

    replica_app = conninfo(db.app_dsn, port=str(pair.replica_port))
    with psycopg.connect(replica_app) as conn:
        # Roles and policies replicate physically: no scope, no rows.
        assert conn.execute("SELECT count(*) FROM sellpage_stats_daily").fetchone() == (0,)
        with seller_scope(conn, seller_a):
            rows = conn.execute("SELECT seller_id, spend_minor FROM sellpage_stats_daily")
            assert rows.fetchall() == [(seller_a, 11)]
        # And the replica refuses writes outright.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), seller_scope(conn, seller_b):
            conn.execute("UPDATE sellpage_stats_daily SET spend_minor = 0")


def test_without_a_replica_there_is_no_replica_engine(settings: Settings) -> None:
    assert settings.read_database_url is None
    with pytest.raises(ValueError, match="read_database_url is not set"):
        create_engine(settings, role="replica")
