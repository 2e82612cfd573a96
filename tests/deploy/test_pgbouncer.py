"""The app behind the shipped PgBouncer config, in transaction mode with a tiny pool.

PgBouncer runs on a free loopback port in front of this run's test database, with
``default_pool_size = 2``: many client connections (the API's pool, the worker code's)
share two server connections, so a transaction of seller B regularly runs on a server
connection that just served seller A. Every flow must work and see only its own rows.
Only the settings a test server forces are changed from the shipped file (trust auth,
ports, paths); ``pool_mode`` and the rest are as shipped.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import pwd
import secrets
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, ProcessResult, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_daily, ingest_raw
from pixecom_core.tenancy import open_seller_scope
from reference_app.api import create_app
from tests.app.test_checkout import ORDER, published_page
from tests.deploy.conftest import DEPLOY_DIR, free_loopback_port, require_binary
from tests.ledger import fakepay
from tests.stats.test_pipeline import DAY, T0, daily, insight, make_shop

SHIPPED_INI = DEPLOY_DIR / "pgbouncer" / "pgbouncer.ini"
USERLIST_EXAMPLE = DEPLOY_DIR / "pgbouncer" / "userlist.txt.example"
PASSWORD = "correct horse battery staple"
SERVER_POOL = 2


@dataclass(frozen=True)
class Bouncer:
    port: int
    app_role: str

    def dsn(self, database: str = "pixecom") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={database} user={self.app_role}"

    def admin(self, command: str) -> list[dict[str, object]]:
        """Rows of a PgBouncer admin console command (SHOW POOLS, SHOW SERVERS …)."""
        with psycopg.connect(self.dsn("pgbouncer"), autocommit=True) as conn:
            cursor = conn.execute(command, prepare=False)
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def shipped_config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read(SHIPPED_INI)
    return parser


def unprivileged_user(server_host: str) -> str:
    """Who PgBouncer runs as when the test runs as root: the owner of the server's Unix
    socket folder (the embedded PostgreSQL's system user, who can reach that socket),
    else nobody (a TCP server)."""
    if server_host.startswith("/"):
        owner = Path(server_host).stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    return "nobody"


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pgbouncer exited {process.returncode}: {log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"pgbouncer did not listen on {port}: {log.read_text()}")


@pytest.fixture(scope="module")
def bouncer(settings: Settings) -> Iterator[Bouncer]:
    """PgBouncer from the shipped config, pointing at this run's database."""
    binary = require_binary("pgbouncer", apt_package="pgbouncer")
    assert settings.database_url
    target = conninfo_to_dict(settings.database_url)
    server = " ".join(
        f"{key}={target[key]}" for key in ("host", "port") if target.get(key) is not None
    )
    config = shipped_config()
    assert config["pgbouncer"]["pool_mode"] == "transaction"
    port = free_loopback_port()
    # PgBouncer refuses to run as root and drops to `user`; that user must read these
    # files, so they live in a world-readable folder instead of pytest's private one.
    work = Path(tempfile.mkdtemp(prefix="pixecom-pgbouncer-"))
    work.chmod(0o755)
    userlist = work / "userlist.txt"
    # The example's comment lines stay in: PgBouncer must accept the shipped format.
    comments = [line for line in USERLIST_EXAMPLE.read_text().splitlines() if line.startswith(";")]
    userlist.write_text("\n".join([*comments, f'"{settings.app_role}" ""', ""]))
    config["databases"] = {
        "pixecom": f"{server} dbname={target['dbname']}",
        # One server connection: proves connections really are shared (see below).
        "pixecom_single": f"{server} dbname={target['dbname']} pool_size=1",
    }
    section = config["pgbouncer"]
    for key in ("logfile", "pidfile", "stats_users"):
        section.pop(key, None)
    section.update(
        {
            "listen_addr": "127.0.0.1",
            "listen_port": str(port),
            "unix_socket_dir": "",
            # The test servers trust loopback; production uses scram-sha-256 (shipped).
            "auth_type": "trust",
            "auth_file": str(userlist),
            "admin_users": settings.app_role,
            "default_pool_size": str(SERVER_POOL),
            "reserve_pool_size": "0",
            "max_db_connections": str(SERVER_POOL + 1),
        }
    )
    if os.geteuid() == 0:
        section["user"] = unprivileged_user(str(target.get("host") or ""))
    ini = work / "pgbouncer.ini"
    with ini.open("w") as handle:
        config.write(handle)
    for path in (ini, userlist):
        path.chmod(0o644)
    log = work / "pgbouncer.log"
    process = subprocess.Popen(
        [str(binary), str(ini)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, process, log)
        yield Bouncer(port=port, app_role=settings.app_role)
    finally:
        process.terminate()
        process.wait(timeout=30)
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


@pytest.fixture
def bounced_settings(settings: Settings, bouncer: Bouncer) -> Settings:
    """The app role connects through PgBouncer, as `.env.example` documents."""
    return settings.model_copy(
        update={
            "app_database_url": f"postgresql://{bouncer.app_role}@127.0.0.1:{bouncer.port}/pixecom",
            "db_behind_pgbouncer": True,
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(secrets.token_urlsafe(48)),
        }
    )


@pytest.fixture
async def client(bounced_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    manager = create_plugin_manager(load_entry_points=False, plugins=[fakepay])
    app = create_app(bounced_settings, plugin_manager=manager)
    async with (
        LifespanManager(app) as running,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=running.app, raise_app_exceptions=False),
            base_url="http://pixecom.test",
        ) as http,
    ):
        yield http


@dataclass(frozen=True)
class Seller:
    seller_id: uuid.UUID
    headers: dict[str, str]


async def sign_up(http: httpx.AsyncClient, settings: Settings) -> Seller:
    assert settings.admin_api_key is not None
    email = f"owner-{uuid.uuid4().hex[:12]}@example.com"
    created = await http.post(
        "/auth/signup",
        json={
            "seller_name": f"Seller {email}",
            "reporting_currency": "USD",
            "email": email,
            "password": PASSWORD,
        },
        headers={"X-Admin-Key": settings.admin_api_key.get_secret_value()},
    )
    assert created.status_code == 201, created.text
    tokens = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return Seller(
        seller_id=uuid.UUID(created.json()["seller"]["id"]),
        headers={"Authorization": f"Bearer {tokens.json()['access_token']}"},
    )


async def product_ids(http: httpx.AsyncClient, seller: Seller) -> set[str]:
    listed = await http.get("/products", params={"limit": 200}, headers=seller.headers)
    assert listed.status_code == 200, listed.text
    return {item["id"] for item in listed.json()["items"]}


def server_connections(bouncer: Bouncer) -> int:
    return sum(1 for row in bouncer.admin("SHOW SERVERS") if row["database"] == "pixecom")


async def test_sign_up_and_catalog_crud_stay_per_seller_on_shared_connections(
    client: httpx.AsyncClient, bounced_settings: Settings, bouncer: Bouncer
) -> None:
    a, b = await asyncio.gather(
        sign_up(client, bounced_settings), sign_up(client, bounced_settings)
    )

    async def create(seller: Seller, n: int) -> str:
        made = await client.post(
            "/products",
            json={"sku": f"SKU-{uuid.uuid4().hex[:10].upper()}", "name": f"Shirt {n}"},
            headers=seller.headers,
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    created = await asyncio.gather(*(create(s, n) for n in range(12) for s in (a, b)))
    mine = {a.seller_id: set(created[0::2]), b.seller_id: set(created[1::2])}
    # Reads interleaved across sellers, many at once, on two server connections.
    seen = await asyncio.gather(*(product_ids(client, s) for _ in range(8) for s in (a, b)))
    for index, ids in enumerate(seen):
        assert ids == mine[(a if index % 2 == 0 else b).seller_id]

    victim = sorted(mine[a.seller_id])[0]
    renamed, foreign_rename, foreign_delete = await asyncio.gather(
        client.patch(f"/products/{victim}", json={"name": "Linen"}, headers=a.headers),
        client.patch(f"/products/{victim}", json={"name": "Stolen"}, headers=b.headers),
        client.delete(f"/products/{victim}", headers=b.headers),
    )
    assert renamed.status_code == 200, renamed.text
    assert foreign_rename.status_code == 404
    assert foreign_delete.status_code == 404
    archived = sorted(mine[a.seller_id])[1]
    deleted = await client.delete(f"/products/{archived}", headers=a.headers)
    assert deleted.status_code == 204  # deleting archives: orders keep referring to it
    fetched = await client.get(f"/products/{archived}", headers=a.headers)
    assert fetched.json()["status"] == "ARCHIVED"
    assert (await client.get(f"/products/{victim}", headers=a.headers)).json()["name"] == "Linen"
    assert await product_ids(client, a) == mine[a.seller_id]
    assert await product_ids(client, b) == mine[b.seller_id]
    # The sharing was real: more clients than the two server connections they ran on.
    assert server_connections(bouncer) <= SERVER_POOL
    clients = [row for row in bouncer.admin("SHOW CLIENTS") if row["database"] == "pixecom"]
    assert len(clients) > SERVER_POOL


async def test_checkout_and_webhook_into_the_ledger(
    client: httpx.AsyncClient, bounced_settings: Settings, bouncer: Bouncer
) -> None:
    seller = await sign_up(client, bounced_settings)
    slug = await published_page(client, seller)  # type: ignore[arg-type]  # same shape

    placed = await client.post(f"/public/sellpages/{slug}/orders", json=ORDER)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    delivery, headers = fakepay.delivery(
        [
            fakepay.fact(
                order["gateway_reference"], "ch_bounced", PaymentEventKind.CAPTURED, 7_497, "EUR"
            )
        ]
    )
    ack = await client.post("/webhooks/fakepay", content=delivery, headers=headers)
    assert ack.status_code == 200, ack.text

    # The worker's code, on its own engine, through PgBouncer too.
    engine = create_engine(bounced_settings, role="app")
    try:
        sessions = create_sessionmaker(engine)
        registry = ProviderRegistry(
            create_plugin_manager(load_entry_points=False, plugins=[fakepay])
        )
        inbox = WebhookInbox(
            sessions, bounced_settings, registry, Ledger(sessions, bounced_settings)
        )
        results = [await inbox.process(inbox_id) for inbox_id in await inbox.due()]
    finally:
        await engine.dispose()
    assert ProcessResult.PROCESSED in results

    events = await client.get(f"/orders/{order['order_id']}/events", headers=seller.headers)
    assert events.status_code == 200, events.text
    assert [e["event_type"] for e in events.json()["items"]] == [
        "CREATED",
        "PAYMENT_RECORDED",
        "STATUS_CHANGED",
    ]
    fetched = await client.get(f"/orders/{order['order_id']}", headers=seller.headers)
    assert fetched.json()["status"] == "PAID"
    assert server_connections(bouncer) <= SERVER_POOL


async def test_stats_ingest_and_aggregate_through_the_pool(
    bounced_settings: Settings, bouncer: Bouncer, database_owner_dsn: str
) -> None:
    shops = [make_shop(database_owner_dsn) for _ in range(4)]
    engine = create_engine(bounced_settings, role="app")
    sessions = create_sessionmaker(engine)

    async def sync(index: int) -> int:
        shop = shops[index % len(shops)]
        rows = [
            insight(shop.campaign, DAY - timedelta(days=d), T0, (index + 1) * 1_000_000)
            for d in range(3)
        ]
        async with open_seller_scope(sessions, shop.seller_id, bounced_settings) as scope:
            # COPY into the temporary staging table, then the seller-scoped upsert:
            # both inside this one transaction, whichever server connection it gets.
            await ingest_raw(scope, rows)
            return await aggregate_daily(
                scope, network="meta", since=DAY - timedelta(days=3), until=DAY
            )

    try:
        # Twice per shop, concurrently: eight transactions on two server connections.
        await asyncio.gather(*(sync(i) for i in range(len(shops) * 2)))
    finally:
        await engine.dispose()

    for index, shop in enumerate(shops):
        later = index + len(shops)  # both runs fetched at T0; the upsert keeps one
        days = daily(database_owner_dsn, shop.seller_id)
        assert set(days) == {(shop.campaign, DAY - timedelta(days=d)) for d in range(3)}
        assert set(days.values()) <= {(index + 1) * 1_000_000, (later + 1) * 1_000_000}
    assert server_connections(bouncer) <= SERVER_POOL


def test_seller_scope_never_outlives_its_transaction_on_a_shared_connection(
    bouncer: Bouncer, database_owner_dsn: str
) -> None:
    """Through a one-connection pool: what one client set with SET LOCAL (the app's way)
    is gone for the next client; a session-level SET would leak (the reason the app
    never uses one), which also proves the two clients really share a server."""
    shop = make_shop(database_owner_dsn)
    with (
        psycopg.connect(bouncer.dsn("pixecom_single"), prepare_threshold=None) as first,
        psycopg.connect(bouncer.dsn("pixecom_single"), prepare_threshold=None) as second,
    ):
        with first.transaction():
            first.execute(
                "SELECT set_config('app.current_seller_id', %s, true)", (str(shop.seller_id),)
            )
            mine = first.execute("SELECT count(*) FROM campaigns").fetchone()
        with second.transaction():
            leaked = second.execute(
                "SELECT current_setting('app.current_seller_id', true),"
                " (SELECT count(*) FROM campaigns)"
            ).fetchone()
        assert mine == (1,)
        assert leaked is not None and leaked[0] in (None, "") and leaked[1] == 0

        # Session level (is_local => false): what SET without LOCAL does.
        first.execute(
            "SELECT set_config('app.current_seller_id', %s, false)", (str(shop.seller_id),)
        )
        first.commit()
        with second.transaction():
            session_level = second.execute(
                "SELECT current_setting('app.current_seller_id', true)"
            ).fetchone()
        second.execute("RESET app.current_seller_id")
        second.commit()
    assert session_level == (str(shop.seller_id),)
